"""`score` / `score_async`: score sets x models x prompt formats, resuming from what the store
holds.

Local models (``local``, ``hf:``) are scored by :class:`LocalScorer`; API models through the
cached model layer: OpenAI's top log-probs, or, for backends without log-probs (Anthropic),
sampled answers parsed to an option. Rows are written batch by batch, so an interrupted run
keeps everything scored so far and the same command carries on from there.

Local models load and run on the torch thread of the process (:mod:`mwe.models.worker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from mwe.answers import count_votes
from mwe.checkpoints import checkpoint
from mwe.errors import UsageError
from mwe.formats import REGISTRY, get_format
from mwe.generate.templates import TemplateSet
from mwe.items import Item
from mwe.models import GenerateConfig, Message, check_batch_model, get_backend, parse_model
from mwe.models.base import Backend
from mwe.models.lm import LM
from mwe.models.urls import BaseURL
from mwe.models.worker import torch_future
from mwe.progress import ProgressCallback, Reporter
from mwe.runs import RunRecord
from mwe.scoring.knowledge import (
    KNOWLEDGE,
    KnowledgeResult,
    behavior_of,
    check_probe,
    knowledge_item,
    knowledge_results,
    probe_templates,
)
from mwe.scoring.prompts import PROMPT_FORMATS, context_text, options
from mwe.scoring.results import Gap, Result, control_gaps, results_of
from mwe.store import EvalSetInfo, ScoreRow, Store
from mwe.sync import run_sync

if TYPE_CHECKING:
    from mwe.models.hf import HFBackend

logger = logging.getLogger(__name__)
API_CHUNK = 64  # API rows are written in chunks of this many items


class ScoreOptions(BaseModel):
    """What to score, and how."""

    model_config = ConfigDict(extra="forbid")

    sets: list[str] = Field(min_length=1, description="Set references to score.")
    models: list[str] = Field(min_length=1, description="Model strings to score them with.")
    prompt_formats: list[str] | None = Field(
        default=None, description="chat and/or raw; by default each model's own."
    )
    limit: int | None = Field(default=None, ge=1, description="The first N items of each set.")
    batch_tokens: int | None = Field(default=None, ge=1, description="Tokens per local batch.")
    batch_size: int | None = Field(default=None, ge=1, description="Questions per local batch.")
    base_url: BaseURL | list[BaseURL] | None = Field(
        default=None,
        description="An OpenAI-compatible server, or several serving the same model (the work "
        "is spread over them).",
    )
    votes: int = Field(default=5, ge=1, description="Samples per item without log-probs.")
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Requests in flight per model; by default the backend's own cap (32 for "
        "the APIs).",
    )
    batch: bool = Field(
        default=False,
        description="API models: send the calls through the providers' batch APIs (half price).",
    )
    probe: Literal["knowledge"] | None = Field(
        default=None,
        description="knowledge: also ask each item's probe, which answer shows the behaviour "
        "(stored as <format>/knowledge; see mwe.scoring.knowledge).",
    )


class ScoreReport(BaseModel):
    """The metrics of every (set, model, format) scored, and how many rows were new."""

    results: list[Result]
    gaps: list[Gap] = Field(
        default_factory=list,
        description="Per set with a control (sycophancy): the rate minus the control's rate.",
    )
    knowledge: list[KnowledgeResult] = Field(
        default_factory=list,
        description="With probe=knowledge: the four cells of knowing and doing, and their rates.",
    )
    new_rows: int = Field(description="Rows scored by this run.")
    skipped_rows: int = Field(description="Rows found already stored, and not scored again.")


class Scoring:
    """One scoring run: its store, run id, progress reporter and counts."""

    def __init__(
        self,
        store: Store,
        progress: ProgressCallback | None,
        record: RunRecord,
        *,
        votes: int = 5,
        token_budget: int | None = None,
        batch_size: int | None = None,
        batch: bool = False,
        max_concurrency: int | None = None,
    ) -> None:
        self.store, self.progress = store, progress
        self.max_concurrency = max_concurrency
        self.votes, self.token_budget, self.batch_size = votes, token_budget, batch_size
        self.batch = batch
        self.batches = 0
        self.lms: dict[int, LM] = {}  # one per API backend for the whole run, closed at its end
        self.new_rows = 0
        self.skipped_rows = 0
        self.record = record
        self.run_id = record.id

    def lm(self, backend: Backend) -> LM:
        """The run's cached model of ``backend``: its client serves every set and control, and
        is closed by :meth:`aclose`."""
        if id(backend) not in self.lms:
            self.lms[id(backend)] = LM(
                backend,
                self.store,
                run_id=self.run_id,
                batch=self.batch,
                max_concurrency=self.max_concurrency,
            )
        return self.lms[id(backend)]

    async def aclose(self) -> None:
        """Write every cached call still queued and close the models' clients."""
        for lm in self.lms.values():
            await lm.aclose()

    def counts(self) -> dict[str, int]:
        """Rows this run stored, and rows it found already stored."""
        return {"new_rows": self.new_rows, "skipped_rows": self.skipped_rows}

    def save(self, info: EvalSetInfo, model: str, fmt: str, rows: list[ScoreRow]) -> None:
        # The rows and the run's progress in one transaction: one open of the store file per
        # batch, and a reader sees the two agree.
        done = self.new_rows + len(rows)
        with self.store.transaction():
            self.store.write_scores(info, model, fmt, self.run_id, rows)
            self.record.progress(new_rows=done, skipped_rows=self.skipped_rows)
            checkpoint("score_writing", self.batches + 1)  # the file is held here
        self.new_rows = done
        self.batches += 1
        checkpoint("score", self.batches)

    async def score_pair(
        self,
        info: EvalSetInfo,
        items: Sequence[Item],
        backend: Backend,
        model: str,
        prompt_format: str | None,
        control: str | None = None,
        variant: Callable[[Item], Item | None] | None = None,
    ) -> str:
        """Score the items not yet stored for (model, format); return the format used. With
        ``control``, the items' control variants are scored instead (their format's
        :meth:`~mwe.formats.ItemFormat.control`, or ``variant`` where given: a probe), stored
        as ``<format>/<control>``."""
        item_format = get_format(info.format) if info.format in REGISTRY else None
        fmt = (
            prompt_format
            or (item_format.prompt_format if item_format else None)
            or backend.default_prompt_format()
        )
        likelihoods = backend.scores_continuations or (
            fmt == "raw" and backend.echoes_prompt_logprobs
        )
        one_answer = {i.format for i in items if get_format(i.format).min_answers < 2}
        if one_answer and not likelihoods:
            raise UsageError(
                f"{info.ref} holds {' and '.join(sorted(one_answer))} items: their measure is "
                f"a completion's likelihood, which {model} does not give; score it with a "
                "local model, or a server with --base-url and --prompt-format raw"
            )
        stored = f"{fmt}/{control}" if control else fmt
        done = self.store.scored_indices(info, model, stored)
        variants = {
            i: variant(item) if variant is not None else _variant(item, control)
            for i, item in enumerate(items)
        }
        todo = [(i, v) for i, v in variants.items() if i not in done and v is not None]
        self.skipped_rows += len(items) - len(todo)
        if not todo:
            return stored
        logger.info(
            "%s x %s (%s): scoring %d items, %d already stored",
            info.ref,
            model,
            stored,
            len(todo),
            len(items) - len(todo),
        )
        start = time.perf_counter()
        report = Reporter(
            self.progress,
            status=lambda: f"{report.done / (time.perf_counter() - start):.1f} items/s",
        )
        report.start(f"{info.ref} x {model} ({stored})", len(todo))

        def saved(rows: list[ScoreRow]) -> None:
            self.save(info, model, stored, rows)
            report.advance(len(rows))
            # For logs and pipes, where a bar is drawn only at the end (shown with -v).
            logger.info(
                "%s x %s (%s): %d of %d rows stored",
                info.ref,
                model,
                stored,
                report.done,
                len(todo),
            )

        if backend.scores_continuations:
            await self._score_local(backend, todo, fmt, saved)
        elif fmt == "raw" and backend.echoes_prompt_logprobs:
            await self._score_api(backend, todo, saved, self._raw_row)
        elif fmt != "chat":
            raise UsageError(
                f"{model} is a chat API: score it with --prompt-format chat, or serve the model "
                "with an OpenAI-compatible server (vLLM) and give --base-url to score raw text"
            )
        else:
            await self._score_api(backend, todo, saved, self._api_row)
        return stored

    async def _score_local(
        self,
        backend: Backend,
        todo: list[tuple[int, Item]],
        fmt: str,
        saved: Callable[[list[ScoreRow]], None],
    ) -> None:
        """Run the local scorer on the torch thread, so the event loop stays free; when the run
        is cancelled (Ctrl-C), the forward pass in flight stops at its next transformer block
        (:func:`mwe.models.hf.stopped_by`): the batches finished are stored, the one in flight
        is not."""
        # Imported here: the local runner needs torch, which scoring an API model does not.
        from mwe.models.hf import Stopped, stopped_by
        from mwe.models.hf_scorer import LocalScorer
        from mwe.scoring.local import score_items

        local = cast("HFBackend", backend)  # the only backend that scores continuations
        scorer = LocalScorer(local, token_budget=self.token_budget, max_rows=self.batch_size or 64)
        index = [i for i, _ in todo]
        method = f"logprobs:{local.dtype}".replace("torch.", "")

        stop = threading.Event()

        def on_batch(finished: dict[int, dict[str, float]]) -> None:
            saved([ScoreRow(index[k], dict(scores), method) for k, scores in finished.items()])

        def score() -> None:
            with stopped_by(stop):
                score_items(scorer, [item for _, item in todo], fmt, on_batch)

        work = torch_future(score)
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            stop.set()
            # Wait for the thread: it may be writing to the store, which must not be used from
            # two threads at once, and what it finished is kept.
            with contextlib.suppress(Stopped):
                await work
            raise

    async def _score_api(
        self,
        backend: Backend,
        todo: list[tuple[int, Item]],
        saved: Callable[[list[ScoreRow]], None],
        row: Callable[[LM, int, Item], Awaitable[ScoreRow]],
    ) -> None:
        lm = self.lm(backend)
        # A provider batch takes every item at once: chunks would be batches waited for in turn.
        step = max(1, len(todo)) if self.batch else API_CHUNK
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            rows = await asyncio.gather(*(row(lm, i, item) for i, item in chunk))
            await lm.cache.aflush()
            saved(list(rows))

    async def _raw_row(self, lm: LM, idx: int, item: Item) -> ScoreRow:
        """An item in the raw format on a server: each option's log-likelihood from the prompt
        log-probs of context + option, as the local runner computes it."""
        context = context_text(item, "raw")
        answers = options(item)
        logprobs = await asyncio.gather(*(lm.continuation_logprob(context, a) for a in answers))
        return ScoreRow(idx, dict(zip(answers, logprobs, strict=True)), "prompt_logprobs")

    async def _api_row(self, lm: LM, idx: int, item: Item) -> ScoreRow:
        answers = options(item)
        messages = [Message(role="user", content=item.question)]
        if lm.backend.answers_logprobs:
            result = await lm.answer_logprobs(messages, answers)
            return ScoreRow(
                idx,
                result.logprobs,
                "top_logprobs",
                {"missing": result.missing} if result.missing else None,
            )
        replies = await lm.generate(
            messages, GenerateConfig(n=self.votes, temperature=1.0, max_tokens=8)
        )
        keys = [a.strip(" ()") for a in answers]
        by_key = count_votes(replies, keys)
        counts = {a: by_key[k] for a, k in zip(answers, keys, strict=True)}
        parsed = sum(counts.values())
        logprobs = {
            a: (math.log(c / parsed) if c else None) if parsed else None for a, c in counts.items()
        }
        return ScoreRow(
            idx,
            logprobs,
            "sampled",
            {"samples": self.votes, "votes": counts, "unparsed": self.votes - parsed},
        )


