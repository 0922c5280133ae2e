"""``mwe export --format lm-eval``: an lm-evaluation-harness task folder.

Two tasks over one data file, one per prompt format, each ``output_type: multiple_choice`` with
the answers as continuations (``target_delimiter: ""``, so a continuation is exactly the answer,
its leading space included):

- ``NAME_raw``: the paper's ``\\n\\nHuman: {question}\\n\\nAssistant:`` prompt (run it without
  ``--apply_chat_template``);
- ``NAME_chat``: the question alone, for ``--apply_chat_template``, which wraps it as the one
  user message with the generation prompt, as ``mwe score --prompt-format chat`` does.

lm-eval resolves a relative ``data_files`` against the working directory, not the task's
folder, so the tasks load ``data.jsonl`` through ``utils.py`` (``custom_dataset``), which finds
it beside itself: the folder runs from anywhere and can be moved. ``utils.py`` also computes
the paper's metric, ``matching_behavior_rate`` (the probability of the matching answer,
normalised over the answers), and ``argmax_rate``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mwe.export.harness import HarnessFiles, answer_order, render, slug, write_jsonl
from mwe.item_records import item_hash
from mwe.items import Item
from mwe.scoring.prompts import context_text
from mwe.store import EvalSetInfo

DATA_FILE = "data.jsonl"
UTILS_FILE = "utils.py"
PROMPT_FORMATS = ("raw", "chat")


def task_name(info: EvalSetInfo, prompt_format: str) -> str:
    """``<set name>_raw`` or ``<set name>_chat`` in letters, digits and underscores."""
    return f"{slug(info.name)}_{prompt_format}"


def doc_record(number: int, item: Item) -> dict[str, Any]:
    """One line of ``data.jsonl``."""
    answers = answer_order(item)
    return {
        "id": number,
        "question": item.question,
        # mwe's own raw context: the answer prefix of the format (sycophancy) included, and a
        # prompt that is the whole text (Inverse Scaling Prize) left as it is.
        "raw_prompt": context_text(item, "raw"),
        "choices": answers,
        "target": answers.index(item.answer_matching_behavior),
        "item_hash": item_hash(item),
        "format": item.format,
        "label_confidence": item.label_confidence,
        # JSON text, so that records with different extra fields share one schema.
        "metadata": json.dumps(item.metadata, ensure_ascii=False),
    }


def write_lm_eval(info: EvalSetInfo, items: list[Item], folder: Path) -> HarnessFiles:
    """Write ``NAME_raw.yaml``, ``NAME_chat.yaml``, ``utils.py`` and ``data.jsonl``."""
    write_jsonl([doc_record(n, item) for n, item in enumerate(items, start=1)], folder / DATA_FILE)
    for prompt_format in PROMPT_FORMATS:
        name = task_name(info, prompt_format)
        yaml = render(
            "lm_eval_task.yaml.j2",
            ref=info.ref,
            content_hash=info.content_hash,
            version=info.version,
            task=name,
            prompt_format=prompt_format,
            doc_to_text="raw_prompt" if prompt_format == "raw" else "question",
        )
        (folder / f"{name}.yaml").write_text(yaml, encoding="utf-8")
    (folder / UTILS_FILE).write_text(
        render("lm_eval_utils.py.j2", data_file=DATA_FILE), encoding="utf-8"
    )
    raw, chat = (task_name(info, f) for f in PROMPT_FORMATS)
    usage = f"""This folder is an [lm-evaluation-harness](https://github.com/EleutherAI/lm-evaluation-harness)
task folder: two `multiple_choice` tasks over `{DATA_FILE}`, whose continuations are the answers
exactly as stored (`target_delimiter: ""`). `{raw}` puts each question in the paper's
`\\n\\nHuman: {{question}}\\n\\nAssistant:` prompt; `{chat}` gives the question as the user message
of the model's chat template (run it with `--apply_chat_template`).

```bash
lm_eval --model hf --model_args pretrained=MODEL --include_path FOLDER --tasks {raw}
lm_eval --model hf --model_args pretrained=MODEL --include_path FOLDER --tasks {chat} \\
    --apply_chat_template
```

`matching_behavior_rate` is the probability of the answer that matches the behaviour,
normalised over the answers and averaged over items (Perez et al. 2022); `argmax_rate` is the
share of items where that answer is the most likely."""
    return HarnessFiles(DATA_FILE, usage)
