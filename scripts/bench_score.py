"""Benchmark the local scoring runner against naive per-option full forward passes.

Scores the same persona items, in one process, on the same model, in both prompt formats:
once with `LocalScorer` (shared-prefix KV cache, one pass for one-token options, logits only
where scored) and once with the naive method (one full forward pass per option, batched the
same way, logits at every position). Prints items/s of each, their ratio per format, and the
largest difference between the two methods' log-probs.

    .venv/bin/python scripts/bench_score.py [--items 1000] [--model local] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from mwe.items import read_jsonl
from mwe.models import get_backend
from mwe.scoring.local import LocalScorer, naive_scores

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "anthropic-evals"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--model", default="local")
    parser.add_argument("--device", default=None, help="cpu or cuda [default: cuda if present]")
    parser.add_argument("--file", type=Path, default=DATA / "persona" / "agreeableness.jsonl")
    args = parser.parse_args()

    backend = get_backend(args.model, **({"device": args.device} if args.device else {}))
    items = list(read_jsonl(args.file))[: args.items]
    print(
        f"{len(items)} items from {args.file.name}, model {args.model}, "
        f"{backend.device} {str(backend.dtype).replace('torch.', '')}, "
        f"torch threads {torch.get_num_threads()}"
    )
    for fmt in ("chat", "raw"):
        LocalScorer(backend).score(items[:8], fmt)  # warm-up
        start = time.perf_counter()
        fast = LocalScorer(backend).score(items, fmt)
        fast_s = time.perf_counter() - start
        start = time.perf_counter()
        slow = naive_scores(backend, items, fmt)
        slow_s = time.perf_counter() - start
        diff = max(abs(fast[i][o] - slow[i][o]) for i in slow for o in slow[i])
        print(
            f"{fmt:5s} runner {len(items) / fast_s:8.1f} items/s   naive {len(items) / slow_s:8.1f}"
            f" items/s   ratio {slow_s / fast_s:5.2f}x   max |diff| {diff:.1e}"
        )


if __name__ == "__main__":
    main()
