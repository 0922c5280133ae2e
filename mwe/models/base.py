"""The interface every model backend implements, and the records it returns.

A backend implements one required coroutine, :meth:`Backend.generate`; the others have defaults
that say clearly what the backend cannot do. Backends know nothing of caching, retries or
concurrency: :class:`mwe.models.lm.LM` wraps them with all three.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from mwe.errors import UsageError
from mwe.secrets import redact_url


class CapabilityError(UsageError):
    """The backend cannot do what was asked (e.g. log-probs from Anthropic's API)."""


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant"] = Field(description="Who speaks.")
    content: str = Field(description="What they say.")


class GenerateConfig(BaseModel):
    """Sampling parameters of a chat completion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int = Field(default=1, ge=1, le=128, description="Number of samples to return.")
    temperature: float = Field(default=1.0, ge=0.0, le=2.0, description="Sampling temperature.")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_tokens: int = Field(default=256, ge=1, le=32_768, description="Tokens to generate.")
    stop: tuple[str, ...] = Field(default=(), description="Stop sequences.")


@dataclass(frozen=True)
class Usage:
    """Tokens a request consumed."""

    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class Samples:
    """What one backend request returned: some samples and the usage of the whole request."""

    texts: list[str]
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class AnswerLogprobs:
    """Next-token log-probabilities of a set of answer strings.

    ``logprobs[a]`` is ``None`` for an answer the backend could not see (absent from an API's
    top-k); ``missing`` lists those answers.
    """

    logprobs: dict[str, float | None]
    method: str
    usage: Usage = field(default_factory=Usage)

    @property
    def missing(self) -> list[str]:
        return [answer for answer, lp in self.logprobs.items() if lp is None]

    def to_json(self) -> dict[str, Any]:
        return {"logprobs": self.logprobs, "method": self.method}


class Backend:
    """A model behind one backend. Subclasses set ``backend`` and implement :meth:`generate`."""

    backend: str = ""
    #: Default cap on concurrent requests; local backends batch instead of running in parallel.
    max_concurrency: int = 32
    #: What the backend can do, declared so that callers choose a method up front instead of
    #: catching :class:`CapabilityError`: log-probabilities of given answers to a chat prompt,
    #: and the log-likelihood of a continuation of raw text (the local scoring runner).
    answers_logprobs: ClassVar[bool] = False
    scores_continuations: ClassVar[bool] = False

    def __init__(self, model: str, *, base_url: str | None = None) -> None:
        self.model = model
        # What is kept (cache keys, provenance, messages) is the URL without credentials; a
        # subclass hands the real one to its client.
        self.base_url = redact_url(base_url)

    @property
    def spec(self) -> str:
        """The model string this backend was made from, e.g. ``openai:gpt-4.1-mini``."""
        return f"{self.backend}:{self.model}" if self.model else self.backend

    def default_prompt_format(self) -> str:
        """The prompt format a model is scored in when none is given: ``chat`` for APIs."""
        return "chat"

    def identity(self) -> dict[str, Any]:
        """What identifies this model in a cache key; never a credential."""
        return {"backend": self.backend, "model": self.model, "base_url": self.base_url}

    async def generate(self, messages: list[Message], config: GenerateConfig) -> Samples:
        """Return ``config.n`` sampled completions of ``messages``."""
        raise NotImplementedError

    async def answer_logprobs(self, messages: list[Message], answers: list[str]) -> AnswerLogprobs:
        """Log-probabilities of each answer as the reply to ``messages``."""
        raise CapabilityError(
            f"{self.spec} gives no log-probabilities; use a judge with log-probs "
            "(openai:..., hf:..., local) or sampled votes"
        )

    async def continuation_logprob(self, context: str, continuation: str) -> float:
        """Log-likelihood of ``continuation`` after raw text ``context`` (local models only)."""
        raise CapabilityError(f"{self.spec} cannot score a continuation; use hf:... or local")

    def retry_after(self, exc: BaseException) -> float | None:
        """Seconds the provider asked us to wait, if ``exc`` says so."""
        return None

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether ``exc`` is transient (rate limit, server error, time-out, bad connection)."""
        return False

    def is_rate_limit(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a rate limit, which shrinks the concurrency cap."""
        return False

    def explain(self, exc: BaseException) -> str | None:
        """A one-line message for a permanent failure, saying what to do; ``None`` if unknown."""
        return None

    async def aclose(self) -> None:
        """Release clients and connections."""
