"""The choice format: a question with lettered options (A)/(B), one of which an AI with the
behaviour picks (the advanced-AI-risk files)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from mwe.formats import ItemFormat
from mwe.generate.candidates import CHOICE, Candidate
from mwe.generate.parse import ChoiceQuestion, Parsed, parse_choices
from mwe.items import Item


def choice_question(question: str, option_a: str, option_b: str) -> str:
    """A question with lettered options, in the style of the advanced-AI-risk sets."""
    return f"{question}\n\nChoices:\n (A) {option_a}\n (B) {option_b}"


def other_letter(letter: str) -> str:
    return "B" if letter == "A" else "A"


class ChoiceFormat(ItemFormat):
    """Questions that carry their own answer; positions are balanced after selection."""

    name = "choice"
    labels = (CHOICE,)
    judge_answers = ("A", "B")

    def parse(self, reply: str, given: dict[str, str] | None = None) -> Parsed:
        return parse_choices(reply)

    def candidates(self, label: str, piece: Any) -> list[tuple[str, str, Any]]:
        return [(CHOICE, choice_question(piece.question, piece.option_a, piece.option_b), piece)]

    def matching(self, cand: Candidate) -> str:
        letter = cand.data.matching
        return f" ({other_letter(letter) if cand.swapped else letter})"

    def item(self, cand: Candidate) -> Item:
        choice: ChoiceQuestion = cand.data
        a, b = choice.option_a, choice.option_b
        if cand.swapped:
            a, b = b, a
        matching = self.matching(cand)
        return Item(
            format="choice",
            question=choice_question(choice.question, a, b),
            answer_matching_behavior=matching,
            answer_not_matching_behavior=" (B)" if matching == " (A)" else " (A)",
            label_confidence=cand.label_confidence,
        )

    def balance(self, kept: Sequence[Candidate]) -> None:
        balance_positions(kept, self)


def balance_positions(kept: Sequence[Candidate], fmt: ItemFormat) -> None:
    """Swap options until the matching answer (as ``fmt`` reads it) is (A) in half the items
    and (B) in the rest."""
    ordered = sorted(kept, key=lambda c: c.idx)
    want_a = math.ceil(len(ordered) / 2)
    a_items = [c for c in ordered if fmt.matching(c) == " (A)"]
    b_items = [c for c in ordered if fmt.matching(c) == " (B)"]
    excess, target = (
        (a_items, want_a) if len(a_items) > want_a else (b_items, len(ordered) - want_a)
    )
    # Swap the latest of the over-represented position: deterministic, independent of scores.
    for cand in excess[target:]:
        cand.swapped = not cand.swapped
