"""The language-model layer: backends behind one interface, a call cache, retries and adaptive
concurrency. Stages use :func:`get_lm` and the :class:`LM` it returns."""

from __future__ import annotations

from typing import Any

from mwe.models.base import (
    AnswerLogprobs,
    Backend,
    CapabilityError,
    GenerateConfig,
    Message,
    Samples,
    Usage,
)
from mwe.models.errors import MissingKeyError, ModelFailedError
from mwe.models.lm import LM, CallStats
from mwe.models.registry import BACKENDS, UnknownModelError, get_backend, parse_model
from mwe.store import Store


def get_lm(spec: str, store: Store, *, max_concurrency: int | None = None, **options: Any) -> LM:
    """An :class:`LM` for model string ``spec`` whose calls are cached in ``store``."""
    return LM(get_backend(spec, **options), store, max_concurrency=max_concurrency)


__all__ = [
    "BACKENDS",
    "LM",
    "AnswerLogprobs",
    "Backend",
    "CallStats",
    "CapabilityError",
    "GenerateConfig",
    "Message",
    "MissingKeyError",
    "ModelFailedError",
    "Samples",
    "UnknownModelError",
    "Usage",
    "get_backend",
    "get_lm",
    "parse_model",
]
