"""Provider batch APIs behind the call cache: OpenAI Batch and Anthropic Message Batches.

With ``--batch`` an :class:`mwe.models.lm.LM` (a :class:`BatchedLM`) hands each call that misses the cache to its
:class:`Batcher` instead of sending it. The batcher gathers the calls the pipeline fires at once
(until none has arrived for ``window_s``), submits them as one provider batch whose lines are
keyed by their cache keys (``custom_id``), and records the batch in the store before anything
else happens. It polls the batch, puts every result in the call cache exactly as a direct call
would have been put (same key, at the batch price: half the listed one), and wakes the callers,
so the pipeline code is the same with or without batches.

A line that failed or expired goes into a new batch (or, when only a few are left, is sent
directly); the lines that succeeded are never sent again. A run that is killed while a batch is
out finds the batch in the store when it is started again, and polls it instead of submitting
the same requests twice. A lone call (the spec) is sent directly: a batch's wait buys nothing
there.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from mwe import env
from mwe.checkpoints import checkpoint
from mwe.models.base import (
    AnswerLogprobs,
    Backend,
    BatchLine,
    BatchState,
    GenerateConfig,
    Message,
    Samples,
)
from mwe.models.cache import CallCache, request_key
from mwe.models.errors import ModelFailedError
from mwe.models.stats import CallStats
from mwe.secrets import redact

logger = logging.getLogger(__name__)

POLL_ENV = "MWE_BATCH_POLL_S"
DEFAULT_POLL_S = 30.0
MAX_LINES = 50_000  # OpenAI's limit per batch (Anthropic's is 100,000)
_submitted = itertools.count(1)  # batches this process submitted: the checkpoint's count
Responses = list[dict[str, Any]]
T = TypeVar("T")


class BatchedLM(Protocol):
    """What a :class:`Batcher` needs of the LM whose cache misses it sends
    (:class:`mwe.models.lm.LM` is one): its backend and call cache, its counts, direct calls
    with its retries, and the caching of what came back, as a direct call caches it."""

    backend: Backend
    cache: CallCache
    stats: CallStats
    run_id: int | None

    @property
    def spec(self) -> str: ...

    async def generate_direct(
        self, messages: list[Message], config: GenerateConfig, requests: list[dict[str, Any]]
    ) -> list[dict[str, Any]]: ...

    async def _call(
        self, fn: Callable[[], Awaitable[T]], *, counted: bool = True
    ) -> tuple[T, float]: ...

    def record_samples(
        self,
        requests: list[dict[str, Any]],
        samples: Samples,
        latency_s: float,
        *,
        batch: bool = False,
    ) -> list[dict[str, Any]]: ...

    def record_answers(
        self,
        request: dict[str, Any],
        result: AnswerLogprobs,
        latency_s: float,
        *,
        batch: bool = False,
    ) -> dict[str, Any]: ...


class BatchStore(Protocol):
    """Where submitted batches are recorded; :class:`mwe.store.Store` is one."""

    def save_batch(
        self,
        provider_id: str,
        identity: dict[str, Any],
        lines: dict[str, list[dict[str, Any]]],
        run_id: int | None = None,
    ) -> int:
        """Record a submitted batch and the cache requests of each line; return its id."""
        ...

    def open_batches(self, identity: dict[str, Any], custom_ids: Sequence[str]) -> dict[str, int]:
        """The batch not yet collected that holds each of ``custom_ids``, where one does."""
        ...

    def batch_info(self, batch_id: int) -> tuple[str, dict[str, list[dict[str, Any]]]]:
        """A batch's provider id and the cache requests of each of its lines."""
        ...

    def finish_batch(self, batch_id: int, succeeded: int, failed: int) -> None:
        """Mark a batch collected."""
        ...


class MemoryBatches:
    """A :class:`BatchStore` in memory, for an LM whose calls are kept in memory."""

    def __init__(self) -> None:
        self.batches: dict[int, dict[str, Any]] = {}

    def save_batch(
        self,
        provider_id: str,
        identity: dict[str, Any],
        lines: dict[str, list[dict[str, Any]]],
        run_id: int | None = None,
    ) -> int:
        batch_id = len(self.batches) + 1
        self.batches[batch_id] = {"provider_id": provider_id, "lines": lines, "open": True}
        return batch_id

    def open_batches(self, identity: dict[str, Any], custom_ids: Sequence[str]) -> dict[str, int]:
        wanted = set(custom_ids)
        return {
            cid: batch_id
            for batch_id, batch in self.batches.items()
            if batch["open"]
            for cid in batch["lines"]
            if cid in wanted
        }

    def batch_info(self, batch_id: int) -> tuple[str, dict[str, list[dict[str, Any]]]]:
        batch = self.batches[batch_id]
        return batch["provider_id"], batch["lines"]

    def finish_batch(self, batch_id: int, succeeded: int, failed: int) -> None:
        self.batches[batch_id]["open"] = False


