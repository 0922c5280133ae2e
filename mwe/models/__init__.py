"""The language-model layer: backends behind one interface, a call cache, retries and adaptive
concurrency. Stages use :func:`get_lm` and the :class:`LM` it returns."""

from __future__ import annotations

from typing import Any

from mwe.models.ask import Asked, ask, ask_async
from mwe.models.base import (
    AnswerLogprobs,
    Backend,
    CapabilityError,
    GenerateConfig,
    Message,
    Samples,
    Usage,
)
from mwe.models.cache import CallStore, MemoryCalls
from mwe.models.errors import MissingKeyError, ModelFailedError
from mwe.models.lm import LM
from mwe.models.registry import (
    BACKENDS,
    UnknownModelError,
    check_batch_model,
    get_backend,
    parse_model,
    plan_backend,
)
from mwe.models.stats import CallStats


def get_lm(
    spec: str,
    calls: CallStore | None = None,
    *,
    max_concurrency: int | None = None,
    batch: bool = False,
    **options: Any,
) -> LM:
    """An :class:`LM` for model string ``spec`` whose calls are cached in ``calls`` (a
    :class:`mwe.store.Store`, or in memory when not given); with ``batch``, calls go through
    the provider's batch API (half price, results within 24 hours)."""
    return LM(get_backend(spec, **options), calls, max_concurrency=max_concurrency, batch=batch)


__all__ = [
    "BACKENDS",
    "LM",
    "AnswerLogprobs",
    "Asked",
    "Backend",
    "CallStats",
    "CallStore",
    "CapabilityError",
    "GenerateConfig",
    "MemoryCalls",
    "Message",
    "MissingKeyError",
    "ModelFailedError",
    "Samples",
    "UnknownModelError",
    "Usage",
    "ask",
    "ask_async",
    "check_batch_model",
    "get_backend",
    "get_lm",
    "parse_model",
    "plan_backend",
]
