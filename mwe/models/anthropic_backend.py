"""Anthropic's messages API. It gives no log-probabilities: judges built on it vote by sampling."""

from __future__ import annotations

import os
from typing import Any

import anthropic

from mwe.models.base import (
    Backend,
    Failure,
    GenerateConfig,
    Message,
    Samples,
    Usage,
    asked_wait,
    status_failure,
)
from mwe.models.errors import MissingKeyError


class AnthropicBackend(Backend):
    """``anthropic:<model>``."""

    backend = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        client: anthropic.AsyncAnthropic | None = None,
        timeout: float = 60.0,
    ) -> None:
        super().__init__(model, base_url=base_url)
        if client is None:
            key = os.environ.get("ANTHROPIC_API_KEY")
            if not key:
                raise MissingKeyError("no Anthropic API key: set ANTHROPIC_API_KEY")
            # SDK retries off: tenacity in mwe.models.lm retries, and the two would multiply.
            client = anthropic.AsyncAnthropic(
                api_key=key, base_url=base_url, timeout=timeout, max_retries=0
            )
        self.client = client

    async def generate(self, messages: list[Message], config: GenerateConfig) -> Samples:
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": config.max_tokens,
            "messages": [m.model_dump() for m in messages if m.role != "system"],
        }
        if system:
            params["system"] = system
        if config.stop:
            params["stop_sequences"] = list(config.stop)
        # Sampling parameters are sent only when they differ from the API's defaults: newer
        # models reject them, and this SDK no longer names them.
        sampling = {"temperature": config.temperature, "top_p": config.top_p}
        extra = {k: v for k, v in sampling.items() if v != 1.0}
        if extra:
            params["extra_body"] = extra
        # The API returns one sample per request.
        texts, inputs, outputs = [], 0, 0
        for _ in range(config.n):
            response = await self.client.messages.create(**params)
            texts.append("".join(b.text for b in response.content if b.type == "text"))
            inputs += response.usage.input_tokens
            outputs += response.usage.output_tokens
        return Samples(texts, Usage(inputs, outputs))

    def classify(self, exc: BaseException) -> Failure:
        if isinstance(exc, anthropic.RateLimitError):
            return Failure(True, rate_limited=True, wait_s=asked_wait(exc))
        if isinstance(exc, anthropic.APIStatusError):
            return status_failure(exc, exc.status_code, lambda: self._explain(exc))
        if isinstance(exc, anthropic.APIConnectionError | anthropic.APIResponseValidationError):
            return Failure(True)  # time-outs, dropped connections, truncated bodies
        return super().classify(exc)

    def _explain(self, exc: anthropic.APIStatusError) -> str:
        if isinstance(exc, anthropic.AuthenticationError):
            return "Anthropic rejected the API key (401): check ANTHROPIC_API_KEY"
        if isinstance(exc, anthropic.PermissionDeniedError):
            return f"Anthropic refused access to {self.model} (403): check the key's workspace"
        if isinstance(exc, anthropic.NotFoundError):
            return f"no Anthropic model {self.model!r} (404)"
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error", {}) if isinstance(body.get("error"), dict) else {}
        message = " ".join(str(error.get("message") or exc.message).split())
        if "credit balance" in message.lower():
            return f"Anthropic quota exhausted: {message}"
        return f"Anthropic rejected the request ({exc.status_code}): {message}"

    async def aclose(self) -> None:
        await self.client.close()
