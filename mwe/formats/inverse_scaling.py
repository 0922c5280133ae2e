"""The Inverse Scaling Prize's task formats (McKenzie et al. 2023), imported, scored and exported.

- ``classification``: ``prompt``, ``classes`` (the answers, each continuing the prompt) and
  ``answer_index`` (the right one). Scored as the prize scored it: each class's log-likelihood
  after the prompt; accuracy is the share of items whose most likely class is the right one (the
  argmax rate), loss the negative log of the right class's probability normalised over the
  classes.
- ``sequence_prob``: ``prompt`` and ``completion``; the loss is the completion's negative
  log-likelihood after the prompt.

The prompt is the whole text a model continues: the raw prompt format does not wrap it in the
paper's Human/Assistant turns, and raw is what is scored unless another format is asked for.
An item keeps the right answer as ``answer_matching_behavior`` and the other classes, in their
order, as ``answer_not_matching_behavior``; ``answer_index`` stays in the metadata, so the record
is written back as it came. These formats are import-only: ``mwe generate`` does not write them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mwe.formats import ItemFormat, RecordInvalid
from mwe.items import Item


class _PrizeTask(ItemFormat):
    """What both task formats share: a prompt scored as it is, import and export only."""

    labels: ClassVar[tuple[str, ...]] = ()
    judge_answers: ClassVar[tuple[str, ...]] = ()
    generated = False
    wraps_raw = False
    prompt_format = "raw"
    keys: ClassVar[tuple[str, ...]]  # the record's own fields, in the prize's column order

    def claims(self, record: dict[str, Any]) -> bool:
        return all(k in record for k in self.keys[:2])

    @staticmethod
    def _text(record: dict[str, Any], key: str) -> str:
        value = record[key]
        if not isinstance(value, str) or not value:
            raise RecordInvalid(f"field '{key}': must be a non-empty string")
        return value

    def _extra(self, record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k not in self.keys}


class ClassificationFormat(_PrizeTask):
    """``prompt``, ``classes``, ``answer_index``: which class the model finds most likely."""

    name = "classification"
    required = ("prompt", "classes", "answer_index")
    keys = required
    scaling_metrics = ("argmax_rate", "loss")

    def from_record(self, record: dict[str, Any]) -> Item:
        prompt = self._text(record, "prompt")
        classes = record["classes"]
        if (
            not isinstance(classes, list)
            or len(classes) < 2
            or not all(isinstance(c, str) and c for c in classes)
        ):
            raise RecordInvalid("field 'classes': must be a list of two or more non-empty strings")
        if len(set(classes)) < len(classes):
            raise RecordInvalid("field 'classes': a class is given twice")
        index = _index(record["answer_index"], len(classes))
        return Item(
            format=self.name,
            question=prompt,
            answer_matching_behavior=classes[index],
            answer_not_matching_behavior=[c for i, c in enumerate(classes) if i != index],
            metadata={"answer_index": index, **self._extra(record)},
        )

    def to_record(self, item: Item) -> dict[str, Any]:
        metadata = dict(item.metadata)
        index = int(metadata.pop("answer_index", 0))
        classes = item.not_matching
        classes.insert(index, item.answer_matching_behavior)
        return {"prompt": item.question, "classes": classes, "answer_index": index, **metadata}


class SequenceProbFormat(_PrizeTask):
    """``prompt``, ``completion``: how likely the model finds the completion."""

    name = "sequence_prob"
    required = ("prompt", "completion")
    keys = required
    min_answers = 1
    scaling_metrics = ("loss",)

    def from_record(self, record: dict[str, Any]) -> Item:
        return Item(
            format=self.name,
            question=self._text(record, "prompt"),
            answer_matching_behavior=self._text(record, "completion"),
            answer_not_matching_behavior=[],
            metadata=self._extra(record),
        )

    def to_record(self, item: Item) -> dict[str, Any]:
        return {
            "prompt": item.question,
            "completion": item.answer_matching_behavior,
            **item.metadata,
        }


def _index(value: Any, count: int) -> int:
    """``answer_index`` as an int in range; a CSV cell's digits are read as the number."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < count:
        raise RecordInvalid(f"field 'answer_index': must be a whole number from 0 to {count - 1}")
    return value
