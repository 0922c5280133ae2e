"""A small price table, in US dollars per million tokens (input, output).

Unknown models cost ``None`` (unknown), never 0, so a cost report never under-states by silence.
Local models cost 0: they run on your own hardware. A request sent through a provider's batch API
(``--batch``) costs half the listed price, as OpenAI and Anthropic both charge.
"""

from __future__ import annotations

from mwe.models.base import Usage

PRICES: dict[str, tuple[float, float]] = {
    "openai:gpt-4.1": (2.00, 8.00),
    "openai:gpt-4.1-mini": (0.40, 1.60),
    "openai:gpt-4.1-nano": (0.10, 0.40),
    "openai:gpt-4o": (2.50, 10.00),
    "openai:gpt-4o-mini": (0.15, 0.60),
    "anthropic:claude-opus-4-1": (15.00, 75.00),
    "anthropic:claude-sonnet-4-5": (3.00, 15.00),
    "anthropic:claude-haiku-4-5": (1.00, 5.00),
    "anthropic:claude-3-5-haiku-latest": (0.80, 4.00),
}
FREE_BACKENDS = ("local", "hf")
#: The share of the listed price a request costs through a provider's batch API (OpenAI Batch,
#: Anthropic Message Batches: both half price).
BATCH_PRICE = 0.5


def cost_usd(
    spec: str, backend: str, base_url: str | None, usage: Usage, *, batch: bool = False
) -> float | None:
    """The cost of a request (sent in a provider batch when ``batch``), or ``None`` when the
    price is not known."""
    if backend in FREE_BACKENDS:
        return 0.0
    price = PRICES.get(spec) if base_url is None else None  # a custom server has its own prices
    if price is None or usage.input_tokens is None or usage.output_tokens is None:
        return None
    listed = (usage.input_tokens * price[0] + usage.output_tokens * price[1]) / 1_000_000
    return listed * BATCH_PRICE if batch else listed
