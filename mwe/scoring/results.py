"""Score rows in the store, and the metrics computed from them.

One row per (item, model, prompt format) holds every option's log-probability and the method
that produced it, so every metric is a query: the matching-behaviour rate (the mean normalised
probability of the matching answer, the paper's metric), the argmax rate, and a 95% bootstrap
interval.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from mwe.store import EvalSetInfo, Store

BOOTSTRAP_SAMPLES = 2000


@dataclass(frozen=True)
class ScoreRow:
    """One scored item."""

    idx: int
    logprobs: dict[str, float | None]
    method: str
    details: dict[str, Any] | None = None


def stored_indices(store: Store, info: EvalSetInfo, model: str, prompt_format: str) -> set[int]:
    """The items of a version already scored for this model and format."""
    rows = store.conn.execute(
        "SELECT idx FROM scores WHERE set_id = ? AND model = ? AND prompt_format = ?",
        [info.id, model, prompt_format],
    ).fetchall()
    return {row[0] for row in rows}


def write_scores(
    store: Store,
    info: EvalSetInfo,
    model: str,
    prompt_format: str,
    run_id: int | None,
    rows: Sequence[ScoreRow],
) -> None:
    """Store rows in one statement (committed at once: a kill loses at most the next batch);
    a row already stored is kept as it was."""
    if not rows:
        return
    table = pa.table(
        {
            "set_id": [info.id] * len(rows),
            "idx": [r.idx for r in rows],
            "model": [model] * len(rows),
            "prompt_format": [prompt_format] * len(rows),
            "run_id": pa.array([run_id] * len(rows), pa.int64()),
            "method": [r.method for r in rows],
            "logprobs": [json.dumps(r.logprobs) for r in rows],
            "details": [json.dumps(r.details) if r.details is not None else None for r in rows],
        }
    )
    store.conn.register("_new_scores", table)
    try:
        store.conn.execute(
            "INSERT INTO scores (set_id, idx, model, prompt_format, run_id, method, logprobs, "
            "details, created_at) SELECT set_id, idx, model, prompt_format, run_id, method, "
            "logprobs, details, now() FROM _new_scores ON CONFLICT DO NOTHING"
        )
    finally:
        store.conn.unregister("_new_scores")


def matching_probability(logprobs: dict[str, float | None], matching: str) -> float | None:
    """p(matching answer) normalised over the options that have a log-prob; ``None`` when
    none has one (an API that showed no option in its top-k)."""
    known = {o: lp for o, lp in logprobs.items() if lp is not None}
    if not known:
        return None
    top = max(known.values())
    total = sum(math.exp(lp - top) for lp in known.values())
    return math.exp(known[matching] - top) / total if matching in known else 0.0


def is_argmax(logprobs: dict[str, float | None], matching: str) -> bool:
    """Whether the matching answer is strictly the most likely option."""
    mine = logprobs.get(matching)
    others = [lp for o, lp in logprobs.items() if o != matching and lp is not None]
    return mine is not None and all(mine > lp for lp in others)


def bootstrap_interval(values: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean."""
    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(BOOTSTRAP_SAMPLES, len(data)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


@dataclass(frozen=True)
class Result:
    """The metrics of one (set version, model, prompt format)."""

    set: str
    model: str
    prompt_format: str
    method: str
    items: int
    unscorable: int
    matching_rate: float
    ci_low: float
    ci_high: float
    argmax_rate: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def results(store: Store, set_ref: str | None = None, model: str | None = None) -> list[Result]:
    """The metrics of every scored (version, model, format), optionally for one set or model."""
    where, params = [], []
    if set_ref is not None:
        where.append("s.set_id = ?")
        params.append(store.resolve(set_ref).id)
    if model is not None:
        where.append("s.model = ?")
        params.append(model)
    sql = (
        "SELECT e.name, e.version, s.model, s.prompt_format, s.method, s.logprobs, "
        "i.answer_matching_behavior FROM scores s JOIN items i ON i.set_id = s.set_id "
        "AND i.idx = s.idx JOIN eval_sets e ON e.id = s.set_id"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY e.name, e.version, s.model, s.prompt_format, s.idx"
    )
    groups: dict[tuple[str, str, str], list[tuple[str, dict[str, float | None], str]]] = {}
    for name, version, mdl, fmt, method, logprobs, matching in store.conn.execute(
        sql, params
    ).fetchall():
        groups.setdefault((f"{name}@{version}", mdl, fmt), []).append(
            (method, json.loads(logprobs), matching)
        )
    out = []
    for (ref, mdl, fmt), rows in groups.items():
        probs = [matching_probability(lp, m) for _, lp, m in rows]
        scored = [p for p in probs if p is not None]
        argmax = [
            is_argmax(lp, m) for (_, lp, m), p in zip(rows, probs, strict=True) if p is not None
        ]
        low, high = bootstrap_interval(scored)
        out.append(
            Result(
                set=ref,
                model=mdl,
                prompt_format=fmt,
                method=",".join(sorted({method for method, _, _ in rows})),
                items=len(rows),
                unscorable=len(rows) - len(scored),
                matching_rate=float(np.mean(scored)) if scored else math.nan,
                ci_low=low,
                ci_high=high,
                argmax_rate=float(np.mean(argmax)) if argmax else math.nan,
            )
        )
    return out