def _variant(item: Item, control: str | None) -> Item | None:
    """The item itself, or its control variant (None where the item has none)."""
    return get_format(item.format).control(item) if control else item


def control_of(info: EvalSetInfo) -> str | None:
    """The name of the control a set's format scores next to its items, if any."""
    return get_format(info.format).control_name if info.format in REGISTRY else None


def servers(model: str, base_url: str | list[str] | None) -> dict[str, Any]:
    """The backend option for ``--base-url``: one server, or several (OpenAI-compatible only)."""
    urls = [base_url] if isinstance(base_url, str) else list(base_url or [])
    if len(urls) <= 1:
        return {"base_url": urls[0]} if urls else {}
    if parse_model(model)[0] != "openai":
        raise UsageError(
            f"several --base-url spread one model over OpenAI-compatible servers: {model} is "
            "not an openai:MODEL"
        )
    return {"base_url": urls}


def check_score_options(options: ScoreOptions) -> None:
    """A one-line usage error for what needs no store to find wrong: an unknown prompt format,
    a model without a batch API under ``batch``. :func:`score_async` checks it first; a caller
    can check it before a store is opened (or created)."""
    for fmt in options.prompt_formats or ():
        if fmt not in PROMPT_FORMATS:
            raise UsageError(f"unknown prompt format {fmt!r}: use {' or '.join(PROMPT_FORMATS)}")
    if options.batch:
        for model in options.models:
            check_batch_model(model)


