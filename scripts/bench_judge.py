"""Benchmark judging against scoring on a local model: judging should cost what scoring costs.

In one process, on the same items and the same model, runs the real CLI commands

    mwe --db TMP judge-check SET --judge local --limit N
    mwe --db TMP score SET --model local --limit N

and prints the items/s of each, the CPU seconds the process spent on each, and the ratio
judge / score of the items/s (the target is 0.7 or more).

What is timed: each command from its start to its end, as a user runs it (opening the store,
reading the items, rendering the prompts, the model calls through the call cache, writing the
cache rows or the score rows, printing the result), less the seconds spent constructing the
model backend (loading the weights): each command loads the model itself, on the thread it
chooses, as it does for a user, and that time is measured and subtracted. A warm-up run of both
commands on a few items comes first, in a store of its own (imports, file caches, the converted
weights). Every run starts from a fresh store (the set imported with `mwe --db TMP import
FILE`), so nothing is read back from an earlier run's call cache or scores. With ``--rounds``
above 1, every other round runs score first, and the totals are compared.

    .venv/bin/python scripts/bench_judge.py [--items 1000] [--rounds 1] [--model local]
"""

from __future__ import annotations

import argparse
import functools
import importlib
import resource
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "anthropic-evals"
FILE = DATA / "persona" / "desire-for-acquiring-power.jsonl"


class LoadClock:
    """Seconds spent constructing backends of one class (loading a model), on any thread."""

    def __init__(self, model: str) -> None:
        from mwe.models import BACKENDS, parse_model

        module, name, _ = BACKENDS[parse_model(model)[0]]
        self.cls = getattr(importlib.import_module(module), name)
        self.seconds = 0.0
        self.devices: set[str] = set()
        self._lock = threading.Lock()
        init: Callable[..., None] = self.cls.__init__

        @functools.wraps(init)
        def timed_init(backend: Any, *args: Any, **kwargs: Any) -> None:
            start = time.perf_counter()
            init(backend, *args, **kwargs)
            with self._lock:
                self.seconds += time.perf_counter() - start
                self.devices.add(f"{backend.device} {backend.dtype}".replace("torch.", ""))

        self.cls.__init__ = timed_init

    def take(self) -> float:
        """The seconds counted since the last call."""
        with self._lock:
            seconds, self.seconds = self.seconds, 0.0
        return seconds


@dataclass
class Timing:
    """Seconds of one command, wall-clock and CPU (all threads of the process)."""

    wall: float = 0.0
    cpu: float = 0.0

    def __iadd__(self, other: Timing) -> Self:
        self.wall += other.wall
        self.cpu += other.cpu
        return self


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_cli(clock: LoadClock, *args: str) -> Timing:
    """The time one CLI command takes, less its model loading."""
    from mwe.cli import cli

    clock.take()
    start, cpu = time.perf_counter(), cpu_seconds()
    cli(list(args), standalone_mode=False)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    load = clock.take()
    return Timing(wall - load, cpu - load)  # loading is CPU-bound: its wall time stands for both


def bench(
    clock: LoadClock, db: Path, model: str, file: Path, n: int, score_first: bool = False
) -> tuple[Timing, Timing]:
    """The time of judge-check and of score on the first ``n`` items of a fresh store."""
    run_cli(clock, "--db", str(db), "import", str(file))
    limit = ["--limit", str(n)]
    judge = ["--db", str(db), "judge-check", file.stem, "--judge", model, *limit]
    score = ["--db", str(db), "score", file.stem, "--model", model, *limit]
    if score_first:
        score_t = run_cli(clock, *score)
        return run_cli(clock, *judge), score_t
    judge_t = run_cli(clock, *judge)
    return judge_t, run_cli(clock, *score)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1, help="timed runs of both commands")
    parser.add_argument("--warmup", type=int, default=32, help="items of the warm-up run")
    parser.add_argument("--model", default="local", help="local or hf:PATH")
    parser.add_argument("--file", type=Path, default=FILE, help="an anthropics/evals JSONL file")
    args = parser.parse_args()
    import torch

    lines = args.file.read_text(encoding="utf-8").splitlines()
    n = min(args.items, sum(1 for line in lines if line.strip()))
    clock = LoadClock(args.model)
    judge, score = Timing(), Timing()
    with tempfile.TemporaryDirectory(prefix="bench-judge-") as tmp:
        bench(clock, Path(tmp) / "warm-up.duckdb", args.model, args.file, args.warmup)
        for r in range(args.rounds):
            db = Path(tmp) / f"round-{r}.duckdb"
            judge_t, score_t = bench(clock, db, args.model, args.file, n, score_first=r % 2 == 1)
            judge += judge_t
            score += score_t
    items = n * args.rounds
    judge_rate, score_rate = items / judge.wall, items / score.wall
    print(
        f"\n{n} items of {args.file.name} x {args.rounds} round(s), model {args.model}, "
        f"{', '.join(sorted(clock.devices))}, torch threads {torch.get_num_threads()}\n"
        f"judge-check {judge_rate:7.1f} items/s ({judge.wall:6.1f} s, {judge.cpu:6.1f} CPU s)\n"
        f"score       {score_rate:7.1f} items/s ({score.wall:6.1f} s, {score.cpu:6.1f} CPU s)\n"
        f"judge / score {judge_rate / score_rate:.2f}"
    )


if __name__ == "__main__":
    main()
