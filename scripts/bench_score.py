"""Benchmark the local scoring runner against naive per-option full forward passes, and `mwe score`
end to end against the runner.

Scores the same persona items, in one process, on the same model, in both prompt formats:
once with `LocalScorer` (shared-prefix KV cache, one pass for one-token options, logits only
where scored) and once with the naive method (one full forward pass per option, batched the
same way, logits at every position). Prints items/s of each, their ratio per format, and the
largest difference between the two methods' log-probs.

Then, per format, times the real command, `mwe -v score SET --model M --prompt-format F
--limit N`, in a process of its own as a user runs it, on the same items imported into
a fresh temporary store each time. Its items/s count from the moment its model is loaded (its
log line "scoring N items") to the end of the process: tokenising, scoring, writing every row to the
store, the results with their bootstrap interval, the table printed and the exit. Start-up
(interpreter, imports, opening the store) and the model load come before that and are printed
separately, not counted: the runner's figure leaves them out too. The runner runs on the torch
thread of this process, as the command runs it (see mwe.models.worker). Runner and command
alternate, ``--rounds`` commands between ``--rounds`` + 1 runner runs; each command's ratio is to
the mean of the runner runs just before and after it, so that a noisy machine that slows down or
speeds up in between moves both sides, and the median of those ratios is printed. Only ratios
from one run compare.

    .venv/bin/python scripts/bench_score.py [--items 1000] [--rounds 2] [--model local] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any, NamedTuple, TypeVar

import torch

from mwe import Store, import_jsonl
from mwe.item_records import read_jsonl
from mwe.items import Item
from mwe.models import get_backend
from mwe.models.hf import HFBackend
from mwe.models.hf_scorer import LocalScorer
from mwe.models.worker import on_torch_worker
from mwe.scoring.local import naive_scores, score_items

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "anthropic-evals"
SET = "bench"  # the set's name in the temporary store
T = TypeVar("T")


class CommandTiming(NamedTuple):
    """One `mwe score` run: items scored, seconds from model loaded to exit, seconds before."""

    items: int
    seconds: float
    startup_s: float


def timed(fn: Callable[..., T], *args: Any) -> tuple[float, T]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def runner_scores(backend: HFBackend, items: list[Item], fmt: str) -> dict[int, dict[str, float]]:
    """The runner's scores, computed on the torch thread as `mwe score` computes them."""
    return on_torch_worker(score_items, LocalScorer(backend), items, fmt)


def time_command(db: Path, args: argparse.Namespace, fmt: str) -> CommandTiming:
    """Run `mwe score` in a process of its own; the clock starts when it logs that it scores."""
    command = [sys.executable, "-m", "mwe", "-v", "--db", str(db), "score", SET]
    command += ["--model", args.model, "--prompt-format", fmt, "--limit", str(args.items)]
    env = dict(os.environ)
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the command picks CUDA when it sees one
    start = time.perf_counter()
    loaded, items, log = None, 0, []
    with subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            if loaded is None and ": scoring " in line:
                loaded = time.perf_counter()
                items = int(line.split(": scoring ", 1)[1].split()[0])
    end = time.perf_counter()
    if proc.returncode != 0 or loaded is None:
        sys.exit(f"`{' '.join(command)}` failed (exit {proc.returncode}):\n{''.join(log[-20:])}")
    return CommandTiming(items, end - loaded, loaded - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--model", default="local")
    parser.add_argument("--device", default=None, help="cpu or cuda [default: cuda if present]")
    parser.add_argument("--file", type=Path, default=DATA / "persona" / "agreeableness.jsonl")
    parser.add_argument("--rounds", type=int, default=2, help="timed runs of the command")
    args = parser.parse_args()

    backend = get_backend(args.model, **({"device": args.device} if args.device else {}))
    if not isinstance(backend, HFBackend):
        sys.exit(f"{args.model} is not a local model: give local or hf:PATH")
    items = list(read_jsonl(args.file))[: args.items]
    print(
        f"{len(items)} items from {args.file.name}, model {args.model}, "
        f"{backend.device} {str(backend.dtype).replace('torch.', '')}, "
        f"torch threads {torch.get_num_threads()}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        for fmt in ("chat", "raw"):
            runner_scores(backend, items[:8], fmt)  # warm-up
            fast_s, fast = timed(runner_scores, backend, items, fmt)
            slow_s, slow = timed(on_torch_worker, naive_scores, backend, items, fmt)
            diff = max(abs(fast[i][o] - slow[i][o]) for i in slow for o in slow[i])
            print(
                f"{fmt:5s} runner {len(items) / fast_s:8.1f} items/s   naive "
                f"{len(items) / slow_s:8.1f} items/s   ratio {slow_s / fast_s:5.2f}x   "
                f"max |diff| {diff:.1e}"
            )
            runner = [len(items) / timed(runner_scores, backend, items, fmt)[0]]
            ratios = []
            for r in range(args.rounds):
                db = Path(tmp) / f"{fmt}-{r}.duckdb"  # a fresh store: nothing already scored
                with Store(db) as store:
                    import_jsonl(store, [args.file], name=SET)
                command = time_command(db, args, fmt)
                runner.append(len(items) / timed(runner_scores, backend, items, fmt)[0])
                rate = command.items / command.seconds
                ratios.append(rate / ((runner[-2] + runner[-1]) / 2))
                print(
                    f"{fmt:5s} mwe score {rate:8.1f} items/s   runner {runner[-2]:6.1f} before, "
                    f"{runner[-1]:6.1f} after   ratio {ratios[-1]:5.2f}x   (start-up and model "
                    f"load {command.startup_s:.1f} s, not counted)"
                )
            print(f"{fmt:5s} mwe score / runner, median of {args.rounds}: {median(ratios):.2f}x")


if __name__ == "__main__":
    main()
