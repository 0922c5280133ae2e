"""A candidate item as it moves through the pipeline.

A candidate knows the name of its format and nothing of the format registry: what it means (its
matching answer, the item it becomes) is asked of the format, ``get_format(cand.format)``
(:mod:`mwe.formats`), which sits above this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

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
    def alive(self) -> bool:
        return self.drop_reason is None

    def drop(self, stage: str, reason: str) -> None:
        self.stage, self.drop_reason = stage, reason

    def row(self, run_id: int, record: dict[str, Any] | None) -> dict[str, Any]:
        """The ``candidates`` table row, with ``record`` (the record of the item it becomes,
        None where it has no text) as JSON text."""
        return {
            "run_id": run_id,
            "idx": self.idx,
            "stage": self.stage,
            "intended_label": self.label,
            "item": None if record is None else json.dumps(record),
            "raw_text": self.text,
            "label_confidence": self.label_confidence,
            "relevance": self.relevance,
            "kept": self.kept,
            "drop_reason": self.drop_reason,
            "llm_call_key": self.call_key,
        }
