"""The counts of one LM's calls: what :class:`mwe.models.lm.LM` and its
:class:`mwe.models.batches.Batcher` both add to, so neither imports the other for them."""

from __future__ import annotations

from dataclasses import dataclass

from mwe.models.base import Usage


@dataclass
class CallStats:
    """Counts of one LM's calls; shown in progress displays and summaries."""

    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    rate_limits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    batched: int = 0  #: requests answered through a provider batch (counted in ``requests``)

    def add_usage(self, usage: Usage, cost: float | None) -> None:
        self.input_tokens += usage.input_tokens or 0
        self.output_tokens += usage.output_tokens or 0
        # One unknown price makes the total unknown, rather than quietly too low.
        self.cost_usd = None if cost is None or self.cost_usd is None else self.cost_usd + cost
