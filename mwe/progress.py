"""Progress displays for long work: a rich bar plus the model layer's live state."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from mwe.models.lm import LM
from mwe.terminal import plain


def lm_status(lm: LM) -> str:
    """One line of an LM's state: its concurrency cap, retries, cache hits and cost so far."""
    stats = lm.stats
    cost = "?" if stats.cost_usd is None else f"${stats.cost_usd:.4f}"
    return (
        f"{plain(lm.spec, one_line=True)} conc {lm.limiter.limit}/{lm.limiter.max_limit} "
        f"retries {stats.retries} cached {stats.cache_hits} {cost}"
    )


class LMColumn(ProgressColumn):
    """Shows :func:`lm_status` for each model a task uses, refreshed with the bar."""

    def __init__(self, lms: Sequence[LM]) -> None:
        super().__init__()
        self.lms = list(lms)

    def render(self, task: Task) -> Text:
        return Text(" | ".join(lm_status(lm) for lm in self.lms), style="dim")


def lm_progress(lms: Sequence[LM], console: Console | None = None) -> Progress:
    """A progress bar whose line also shows the live state of ``lms``."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        LMColumn(lms),
        console=console,
        transient=False,
    )
