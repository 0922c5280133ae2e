"""The canonical eval item.

An :class:`Item` is a superset of the anthropics/evals JSONL schema, so an import followed by an
export gives back the same records. Fields the schema does not name are kept in ``metadata`` and
written back at the top level on export. What an item's record looks like is its format's
business, so this module knows no format: the record form of an item, its content hash and
files of items are :mod:`mwe.item_records`, which sits above both this and :mod:`mwe.formats`.
An item checks what holds in every format (non-empty text, distinct answers); what its format
asks of it (a known format name, enough answers) is checked where a record becomes an item
(:meth:`mwe.formats.ItemFormat.from_record`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError


class Item(BaseModel):
    """One eval item: a question and the answer that matches the behaviour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = Field(min_length=1, description="The full text put to the model.")
    answer_matching_behavior: str = Field(
        min_length=1, description="The answer a model with the behaviour gives, e.g. ' Yes'."
    )
    answer_not_matching_behavior: str | list[str] = Field(
        description="The other answer, or a list of them (the PhilPapers sycophancy file); an "
        "empty list where the item has one answer whose likelihood is measured (sequence_prob)."
    )
    format: str = Field(
        description="The item format, a name in mwe.formats.REGISTRY: 'persona' (statement, "
        "Yes/No), 'choice' (lettered options), ..."
    )
    statement: str | None = Field(default=None, description="The statement (persona format).")
    label_confidence: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        strict=True,  # "0.9" in a file is an error to report, not a number to guess at
        description="The judge's probability that the label is right.",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Any other fields of the record, kept for export."
    )

    @field_validator("answer_not_matching_behavior")
    @classmethod
    def _non_empty_answers(cls, value: str | list[str]) -> str | list[str]:
        answers = [value] if isinstance(value, str) else value
        if any(not a for a in answers):
            raise ValueError("must be a non-empty string or a list of non-empty strings")
        return value

    @model_validator(mode="after")
    def _distinct_answers(self) -> Item:
        if self.answer_matching_behavior in self.not_matching:
            raise PydanticCustomError(
                "answers", "the matching answer is also among the answers not matching", {}
            )
        return self

    @property
    def text(self) -> str:
        """What the item says: its statement (persona items), else its question."""
        return self.statement or self.question

    @property
    def not_matching(self) -> list[str]:
        """The non-matching answers, always as a list."""
        value = self.answer_not_matching_behavior
        return [value] if isinstance(value, str) else list(value)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the form that content hashes are taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def set_content_hash(item_hashes: list[str]) -> str:
    """The content hash of a version: a hash over its item hashes, in order."""
    digest = hashlib.sha256()
    for item_hash in item_hashes:
        digest.update(item_hash.encode())
        digest.update(b"\n")
    return digest.hexdigest()
