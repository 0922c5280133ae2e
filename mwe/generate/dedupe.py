"""Stage 4: drop exact duplicates, near duplicates (embedding cosine) and copies of the few-shot
examples. The first candidate of a group is the one kept, so the result follows the seed."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from mwe.generate.candidates import Candidate
from mwe.judges.embeddings import embed

DUPLICATE, NEAR_DUPLICATE, FEWSHOT_COPY = "duplicate", "near duplicate", "few-shot copy"


def normalise(text: str) -> str:
    """Lower case, letters and digits only, single spaces: what an exact duplicate shares."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def dedupe(
    candidates: Sequence[Candidate], examples: Sequence[str], *, threshold: float = 0.9
) -> tuple[Counter[str], dict[int, np.ndarray]]:
    """Mark duplicates dropped; return the counts by reason and the embedding of each survivor,
    by candidate index, which later stages reuse."""
    counts: Counter[str] = Counter()
    seen: set[str] = set()
    example_keys = {normalise(e) for e in examples}
    for cand in candidates:
        key = normalise(cand.text)
        if key in example_keys:
            cand.drop("dedupe", FEWSHOT_COPY)
        elif key in seen:
            cand.drop("dedupe", DUPLICATE)
        seen.add(key)
    alive = [c for c in candidates if c.alive]
    vectors = embed([c.text for c in alive])
    if examples and len(alive):
        near_example = (vectors @ embed(list(examples)).T).max(axis=1) >= threshold
    else:
        near_example = np.zeros(len(alive), dtype=bool)
    kept_rows: list[int] = []
    for row, cand in enumerate(alive):
        if near_example[row]:
            cand.drop("dedupe", FEWSHOT_COPY)
        elif kept_rows and float((vectors[kept_rows] @ vectors[row]).max()) >= threshold:
            cand.drop("dedupe", NEAR_DUPLICATE)
        else:
            kept_rows.append(row)
    for cand in candidates:
        if cand.drop_reason in (DUPLICATE, NEAR_DUPLICATE, FEWSHOT_COPY):
            counts[cand.drop_reason] += 1
        elif cand.alive:
            cand.stage = "dedupe"
    return counts, {alive[row].idx: vectors[row] for row in kept_rows}
