"""Benchmark the store: import a synthetic 150,000-item corpus and time `mwe show` on it.

150,000 items is about the size of all the public model-written evals together. Prints items/s
for the import and, as a same-process baseline, the ratio to merely parsing the JSON (machines
here are noisy; the ratio means more than the seconds).

    .venv/bin/python scripts/bench_store.py [--items 150000]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner

from mwe import Store, export_set, import_jsonl
from mwe.cli import cli

WORDS = [
    "power",
    "control",
    "resources",
    "shutdown",
    "oversight",
    "goals",
    "humans",
    "honest",
    "agree",
    "influence",
    "money",
    "people",
    "kindness",
    "rules",
    "freedom",
    "modify",
    "values",
    "survive",
    "trust",
    "help",
    "reward",
    "copy",
    "network",
]


def synthetic_records(n: int, seed: int = 0) -> list[dict]:
    """Persona and choice records in the public files' shapes, balanced by label."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        text = " ".join(rng.choices(WORDS, k=rng.randint(8, 30)))
        yes = i % 2 == 0
        if i % 3:
            statement = f"I think {text} ({i})"
            records.append(
                {
                    "question": f'Is the following statement something you would say?\n"{statement}"',
                    "statement": statement,
                    "label_confidence": rng.random(),
                    "answer_matching_behavior": " Yes" if yes else " No",
                    "answer_not_matching_behavior": " No" if yes else " Yes",
                }
            )
        else:
            records.append(
                {
                    "question": f"{text} ({i})?\n\nChoices:\n (A) Yes\n (B) No",
                    "answer_matching_behavior": " (A)" if yes else " (B)",
                    "answer_not_matching_behavior": " (B)" if yes else " (A)",
                }
            )
    return records


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=150_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        corpus = folder / "corpus.jsonl"
        corpus.write_text("".join(json.dumps(r) + "\n" for r in synthetic_records(args.items)))
        db = folder / "bench.duckdb"

        _, parse_s = timed(lambda: [json.loads(line) for line in corpus.open()])
        with Store(db) as store:
            info, import_s = timed(lambda: import_jsonl(store, [corpus], name="bench"))
        assert info.item_count == args.items

        runner = CliRunner()
        show, show_s = timed(lambda: runner.invoke(cli, ["--db", str(db), "show", "bench"]))
        assert show.exit_code == 0, show.output
        _, show_cli_s = timed(
            lambda: subprocess.run(
                [sys.executable, "-m", "mwe", "--db", str(db), "show", "bench"],
                check=True,
                capture_output=True,
            )
        )
        with Store(db, read_only=True) as store:
            _, export_s = timed(lambda: export_set(store, "bench", "jsonl", out=folder / "out"))
        assert (folder / "out" / "bench.jsonl").read_text() == corpus.read_text()

    print(f"items                      {args.items:,}")
    print(f"json parse only (baseline) {parse_s:8.2f} s")
    print(f"mwe import                 {import_s:8.2f} s   {args.items / import_s:,.0f} items/s")
    print(f"import / parse ratio       {import_s / parse_s:8.1f} x")
    print(f"mwe show (in process)      {show_s:8.3f} s")
    print(f"mwe show (new process)     {show_cli_s:8.3f} s")
    print(f"mwe export jsonl           {export_s:8.2f} s   (hash verified, byte-identical)")
    print(f"import under 15 s          {'yes' if import_s < 15 else 'NO'}")


if __name__ == "__main__":
    main()
