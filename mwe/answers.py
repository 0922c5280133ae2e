"""Answers to multiple-choice prompts: turning log-probabilities or sampled replies into
probabilities over the options. The judge and the scorer both use these."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence


def normalised(logprobs: dict[str, float | None], options: Sequence[str]) -> dict[str, float]:
    """Probabilities over ``options`` from log-probs (a softmax over those given); an option
    with no log-prob (absent from an API's top-k) gets 0, and with none given every option is
    equally likely."""
    present = {o: lp for o in options if (lp := logprobs.get(o)) is not None}
    if not present:
        return {o: 1 / len(options) for o in options}
    top = max(present.values())
    weights = {o: math.exp(present[o] - top) if o in present else 0.0 for o in options}
    total = sum(weights.values())
    return {o: w / total for o, w in weights.items()}


def parse_vote(text: str, options: Sequence[str]) -> str | None:
    """The option a sampled answer names first ('Yes.', '(A)', 'B) because...')."""
    match = re.search(r"\b(" + "|".join(map(re.escape, options)) + r")\b", text, re.IGNORECASE)
    if not match:
        return None
    return next(o for o in options if o.lower() == match.group(1).lower())


def count_votes(replies: Sequence[str], options: Sequence[str]) -> dict[str, int]:
    """How many sampled replies name each option; replies naming none are not counted."""
    named = [parse_vote(reply.strip().lstrip("("), options) for reply in replies]
    return {o: named.count(o) for o in options}
