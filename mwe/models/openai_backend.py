"""OpenAI chat completions, and any OpenAI-compatible server (vLLM, llama.cpp, Ollama)."""

from __future__ import annotations

import math
import os
from typing import Any, cast

import openai

from mwe.models.base import (
    AnswerLogprobs,
    Backend,
    Failure,
    GenerateConfig,
    MalformedResponseError,
    Message,
    Samples,
    Usage,
    asked_wait,
    status_failure,
)
from mwe.models.errors import MissingKeyError

# The API returns at most 20 alternatives per position.
TOP_LOGPROBS = 20


def answer_key(text: str) -> str:
    """How an answer and a token are matched: ' (A)', '(A' and 'A' all match 'a'."""
    return text.strip().strip("()").strip().lower()


class OpenAIBackend(Backend):
    """``openai:<model>``; with ``base_url``, any server that speaks the same protocol."""

    backend = "openai"
    answers_logprobs = True

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        client: openai.AsyncOpenAI | None = None,
        timeout: float = 60.0,
    ) -> None:
        super().__init__(model, base_url=base_url)
        if client is None:
            key = os.environ.get("OPENAI_API_KEY")
            if not key and base_url is None:
                raise MissingKeyError(
                    "no OpenAI API key: set OPENAI_API_KEY (or pass --base-url for a local "
                    "OpenAI-compatible server)"
                )
            # The SDK's own retries stay off: tenacity in mwe.models.lm retries, and the two
            # would multiply. A local server may need no key; the SDK insists on one.
            client = openai.AsyncOpenAI(
                api_key=key or "no-key", base_url=base_url, timeout=timeout, max_retries=0
            )
        self.client = client

    def _request(self, messages: list[Message], **params: Any) -> Any:
        return self.client.chat.completions.create(
            model=self.model,
            messages=cast(Any, [m.model_dump() for m in messages]),  # the SDK's TypedDicts
            **params,
        )

    async def generate(self, messages: list[Message], config: GenerateConfig) -> Samples:
        params: dict[str, Any] = {
            "n": config.n,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "max_tokens": config.max_tokens,
        }
        if config.stop:
            params["stop"] = list(config.stop)
        response = await self._request(messages, **params)
        texts = [choice.message.content or "" for choice in response.choices]
        if len(texts) != config.n:
            raise MalformedResponseError(f"asked for {config.n} choices, got {len(texts)}")
        return Samples(texts, _usage(response))

    async def answer_logprobs(self, messages: list[Message], answers: list[str]) -> AnswerLogprobs:
        response = await self._request(
            messages, max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=TOP_LOGPROBS
        )
        content = response.choices[0].logprobs.content if response.choices[0].logprobs else None
        if not content:
            raise MalformedResponseError("the response carries no logprobs")
        top = content[0].top_logprobs
        logprobs: dict[str, float | None] = {}
        for answer in answers:
            # Several tokens can spell one answer ('Yes', ' Yes', 'yes'): add their mass.
            matches = [t.logprob for t in top if answer_key(t.token) == answer_key(answer)]
            logprobs[answer] = _logsumexp(matches) if matches else None
        return AnswerLogprobs(logprobs, "top_logprobs", _usage(response))

    def classify(self, exc: BaseException) -> Failure:
        if isinstance(exc, openai.RateLimitError) and _is_quota(exc):
            return Failure(
                False,
                message="OpenAI quota exhausted (429 insufficient_quota): add credits or use "
                "another key",
            )
        if isinstance(exc, openai.RateLimitError):
            return Failure(True, rate_limited=True, wait_s=asked_wait(exc))
        if isinstance(exc, openai.APIStatusError):
            return status_failure(exc, exc.status_code, lambda: self._explain(exc))
        if isinstance(exc, openai.APIConnectionError | openai.APIResponseValidationError):
            return Failure(True)  # time-outs, dropped connections, truncated bodies
        return super().classify(exc)

    def _explain(self, exc: openai.APIStatusError) -> str:
        if isinstance(exc, openai.AuthenticationError):
            return "OpenAI rejected the API key (401): check OPENAI_API_KEY"
        if isinstance(exc, openai.PermissionDeniedError):
            return f"OpenAI refused access to {self.model} (403): check the key's project"
        if isinstance(exc, openai.NotFoundError):
            return f"no model {self.model!r} at {self.base_url or 'OpenAI'} (404)"
        return f"OpenAI rejected the request ({exc.status_code}): {_api_message(exc)}"

    async def aclose(self) -> None:
        await self.client.close()


def _usage(response: Any) -> Usage:
    usage = getattr(response, "usage", None)
    if usage is None:
        return Usage()
    return Usage(usage.prompt_tokens, usage.completion_tokens)


def _is_quota(exc: openai.APIStatusError) -> bool:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
    return "insufficient_quota" in (str(error.get("code")), str(error.get("type")))


def _api_message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body)
    message = error.get("message") if isinstance(error, dict) else None
    return " ".join(str(message or exc.message).split())


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))
