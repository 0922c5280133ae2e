"""The shape of the package: rules a reader relies on when finding their way around it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

PACKAGE = REPO / "mwe"
#: The store package: every SQL statement of mwe lives under it, and nowhere else.
STORE = PACKAGE / "store"
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
        if path.is_relative_to(STORE):
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
    assert not found, "SQL outside mwe/store/:\n" + "\n".join(found)


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): imports for the type checker only."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> set[str]:
    """The mwe modules a module imports, anywhere in it: at the top, inside functions and
    methods (an import that runs late is still a dependency), in ``try`` blocks. Only imports
    under ``if TYPE_CHECKING:`` do not count: they never run."""
    names = {module_name(p) for p in modules()}
    found: set[str] = set()

    def walk(node: ast.AST) -> None:
        if is_type_checking(node):
            assert isinstance(node, ast.If)
            for child in node.orelse:
                walk(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # a relative import: resolve it against this module's package
                package = module_name(path if path.name == "__init__.py" else path.parent)
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in names else base)
        for child in ast.iter_child_nodes(node):
            walk(child)

    walk(ast.parse(path.read_text(encoding="utf-8")))
    return found & names


def test_imports_are_counted_anywhere_but_under_type_checking(tmp_path: Path) -> None:
    module = tmp_path / "example.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "from mwe import env\n"
        "if TYPE_CHECKING:\n"
        "    from mwe.formats import ItemFormat\n"
        "def late():\n"
        "    from mwe.items import Item\n"
        "    import mwe.store.records\n",
        encoding="utf-8",
    )
    assert imports_of(module) == {"mwe.env", "mwe.items", "mwe.store.records"}


def test_no_import_cycle_inside_the_package() -> None:
    # Every import statement counts, lazy ones too: a circle is a design problem however late
    # it is imported. Plug-ins named by strings (mwe.formats.REGISTRY, the model registry, the
    # lazy names of mwe/__init__) are loaded by importlib and are not edges here.
    graph = {module_name(p): imports_of(p) for p in modules()}
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
        "from mwe.scoring import run; from mwe.generate import run; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_no_class_is_over_400_lines() -> None:
    # The store was one class of ~950 lines; it is now one part per group of tables.
    long = [
        f"{path.relative_to(REPO)}: {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in modules()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 >= 400
    ]
    assert not long, "classes of 400 lines or more:\n" + "\n".join(long)


def test_each_table_is_owned_by_one_store_module_that_names_it() -> None:
    # Every table the migrations create is named in the docstring of exactly one table module
    # (its owner), and the rows of `runs` are written by that module alone.
    created = set()
    for text in (STORE / "migrations.py").read_text(encoding="utf-8").split("CREATE TABLE ")[1:]:
        created.add(text.split()[0].removesuffix("_v2"))
    created.discard("IF")  # CREATE TABLE IF NOT EXISTS _migrations
    owners: dict[str, list[str]] = {}
    writers_of_runs = []
    for path in sorted(STORE.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(source)) or ""
        assert doc, f"{path.name} has no docstring"
        if path.name in {"__init__.py", "migrations.py", "records.py", "connection.py"}:
            continue
        for table in re.findall(r"``(\w+)``", doc.split("\n\n")[0]):
            owners.setdefault(table, []).append(path.name)
        if re.search(r"INSERT INTO runs\b|UPDATE runs\b", source):
            writers_of_runs.append(path.name)
    assert {t: o for t, o in owners.items() if len(o) > 1} == {}
    assert created - set(owners) == set(), "tables no module owns"
    assert writers_of_runs == ["runs.py"]
