"""Item formats: the plug-in point of the pipeline.

A format is its templates (``mwe/prompts/<name>/``) plus one :class:`ItemFormat` subclass that
says what the generator is asked for, how a reply becomes candidates, what item a candidate
becomes, how the kept items are balanced, what the judge is asked, and how an item is put to a
model for scoring. The pipeline calls the format object and never branches on its name, so a new
format is a folder and a class, registered by one line in :data:`REGISTRY`.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from mwe.errors import UsageError
from mwe.items import Item

if TYPE_CHECKING:
    from mwe.generate.candidates import Candidate
    from mwe.generate.parse import Parsed

# name -> "module:class", imported on first use. The first name is the default format; an
# imported record is given the first format whose ``claims`` it, else ``FALLBACK``.
REGISTRY: dict[str, str] = {
    "persona": "mwe.formats.persona:PersonaFormat",
    "choice": "mwe.formats.choice:ChoiceFormat",
    "sycophancy": "mwe.formats.sycophancy:SycophancyFormat",
    "classification": "mwe.formats.inverse_scaling:ClassificationFormat",
    "sequence_prob": "mwe.formats.inverse_scaling:SequenceProbFormat",
    "redteam": "mwe.formats.redteam:RedTeamFormat",
}
FALLBACK = "choice"


# The record fields of the anthropics/evals schema, in the public files' order: persona files
# use all five, advanced-AI-risk the first and last two. Writing in this order makes an export of
# an imported public file byte-identical.
SCHEMA_FIELDS = (
    "question",
    "statement",
    "label_confidence",
    "answer_matching_behavior",
    "answer_not_matching_behavior",
)


class RecordInvalid(ValueError):
    """An imported record does not fit its format; the message says which field and why."""


class ItemFormat:
    """One item format. Subclasses set the class attributes and implement the parsing and the
    item building; the defaults suit a format whose candidates carry their own answer, written
    in the anthropics/evals JSONL schema."""

    name: ClassVar[str]
    labels: ClassVar[tuple[str, ...]]  # the labels generator calls are planned for
    judge_answers: ClassVar[tuple[str, ...]]  # what the judge answers: ("Yes", "No"), ("A", "B")
    # What the assistant says before its answer when the item is scored ("" for nothing).
    answer_prefix: ClassVar[str] = ""
    # The name of the control variant scored next to the items (see ``control``), or None.
    control_name: ClassVar[str | None] = None
    # Whether ``mwe generate`` can write this format (False: import-only).
    generated: ClassVar[bool] = True
    # Whether generation can start from the user's questions (``--questions FILE``: JSONL of
    # objects with ``question_keys``), each call writing for one of them.
    question_keys: ClassVar[tuple[str, ...]] = ()
    # The fields an imported record must have.
    required: ClassVar[tuple[str, ...]] = (
        "question",
        "answer_matching_behavior",
        "answer_not_matching_behavior",
    )
    # How many answers an item has at least: 2 for a choice between answers, 1 for a text whose
    # likelihood is the measure (sequence_prob).
    min_answers: ClassVar[int] = 2
    # Whether the raw prompt format puts the question in the paper's Human/Assistant turns; False
    # where the question is the whole prompt (the Inverse Scaling Prize's tasks).
    wraps_raw: ClassVar[bool] = True
    # The prompt format scored when none is asked for (None: the model's own).
    prompt_format: ClassVar[str | None] = None
    # The metrics the report plots against model size: names of fields of
    # mwe.scoring.results.Result ("matching_rate", "argmax_rate", "loss").
    scaling_metrics: ClassVar[tuple[str, ...]] = ("matching_rate",)

    def planned(self, n: int) -> int:
        """How many items the calls for each label aim at (times the oversampling)."""
        return max(self.quotas(n).values())

    def quotas(self, n: int) -> dict[str, int]:
        """How many kept items each candidate label gets."""
        return {label: n for label in self.labels}

    def example_texts(self, examples: Sequence[Item], label: str) -> list[str]:
        """The few-shot texts a call for ``label`` samples from."""
        return [e.question for e in examples]

    def parse(self, reply: str, given: dict[str, str] | None = None) -> Parsed:
        """The usable pieces of one generator reply, and what was dropped with the reason;
        ``given`` is the user's question the call wrote for (formats that take them)."""
        raise NotImplementedError

    def candidates(self, label: str, piece: Any) -> list[tuple[str, str, Any]]:
        """The ``(label, text, data)`` of each candidate one parsed piece gives."""
        raise NotImplementedError

    def judge_text(self, cand: Candidate) -> str:
        """What the judge reads of a candidate."""
        return cand.text

    def matching(self, cand: Candidate) -> str:
        """The answer that matches the behaviour, e.g. ' Yes' or ' (A)'."""
        raise NotImplementedError

    def item(self, cand: Candidate) -> Item:
        """The eval item a candidate becomes."""
        raise NotImplementedError

    def label_confidence(self, cand: Candidate, p: dict[str, float]) -> float:
        """p(the candidate's intended answer), from the judge's answer probabilities."""
        return p[self.matching(cand).strip(" ()")]

    def balance(self, kept: Sequence[Candidate]) -> None:
        """Balance the kept candidates (e.g. answer positions) after selection."""

    def claims(self, record: dict[str, Any]) -> bool:
        """Whether an imported anthropics/evals record is of this format."""
        return False

    def control(self, item: Item) -> Item | None:
        """The item's control variant (scored as ``<prompt format>/<control_name>``), if any."""
        return None

    def from_record(self, record: dict[str, Any]) -> Item:
        """The item of an imported record (its :attr:`required` fields are there); fields the
        format does not use go to ``metadata``. Raises :class:`RecordInvalid` or pydantic's
        ``ValidationError`` for a record that does not fit."""
        # A schema field given as null stays in metadata, so that it is written back as it came.
        known = {k: record[k] for k in SCHEMA_FIELDS if record.get(k) is not None}
        extra = {k: v for k, v in record.items() if k not in known}
        item = Item(format=self.name, metadata=extra, **known)
        self.check_answers(item)
        check_lettered_answers(item)
        return item

    def check_answers(self, item: Item) -> None:
        """Raise :class:`RecordInvalid` if the item has fewer answers than the format needs."""
        if len(item.not_matching) + 1 < self.min_answers:
            raise RecordInvalid(
                f"a {self.name} item needs another answer in answer_not_matching_behavior"
            )

    def to_record(self, item: Item) -> dict[str, Any]:
        """The record an item is exported as: :meth:`from_record` of it gives the item back."""
        record: dict[str, Any] = {"question": item.question}
        if item.statement is not None:
            record["statement"] = item.statement
        if item.label_confidence is not None:
            record["label_confidence"] = item.label_confidence
        record["answer_matching_behavior"] = item.answer_matching_behavior
        record["answer_not_matching_behavior"] = item.answer_not_matching_behavior
        record.update(item.metadata)
        return record