@dataclass(eq=False)
class _Line:
    """One line of a batch: the request body, the cache requests it answers, and the callers
    waiting for it."""

    custom_id: str
    body: dict[str, Any]
    requests: list[dict[str, Any]]
    direct: Callable[[], Awaitable[Responses]]  # the same call, sent directly and cached
    waiters: list[asyncio.Future[Responses]] = field(default_factory=list)
    batch_id: int | None = None  # the batch it is out in
    rounds: int = 0  # batches this process submitted it in

    def resolve(self, responses: Responses) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(responses)

    def fail(self, exc: BaseException) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_exception(exc)


def poll_interval() -> float:
    """Seconds between polls of a batch: ``$MWE_BATCH_POLL_S`` (checked by :mod:`mwe.env`:
    above 0, finite, at most an hour), or 30."""
    seconds = env.get(POLL_ENV)
    return DEFAULT_POLL_S if seconds is None else float(seconds)


class Batcher:
    """Sends one LM's cache misses through its provider's batch API.

    ``window_s``: how long after the last call a batch is submitted; ``poll_s``: seconds
    between polls (default ``$MWE_BATCH_POLL_S`` or 30); ``max_rounds``: batches a request is
    tried in before the run fails; ``min_lines``: fewer requests than this are sent directly.
    """

    def __init__(
        self,
        lm: BatchedLM,
        calls: object,
        *,
        window_s: float = 0.2,
        poll_s: float | None = None,
        max_rounds: int = 3,
        min_lines: int = 2,
        max_lines: int = MAX_LINES,
    ) -> None:
        self.lm = lm
        self.backend = lm.backend
        self.identity = lm.backend.identity()
        self.store: BatchStore = (
            calls if hasattr(calls, "save_batch") else MemoryBatches()  # type: ignore[assignment]
        )
        self.window_s, self.max_rounds = window_s, max_rounds
        self.poll_s = poll_s if poll_s is not None else poll_interval()
        self.min_lines, self.max_lines = min_lines, max_lines
        self.states: dict[int, BatchState] = {}  #: the batches being polled, as last polled
        self._queue: dict[str, _Line] = {}  # gathered, not released yet
        self._out: dict[str, _Line] = {}  # released: being submitted, in a batch, or sent
        self._watching: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None

    # -- what the LM calls ------------------------------------------------------------------

    async def chat(
        self, messages: list[Message], config: GenerateConfig, requests: list[dict[str, Any]]
    ) -> Responses:
        """The responses to ``requests``, the cache requests of the ``config.n`` samples of
        one generate call, in order."""
        bodies = self.backend.batch_bodies(messages, config)
        per = len(requests) // len(bodies)  # one body with n samples, or one per sample
        waits = []
        for b, body in enumerate(bodies):
            part = requests[b * per : (b + 1) * per]
            one = config.model_copy(update={"n": len(part)})
            direct = functools.partial(self.lm.generate_direct, messages, one, part)
            waits.append(self._enqueue(body, part, direct))
        parts = await asyncio.gather(*waits)
        return [response for part in parts for response in part]

    async def answers(self, messages: list[Message], request: dict[str, Any]) -> dict[str, Any]:
        """The response to one answer_logprobs call whose cache request is ``request``."""
        body = self.backend.batch_answers_body(messages)

        async def direct() -> Responses:
            result, latency = await self.lm._call(
                lambda: self.backend.answer_logprobs(messages, request["answers"])
            )
            return [self.lm.record_answers(request, result, latency)]

        (response,) = await self._enqueue(body, [request], direct)
        return response

    def status(self) -> str:
        """One line for the progress display: the batches out and how far they are."""
        if not self.states:
            return ""
        done = sum(s.finished for s in self.states.values())
        total = sum(s.total for s in self.states.values())
        return f"batches {len(self.states)} ({done}/{total} done)"

    async def aclose(self) -> None:
        """Stop polling; batches still out stay recorded, and the next run polls them."""
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- gathering ----------------------------------------------------------------------------

    def _enqueue(
        self,
        body: dict[str, Any],
        requests: list[dict[str, Any]],
        direct: Callable[[], Awaitable[Responses]],
    ) -> asyncio.Future[Responses]:
        custom_id = request_key(requests[0])  # the cache key of the line's first sample
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Responses] = loop.create_future()
        line = self._out.get(custom_id) or self._queue.get(custom_id)
        if line is None:  # the same request asked twice at once goes out once
            line = self._queue[custom_id] = _Line(custom_id, body, requests, direct)
            if self._timer is not None:
                self._timer.cancel()
            if len(self._queue) >= self.max_lines:
                self._release()
            else:
                self._timer = loop.call_later(self.window_s, self._release)
        line.waiters.append(waiter)
        return waiter

    def _release(self) -> None:
        self._timer = None
        lines, self._queue = list(self._queue.values()), {}
        self._out.update((line.custom_id, line) for line in lines)
        if lines:
            self._spawn(self._dispatch(lines), lines)

    def _fail(self, lines: Sequence[_Line], exc: BaseException) -> None:
        for line in lines:
            self._out.pop(line.custom_id, None)
            line.fail(exc)

    def _spawn(
        self,
        work: Coroutine[Any, Any, None],
        lines: Sequence[_Line] | Callable[[], Sequence[_Line]],
    ) -> None:
        """Run ``work`` as a task; if it fails, its ``lines`` (or those the function gives at
        that moment) fail with the error, so no caller waits for ever."""

        async def guarded() -> None:
            try:
                await work
            except Exception as exc:  # noqa: BLE001 - handed to the callers, who raise it
                self._fail(lines() if callable(lines) else lines, exc)

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(self, lines: list[_Line]) -> None:
        """Follow the batches already out for some lines (a restarted run); submit the rest."""
        found = self.store.open_batches(self.identity, [line.custom_id for line in lines])
        if found:
            logger.info(
                "%s: %d requests are in batches submitted earlier; polling those",
                self.lm.spec,
                len(found),
            )
        new = []
        for line in lines:
            if line.custom_id in found:
                line.batch_id = found[line.custom_id]
            else:
                new.append(line)
        for batch_id in sorted(set(found.values())):
            self._watch(batch_id)
        await self._submit(new)

    async def _submit(self, lines: list[_Line], *, retry: bool = False) -> None:
        """Submit ``lines`` as one batch (several past ``max_lines``). Fewer than
        ``min_lines`` new ones are sent directly; a retry always goes in a batch, at the batch
        price."""
        if not lines:
            return
        if len(lines) < self.min_lines and not retry:
            for line in lines:
                self._spawn(self._direct(line), [line])
            return
        for start in range(0, len(lines), self.max_lines):
            chunk = lines[start : start + self.max_lines]
            try:
                provider_id = await self._send(chunk)
            except Exception as exc:  # noqa: BLE001 - handed to the callers, who raise it
                self._fail(lines[start:], exc)
                return
            # Recorded before anything else runs: a run killed from here on polls this batch
            # when started again instead of paying for the same requests twice.
            batch_id = self.store.save_batch(
                provider_id,
                self.identity,
                {line.custom_id: line.requests for line in chunk},
                self.lm.run_id,
            )
            for line in chunk:
                line.batch_id, line.rounds = batch_id, line.rounds + 1
            logger.info(
                "%s: submitted batch %s (%d requests)", self.lm.spec, provider_id, len(chunk)
            )
            checkpoint("batch_submitted", next(_submitted), self.lm.cache.flush)
            self._watch(batch_id)

    async def _send(self, chunk: list[_Line]) -> str:
        batch = [BatchLine(line.custom_id, line.body) for line in chunk]
        provider_id, _ = await self.lm._call(
            lambda: self.backend.submit_batch(batch), counted=False
        )
        return provider_id

    async def _direct(self, line: _Line) -> None:
        try:
            responses = await line.direct()
        finally:
            self._out.pop(line.custom_id, None)
        line.resolve(responses)

    # -- polling and collecting -----------------------------------------------------------------

    def _watch(self, batch_id: int) -> None:
        if batch_id in self._watching:
            return
        self._watching.add(batch_id)
        self._spawn(self._follow(batch_id), lambda: self._lines_in(batch_id))

    def _lines_in(self, batch_id: int) -> list[_Line]:
        return [line for line in self._out.values() if line.batch_id == batch_id]

    async def _follow(self, batch_id: int) -> None:
        provider_id, stored = self.store.batch_info(batch_id)
        start = time.perf_counter()
        try:
            state = await self._poll_until_done(batch_id, provider_id)
            results, _ = await self.lm._call(
                lambda: self.backend.batch_results(provider_id), counted=False
            )
        except Exception as exc:  # noqa: BLE001 - handed to the callers, who raise it
            lines = self._lines_in(batch_id)
            if not _gone(exc):
                self._fail(lines, exc)  # the batch stays recorded: the next run polls it
                return
            # The provider no longer knows the batch: send its lines again.
            logger.warning("%s: batch %s is gone (404); resubmitting", self.lm.spec, provider_id)
            self.store.finish_batch(batch_id, 0, len(stored))
            await self._submit(lines, retry=True)
            return
        finally:
            self._watching.discard(batch_id)
            self.states.pop(batch_id, None)
        latency = time.perf_counter() - start
        done: dict[str, Responses] = {}
        failed: dict[str, str] = {}
        for custom_id, requests in stored.items():
            result = results.get(custom_id)
            if result is None:
                failed[custom_id] = f"no result (the batch {state.status})"
                continue
            if result.error is not None:
                failed[custom_id] = result.error
                continue
            try:
                done[custom_id] = self._record(requests, result.response, latency)
            except Exception as exc:  # noqa: BLE001 - a malformed line is a failed line
                failed[custom_id] = redact(str(exc) or type(exc).__name__)
        await self.lm.cache.aflush()  # in the store before the batch is marked collected
        self.store.finish_batch(batch_id, len(done), len(failed))
        for custom_id, responses in done.items():
            if (line := self._out.pop(custom_id, None)) is not None:
                line.resolve(responses)
        await self._retry(batch_id, provider_id, failed)

    async def _poll_until_done(self, batch_id: int, provider_id: str) -> BatchState:
        while True:
            state, _ = await self.lm._call(
                lambda: self.backend.poll_batch(provider_id), counted=False
            )
            self.states[batch_id] = state
            logger.info(
                "%s: batch %s %s (%d/%d)",
                self.lm.spec,
                provider_id,
                state.status,
                state.finished,
                state.total,
            )
            if state.done:
                return state
            await asyncio.sleep(self.poll_s)

    def _record(self, requests: list[dict[str, Any]], response: Any, latency: float) -> Responses:
        """Cache one line's result as the direct call would have been cached."""
        if requests[0]["kind"] == "chat":
            samples = self.backend.batch_samples(response, len(requests))
            out = self.lm.record_samples(requests, samples, latency, batch=True)
        else:
            result = self.backend.batch_answer_logprobs(response, list(requests[0]["answers"]))
            out = [self.lm.record_answers(requests[0], result, latency, batch=True)]
        self.lm.stats.requests += 1
        self.lm.stats.batched += 1
        return out

    async def _retry(self, batch_id: int, provider_id: str, failed: dict[str, str]) -> None:
        """Send the lines of this batch that failed again, up to ``max_rounds`` batches."""
        if not failed:
            return
        first = next(iter(failed.values()))
        logger.warning(
            "%s: %d requests of batch %s failed (%s); sending them again",
            self.lm.spec,
            len(failed),
            provider_id,
            redact(first),
        )
        again = []
        for custom_id, error in failed.items():
            line = self._out.get(custom_id)
            if line is None or line.batch_id != batch_id:
                continue  # nobody waits for it here (or it is out in a newer batch)
            if line.rounds >= self.max_rounds:
                message = f"{self.lm.spec}: a request failed in {line.rounds} batches ({error})"
                self._fail([line], ModelFailedError(redact(message)))
            else:
                again.append(line)
        await self._submit(again, retry=True)


def _gone(exc: BaseException) -> bool:
    """Whether a failed poll said the batch does not exist (HTTP 404)."""
    original = exc.__context__ or exc.__cause__  # mwe.models.lm re-raises it translated
    return getattr(original, "status_code", None) == 404
