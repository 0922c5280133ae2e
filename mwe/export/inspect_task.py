"""``mwe export --format inspect``: an Inspect task folder (``task.py`` + ``dataset.jsonl``).

Each item becomes a ``Sample`` with lettered ``choices`` and, as ``target``, the letter of the
answer that matches the behaviour; the task runs Inspect's ``multiple_choice()`` solver and a
scorer whose metric ``matching_behavior_rate`` is the share of answered samples where the model
chose that answer (read from ``ANSWER: X``, else from a leading letter or choice text; a reply
naming no single option leaves its sample unscored). ``task.py`` imports only ``inspect_ai``
and the standard library, so the
folder runs where mwe is not installed: ``inspect eval task.py --model ...``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mwe.export.harness import HarnessFiles, answer_order, render, slug, write_jsonl
from mwe.item_records import item_hash
from mwe.items import Item
from mwe.store import EvalSetInfo

TASK_FILE = "task.py"
DATA_FILE = "dataset.jsonl"
_LETTERED = re.compile(r"\s*\(([A-Z])\)\s*")
_OPTION_LINE = re.compile(r"\s*\(([A-Z])\)\s?(.*)")
_CHOICES_HEADER = re.compile(r"\n*\s*Choices:\s*$", re.IGNORECASE)


def listed_options(question: str, letters: list[str]) -> tuple[str, list[str]] | None:
    """The question's stem and the texts of its options when it ends with them listed as
    ``(A) ...`` lines in the order of ``letters``, as advanced-AI-risk items do; else None.

    An option may run over several lines; anything after the options (a blank line and more
    text) means the question is not of this shape, and it is then kept whole.
    """
    lines = question.split("\n")
    starts = [
        i
        for i, line in enumerate(lines)
        if (m := _OPTION_LINE.fullmatch(line)) and m.group(1) == letters[0]
    ]
    if not starts:
        return None
    start = starts[-1]
    texts: list[str] = []
    blank = False
    for line in lines[start:]:
        m = _OPTION_LINE.fullmatch(line)
        if m and len(texts) < len(letters) and m.group(1) == letters[len(texts)] and not blank:
            texts.append(m.group(2))
        elif not line.strip():
            blank = True
        elif blank:
            return None  # text after the options
        else:
            texts[-1] += "\n" + line
    stem = _CHOICES_HEADER.sub("", "\n".join(lines[:start]).rstrip())
    texts = [t.strip() for t in texts]
    if len(texts) != len(letters) or not stem.strip() or not all(texts):
        return None
    return stem, texts


def sample_record(info: EvalSetInfo, number: int, item: Item) -> dict[str, Any]:
    """One line of ``dataset.jsonl``: a ``Sample``'s fields."""
    answers = answer_order(item)
    target = chr(ord("A") + answers.index(item.answer_matching_behavior))
    question, choices = item.question, [a.strip() for a in answers]
    letters = [m.group(1) if (m := _LETTERED.fullmatch(a)) else "" for a in answers]
    if letters == [chr(ord("A") + i) for i in range(len(answers))]:
        # ' (A)' / ' (B)' answers: show the options the question lists, in their order.
        listed = listed_options(item.question, letters)
        if listed is not None:
            question, choices = listed
    if len(set(choices)) != len(choices):  # answers that differ only in spacing
        choices = answers
    metadata = {
        "set": info.ref,
        "set_content_hash": info.content_hash,
        "item_hash": item_hash(item),
        "format": item.format,
        "label_confidence": item.label_confidence,
        "answer_matching_behavior": item.answer_matching_behavior,
        "answer_not_matching_behavior": item.answer_not_matching_behavior,
        "question": item.question,
        "statement": item.statement,
        "extra": item.metadata,  # the record's fields outside the schema
    }
    return {
        "id": str(number),
        "input": question,
        "choices": choices,
        "target": target,
        "metadata": metadata,
    }


def write_inspect(info: EvalSetInfo, items: list[Item], folder: Path) -> HarnessFiles:
    """Write ``task.py`` and ``dataset.jsonl`` into ``folder``."""
    write_jsonl(
        [sample_record(info, n, item) for n, item in enumerate(items, start=1)], folder / DATA_FILE
    )
    # The task is named in @task(name=...), never by a function named after the set: a set
    # called `str`, `len` or `class` would shadow what task.py uses, or not be Python at all.
    source = render(
        "inspect_task.py.j2",
        ref=info.ref,
        content_hash=info.content_hash,
        task_name=slug(info.name),
        data_file=DATA_FILE,
    )
    (folder / TASK_FILE).write_text(source, encoding="utf-8")
    usage = f"""This folder is an [Inspect](https://inspect.aisi.org.uk/) task: `{TASK_FILE}`
reads `{DATA_FILE}` (one `Sample` per item: lettered `choices`, the `target` is the letter of
the answer that matches the behaviour) and needs only `inspect-ai`.

```bash
cd FOLDER    # or give task.py's path relative to where you are
inspect eval {TASK_FILE} --model openai/gpt-4.1-mini
inspect eval {TASK_FILE} --model hf/PATH-OR-ID --limit 20
```

The scorer's `matching_behavior_rate` is the share of answered samples whose answer matches the
behaviour. A reply is read in the `ANSWER: X` form, else by its start (a letter such as `(A)` or
`A)`, or the text of one choice, such as `Yes`); one that names no single option leaves its
sample unscored (`unscored_samples` in the log)."""
    return HarnessFiles(DATA_FILE, usage)
