"""Run the mwe CLI with a checkpoint hook that SIGKILLs the process at a chosen point.

    python tests/crashing_mwe.py POINT -- MWE ARGS...

POINT is ``stage`` (the end of a stage) or ``stage:k`` (after its k-th call or batch), e.g.
``generate:7``, ``dedupe``, ``judge:40``, ``score:5``; ``POINT/INT`` sends SIGINT (what Ctrl-C
sends) instead, to a process whose main thread runs the CLI as a user's does.
"""

from __future__ import annotations

import os
import signal
import sys

from mwe.checkpoints import add_hook
from mwe.cli import main


def kill_at(point: str) -> None:
    point, _, signame = point.partition("/")
    sig = signal.Signals[f"SIG{signame}"] if signame else signal.SIGKILL
    stage, _, count = point.partition(":")
    want = int(count) if count else None

    def hook(name: str, done: int | None) -> None:
        if name == stage and done == want:
            os.kill(os.getpid(), sig)

    add_hook(hook)


if __name__ == "__main__":
    point, separator, *args = sys.argv[1:]
    assert separator == "--", __doc__
    kill_at(point)
    sys.argv = ["mwe", *args]
    main()
