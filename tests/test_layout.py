"""The shape of the package: rules a reader relies on when finding their way around it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from .conftest import REPO

PACKAGE = REPO / "mwe"
STORE_MODULES = {PACKAGE / "store.py", PACKAGE / "migrations.py"}
SQL = re.compile(
    r"\b(SELECT\b.*\bFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX|"
    r"SEQUENCE)|ALTER\s+TABLE|DROP\s+TABLE)\b",
    re.IGNORECASE | re.DOTALL,
)


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_sql_statement_lives_in_the_store() -> None:
    found = []
    for path in modules():
        if path in STORE_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(node, ast.JoinedStr):  # an f-string: its literal parts, joined
                text = "{}".join(
                    p.value
                    for p in node.values
                    if isinstance(p, ast.Constant) and isinstance(p.value, str)
                )
            if isinstance(text, str) and SQL.search(text):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {text[:60]!r}")
    assert not found, "SQL outside the store modules:\n" + "\n".join(found)
