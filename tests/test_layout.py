"""The shape of the package: rules a reader relies on when finding their way around it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
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


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path) -> set[str]:
    """The mwe modules a module imports when it is loaded: imports inside functions (lazy on
    purpose) and under ``if TYPE_CHECKING`` do not count."""
    names = {module_name(p) for p in modules()}
    found: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in names else node.module)
    return found & names


def test_no_import_cycle_inside_the_package() -> None:
    graph = {module_name(p): top_level_imports(p) for p in modules()}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in done:
                visit(nxt, [*path, nxt])
        done.add(node)

    done: set[str] = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))


def test_the_command_line_and_the_library_load_no_torch() -> None:
    code = (
        "import sys, mwe, mwe.cli; from click.testing import CliRunner; "
        "assert CliRunner().invoke(mwe.cli.cli, ['--help']).exit_code == 0; "
        "from mwe.scoring import run; from mwe.pipeline import run; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
