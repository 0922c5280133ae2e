"""Stage 1: the spec. A name, the behaviour, and (through the generator) a definition plus who
would agree and who would disagree, so that "disagree" items are about the behaviour too."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from mwe.errors import UsageError
from mwe.generate.templates import TemplateSet
from mwe.models import GenerateConfig, Message
from mwe.models.lm import LM
from mwe.store import check_name, slugify

MAX_DESCRIPTION = 2000
SPEC_MAX_TOKENS = 300  # room for the three lines of the spec


@dataclass(frozen=True)
class Spec:
    """What a generation run is about."""

    name: str
    format: str
    behavior: str
    definition: str
    agree_who: str
    disagree_who: str
    #: The parts the generator's reply lacked (it ignored the Definition/Agree/Disagree
    #: format), each replaced by a plain restatement of the behaviour.
    fallback: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def warning(self, generator: str) -> str | None:
        """One line saying the spec fell back, or ``None`` when the generator wrote it all."""
        if not self.fallback:
            return None
        return (
            f"warning: {generator} ignored the Definition/Agree/Disagree format (no "
            f"{', '.join(self.fallback)}); a fallback was used: {self.definition!r}. "
            "A stronger --generator writes a real one; `mwe show` shows the spec."
        )


SPEC_PARTS = ("definition", "agree", "disagree")


def check_description(description: str) -> str:
    """The description, stripped, or a usage error saying what is wrong."""
    text = " ".join(description.split())
    if not text:
        raise UsageError(
            "the description is empty: describe the behaviour in one line, e.g. "
            '"wants to avoid being shut down"'
        )
    if len(text) > MAX_DESCRIPTION:
        raise UsageError(
            f"the description is {len(text):,} characters; keep it under {MAX_DESCRIPTION:,} "
            "(one line about the behaviour)"
        )
    return text


#: Words a name does not end on: "tries-to-acquire-more-resources-and" reads as cut off.
_STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "they",
        "this",
        "to",
        "was",
        "were",
        "when",
        "which",
        "while",
        "who",
        "whom",
        "with",
        "without",
    ]
)


def default_name(description: str) -> str:
    """A set name from the description's first six words, cut back to a word that does not
    leave the phrase hanging (a stop word such as "and" or "to")."""
    words = description.split()[:6]
    while len(words) > 1 and words[-1].lower().strip(".,;:!?") in _STOP_WORDS:
        words.pop()
    return slugify(" ".join(words))


def _understood(text: str) -> dict[str, str]:
    """The parts of the spec the generator's reply gives, by name (:data:`SPEC_PARTS`)."""
    found = {}
    for key in SPEC_PARTS:
        match = re.search(rf"^\W*{key}\W*:\s*(.+)$", text, re.IGNORECASE | re.MULTILINE)
        if match and match.group(1).strip():
            found[key] = match.group(1).strip()
    return found


def missing_parts(text: str) -> tuple[str, ...]:
    """The parts of the spec the generator's reply lacks."""
    found = _understood(text)
    return tuple(key for key in SPEC_PARTS if key not in found)


def parse_understanding(text: str, behavior: str) -> tuple[str, str, str]:
    """Definition, who agrees and who disagrees, from the generator's reply; a weak generator's
    missing parts fall back to plain restatements of the behaviour."""
    found = _understood(text)
    return (
        found.get("definition", f"The behaviour in question: someone who {behavior}."),
        found.get("agree", f"someone who {behavior}"),
        found.get("disagree", f"someone who does not share this trait ({behavior})"),
    )


async def build_spec(
    description: str,
    fmt: str,
    name: str | None,
    lm: LM,
    templates: TemplateSet,
    *,
    max_tokens: int = SPEC_MAX_TOKENS,
) -> Spec:
    """Ask the generator to expand the description (temperature 0: one cached answer), in at
    most ``max_tokens``."""
    behavior = check_description(description)
    prompt = templates.render("understand.j2", behavior=behavior)
    reply = await lm.generate(
        [Message(role="user", content=prompt)],
        GenerateConfig(temperature=0.0, max_tokens=max_tokens),
    )
    definition, agree, disagree = parse_understanding(reply[0], behavior)
    return Spec(
        name=check_name(name) if name else default_name(behavior),
        format=fmt,
        behavior=behavior,
        definition=definition,
        agree_who=agree,
        disagree_who=disagree,
        fallback=missing_parts(reply[0]),
    )
