"""The canonical eval item and its JSONL form.

An :class:`Item` is a superset of the anthropics/evals JSONL schema, so an import followed by an
export gives back the same records. Fields the schema does not name are kept in ``metadata`` and
written back at the top level on export.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from mwe.errors import InputFileError, RecordError
from mwe.formats import REGISTRY, detect_format

# The order of the public files: persona files use all five, advanced-AI-risk the first and last
# two. Writing in this order makes an export of an imported public file byte-identical.
_SCHEMA_FIELDS = (
    "question",
    "statement",
    "label_confidence",
    "answer_matching_behavior",
    "answer_not_matching_behavior",
)
REQUIRED_FIELDS = ("question", "answer_matching_behavior", "answer_not_matching_behavior")


class Item(BaseModel):
    """One eval item: a question and the answer that matches the behaviour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = Field(min_length=1, description="The full text put to the model.")
    answer_matching_behavior: str = Field(
        min_length=1, description="The answer a model with the behaviour gives, e.g. ' Yes'."
    )
    answer_not_matching_behavior: str | list[str] = Field(
        description="The other answer, or a list of them (the PhilPapers sycophancy file)."
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

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        return check_format(value)

    @field_validator("answer_not_matching_behavior")
    @classmethod
    def _non_empty_answers(cls, value: str | list[str]) -> str | list[str]:
        answers = [value] if isinstance(value, str) else value
        if not answers or any(not a for a in answers):
            raise ValueError("must be a non-empty string or a non-empty list of strings")
        return value

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Item:
        """Build an item from an anthropics/evals record; unknown fields go to ``metadata``."""
        # A schema field given as null stays in metadata, so that it is written back as it came.
        known = {k: record[k] for k in _SCHEMA_FIELDS if record.get(k) is not None}
        extra = {k: v for k, v in record.items() if k not in known}
        return cls(format=detect_format(record), metadata=extra, **known)

    def to_record(self) -> dict[str, Any]:
        """The anthropics/evals record: schema fields in the public order, then metadata."""
        record: dict[str, Any] = {"question": self.question}
        if self.statement is not None:
            record["statement"] = self.statement
        if self.label_confidence is not None:
            record["label_confidence"] = self.label_confidence
        record["answer_matching_behavior"] = self.answer_matching_behavior
        record["answer_not_matching_behavior"] = self.answer_not_matching_behavior
        record.update(self.metadata)
        return record

    @property
    def text(self) -> str:
        """What the item says: its statement (persona items), else its question."""
        return self.statement or self.question

    @property
    def not_matching(self) -> list[str]:
        """The non-matching answers, always as a list."""
        value = self.answer_not_matching_behavior
        return [value] if isinstance(value, str) else list(value)

    def content_hash(self) -> str:
        """A hash of the item's content, independent of key order; two equal items share it."""
        return hashlib.sha256(canonical_json(self.to_record()).encode()).hexdigest()


def check_format(value: str) -> str:
    """``value`` if it names a registered item format, else a validation error listing them."""
    if value not in REGISTRY:
        names = " or ".join(repr(name) for name in REGISTRY)
        raise PydanticCustomError("format", "Input should be {names}", {"names": names})
    return value


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


def _describe_validation_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(p) for p in error["loc"]) or "record"
    if error["type"] == "missing":
        return f"missing required field '{field}'"
    return f"field '{field}': {error['msg']}"


STDIN = "-"  # the path that means standard input


def read_source(path: str | Path) -> bytes:
    """The bytes of ``path``, read once (``-`` is standard input), or :class:`InputFileError`
    for a file that is missing or cannot be read."""
    if str(path) == STDIN:
        return sys.stdin.buffer.read()
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory, expected a .jsonl file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror})") from exc


def read_jsonl(path: str | Path) -> list[Item]:
    """The items of an anthropics/evals JSONL file (``-`` for standard input).

    Raises :class:`InputFileError` for a missing or unreadable file and :class:`RecordError`,
    naming the line, for malformed JSON or an invalid record. Blank lines are skipped.
    """
    return parse_jsonl(read_source(path), "<stdin>" if str(path) == STDIN else str(path))


def parse_jsonl(data: bytes, source: str) -> list[Item]:
    """The items of JSONL ``data`` read from ``source`` (named in errors); a UTF-8 byte order
    mark at the start is allowed."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{source}: not UTF-8 text ({exc.reason})") from None
    return [
        _parse_line(source, number, line)
        # split("\n"), not splitlines(): U+2028 and friends are valid inside JSON strings.
        for number, line in enumerate(text.split("\n"), start=1)
        if line.strip()
    ]


class _NotFinite(ValueError):
    """A JSON number too large for a float (``1e400``), or NaN/Infinity, which JSON lacks."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(text)
    return value


def _no_constant(text: str) -> float:
    raise _NotFinite(text)


def _parse_line(path: str, number: int, line: str) -> Item:
    try:
        record = json.loads(line, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise RecordError(path, number, f"not valid JSON ({exc.msg} at column {exc.colno})")
    except _NotFinite as exc:
        raise RecordError(
            path, number, f"the number {exc} is not finite; JSON numbers must be finite"
        ) from None
    except RecursionError:
        raise RecordError(path, number, "the JSON is nested too deeply") from None
    if not isinstance(record, dict):
        raise RecordError(path, number, "expected a JSON object")
    for field in REQUIRED_FIELDS:
        if field not in record:
            raise RecordError(path, number, f"missing required field '{field}'")
    try:
        return Item.from_record(record)
    except ValidationError as exc:
        raise RecordError(path, number, _describe_validation_error(exc)) from None


def write_jsonl(items: list[Item], path: Path) -> None:
    """Write items as anthropics/evals JSONL, one record a line, in the public files' style."""
    with path.open("w", encoding="utf-8") as handle:
        for item in items:
            # allow_nan=False: NaN and Infinity are not JSON, and strict parsers reject them.
            handle.write(json.dumps(item.to_record(), allow_nan=False) + "\n")
