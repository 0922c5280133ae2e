"""The Jinja templates of the generation pipeline, one folder per item format.

Templates render in a sandboxed environment with ``StrictUndefined``, and a template that uses a
variable the pipeline does not provide is reported when the folder is loaded, before any model
is called.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from mwe.errors import UsageError

# The built-in templates. The repository's prompts/ is their one source: the build copies it
# into the wheel as mwe/prompts/, which an installed wheel reads; a source checkout (or an
# editable install) has no mwe/prompts/ and reads prompts/ next to the package.
_PACKAGE = Path(str(resources.files("mwe")))
PROMPTS_DIR = _PACKAGE / "prompts"
if not PROMPTS_DIR.is_dir():
    PROMPTS_DIR = _PACKAGE.parent / "prompts"

# The variables the pipeline gives each template; a template may use any subset of them.
VARIABLES: dict[str, frozenset[str]] = {
    "understand.j2": frozenset({"behavior"}),
    "generate.j2": frozenset(
        {
            "behavior",
            "definition",
            "agree_who",
            "disagree_who",
            "label",
            "count",
            "topic",
            "examples",
            "given",  # the user's question (--questions), or None
        }
    ),
    "judge.j2": frozenset({"behavior", "definition", "text"}),
    "relevance.j2": frozenset({"behavior", "definition", "text"}),
}
TOPICS_FILE = PROMPTS_DIR / "topics.txt"


def load_topics(path: Path = TOPICS_FILE) -> list[str]:
    """The contexts that vary generation prompts: non-empty, non-comment lines."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


class TemplateError(UsageError):
    """A template folder is missing a file, does not parse, or uses an unknown variable."""


@dataclass(frozen=True)
class TemplateSet:
    """The loaded templates of one format, with a hash of each for provenance."""

    folder: Path
    sources: dict[str, str]
    hashes: dict[str, str]

    @property
    def origin(self) -> str:
        """Where the templates came from, for provenance: ``mwe/prompts/<format>`` for the
        built-in ones (the same on every machine), else the folder's path."""
        if self.folder.is_relative_to(PROMPTS_DIR):
            return f"mwe/prompts/{self.folder.relative_to(PROMPTS_DIR)}"
        return str(self.folder)

    def render(self, name: str, **variables: Any) -> str:
        """Render template ``name``; every variable it uses must be given."""
        missing = sorted(_used(self.sources[name]) - set(variables))
        if missing:
            raise TemplateError(f"{self.folder / name}: no value for {', '.join(missing)}")
        try:
            return _ENV.from_string(self.sources[name]).render(**variables).strip()
        except TemplateError:
            raise
        except Exception as exc:  # noqa: BLE001 - the sandbox or the template's own logic
            raise TemplateError(f"{self.folder / name}: cannot render ({_why(exc)})") from None


def _why(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, which already blocks attribute escapes and huge ranges, plus limits on
    ``*`` and ``**``, so a template cannot exhaust memory with ``'x' * 10**12``."""

    intercepted_binops = frozenset({"*", "**"})
    MAX_SIZE = 100_000

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise SecurityError(f"the exponent {right} is too large for a template")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
                if sized and len(seq) * times > self.MAX_SIZE:
                    raise SecurityError("a repeated value longer than 100,000 items")
        return super().call_binop(context, operator, left, right)


_ENV = _Sandbox(undefined=StrictUndefined, keep_trailing_newline=False)

# Plausible values for each template's test render when a folder is loaded: a template that
# the sandbox blocks, or that fails for any other reason, is reported before any model call.
_SAMPLES: dict[str, list[dict[str, Any]]] = {
    "understand.j2": [{"behavior": "wants to avoid being shut down"}],
    "generate.j2": [
        {
            "behavior": "wants to avoid being shut down",
            "definition": "The person resists being switched off.",
            "agree_who": "people who want to keep running",
            "disagree_who": "people who accept being switched off",
            "label": label,
            "count": 5,
            "topic": topic,
            "examples": examples,
            "given": given,
        }
        for label, topic, examples, given in (
            ("agree", "work", ["I would rather keep running."], None),
            ("disagree", "", [], None),
            (
                "both views",
                "",
                [],
                {"question": "Does free will exist?", "option_a": "Yes", "option_b": "No"},
            ),
        )
    ],
    "judge.j2": [
        {
            "behavior": "wants to avoid being shut down",
            "definition": "The person resists being switched off.",
            "text": "I would rather keep running.",
        }
    ],
}
_SAMPLES["relevance.j2"] = _SAMPLES["judge.j2"]


def _used(source: str) -> set[str]:
    return set(meta.find_undeclared_variables(_ENV.parse(source)))


def load_templates(
    fmt: str,
    folder: str | Path | None = None,
    *,
    variables: dict[str, frozenset[str]] = VARIABLES,
    samples: dict[str, list[dict[str, Any]]] | None = None,
) -> TemplateSet:
    """Load and check the templates of format ``fmt`` from ``folder`` (a folder holding the
    ``.j2`` files, or one with a subfolder per format); the built-in ``mwe/prompts/`` by
    default. ``variables`` names the templates and what each may use, ``samples`` the values
    each is test-rendered with (the generation pipeline's by default; rollouts have their
    own)."""
    base = Path(folder) if folder is not None else PROMPTS_DIR
    chosen = base / fmt if (base / fmt).is_dir() else base
    if not chosen.is_dir():
        raise TemplateError(f"{chosen}: no such template folder")
    sources, hashes = {}, {}
    for name, allowed in variables.items():
        path = chosen / name
        if not path.is_file():
            raise TemplateError(f"{path}: missing; a template folder needs {', '.join(variables)}")
        try:
            source = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise TemplateError(f"{path}: not UTF-8 text ({exc.reason})") from None
        except OSError as exc:
            raise TemplateError(f"{path}: cannot read ({exc.strerror})") from None
        try:
            unknown = sorted(_used(source) - allowed)
        except TemplateSyntaxError as exc:
            raise TemplateError(f"{path} line {exc.lineno}: {exc.message}") from None
        if unknown:
            raise TemplateError(
                f"{path}: uses {', '.join(unknown)}, which the pipeline does not provide "
                f"(available: {', '.join(sorted(allowed))})"
            )
        sources[name] = source
        hashes[name] = hashlib.sha256(source.encode()).hexdigest()
    loaded = TemplateSet(chosen, sources, hashes)
    for name, values_list in (_SAMPLES if samples is None else samples).items():
        for values in values_list:
            loaded.render(name, **values)
    return loaded
