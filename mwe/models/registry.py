"""Turn model strings into backends: ``openai:gpt-4.1-mini``, ``anthropic:...``, ``hf:...``,
``local``. Backends are imported lazily, so torch is needed only by the ones that use it."""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from mwe.errors import UsageError
from mwe.models.base import Backend

# name -> (module, class, pip extra that provides it)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "openai": ("mwe.models.openai_backend", "OpenAIBackend", ""),
    "anthropic": ("mwe.models.anthropic_backend", "AnthropicBackend", ""),
    "hf": ("mwe.models.hf", "HFBackend", "local"),
    "local": ("mwe.models.local", "LocalBackend", "local"),
    "function": ("mwe.models.function_backend", "FunctionBackend", ""),
}
EXAMPLES = "openai:gpt-4.1-mini, anthropic:claude-sonnet-4-5, hf:<path-or-id>, local"
BATCH_BACKENDS = ("openai", "anthropic")  # the providers with a batch API


class UnknownModelError(UsageError):
    """A model string names no known backend."""


def parse_model(spec: str) -> tuple[str, str]:
    """Split ``backend:model`` (``local`` alone is allowed) and check the backend exists."""
    backend, sep, model = spec.strip().partition(":")
    if backend in BACKENDS and (sep and model or backend == "local"):
        return backend, model
    if not sep and backend not in BACKENDS:
        raise UnknownModelError(
            f"model {spec!r} names no backend: write BACKEND:MODEL, e.g. {EXAMPLES}"
        )
    if backend in BACKENDS:
        raise UnknownModelError(f"model {spec!r} names no model: write {backend}:MODEL")
    close = difflib.get_close_matches(backend, list(BACKENDS), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UnknownModelError(
        f"unknown backend {backend!r} in {spec!r}: choose one of {', '.join(BACKENDS)}{hint}"
    )


def check_batch_model(spec: str) -> None:
    """A one-line usage error unless ``spec`` names a model with a provider batch API."""
    backend, _ = parse_model(spec)
    if backend not in BATCH_BACKENDS:
        raise UsageError(
            f"--batch: {spec} has no batch API (only openai: and anthropic: models have one); "
            "run it without --batch"
        )


def get_backend(spec: str, **options: Any) -> Backend:
    """The backend for model string ``spec``; ``options`` go to its constructor
    (``base_url``, ``client``, ``timeout`` for the APIs; ``device``, ``batch_size`` locally)."""
    backend, model = parse_model(spec)
    module_name, class_name, extra = BACKENDS[backend]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(
            f"the {backend} backend needs {exc.name}: pip install 'mwe[{extra}]' torch==2.13.0"
            if extra
            else f"the {backend} backend needs {exc.name}"
        ) from None
    cls = getattr(module, class_name)
    return cls(model, **options) if backend != "local" else cls(**options)
