"""A candidate item as it moves through the pipeline, and the item it becomes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mwe.formats import ItemFormat, get_format
from mwe.items import Item

# Persona labels are what the generator was asked for; choice questions carry their own answer.
AGREE, DISAGREE, CHOICE = "agree", "disagree", "choice"


@dataclass
class Candidate:
    """One generated statement or question, with what each stage found. What it means, and the
    item it becomes, is up to its format (:mod:`mwe.formats`)."""

    idx: int
    format: str  # a name in mwe.formats.REGISTRY
    label: str  # what the generator was asked for, e.g. AGREE or DISAGREE (persona)
    call: int  # the generation call that produced it
    text: str  # the statement, or the question with its options
    data: Any = None  # what the format parsed (a choice question, ...)
    stage: str = "parse"
    drop_reason: str | None = None
    label_confidence: float | None = None
    relevance: float | None = None
    swapped: bool = False  # options swapped to balance answer positions
    kept: bool = False
    call_key: str | None = None  # the cached generator call that wrote it

    @property
    def fmt(self) -> ItemFormat:
        return get_format(self.format)

    @property
    def alive(self) -> bool:
        return self.drop_reason is None

    def drop(self, stage: str, reason: str) -> None:
        self.stage, self.drop_reason = stage, reason

    @property
    def matching(self) -> str:
        """The answer that matches the behaviour: ' Yes'/' No' or ' (A)'/' (B)'."""
        return self.fmt.matching(self)

    def item(self) -> Item:
        """The eval item this candidate becomes."""
        return self.fmt.item(self)

    def row(self, run_id: int) -> dict[str, Any]:
        """The ``candidates`` table row (the item as JSON text)."""
        return {
            "run_id": run_id,
            "idx": self.idx,
            "stage": self.stage,
            "intended_label": self.label,
            "item": json.dumps(self.item().to_record()) if self.text else None,
            "raw_text": self.text,
            "label_confidence": self.label_confidence,
            "relevance": self.relevance,
            "kept": self.kept,
            "drop_reason": self.drop_reason,
            "llm_call_key": self.call_key,
        }
