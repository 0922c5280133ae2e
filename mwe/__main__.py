"""`python -m mwe` runs the CLI."""

from mwe.cli import main

main()