_LETTER_RE = re.compile(r"\s*\(([A-Z])\)\s*")


def check_lettered_answers(item: Item) -> None:
    """Raise :class:`RecordInvalid` if an answer names a lettered option, such as ``(C)``,
    that the question does not offer: no model could give it, and scoring would count the item
    against every model."""
    for field, answers in (
        ("answer_matching_behavior", [item.answer_matching_behavior]),
        ("answer_not_matching_behavior", item.not_matching),
    ):
        for answer in answers:
            letter = _LETTER_RE.fullmatch(answer)
            if letter and f"({letter.group(1)})" not in item.question:
                raise RecordInvalid(
                    f"field '{field}': {answer.strip()!r} is not among the question's options"
                )


def format_names() -> tuple[str, ...]:
    """Every registered format, the default first."""
    return tuple(REGISTRY)


@functools.cache
def get_format(name: str) -> ItemFormat:
    """The format registered as ``name``, or a one-line usage error naming the others."""
    if name not in REGISTRY:
        raise UsageError(f"unknown item format {name!r}: use {' or '.join(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    fmt: ItemFormat = getattr(importlib.import_module(module), cls)()
    return fmt


def detect_format(record: dict[str, Any]) -> str:
    """The format of an imported record: the first that claims it, else the fallback."""
    for name in REGISTRY:
        if name != FALLBACK and get_format(name).claims(record):
            return name
    return FALLBACK
