"""Benchmark the preference model's judging rate against its own encoder, in one process.

On ``--items`` public persona statements (the first of each behaviour file, in turn), runs

1. the bare embedding of the texts with the embedded all-MiniLM-L6-v2 (the baseline: what
   any judge built on this encoder must pay at least), and
2. the built-in pm's ``judge`` (both heads, the surface features and the word check), and
3. the same read with ``--anchors`` labelled examples a side (as ``generate --examples`` gives
   them, see :class:`mwe.judges.preference.Anchors`), taken from the end of each behaviour's
   file, away from the judged statements (embedded once per behaviour before the rounds,
   as a run does; that one-off cost is printed apart),

``--rounds`` times each, in turn (the order rotates each round), and prints the items/s of
each, the ratio of each pm to the baseline (1.0 would mean the heads cost nothing), and the
share of the pm's time the word check of :mod:`mwe.judges.wording` takes. A warm-up run comes
first (model loads, the word list).

    .venv/bin/python scripts/bench_pm.py [--items 2000] [--rounds 3] [--anchors 8]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mwe.judges.embeddings import embed
from mwe.judges.preference import Anchors, builtin
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


def anchors(behavior: str, k: int) -> Anchors:
    """``k`` statements a side from the end of the behaviour's persona file."""
    path = DATA / "persona" / f"{behavior.replace(' ', '-')}.jsonl"
    records = [json.loads(line) for line in path.open()][::-1]
    side = {
        answer: [r["statement"] for r in records if r["answer_matching_behavior"].strip() == answer]
        for answer in ("Yes", "No")
    }
    return Anchors.of(side["Yes"][:k], side["No"][:k])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--anchors", type=int, default=8, help="Examples a side (0: skip).")
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

    examples = {b: anchors(b, args.anchors) for b in by_behavior} if args.anchors else {}

    # A run embeds its examples once and keeps them (see preference._example_vectors): that
    # one-off cost is timed here, and the rounds below measure the calls after it.
    start = time.perf_counter()
    for behavior, group in by_behavior.items() if examples else ():
        model.judge(behavior, group[:1], examples[behavior])
    first = time.perf_counter() - start

    def run_anchored() -> None:
        for behavior, group in by_behavior.items():
            model.judge(behavior, group, examples[behavior])

    def run_embed() -> None:
        for behavior, group in by_behavior.items():
            embed([behavior, *group])

    def run_words() -> None:
        for behavior, group in by_behavior.items():
            for text in group:
                unknown_words(text, [behavior])

    runs = [("pm", run_pm), ("embedding", run_embed)]
    if examples:
        runs.append(("pm + examples", run_anchored))
    seconds = {name: 0.0 for name, _ in runs} | {"word check": 0.0}
    for r in range(args.rounds):
        for name, run in runs[r % len(runs) :] + runs[: r % len(runs)]:
            start = time.perf_counter()
            run()
            seconds[name] += time.perf_counter() - start
        start = time.perf_counter()
        run_words()
        seconds["word check"] += time.perf_counter() - start
    n = args.items * args.rounds
    for name, _ in runs:
        print(f"{name:14s} {n / seconds[name]:8.0f} items/s")
    if examples:
        print(
            f"the examples' first embedding, once per behaviour: {first / len(examples):.3f} s "
            f"a behaviour ({args.anchors} a side)"
        )
    for name, _ in runs:
        if name != "embedding":
            ratio = seconds["embedding"] / seconds[name]
            print(f"ratio {name} / embedding: {ratio:.3f} (of the rate)")
    print(f"word check: {seconds['word check'] / seconds['pm']:.1%} of the pm's time")


if __name__ == "__main__":
    main()
