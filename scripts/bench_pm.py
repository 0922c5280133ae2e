"""Benchmark the preference model's judging rate against its own encoder, in one process.

On ``--items`` public persona statements (the first of each behaviour file, in turn), runs

1. the bare embedding of the texts with the embedded all-MiniLM-L6-v2 (the baseline: what
   any judge built on this encoder must pay at least), and
2. the built-in pm's ``judge`` (both heads, the surface features and the word check),

``--rounds`` times each, alternating, and prints the items/s of each, the ratio pm / baseline
(1.0 would mean the heads cost nothing), and the share of the pm's time the word check of
:mod:`mwe.judges.wording` takes. A warm-up run of both comes first (model loads, the word list).

    .venv/bin/python scripts/bench_pm.py [--items 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mwe.judges.embeddings import embed
from mwe.judges.preference import builtin
from mwe.judges.wording import unknown_words

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "anthropic-evals"


def statements(n: int) -> list[tuple[str, str]]:
    """``n`` (behaviour, statement) pairs, taken from the persona files in turn."""
    files = sorted((DATA / "persona").glob("*.jsonl"))
    rows = [
        [(f.stem.replace("-", " "), json.loads(line)["statement"]) for line in f.open()]
        for f in files
    ]
    out: list[tuple[str, str]] = []
    for i in range(n):
        out.append(rows[i % len(rows)][i // len(rows)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pairs = statements(args.items)
    by_behavior: dict[str, list[str]] = {}
    for behavior, text in pairs:
        by_behavior.setdefault(behavior, []).append(text)
    texts = [t for _, t in pairs]
    model = builtin()
    model.judge(pairs[0][0], texts[:32])  # warm-up: both models, the word list
    embed(texts[:32])

    def run_pm() -> None:
        for behavior, group in by_behavior.items():
            model.judge(behavior, group)

    def run_embed() -> None:
        for behavior, group in by_behavior.items():
            embed([behavior, *group])

    def run_words() -> None:
        for behavior, group in by_behavior.items():
            for text in group:
                unknown_words(text, [behavior])

    seconds = {"pm": 0.0, "embedding": 0.0, "word check": 0.0}
    for r in range(args.rounds):
        order = [("pm", run_pm), ("embedding", run_embed)]
        for name, run in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            run()
            seconds[name] += time.perf_counter() - start
        start = time.perf_counter()
        run_words()
        seconds["word check"] += time.perf_counter() - start
    n = args.items * args.rounds
    for name in ("embedding", "pm"):
        print(f"{name:10s} {n / seconds[name]:8.0f} items/s")
    print(f"ratio pm / embedding: {seconds['embedding'] / seconds['pm']:.3f} (of the rate)")
    print(f"word check: {seconds['word check'] / seconds['pm']:.1%} of the pm's time")


if __name__ == "__main__":
    main()
