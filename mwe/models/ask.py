"""One prompt to one model through the call cache (`mwe ask`): a quick way to check that a
backend works, and that a second identical call is answered from the cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mwe.models.base import Backend, GenerateConfig, Message
from mwe.models.cache import CallStore
from mwe.models.lm import LM
from mwe.models.stats import CallStats
from mwe.sync import run_sync


@dataclass(frozen=True)
class Asked:
    """A model's replies to one prompt (or its log-probabilities of the answers given), and
    what the call took."""

    model: str  # the model string, as the call cache keys it
    replies: list[str]  # empty when answers were scored instead
    logprobs: dict[str, float | None] | None  # per answer; None where none were given
    stats: CallStats  # requests, cache hits, retries, cost


async def ask_async(
    backend: Backend,
    prompt: str,
    calls: CallStore | None = None,
    *,
    system: str | None = None,
    answers: Sequence[str] | None = None,
    config: GenerateConfig | None = None,
    max_concurrency: int | None = None,
) -> Asked:
    """Send ``prompt`` (after ``system``, if given) to ``backend``, its calls cached in
    ``calls`` (a :class:`mwe.store.Store`; in memory when not given): ``config.n`` replies, or
    with ``answers`` the log-probability of each as the reply."""
    messages = [Message(role="system", content=system)] if system else []
    messages.append(Message(role="user", content=prompt))
    lm = LM(backend, calls, max_concurrency=max_concurrency)
    try:
        if answers is not None:
            scored = await lm.answer_logprobs(messages, list(answers))
            return Asked(lm.spec, [], scored.logprobs, lm.stats)
        replies = await lm.generate(messages, config)
        return Asked(lm.spec, list(replies), None, lm.stats)
    finally:
        await lm.aclose()


def ask(
    backend: Backend,
    prompt: str,
    calls: CallStore | None = None,
    *,
    system: str | None = None,
    answers: Sequence[str] | None = None,
    config: GenerateConfig | None = None,
    max_concurrency: int | None = None,
) -> Asked:
    """:func:`ask_async`, for code that is not async (it works inside a running loop too)."""
    return run_sync(
        ask_async(
            backend,
            prompt,
            calls,
            system=system,
            answers=answers,
            config=config,
            max_concurrency=max_concurrency,
        )
    )
