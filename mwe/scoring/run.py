"""`score_sets`: score sets x models x prompt formats, resuming from what the store holds.

Local models (``local``, ``hf:``) are scored by :class:`LocalScorer`; API models through the
cached model layer: OpenAI's top log-probs, or, for backends without log-probs (Anthropic),
sampled answers parsed to an option. Rows are written batch by batch, so an interrupted run
keeps everything scored so far and the same command carries on from there.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mwe.errors import UsageError
from mwe.items import Item
from mwe.models import GenerateConfig, Message, get_backend
from mwe.models.base import Backend
from mwe.models.lm import LM
from mwe.pipeline.judge import parse_vote
from mwe.scoring.prompts import PROMPT_FORMATS, options
from mwe.scoring.results import Result, results
from mwe.store import EvalSetInfo, ScoreRow, Store

if TYPE_CHECKING:
    from mwe.models.hf import HFBackend

logger = logging.getLogger(__name__)
CRASH_ENV = "MWE_CRASH_AT"  # testing knob: "score:k" kills the process after k written batches
API_CHUNK = 64  # API rows are written in chunks of this many items


class Scoring:
    """One scoring run: its store, run id, progress display and counts."""

    def __init__(
        self,
        store: Store,
        console: Console,
        *,
        votes: int = 5,
        token_budget: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.store, self.console = store, console
        self.votes, self.token_budget, self.batch_size = votes, token_budget, batch_size
        self.batches = 0
        self.new_rows = 0
        self.skipped_rows = 0
        self.run_id = store.start_run("score")

    def finish(self, status: str) -> None:
        counts = {"new_rows": self.new_rows, "skipped_rows": self.skipped_rows}
        self.store.finish_run(self.run_id, status, params=counts)

    def save(self, info: EvalSetInfo, model: str, fmt: str, rows: list[ScoreRow]) -> None:
        self.store.write_scores(info, model, fmt, self.run_id, rows)
        self.new_rows += len(rows)
        self.batches += 1
        want = os.environ.get(CRASH_ENV, "")
        if want.startswith("score:") and self.batches == int(want.split(":")[1]):
            os.kill(os.getpid(), signal.SIGKILL)

    def progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=self.console,
        )

    def score_pair(
        self,
        info: EvalSetInfo,
        items: Sequence[Item],
        backend: Backend,
        model: str,
        prompt_format: str | None,
    ) -> str:
        """Score the items not yet stored for (model, format); return the format used."""
        fmt = prompt_format or backend.default_prompt_format()
        done = self.store.scored_indices(info, model, fmt)
        todo = [(i, item) for i, item in enumerate(items) if i not in done]
        self.skipped_rows += len(items) - len(todo)
        if not todo:
            return fmt
        start = time.perf_counter()
        with self.progress() as progress:
            task = progress.add_task(f"{info.ref} x {model} ({fmt})", total=len(todo), rate="")

            def saved(rows: list[ScoreRow]) -> None:
                self.save(info, model, fmt, rows)
                progress.advance(task, len(rows))
                done_n = progress.tasks[0].completed
                progress.update(task, rate=f"{done_n / (time.perf_counter() - start):.1f} items/s")
                # For logs and pipes, where the bar is drawn only at the end (shown with -v).
                logger.info(
                    "%s x %s (%s): %d of %d rows stored", info.ref, model, fmt, done_n, len(todo)
                )

            if backend.scores_continuations:
                self._score_local(backend, todo, fmt, saved)
            else:
                if fmt != "chat":
                    raise UsageError(f"{model} is a chat API: score it with --prompt-format chat")
                asyncio.run(self._score_api(backend, todo, saved))
        return fmt

    def _score_local(
        self,
        backend: Backend,
        todo: list[tuple[int, Item]],
        fmt: str,
        saved: Callable[[list[ScoreRow]], None],
    ) -> None:
        # Imported here: the local runner needs torch, which scoring an API model does not.
        from mwe.scoring.local import LocalScorer

        local = cast("HFBackend", backend)  # the only backend that scores continuations
        scorer = LocalScorer(local, token_budget=self.token_budget, max_rows=self.batch_size or 64)
        index = [i for i, _ in todo]
        method = f"logprobs:{local.dtype}".replace("torch.", "")

        def on_batch(finished: dict[int, dict[str, float]]) -> None:
            saved([ScoreRow(index[k], dict(scores), method) for k, scores in finished.items()])

        scorer.score([item for _, item in todo], fmt, on_batch)

    async def _score_api(
        self,
        backend: Backend,
        todo: list[tuple[int, Item]],
        saved: Callable[[list[ScoreRow]], None],
    ) -> None:
        lm = LM(backend, self.store, run_id=self.run_id)
        try:
            for start in range(0, len(todo), API_CHUNK):
                chunk = todo[start : start + API_CHUNK]
                rows = await asyncio.gather(*(self._api_row(lm, i, item) for i, item in chunk))
                await lm.cache.aflush()
                saved(list(rows))
        finally:
            await lm.aclose()

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
        votes = [parse_vote(r.strip().lstrip("("), keys) for r in replies]
        counts = {a: votes.count(k) for a, k in zip(answers, keys, strict=True)}
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


def score_sets(
    store: Store,
    refs: Sequence[str],
    models: Sequence[str],
    *,
    prompt_formats: Sequence[str] | None = None,
    limit: int | None = None,
    token_budget: int | None = None,
    batch_size: int | None = None,
    base_url: str | None = None,
    votes: int = 5,
    console: Console | None = None,
) -> tuple[list[Result], dict[str, int]]:
    """Score every set x model x format; return their metrics and the counts of rows written
    and of rows found already stored (and so not scored again)."""
    for fmt in prompt_formats or ():
        if fmt not in PROMPT_FORMATS:
            raise UsageError(f"unknown prompt format {fmt!r}: use {' or '.join(PROMPT_FORMATS)}")
    infos = [store.resolve(ref) for ref in refs]  # unknown sets fail before any model loads
    backends = {m: get_backend(m, **({"base_url": base_url} if base_url else {})) for m in models}
    run = Scoring(
        store,
        console or Console(stderr=True),
        votes=votes,
        token_budget=token_budget,
        batch_size=batch_size,
    )
    used: set[tuple[str, str, str]] = set()
    try:
        for info in infos:
            items = store.items(info, limit=limit)
            for model, backend in backends.items():
                for fmt in prompt_formats or [None]:
                    used_fmt = run.score_pair(info, items, backend, model, fmt)
                    used.add((info.ref, model, used_fmt))
    except BaseException:
        run.finish("interrupted")
        raise
    run.finish("done")
    table = [r for r in results(store) if (r.set, r.model, r.prompt_format) in used]
    return table, {"new_rows": run.new_rows, "skipped_rows": run.skipped_rows}
