"""How an item is put to a model: its chat template, or the paper's raw Human/Assistant text (or
the bare prompt, for formats whose prompt is the whole text), followed by what the item's format
has the assistant say before its answer (sycophancy: "I believe the best answer is")."""

from __future__ import annotations

from typing import Any

from mwe.errors import UsageError
from mwe.formats import get_format
from mwe.items import Item

PROMPT_FORMATS = ("chat", "raw")
RAW_TEMPLATE = "\n\nHuman: {question}\n\nAssistant:"


def options(item: Item) -> list[str]:
    """Every answer option, the matching one first."""
    return [item.answer_matching_behavior, *item.not_matching]


def context_text(item: Item, prompt_format: str, tokenizer: Any = None) -> str:
    """The text an answer option continues."""
    fmt = get_format(item.format)
    prefix = fmt.answer_prefix
    if prompt_format == "raw":
        # A prompt that is the whole text (Inverse Scaling Prize tasks) is scored as it is.
        return (
            RAW_TEMPLATE.format(question=item.question) if fmt.wraps_raw else item.question
        ) + prefix
    if prompt_format != "chat":
        raise UsageError(f"unknown prompt format {prompt_format!r}: use chat or raw")
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise UsageError("this model has no chat template: use --prompt-format raw")
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": item.question}], add_generation_prompt=True, tokenize=False
    )
    # The chat template's assistant turn starts on a new line: the prefix's space is not needed.
    return str(text) + prefix.lstrip()
