"""Stage 6: keep, per label, the top n/2 candidates whose most likely answer is the intended one.

Candidates are ranked by ``label_confidence`` alone; relevance is a second requirement (a
threshold), so a kept item's confidence is above that of every candidate the filter ranked out.
The format then balances what it needs among the kept items (``choice`` swaps the options of
some, so that answer positions are balanced). A shortfall is reported, never padded.
"""

from __future__ import annotations

from collections.abc import Sequence

from mwe.formats import get_format
from mwe.generate.candidates import Candidate

JUDGE_DISAGREES, OFF_TOPIC, BELOW_CUT = "judge disagrees", "off topic", "below the cut"


def quotas(fmt: str, n: int) -> dict[str, int]:
    """How many items each label gets."""
    return get_format(fmt).quotas(n)


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
    get_format(fmt).balance([c for c in candidates if c.kept])
    return shortfall
