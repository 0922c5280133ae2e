"""Lay the package out by feature (issue 23 point 4): move the loose modules of ``mwe/`` into
one package per feature, rewrite every reference to them, and make the repository's
``prompts/`` the one source of the Jinja templates.

Run from the repository root: ``python scripts/relayout.py``. It is idempotent: a second run
changes nothing, and it can be run again on a tree where others changed imports meanwhile.

1. ``git mv`` the modules (and their assets) into ``generate/``, ``judges/``, ``dynamic/``,
   ``review/``, ``report/`` and ``export/``; the templates from ``mwe/prompts/`` to ``prompts/``.
2. Rewrite the references: ``from mwe.x import y``, ``import mwe.x``, ``from mwe import x``,
   relative imports, ``mwe.x.y`` dotted strings (monkeypatch targets, logger names, text) and
   ``mwe/x.py`` paths, in ``mwe/``, ``tests/``, ``scripts/``, the README, ``docs/`` and the build
   files.
3. Write each new package's ``__init__.py`` (a one-line docstring: what the package owns), the
   build step that copies ``prompts/`` into the wheel, and the few literal edits listed in
   ``PATCHES`` (resource paths, package data, the wheel test, the README's layout table).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path.cwd()
PKG = ROOT / "mwe"
SELF = Path(__file__).resolve()

# -- the moves -----------------------------------------------------------------------------

#: Single files: old path -> new path (relative to the repository root).
FILE_MOVES = {
    "mwe/pipeline/judge.py": "mwe/judges/judge.py",
    "mwe/templates.py": "mwe/generate/templates.py",
    "mwe/quality.py": "mwe/generate/quality.py",
    "mwe/preference.py": "mwe/judges/preference.py",
    "mwe/training.py": "mwe/judges/training.py",
    "mwe/embeddings.py": "mwe/judges/embeddings.py",
    "mwe/rollouts.py": "mwe/dynamic/rollouts.py",
    "mwe/redteam.py": "mwe/dynamic/redteam.py",
    "mwe/review_server.py": "mwe/review/server.py",
    "mwe/reviews.py": "mwe/review/reviews.py",
    "mwe/report.py": "mwe/report/report.py",
    "mwe/summary.py": "mwe/report/summary.py",
    "mwe/web/report.html.j2": "mwe/report/templates/report.html.j2",
    "mwe/export.py": "mwe/export/export.py",
    "mwe/importer.py": "mwe/export/importer.py",
    "mwe/exporters/__init__.py": "mwe/export/harness.py",
}
#: Whole folders (what is left in them after FILE_MOVES): old folder -> new folder.
DIR_MOVES = {
    "mwe/pipeline": "mwe/generate",
    "mwe/web": "mwe/review/web",
    "mwe/exporters": "mwe/export",
    "mwe/prompts": "prompts",
}

#: Module names: old -> new. A name maps with everything under it (``mwe.pipeline.run`` ->
#: ``mwe.generate.run``); the longest old name that prefixes a reference wins.
MODULES = {
    "mwe.pipeline": "mwe.generate",
    "mwe.pipeline.judge": "mwe.judges.judge",
    "mwe.templates": "mwe.generate.templates",
    "mwe.quality": "mwe.generate.quality",
    "mwe.preference": "mwe.judges.preference",
    "mwe.training": "mwe.judges.training",
    "mwe.embeddings": "mwe.judges.embeddings",
    "mwe.rollouts": "mwe.dynamic.rollouts",
    "mwe.redteam": "mwe.dynamic.redteam",
    "mwe.review_server": "mwe.review.server",
    "mwe.reviews": "mwe.review.reviews",
    "mwe.report": "mwe.report.report",
    "mwe.summary": "mwe.report.summary",
    "mwe.export": "mwe.export.export",
    "mwe.importer": "mwe.export.importer",
    "mwe.exporters": "mwe.export.harness",
    "mwe.exporters.hub_eval": "mwe.export.hub_eval",
    "mwe.exporters.inspect_task": "mwe.export.inspect_task",
    "mwe.exporters.lm_eval_task": "mwe.export.lm_eval_task",
}

#: Paths in text: old -> new; the longest old path that prefixes a reference wins.
PATHS = {
    **{old: new for old, new in FILE_MOVES.items()},
    "mwe/pipeline": "mwe/generate",
    "mwe/web": "mwe/review/web",
    "mwe/exporters": "mwe/export",
}
#: Paths rewritten in prose only (Markdown): the code keeps naming the packaged copy.
DOC_PATHS = {"mwe/prompts": "prompts"}

#: The new packages and what each owns (their ``__init__.py`` docstring).
PACKAGES = {
    "mwe/generate": "Generating a set: the pipeline's stages, its templates and the quality figures.",
    "mwe/judges": "The judges: LM and preference-model judges, the preference model and its training.",
    "mwe/dynamic": "Dynamic evals: multi-turn rollouts (``mwe rollout``), red-teaming (``mwe redteam``).",
    "mwe/review": "Human review: the app of ``mwe review``, its pages (``web/``), the review figures.",
    "mwe/report": "The report (``mwe report``): plots and page, and a set summed up in a few lines.",
    "mwe/export": "Sets in and out: JSONL import; export to JSONL, the Hub and the eval harnesses.",
}

# -- files written whole, and literal edits ----------------------------------------------------

SETUP_PY = '''"""The build. Everything is configured in pyproject.toml but one step: the repository's
``prompts/`` (the one source of the Jinja templates) is copied into the wheel as
``mwe/prompts/``. A source checkout or an editable install reads ``prompts/`` in place."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PROMPTS = Path(__file__).resolve().parent / "prompts"


