"""Run the mwe CLI with a scripted model and checkpoint hooks that pause it where a test says.

    python tests/paced_mwe.py POINT[,POINT...] -- MWE ARGS...

Each POINT is ``name:k`` (a checkpoint and its count, e.g. ``score:1`` after the first score
batch is stored, ``score_writing:2`` inside the second batch's write, with the store file
held). At each, the process prints ``@@ name:k`` on stdout and waits for a line on stdin, so a
test can act while it is paused there and then let it go on, without sleeping or guessing.

Two models are registered: ``function:paced`` (log-probabilities that prefer each item's
matching answer on even items and the other answer on odd ones) and ``function:paced-judge``
with ``function:paced-writer`` for ``mwe generate``.
"""

from __future__ import annotations

import sys

from mwe.checkpoints import add_hook
from mwe.cli import main
from mwe.models.base import Message
from mwe.models.function_backend import register_function


def pause_at(points: set[str]) -> None:
    def hook(name: str, done: int | None) -> None:
        point = f"{name}:{done}" if done is not None else name
        if point in points:
            print(f"@@ {point}", flush=True)
            sys.stdin.readline()

    add_hook(hook)


def _logprobs(messages: list[Message], answers: list[str]) -> dict[str, float | None]:
    # Deterministic, and different across items: the first answer on short prompts.
    first = len(messages[-1].content) % 2 == 0
    return {a: (-0.1 if (k == 0) == first else -2.3) for k, a in enumerate(answers)}


def _writer(messages: list[Message], sample: int) -> str:
    text = messages[-1].content
    return "\n".join(
        f"- I think statement {sample}-{k}-{len(text)} about this is {'true' if k % 2 else 'false'}."
        for k in range(5)
    )


register_function("paced", reply=lambda messages, sample: "Yes", logprobs=_logprobs)
register_function("paced-writer", reply=_writer)
register_function("paced-judge", reply=lambda messages, sample: "Yes")


if __name__ == "__main__":
    points, separator, *args = sys.argv[1:]
    assert separator == "--", __doc__
    pause_at(set(points.split(",")))
    sys.argv = ["mwe", *args]
    main()