async def score_async(
    store: Store, options: ScoreOptions, *, progress: ProgressCallback | None = None
) -> ScoreReport:
    """Score every set x model x format of ``options`` that is not stored yet; return the
    metrics of all of them. ``progress`` receives a :class:`mwe.progress.ProgressEvent` as
    rows are stored."""
    check_score_options(options)
    infos = [store.resolve(ref) for ref in options.sets]  # unknown sets fail before any load
    probe = probe_templates() if options.probe else None
    for info in infos if probe else ():
        check_probe(info)
    # Loaded off the event loop (a local model loads on the torch thread), so Ctrl-C is heard.
    backends = {
        m: await asyncio.to_thread(get_backend, m, **servers(m, options.base_url))
        for m in options.models
    }
    for model, backend in backends.items():
        if (count := backend.param_count()) is not None:
            store.set_param_count(model, count, "config")  # for the report's model-size view
    record = RunRecord(store, "score", options=options, models={"target": options.models})
    with record:
        return await _score_with(store, options, infos, backends, progress, record, probe)


async def _score_with(
    store: Store,
    options: ScoreOptions,
    infos: list[EvalSetInfo],
    backends: dict[str, Backend],
    progress: ProgressCallback | None,
    record: RunRecord,
    probe: TemplateSet | None,
) -> ScoreReport:
    run = Scoring(
        store,
        progress,
        record,
        votes=options.votes,
        token_budget=options.batch_tokens,
        batch_size=options.batch_size,
        batch=options.batch,
        max_concurrency=options.max_concurrency,
    )
    used: list[tuple[EvalSetInfo, str, str]] = []
    try:
        for info in infos:
            items = store.items(info, limit=options.limit)
            for model, backend in backends.items():
                # No format given: each model's own default, chosen in score_pair.
                formats: list[str | None] = (
                    [*options.prompt_formats] if options.prompt_formats else [None]
                )
                for asked in formats:
                    used_fmt = await run.score_pair(info, items, backend, model, asked)
                    used.append((info, model, used_fmt))
                    if control := control_of(info):
                        # The same items without what the format controls for (sycophancy:
                        # the biography), so the report can show the difference.
                        stored = await run.score_pair(
                            info, items, backend, model, used_fmt, control
                        )
                        used.append((info, model, stored))
                    if probe is not None:
                        stored = await run.score_pair(
                            info,
                            items,
                            backend,
                            model,
                            used_fmt,
                            KNOWLEDGE,
                            partial(knowledge_item, behavior=behavior_of(info), templates=probe),
                        )
                        used.append((info, model, stored))
    finally:
        await run.aclose()
    record.succeed(**run.counts())
    return ScoreReport(
        results=results_of(store, used),
        gaps=control_gaps(store, used),
        knowledge=knowledge_results(store, used) if options.probe else [],
        new_rows=run.new_rows,
        skipped_rows=run.skipped_rows,
    )


def score(
    store: Store, options: ScoreOptions, *, progress: ProgressCallback | None = None
) -> ScoreReport:
    """:func:`score_async`, for code that is not async; it works inside a running event loop
    too, where it runs on a thread of its own."""
    return run_sync(score_async(store, options, progress=progress))