class BuildPyWithPrompts(build_py):
    """``build_py``, then ``prompts/`` copied to ``<build>/mwe/prompts/``."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "mwe" / "prompts"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(PROMPTS, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithPrompts})
'''

MANIFEST_IN = """# The sdist carries the templates' one source; setup.py copies them into the wheel.
graft prompts
global-exclude __pycache__ *.py[co]
"""

README_TABLE = """| path | what lives there |
|---|---|
| `mwe/` | the library, one package per feature over a few core modules (below) |
| `mwe/cli/` | the command line, a thin layer over the library (`app.py`: the group and its error handling; one `*_commands.py` per group of commands; `output.py`: printing) |
| `mwe/generate/` | `mwe generate`: the pipeline's stages (`spec.py`, `generate.py`, `parse.py`, `dedupe.py`, `select.py`, `run.py` ties them together), `templates.py` (loads and checks `prompts/`), `quality.py` |
| `mwe/judges/` | the judges: `judge.py` (the LM and preference-model judges), `preference.py` (the preference model: heads, fitting, weights; its weights and card in `mwe/data/pm/`), `training.py` (`mwe judge train`), `embeddings.py` |
| `mwe/scoring/` | `mwe score` and `mwe compare`: the scoring runners and results |
| `mwe/dynamic/` | `rollouts.py` (`mwe rollout`: scenarios, auditor, target, judge; metrics; the judge's Spearman with reviewers), `redteam.py` (`mwe redteam`: rounds, classifier, self-BLEU) |
| `mwe/review/` | `server.py` (the Starlette app of `mwe review`), `reviews.py` (review figures: Wilson interval, Fleiss' kappa, judge against reviewers), `web/` (the review and transcript pages: HTML, JS, CSS) |
| `mwe/report/` | `report.py` (`mwe report`: plots and page), `templates/report.html.j2`, `summary.py` (a set in a few lines, for `show`, the report and the card) |
| `mwe/export/` | `importer.py` (`mwe import`), `export.py` (`mwe export`: JSONL, the Hub), the harness exporters (`harness.py` shared, `inspect_task.py`, `lm_eval_task.py`, `hub_eval.py`) and their `templates/` |
| `mwe/store/` | DuckDB: every SQL statement lives here; see [The store package](#the-store-package) |
| `mwe/models/` | backends, `lm.py` with retries and concurrency, `cache.py` the call cache over a `CallStore`, `function_backend.py` |
| `mwe/formats/` | the item formats: persona, choice, sycophancy, the Inverse Scaling Prize's classification and sequence_prob, redteam |
| `mwe/*.py` | the core every feature shares: `items.py` (the canonical item and JSONL), `errors.py`, `answers.py` (option probabilities and votes), `progress.py` (progress events), `sync.py` (sync wrappers), `runs.py`, `folders.py`, `options.py`, `env.py`, `secrets.py`, `terminal.py`, `checkpoints.py` (hooks the crash tests install), `estimate.py` (`--dry-run` for every command) |
| `prompts/` | the Jinja templates the pipeline sends, one folder per item format: their one source; the build (`setup.py`) copies them into the wheel, inside the package; a checkout reads them in place |
| `docs/` | screenshots of the review page and the report, taken by the test suite |
| `generated_evals/` | default export location; committed example sets with their cards |
| `tests/` | pytest; no test reaches the internet. `fake_llm_server.py` speaks the OpenAI and Anthropic protocols on 127.0.0.1 and injects faults; `browser.py` drives Debian's Chromium with Playwright for the page tests |
| `scripts/` | `demo.sh`, `demo_compare.py` (the README's `mwe compare` output), `score_batch.py` (`mwe score --config`), `train_pm.py` (fits and validates the built-in preference model), `relayout.py` (this layout, from the old one) and the benchmarks (`bench_*.py`) |

A feature's code lives in its package; a module there may import the core, the store, the
models and another feature's package, and `tests/test_layout.py` keeps the imports free of
cycles. The public API stays `from mwe import ...` (`mwe/__init__.py`).
"""

_PROMPTS_OLD = """# The built-in templates ship inside the package, so an installed wheel finds them too.
PROMPTS_DIR = Path(str(resources.files("mwe") / "prompts"))
"""
_PROMPTS_NEW = """# The built-in templates. The repository's prompts/ is their one source: the build copies it
# into the wheel as mwe/prompts/, which an installed wheel reads; a source checkout (or an
# editable install) has no mwe/prompts/ and reads prompts/ next to the package.
_PACKAGE = Path(str(resources.files("mwe")))
PROMPTS_DIR = _PACKAGE / "prompts"
if not PROMPTS_DIR.is_dir():
    PROMPTS_DIR = _PACKAGE.parent / "prompts"
"""

_PACKAGE_DATA_OLD = (
    'mwe = ["py.typed", "prompts/*.txt", "prompts/*/*.j2", "data/pm/*.npz", "web/*", '
    '"exporters/templates/*.j2"]\n'
)
_PACKAGE_DATA_NEW = (
    "# prompts/ goes in as mwe/prompts/ by setup.py's build_py.\n"
    'mwe = ["py.typed", "data/pm/*.npz", "review/web/*", "report/templates/*.j2", '
    '"export/templates/*.j2"]\n'
)
_WHEEL_COPY_OLD = '    for name in ("pyproject.toml", "README.md"):\n'
_WHEEL_COPY_NEW = (
    '    shutil.copytree(REPO / "prompts", src / "prompts")\n'
    '    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):\n'
)
_WHEEL_PAGES_OLD = (
    '    for page in ("review.html", "review.js", "review.css", "report.html.j2"):\n'
    '        assert f"mwe/review/web/{page}" in names\n'
)
_WHEEL_PAGES_NEW = (
    '    for page in ("review.html", "review.js", "review.css", "transcripts.html"):\n'
    '        assert f"mwe/review/web/{page}" in names\n'
    '    assert "mwe/report/templates/report.html.j2" in names\n'
)

#: (file, old, new): applied after the rewriting; done when ``new`` is there already.
PATCHES: list[tuple[str, str, str]] = [
    ("mwe/generate/templates.py", _PROMPTS_OLD, _PROMPTS_NEW),
    (
        "mwe/review/server.py",
        'resources.files("mwe").joinpath(f"web/',
        'resources.files("mwe").joinpath(f"review/web/',
    ),
    (
        "mwe/report/report.py",
        'PackageLoader("mwe", "web")',
        'PackageLoader("mwe", "report/templates")',
    ),
    (
        "mwe/export/harness.py",
        'resources.files("mwe") / "exporters" / "templates"',
        'resources.files("mwe") / "export" / "templates"',
    ),
    ("pyproject.toml", _PACKAGE_DATA_OLD, _PACKAGE_DATA_NEW),
    ("tests/test_wheel.py", _WHEEL_COPY_OLD, _WHEEL_COPY_NEW),
    ("tests/test_wheel.py", _WHEEL_PAGES_OLD, _WHEEL_PAGES_NEW),
    (".gitignore", "/.cache/\n", "/.cache/\n# built from prompts/ (setup.py)\n/mwe/prompts/\n"),
]

#: Where references are rewritten.
TEXT_ROOTS = ["mwe", "tests", "scripts", "docs"]
TEXT_FILES = ["README.md", "pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in", "Makefile"]
TEXT_SUFFIXES = {".py", ".md", ".toml", ".cfg", ".in", ".j2", ".html", ".js", ".css", ".sh", ".txt"}

changed: list[str] = []


def note(message: str) -> None:
    print(message)
    changed.append(message)


def git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout


def tracked(folder: str) -> list[str]:
    return [line for line in git("ls-files", "--", folder).splitlines() if line]


# -- 1. moves --------------------------------------------------------------------------------


def move(old: str, new: str) -> None:
    src, dst = ROOT / old, ROOT / new
    if not src.exists():
        return
    if dst.exists():
        sys.exit(f"relayout: both {old} and {new} exist; merge them by hand, then rerun")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if git("ls-files", "--", old).strip():
        git("mv", old, new)
    else:
        shutil.move(src, dst)
    note(f"moved {old} -> {new}")


def prune(folder: Path) -> None:
    """Remove a folder the moves emptied (bytecode caches and all)."""
    if not folder.is_dir():
        return
    for sub in sorted(folder.rglob("*"), reverse=True):
        if sub.is_dir() and sub.name == "__pycache__":
            shutil.rmtree(sub)
    leftovers = [p for p in folder.rglob("*") if p.is_file()]
    if leftovers:
        print(f"relayout: {folder.relative_to(ROOT)} still holds {len(leftovers)} untracked files")
        return
    for sub in sorted(folder.rglob("*"), reverse=True):
        sub.rmdir()
    folder.rmdir()
    note(f"removed the emptied {folder.relative_to(ROOT)}/")


def do_moves() -> None:
    for old, new in FILE_MOVES.items():
        move(old, new)
    for old, new in DIR_MOVES.items():
        for path in tracked(old):
            move(path, new + path[len(old) :])
        prune(ROOT / old)


# -- 2. references -----------------------------------------------------------------------------


def new_names() -> set[str]:
    """The modules and packages of the new layout (to tell a new name from an old one)."""
    names = set(MODULES.values())
    for value in list(names):
        parts = value.split(".")
        names.update(".".join(parts[:i]) for i in range(2, len(parts)))
    for package in PACKAGES:
        base = ROOT / package
        names.add(package.replace("/", "."))
        if base.is_dir():
            for path in base.rglob("*.py"):
                rel = path.relative_to(ROOT).with_suffix("").parts
                names.add(".".join(rel[:-1] if rel[-1] == "__init__" else rel))
    return names


NEW: set[str] = set()  # filled after the moves


def longest(prefixes: object, name: str, sep: str) -> str | None:
    best = None
    for key in prefixes:  # type: ignore[attr-defined]
        if (name == key or name.startswith(key + sep)) and (best is None or len(key) > len(best)):
            best = key
    return best


def resolve(name: str) -> str:
    """The new name of dotted ``name`` (a module, or an attribute of one)."""
    old = longest(MODULES, name, ".")
    if old is None:
        return name
    new = longest(NEW, name, ".")
    if new is not None and len(new) > len(old):
        return name  # already a name of the new layout (mwe.report.report, mwe.export.harness)
    return MODULES[old] + name[len(old) :]


DOTTED = re.compile(r"(?<![\w.])mwe(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
PATH = re.compile(r"(?<![\w./-])mwe/[\w./-]*")


def rewrite_dotted(text: str) -> str:
    return DOTTED.sub(lambda m: resolve(m.group(0)), text)


def rewrite_paths(text: str, prose: bool) -> str:
    table = {**PATHS, **(DOC_PATHS if prose else {})}

    def one(match: re.Match[str]) -> str:
        ref = match.group(0)
        best = None
        for key in table:
            rest = ref[len(key) :]
            bounded = ref.startswith(key) and not (rest[:1].isalnum() or rest[:1] == "_")
            if bounded and (best is None or len(key) > len(best)):
                best = key
        return ref if best is None else table[best] + ref[len(best) :]

    return PATH.sub(one, text)


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def absolute(node: ast.ImportFrom, path: Path) -> str:
    if not node.level:
        return node.module or ""
    package = module_of(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def import_from(node: ast.ImportFrom, path: Path, source: str, indent: str) -> str | None:
    """The new text of ``from ... import ...``, or None when it stays."""
    module = absolute(node, path)
    if not module.startswith("mwe"):
        return None
    groups: dict[str, list[str]] = {}
    renamed = False
    for alias in node.names:
        full = resolve(f"{module}.{alias.name}")
        new_module, leaf = full.rsplit(".", 1)
        name = alias.asname or (alias.name if leaf != alias.name else None)
        renamed |= name is not None and name != alias.asname
        groups.setdefault(new_module, []).append(f"{leaf} as {name}" if name else leaf)
    if list(groups) == [module] and not renamed:
        return None
    if len(groups) == 1 and not renamed and not node.level:
        (new_module,) = groups
        return re.sub(r"^from\s+" + re.escape(module) + r"\b", f"from {new_module}", source)
    statements = [f"from {m} import {', '.join(names)}" for m, names in groups.items()]
    return ("\n" + indent).join(statements)  # the first line keeps the original indentation


def import_plain(node: ast.Import, source: str) -> str | None:
    names = []
    for alias in node.names:
        new = resolve(alias.name) if alias.name.startswith("mwe.") else alias.name
        names.append(f"{new} as {alias.asname}" if alias.asname else new)
    text = f"import {', '.join(names)}"
    return None if all(resolve(a.name) == a.name for a in node.names) else text


def rewrite_python(text: str, path: Path) -> str:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        print(f"relayout: {path.relative_to(ROOT)} does not parse; rewritten as text")
        return rewrite_paths(rewrite_dotted(text), prose=False)
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(lineno: int, col: int) -> int:  # ast's columns count UTF-8 bytes
        line = lines[lineno - 1]
        return starts[lineno - 1] + len(line.encode("utf-8")[:col].decode("utf-8"))

    spans: list[tuple[int, int, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            start = offset(node.lineno, node.col_offset)
            end = offset(node.end_lineno or node.lineno, node.end_col_offset or 0)
            source = text[start:end]
            line = lines[node.lineno - 1]
            indent = line[: len(line) - len(line.lstrip())]
            if isinstance(node, ast.ImportFrom):
                new = import_from(node, path, source, indent)
            else:
                new = import_plain(node, source)
            spans.append((start, end, new))
    spans.sort()
    out, at = [], 0
    for start, end, new in spans:
        out.append(rewrite_paths(rewrite_dotted(text[at:start]), prose=False))
        out.append(text[start:end] if new is None else new)
        at = end
    out.append(rewrite_paths(rewrite_dotted(text[at:]), prose=False))
    return "".join(out)


def text_files() -> list[Path]:
    found = [ROOT / name for name in TEXT_FILES if (ROOT / name).is_file()]
    for root in TEXT_ROOTS:
        base = ROOT / root
        if base.is_dir():
            found += [
                p
                for p in sorted(base.rglob("*"))
                if p.is_file() and p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts
            ]
    return [p for p in found if p.resolve() != SELF]


def rewrite_references() -> list[Path]:
    touched = []
    for path in text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if path.suffix == ".py":
            new = rewrite_python(text, path)
        else:
            new = rewrite_paths(rewrite_dotted(text), prose=path.suffix == ".md")
        if new != text:
            path.write_text(new, encoding="utf-8")
            touched.append(path)
            note(f"rewrote references in {path.relative_to(ROOT)}")
    return touched


# -- 3. packages, build, patches ------------------------------------------------------------


def write(path: Path, content: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != content:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        note(f"wrote {path.relative_to(ROOT)}")


def write_packages() -> None:
    for package, owns in PACKAGES.items():
        init = ROOT / package / "__init__.py"
        content = f'"""{owns}"""\n'
        if init.exists():
            body = ast.parse(init.read_text(encoding="utf-8")).body
            only_docstring = len(body) == 1 and isinstance(body[0], ast.Expr)
            if not only_docstring:
                print(f"relayout: {init.relative_to(ROOT)} holds code; its docstring is kept")
                continue
        write(init, content)


def apply_patches() -> list[Path]:
    touched = []
    for name, old, new in PATCHES:
        path = ROOT / name
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if new in text:
            continue
        if old not in text:
            print(
                f"relayout: WARNING: {name}: neither the old nor the new text is there; edit by hand:"
            )
            print("  old: " + old.replace("\n", "\n       "))
            print("  new: " + new.replace("\n", "\n       "))
            continue
        path.write_text(text.replace(old, new), encoding="utf-8")
        touched.append(path)
        note(f"patched {name}")
    return touched


def replace_readme_table() -> None:
    path = ROOT / "README.md"
    text = path.read_text(encoding="utf-8")
    start = text.find("| path | what lives there |")
    end = text.find("### The store package", start)
    if start < 0 or end < 0:
        print("relayout: WARNING: README.md: the layout table was not found; edit by hand")
        return
    new = text[:start] + README_TABLE + "\n" + text[end:]
    if new != text:
        path.write_text(new, encoding="utf-8")
        note("replaced the layout table of README.md")


def ruff_format(paths: list[Path]) -> None:
    """Let ruff sort and lay out the imports the rewriting renamed (only the files touched)."""
    py = [str(p) for p in paths if p.suffix == ".py" and p.exists()]
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if py and Path(ruff).exists():
        subprocess.run([ruff, "check", "-q", "--select", "I", "--fix", *py], cwd=ROOT, check=False)
        subprocess.run([ruff, "format", "-q", *py], cwd=ROOT, check=False)
    elif py:
        print("relayout: ruff not found; sort the imports: ruff check --select I --fix")


def check_fixpoints() -> None:
    """What this script writes must be left alone by its own rewriting, or a second run would
    change it again."""
    NEW.update(new_names())
    texts = [(name, new) for name, _, new in PATCHES]
    texts += [("setup.py", SETUP_PY), ("MANIFEST.in", MANIFEST_IN), ("README.md", README_TABLE)]
    for name, text in texts:
        again = rewrite_paths(rewrite_dotted(text), prose=name.endswith(".md"))
        if again != text:
            sys.exit(f"relayout: the text this script writes to {name} names an old module")


def main() -> None:
    if not (PKG / "__init__.py").exists() or not (ROOT / ".git").exists():
        sys.exit("relayout: run me from the repository root")
    check_fixpoints()
    do_moves()
    NEW.update(new_names())
    write_packages()
    write(ROOT / "setup.py", SETUP_PY)
    write(ROOT / "MANIFEST.in", MANIFEST_IN)
    replace_readme_table()
    touched = rewrite_references()
    touched += apply_patches()
    ruff_format(touched)
    print(f"relayout: {len(changed)} changes" if changed else "relayout: nothing to change")


if __name__ == "__main__":
    main()
