"""`LM`: a backend behind the call cache, retries and adaptive concurrency.

Every stage calls models through an :class:`LM`, never a backend directly, so that every call is
cached (a rerun pays nothing twice), retried when the failure is transient, and counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Self, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from mwe.errors import UsageError
from mwe.models.base import (
    AnswerLogprobs,
    Backend,
    GenerateConfig,
    MalformedResponseError,
    Message,
    Samples,
    Usage,
)
from mwe.models.batches import Batcher
from mwe.models.cache import CallCache, CallStore, MemoryCalls, request_key
from mwe.models.errors import ModelFailedError, connection_refused
from mwe.models.limiter import AdaptiveLimiter
from mwe.models.pricing import cost_usd
from mwe.models.stats import CallStats
from mwe.secrets import redact

logger = logging.getLogger(__name__)
T = TypeVar("T")


REFUSED_RETRY_S = 0.5  # the wait before the one retry of a refused connection


class _RefusedTwice(stop_base):
    """Stop once a refused connection has been retried once."""

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome else None
        return exc is not None and connection_refused(exc) and retry_state.attempt_number >= 2


class LM:
    """A model with caching, retries and adaptive concurrency.

    ``calls`` keeps the call cache: a :class:`mwe.store.Store`, so that a rerun pays for
    nothing twice, or by default a :class:`MemoryCalls` that lasts as long as the process.
    ``max_attempts``
    counts the first try; ``backoff`` is the base and cap, in seconds, of the jittered
    exponential wait between attempts (a provider's Retry-After is honoured when longer).
    With ``batch``, calls that miss the cache go through the provider's batch API at half
    price (:class:`mwe.models.batches.Batcher`, configured by ``batch_options``).
    """

    def __init__(
        self,
        backend: Backend,
        calls: CallStore | None = None,
        *,
        max_concurrency: int | None = None,
        max_attempts: int = 8,
        backoff: tuple[float, float] = (0.5, 30.0),
        run_id: int | None = None,
        batch: bool = False,
        batch_options: dict[str, Any] | None = None,
    ) -> None:
        self.backend = backend
        self.cache = CallCache(calls if calls is not None else MemoryCalls())
        self.limiter = AdaptiveLimiter(max_concurrency or backend.max_concurrency)
        self.max_attempts = max_attempts
        self._exp_wait = wait_random_exponential(multiplier=backoff[0], max=backoff[1])
        self.run_id = run_id
        self.stats = CallStats()
        #: Called right after each new (paid) call is queued for the cache, before any other
        #: task runs: the pipeline's crash points hang here.
        self.after_call: Callable[[], None] | None = None
        self._in_flight: dict[str, asyncio.Lock] = {}  # by the first missing key of a request
        self.batcher: Batcher | None = None
        if batch:
            if not backend.supports_batches:
                raise UsageError(
                    f"--batch: {backend.spec} has no batch API (only openai: and anthropic: "
                    "models have one); run it without --batch"
                )
            self.batcher = Batcher(self, calls, **(batch_options or {}))

    @property
    def spec(self) -> str:
        return self.backend.spec

    def _request(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {**self.backend.identity(), "kind": kind, **fields}

    async def generate(
        self, messages: list[Message], config: GenerateConfig | None = None
    ) -> list[str]:
        """``config.n`` completions of ``messages``; each sample is cached under its own index,
        so asking for more samples later reuses the ones already paid for."""
        config = config or GenerateConfig()
        requests = self._chat_requests(messages, config)
        keys = [request_key(r) for r in requests]
        cached = self.cache.get_many(requests[0], keys)
        missing = [i for i, key in enumerate(keys) if key not in cached]
        if missing:
            # The same request already in flight (two rollouts opening alike): wait for it and
            # read its answer from the cache, instead of paying for it twice.
            first = keys[missing[0]]
            lock = self._in_flight.setdefault(first, asyncio.Lock())
            async with lock:
                cached = self.cache.get_many(requests[0], keys)
                missing = [i for i, key in enumerate(keys) if key not in cached]
                if missing:
                    todo = config.model_copy(update={"n": len(missing)})
                    asked = [requests[i] for i in missing]
                    if self.batcher is not None:
                        responses = await self.batcher.chat(messages, todo, asked)
                    else:
                        responses = await self.generate_direct(messages, todo, asked)
                    cached.update((keys[i], r) for i, r in zip(missing, responses, strict=True))
                    self._called()
            if not lock.locked() and self._in_flight.get(first) is lock:
                del self._in_flight[first]  # correct either way: the cache is read under it
        self.stats.cache_hits += len(keys) - len(missing)
        return [cached[key]["text"] for key in keys]

    async def generate_direct(
        self, messages: list[Message], config: GenerateConfig, requests: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Ask the backend for the ``config.n`` samples whose cache requests are ``requests``,
        and cache them; return their responses."""
        # Each sample's seed comes from its cache key (the model, the messages, the parameters
        # and the sample's index): a fresh store draws what a cached one holds, whatever else
        # the request was batched with.
        seeds = tuple(int(request_key(r)[:15], 16) for r in requests)
        seeded = config.model_copy(update={"seeds": seeds})
        samples, latency = await self._call(lambda: self.backend.generate(messages, seeded))
        return self.record_samples(requests, samples, latency)

    def record_samples(
        self,
        requests: list[dict[str, Any]],
        samples: Samples,
        latency_s: float,
        *,
        batch: bool = False,
    ) -> list[dict[str, Any]]:
        """Cache one request's samples, one per cache request; return their responses."""
        if len(samples.texts) != len(requests):
            raise MalformedResponseError(
                f"asked for {len(requests)} samples, got {len(samples.texts)}"
            )
        cost = self._record_usage(samples.usage, batch=batch)
        responses = []
        for j, (request, text) in enumerate(zip(requests, samples.texts, strict=True)):
            # The request's usage and cost are booked on its first sample only.
            first = j == 0
            response = {"text": text}
            self.cache.put(
                request_key(request),
                request,
                response,
                usage=samples.usage if first else Usage(0, 0),
                cost_usd=cost if first else (0.0 if cost is not None else None),
                latency_s=latency_s,
                run_id=self.run_id,
            )
            responses.append(response)
        return responses

    def _chat_requests(
        self, messages: list[Message], config: GenerateConfig
    ) -> list[dict[str, Any]]:
        base = self._request(
            "chat",
            messages=[m.model_dump() for m in messages],
            params=config.model_dump(exclude={"n", "seeds"}, mode="json"),
        )
        return [base | {"sample_index": i} for i in range(config.n)]

    def chat_keys(self, messages: list[Message], config: GenerateConfig) -> list[str]:
        """The cache keys of the ``config.n`` samples that :meth:`generate` would return."""
        return [request_key(r) for r in self._chat_requests(messages, config)]

    async def answer_logprobs(self, messages: list[Message], answers: list[str]) -> AnswerLogprobs:
        """Log-probabilities of each answer string as the reply to ``messages``."""
        request = self._request(
            "answer_logprobs", messages=[m.model_dump() for m in messages], answers=list(answers)
        )
        key = request_key(request)
        hit = self.cache.get_many(request, [key]).get(key)
        if hit is not None:
            self.stats.cache_hits += 1
            return AnswerLogprobs(hit["logprobs"], hit["method"])
        if self.batcher is not None:
            response = await self.batcher.answers(messages, request)
            self._called()
            return AnswerLogprobs(response["logprobs"], response["method"])
        result, latency = await self._call(lambda: self.backend.answer_logprobs(messages, answers))
        self.record_answers(request, result, latency)
        self._called()
        return result

    def record_answers(
        self,
        request: dict[str, Any],
        result: AnswerLogprobs,
        latency_s: float,
        *,
        batch: bool = False,
    ) -> dict[str, Any]:
        """Cache one answer_logprobs call; return its response."""
        cost = self._record_usage(result.usage, batch=batch)
        response = result.to_json()
        self.cache.put(
            request_key(request),
            request,
            response,
            usage=result.usage,
            cost_usd=cost,
            latency_s=latency_s,
            run_id=self.run_id,
        )
        return response

    async def continuation_logprob(self, context: str, continuation: str) -> float:
        """Log-likelihood of ``continuation`` after raw ``context`` (local backends, and
        OpenAI-compatible servers with prompt log-probs)."""
        request = self._request("continuation", context=context, continuation=continuation)
        key = request_key(request)
        hit = self.cache.get_many(request, [key]).get(key)
        if hit is not None:
            self.stats.cache_hits += 1
            return float(hit["logprob"])
        value, latency = await self._call(
            lambda: self.backend.continuation_logprob(context, continuation)
        )
        # Free on a local model; on a server its price is unknown, never quietly 0.
        cost = self._record_usage(Usage())
        self.cache.put(
            key,
            request,
            {"logprob": value},
            usage=Usage(),
            cost_usd=cost,
            latency_s=latency,
            run_id=self.run_id,
        )
        self._called()
        return value

    def _called(self) -> None:
        if self.after_call is not None:
            self.after_call()

    def _record_usage(self, usage: Usage, *, batch: bool = False) -> float | None:
        cost = cost_usd(self.spec, self.backend.backend, self.backend.base_url, usage, batch=batch)
        self.stats.add_usage(usage, cost)
        return cost

    async def _call(
        self, fn: Callable[[], Awaitable[T]], *, counted: bool = True
    ) -> tuple[T, float]:
        """Run one request with retries; return its result and the last attempt's latency.
        ``counted``: a model request (not a batch upload or poll), counted in the stats."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda exc: self.backend.classify(exc).retry),
            # A refused connection means nothing listens there: one short retry (a server
            # that is just starting), not minutes of back-off.
            stop=stop_after_attempt(self.max_attempts) | _RefusedTwice(),
            wait=self._wait,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(fn, counted)
        except Exception as exc:  # noqa: BLE001 - translated, or re-raised as it is
            raise self._failure(exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, fn: Callable[[], Awaitable[T]], counted: bool) -> tuple[T, float]:
        await self.limiter.acquire()
        self.stats.requests += counted
        start = time.perf_counter()
        try:
            result = await fn()
        except BaseException as exc:
            limited = self.backend.classify(exc).rate_limited
            self.stats.rate_limits += limited
            await self.limiter.release(rate_limited=limited, ok=False)
            raise
        await self.limiter.release()
        return result, time.perf_counter() - start

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None and connection_refused(exc):
            return REFUSED_RETRY_S
        backoff = self._exp_wait(state)
        asked = self.backend.classify(exc).wait_s if exc else None
        return max(asked, backoff) if asked is not None else backoff

    def _before_sleep(self, state: RetryCallState) -> None:
        self.stats.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        logger.info("%s: retrying after %s", self.spec, redact(type(exc).__name__))

    def _failure(self, exc: Exception) -> Exception:
        if connection_refused(exc):
            where = self.backend.base_url or f"the {self.backend.backend} API"
            return ModelFailedError(
                f"{self.spec}: cannot connect to {where} (connection refused): is the server "
                "running, and is --base-url right?"
            )
        failure = self.backend.classify(exc)
        if failure.retry:
            detail = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return ModelFailedError(
                f"{self.spec}: gave up after {self.max_attempts} attempts ({detail})"
            )
        if failure.message is not None:
            return ModelFailedError(redact(failure.message))
        return exc  # not a provider error: a bug or a usage error, raised as it is

    async def aclose(self) -> None:
        """Write every cached call still queued, and close the backend's client."""
        if self.batcher is not None:
            await self.batcher.aclose()
        await self.cache.aflush()
        self.cache.flush()
        await self.backend.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
