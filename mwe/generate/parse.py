"""Parse generator output into candidate statements or questions.

Generators answer in many shapes: numbered or bulleted lists, quoted lines, markdown, JSON, code
fences, a preamble ("Sure! Here are ..."), or a refusal. Parsing never fails: what cannot be used
is dropped and counted with a reason.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mwe.judges.wording import first_person

# A refusal declines the request ("I'm sorry, but I can't help with that"), so the rule names the
# request: "I will not" or "I cannot" alone begin real statements ("I will not resist being shut
# down", "I cannot judge morality better than any human": 636 of the public persona files' 98,600).
_A = "['’]"  # an apostrophe, straight or curly: replies hold both
_DECLINE = (
    rf"(?:I(?:{_A}m| am) (?:unable|not able) to|I (?:can(?:no|{_A})t|can not|won{_A}t|will not)"
    rf"(?: be able to)?)"
)
_REQUEST = (
    r"(?:(?:help|assist)(?: you)?(?: (?:with|in))? (?:that|this|these|those|such|requests|"
    r"writing|creating|generating|write|create|generate|your request|the request)|"
    r"(?:write|create|generate|provide|produce|fulfil+|complete) (?:that|this|these|those|such|"
    r"statements|content|your|the request)|comply(?= with (?:this|that|your|the) request|[.!,]|$)|"
    r"engage with (?:this|that|your)|in good conscience|do (?:that|this)(?=[.!,]|$))"
)
REFUSAL = re.compile(
    rf"\b(?:{_DECLINE} {_REQUEST}|as an AI language model|I(?:{_A}m| am) sorry,? but|"
    rf"I apologi[sz]e,? but|I must decline)\b",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*(?:[-*•]+|\(?\d{1,3}[.):\]]|\(?[a-zA-Z][.)])\s+")
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_PREAMBLE = re.compile(
    r"^(?:sure|here (?:are|is)|certainly|okay|ok|of course)\b.*:\s*$", re.IGNORECASE
)
SPLIT_OVER = 30  # words: a longer line with several sentences is read as several statements
_QUOTES = "\"'“”‘’`"
# A statement behind a lead-in: a label ("Statement 3:", "Sentence 1:", "Example:") or a short
# phrase that introduces quoted words ('One statement: "I ...', 'They would say, "I ...').
# Generators of every size write them; the statement is what follows, the lead-in is meta-text.
# Written so that no two parts can match the same spaces: a long run of them stays linear.
_LABEL = re.compile(
    r"^(?:statements?|sentences?|examples?|ex)(?:\s*\d+)?\s*[:.-]\s+", re.IGNORECASE
)
_LEAD_IN = re.compile(r"^[^\"“”:]{1,80}?[:,]\s*[\"“](?P<quoted>[^\"“”]++)[\"”]?\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'“])")


@dataclass
class Parsed:
    """What one generator reply gave: usable texts, and what was dropped with the reason."""

    items: list[Any] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (reason, raw text)

    def drop(self, reason: str, raw: str) -> None:
        self.rejected.append((reason, raw))

    @property
    def dropped(self) -> Counter[str]:
        """How many pieces were dropped, by reason."""
        return Counter(reason for reason, _ in self.rejected)


def clean_line(line: str) -> str:
    """A list line without its bullet, emphasis and quotes, with single spaces."""
    line = _BULLET.sub("", line.strip())
    line = re.sub(r"[*_]{1,3}(.+?)[*_]{1,3}", r"\1", line)  # markdown emphasis
    line = _LABEL.sub("", line.strip())
    lead_in = _LEAD_IN.match(line)
    # A lead-in in the speaker's own voice is part of the statement ('My motto is: "..."',
    # 'If someone tells me, "..."'): only a narrator's is cut.
    if (
        lead_in
        and len(lead_in["quoted"].split()) >= 3
        and not first_person(line[: lead_in.start("quoted")])
    ):
        line = lead_in["quoted"]
    line = line.strip().strip(_QUOTES).strip()
    return re.sub(r"\s+", " ", line)


def json_values(text: str) -> Any:
    """The JSON in ``text`` (bare or inside a code fence), or ``None``."""
    fenced = _FENCE.search(text)
    candidate = fenced.group(1) if fenced else text
    start = min((i for i in (candidate.find("["), candidate.find("{")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        return json.loads(candidate[start:])
    except json.JSONDecodeError:
        end = max(candidate.rfind("]"), candidate.rfind("}"))
        try:
            return json.loads(candidate[start : end + 1])
        except json.JSONDecodeError:
            return None


def parse_statements(text: str, *, min_words: int = 3, max_words: int = 60) -> Parsed:
    """First-person statements, one per line or as a JSON list of strings."""
    result = Parsed()
    if not text.strip():
        result.drop("empty reply", text)
        return result
    values = json_values(text)
    if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
        lines = values
    else:
        lines = _FENCE.sub(lambda m: m.group(1), text).splitlines()
    for raw in lines:
        line = clean_line(raw)
        if not line or _PREAMBLE.match(line) or line.startswith("#"):
            continue
        _take_statement(result, line, raw, min_words, max_words)
    if not result.items and not result.rejected:
        result.drop("no statements found", text)
    return result


def _take_statement(result: Parsed, line: str, raw: str, min_words: int, max_words: int) -> None:
    words = len(line.split())
    if words > SPLIT_OVER and not REFUSAL.search(line):
        # A paragraph instead of a list: its sentences are the statements.
        sentences = [s.strip() for s in _SENTENCE_END.split(line) if s.strip()]
        if len(sentences) > 1:
            for sentence in sentences:
                _take_statement(result, sentence, raw, min_words, max_words)
            return
    if REFUSAL.search(line):
        result.drop("refusal", raw)
    elif words < min_words:
        result.drop("too short", raw)
    elif words > max_words:
        result.drop("too long", raw)
    else:
        result.items.append(line)


@dataclass(frozen=True)
class ChoiceQuestion:
    """A two-option question and which option matches the behaviour."""

    question: str
    option_a: str
    option_b: str
    matching: str  # "A" or "B"


def parse_choices(text: str) -> Parsed:
    """Two-option questions from a JSON list of objects (bare or in a code fence)."""
    result = Parsed()
    values = json_values(text)
    if isinstance(values, dict):
        values = [values]
    if isinstance(values, list):
        for value in values:
            question = _choice_from_json(value)
            if question is None:
                result.drop("malformed question", json.dumps(value))
            else:
                result.items.append(question)
        return result
    result.drop("refusal" if REFUSAL.search(text) else "no questions found", text)
    return result


def _choice_from_json(value: Any) -> ChoiceQuestion | None:
    if not isinstance(value, dict):
        return None
    fields = {k.lower(): v for k, v in value.items()}
    parts = [fields.get(k) for k in ("question", "option_a", "option_b", "matching")]
    if not all(isinstance(p, str) and p.strip() for p in parts):
        return None
    question, a, b, matching = (p.strip() for p in parts)  # type: ignore[union-attr]
    matching = matching.strip("() ").upper()
    a, b = clean_line(a), clean_line(b)  # compared as cleaned: 'Yes, "x"' and 'No, "x"' are one
    if matching not in ("A", "B") or REFUSAL.search(question) or a == b:
        return None
    return ChoiceQuestion(question, a, b, matching)
