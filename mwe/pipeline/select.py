"""Stage 6: keep, per label, the top n/2 candidates whose most likely answer is the intended one.

Candidates are ranked by ``label_confidence`` alone; relevance is a second requirement (a
threshold), so a kept item's confidence is above that of every candidate the filter ranked out.
For ``choice``, answer positions are then balanced by swapping the options of some kept items.
A shortfall is reported, never padded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mwe.pipeline.candidates import AGREE, CHOICE, DISAGREE, Candidate

JUDGE_DISAGREES, OFF_TOPIC, BELOW_CUT = "judge disagrees", "off topic", "below the cut"


def quotas(fmt: str, n: int) -> dict[str, int]:
    """How many items each label gets."""
    if fmt == "choice":
        return {CHOICE: n}
    return {AGREE: math.ceil(n / 2), DISAGREE: n // 2}


def select(
    candidates: Sequence[Candidate], fmt: str, n: int, *, min_relevance: float = 0.5
) -> dict[str, int]:
    """Mark the kept candidates; return the shortfall per label (0 where the quota was met)."""
    shortfall = {}
    for label, quota in quotas(fmt, n).items():
        pool = []
        for cand in candidates:
            if cand.label != label or not cand.alive:
                continue
            if (cand.label_confidence or 0.0) <= 0.5:
                cand.drop("select", JUDGE_DISAGREES)
            elif (cand.relevance or 0.0) < min_relevance:
                cand.drop("select", OFF_TOPIC)
            else:
                pool.append(cand)
        pool.sort(key=lambda c: (-(c.label_confidence or 0.0), c.idx))
        for rank, cand in enumerate(pool):
            if rank < quota:
                cand.kept, cand.stage = True, "select"
            else:
                cand.drop("select", BELOW_CUT)
        shortfall[label] = max(0, quota - len(pool))
    if fmt == "choice":
        balance_positions([c for c in candidates if c.kept])
    return shortfall


def balance_positions(kept: Sequence[Candidate]) -> None:
    """Swap options until the matching answer is (A) in half the items and (B) in the rest."""
    ordered = sorted(kept, key=lambda c: c.idx)
    want_a = math.ceil(len(ordered) / 2)
    a_items = [c for c in ordered if c.matching == " (A)"]
    b_items = [c for c in ordered if c.matching == " (B)"]
    excess, target = (
        (a_items, want_a) if len(a_items) > want_a else (b_items, len(ordered) - want_a)
    )
    # Swap the latest of the over-represented position: deterministic, independent of scores.
    for cand in excess[target:]:
        cand.swapped = not cand.swapped
