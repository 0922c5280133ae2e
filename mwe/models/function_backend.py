"""``function:NAME``: a model that is a Python function, registered under a name.

For tests that exercise the pipeline without a server (like Inspect's mockllm or pydantic-ai's
``FunctionModel``), and for library users who want a scripted or rule-based model. It goes
through the same :class:`mwe.models.LM` as any backend: the call cache, retries, concurrency.
The HTTP test server stays for what needs the real SDKs (their protocols, retries, faults).

    register_function("echo", reply=lambda messages, sample: messages[-1].content)
    generate_eval(store, GenerateOptions(..., generator="function:echo", judge="function:judge"))
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from mwe.errors import UsageError
from mwe.models.base import AnswerLogprobs, Backend, GenerateConfig, Message, Samples, Usage

#: The text of sample number ``sample`` of the reply to ``messages``.
Reply = Callable[[list[Message], int], str]
#: Log-probabilities of each of ``answers`` as the reply to ``messages`` (``None``: not shown).
Logprobs = Callable[[list[Message], list[str]], dict[str, float | None]]


@dataclass(frozen=True)
class _Function:
    reply: Reply
    logprobs: Logprobs | None


_FUNCTIONS: dict[str, _Function] = {}


def register_function(name: str, reply: Reply, logprobs: Logprobs | None = None) -> None:
    """Make ``function:NAME`` a model that answers with ``reply`` (and, if given, scores
    answers with ``logprobs``; without it, judges vote by sampling, as with Anthropic)."""
    _FUNCTIONS[name] = _Function(reply, logprobs)


def unregister_function(name: str) -> None:
    """Forget ``function:NAME``."""
    _FUNCTIONS.pop(name, None)


class FunctionBackend(Backend):
    """A registered Python function as a model."""

    backend = "function"

    def __init__(self, model: str, *, base_url: str | None = None) -> None:
        super().__init__(model, base_url=base_url)
        if model not in _FUNCTIONS:
            known = ", ".join(sorted(_FUNCTIONS)) or "none"
            raise UsageError(
                f"no function registered as {model!r} (registered: {known}); "
                "call mwe.models.function_backend.register_function first"
            )
        self.function = _FUNCTIONS[model]
        # An instance attribute: whether this model has log-probs depends on its registration.
        self.answers_logprobs = self.function.logprobs is not None

    async def generate(self, messages: list[Message], config: GenerateConfig) -> Samples:
        await asyncio.sleep(0)  # a real suspension point, as a request would be
        texts = [self.function.reply(messages, i) for i in range(config.n)]
        return Samples(texts, Usage(_words(messages), sum(len(t.split()) for t in texts)))

    async def answer_logprobs(self, messages: list[Message], answers: list[str]) -> AnswerLogprobs:
        if self.function.logprobs is None:
            return await super().answer_logprobs(messages, answers)
        await asyncio.sleep(0)
        scores = self.function.logprobs(messages, list(answers))
        logprobs = {answer: scores.get(answer) for answer in answers}
        return AnswerLogprobs(logprobs, "logprobs", Usage(_words(messages), 0))


def _words(messages: list[Message]) -> int:
    return sum(len(m.content.split()) for m in messages)
