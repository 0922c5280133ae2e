"""What `mwe results` shows, as one call: the stored metrics and, beside them, the knowing
against doing cells and the scaling fits that can be worked out from the same scores."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, Field

from mwe.scoring.knowledge import (
    KnowledgeResult,
    KnowledgeScaling,
    knowledge_results,
    knowledge_scaling,
)
from mwe.scoring.results import Result, results
from mwe.scoring.scaling import ScalingFit, scaling_fits
from mwe.store import Store


class StoredResults(BaseModel):
    """The metrics stored for a set (or every set), with what can be read off them."""

    rows: list[Result] = Field(description="One per scored (version, model, prompt format).")
    knowledge: list[KnowledgeResult] = Field(
        default_factory=list, description="Knowing against doing, where the probe was scored."
    )
    fits: list[ScalingFit] = Field(
        default_factory=list, description="Scaling fits, where two or more sizes were scored."
    )
    knowledge_fits: list[KnowledgeScaling] = Field(
        default_factory=list,
        description="How knowing and doing scale, where probed models of two or more sizes are.",
    )


def stored_results(
    store: Store,
    set_ref: str | None = None,
    model: str | None = None,
    *,
    param_counts: Mapping[str, int] | None = None,
    details: bool = True,
) -> StoredResults:
    """The metrics stored for ``set_ref`` (or every set), of ``model`` (or every model). With
    ``details``, also the knowledge-probe cells and, when no one model was asked for (a fit
    needs several), the scaling fits, with ``param_counts`` on top of the sizes stored (a count
    of a model with no stored scores raises :class:`mwe.errors.UsageError`)."""
    rows = results(store, set_ref, model)
    counts = store.param_counts(param_counts)  # a count for an unscored model is refused
    if not details:
        return StoredResults(rows=rows)
    infos = {info.ref: info for info in store.list_sets()}
    scored = [(infos[r.set], r.model, r.prompt_format) for r in rows]
    known = knowledge_results(store, scored)
    fits: list[ScalingFit] = []
    knowledge_fits: list[KnowledgeScaling] = []
    if model is None:
        fits = scaling_fits(store, [(info, fmt) for info, _, fmt in scored], counts)
        knowledge_fits = knowledge_scaling(store, scored, counts)
    return StoredResults(rows=rows, knowledge=known, fits=fits, knowledge_fits=knowledge_fits)
