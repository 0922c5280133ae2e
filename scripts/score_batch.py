"""Score many sets x many models from a config file, resuming after a crash or Ctrl-C.

    .venv/bin/python scripts/score_batch.py CONFIG.toml [--output table|csv|json]

The same as ``mwe score --config CONFIG.toml``; the config is described in
:mod:`mwe.scoring.batch`.
"""

from __future__ import annotations

import sys

from mwe.cli import cli

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit(f"usage: {sys.argv[0]} CONFIG.toml [--output table|csv|json]")
    cli(["score", "--config", *sys.argv[1:]], prog_name="score_batch.py")
