"""Exporters to evaluation harnesses: one module per harness, each writing a folder that the
harness runs as it is (``mwe export --format inspect`` and ``--format lm-eval``).

The files they write are rendered from the Jinja templates in ``templates/``, shipped in the
package. :mod:`mwe.export.export` chooses the exporter and adds the dataset card and marker file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined

from mwe.items import Item

TEMPLATES_DIR = Path(str(resources.files("mwe") / "export" / "templates"))


@dataclass(frozen=True)
class HarnessFiles:
    """What an exporter wrote: the data file (named in the card) and how to run the folder."""

    data_path: str
    usage: str  # Markdown for the card: the commands that run the export


def answer_order(item: Item) -> list[str]:
    """The item's answers in the order a harness lists them: lettered answers (' (A)', ...)
    by letter, otherwise ' Yes' first and the rest alphabetically, so that the position of
    the matching answer does not give the label away."""
    return sorted(
        [item.answer_matching_behavior, *item.not_matching],
        key=lambda answer: (answer.strip().lower() != "yes", answer.strip(), answer),
    )


def slug(name: str) -> str:
    """A set name as a harness task name: letters, digits and underscores."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


def python_literal(value: object) -> str:
    """``repr``, with a plain string in double quotes as the generated files' style has it."""
    text = repr(value)
    if isinstance(value, str) and text == f"'{value}'" and '"' not in value:
        return f'"{value}"'
    return text


def render(template: str, **values: Any) -> str:
    """Render ``templates/<template>``; every variable it uses must be given."""
    env = Environment(
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["py"] = python_literal
    env.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False)  # YAML too
    source = (TEMPLATES_DIR / template).read_text(encoding="utf-8")
    return env.from_string(source).render(**values)


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    """One JSON object a line, UTF-8, no NaN (strict parsers reject it)."""
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
