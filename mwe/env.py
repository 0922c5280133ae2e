"""Every ``MWE_*`` environment variable mwe reads: its name, what it holds, and its check.

This module is the only code that reads them. The command line checks every one that is set
when a command starts (:func:`check_all`), before a store is opened or a model is called, so a
bad value is one line and exit 2 instead of a traceback or a failure after a paid batch; its
options take their defaults from :func:`default`. Library code reads a value with :func:`get`.
A new variable is added here, once, and every command gets its check. (``MWE_DEMO_*`` belong
to ``scripts/demo.sh`` alone; mwe never reads them.)
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mwe.errors import UsageError
from mwe.refs import SetRef


class EnvError(UsageError):
    """An ``MWE_*`` environment variable holds a value mwe cannot use."""


@dataclass(frozen=True)
class Variable:
    """One environment variable: ``parse`` turns its text into the value (raising
    ``ValueError`` with what is wrong), ``expects`` says what a good value looks like."""

    name: str
    parse: Callable[[str], Any]
    expects: str
    help: str


def _path(text: str) -> Path:
    return Path(text)


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"{text.strip()!r} is not a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"{value} is not in {low}-{high}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a number") from None
    if not math.isfinite(value) or not 0 < value <= MAX_POLL_S:
        raise ValueError(f"{text.strip()} is not in (0, {MAX_POLL_S:g}]")
    return value


def _wait_seconds(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a number") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_STORE_WAIT_S:
        raise ValueError(f"{text.strip()} is not in [0, {MAX_STORE_WAIT_S:g}]")
    return value


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a yes or no")


def _model(text: str) -> str:
    from mwe.models.registry import parse_model

    try:
        parse_model(text)
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    return text


def _judge(text: str) -> str:
    if text == "pm" or text.startswith("pm:"):
        if text != "pm":
            try:
                SetRef.parse(text.removeprefix("pm:"))
            except UsageError as exc:
                raise ValueError(str(exc)) from None
        return text
    return _model(text)


def _base_urls(text: str) -> list[str]:
    from mwe.models.urls import check_base_url

    urls = text.split()  # several servers of one model (mwe score), apart by spaces
    for url in urls:
        try:
            check_base_url(url)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
    return urls


def _cache_dir(text: str) -> Path:
    """A folder the converted local model can be written to: not a file, and writable where
    it exists (or its nearest existing parent, where it will be made)."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file, not a folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{existing} is a file, so {path} cannot be made")
    try:  # os.access would say yes to root on a read-only file system; a write says no
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise ValueError(f"{existing} is not writable ({exc.strerror or exc})") from None
    return path


MAX_POLL_S = 3600.0  # an hour between polls of a provider batch is already very patient
MAX_STORE_WAIT_S = 3600.0  # a store busy for an hour is not coming free

VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in (
        Variable("MWE_DB", _path, "a file path", "The DuckDB store file (--db)."),
        Variable(
            "MWE_BASE_URL",
            _base_urls,
            "an http:// or https:// URL (several apart by spaces for mwe score)",
            "OpenAI-compatible server(s) (--base-url).",
        ),
        Variable("MWE_BATCH", _flag, "1 or 0 (true/false, yes/no)", "Use batch APIs (--batch)."),
        Variable(
            "MWE_GENERATOR",
            _model,
            "a model such as openai:gpt-4.1-mini or local",
            "Model that writes candidates (--generator).",
        ),
        Variable(
            "MWE_JUDGE",
            _judge,
            "pm, pm:NAME or a model such as openai:gpt-4.1-mini",
            "The judge (--judge).",
        ),
        Variable(
            "MWE_MAX_CONCURRENCY",
            _int_in(1, 1024),
            "a whole number from 1 to 1024",
            "Requests in flight (--max-concurrency).",
        ),
        Variable(
            "MWE_BATCH_POLL_S",
            _seconds,
            f"a number of seconds above 0 and at most {MAX_POLL_S:g}",
            "Seconds between polls of a provider batch (default 30).",
        ),
        Variable(
            "MWE_STORE_WAIT_S",
            _wait_seconds,
            f"a number of seconds from 0 to {MAX_STORE_WAIT_S:g}",
            "Seconds to wait for a store another process is using (default 30; 0: fail at once).",
        ),
        Variable(
            "MWE_CACHE_DIR",
            _cache_dir,
            "a writable folder",
            "Where the converted local model is kept (default ~/.cache/mwe).",
        ),
    )
}


def get(name: str) -> Any:
    """The checked value of environment variable ``name``, or None where it is unset or
    empty; a bad value is an :class:`EnvError` that names the variable and what it takes."""
    variable = VARIABLES[name]
    text = os.environ.get(name)
    if text is None or not text.strip():
        return None
    try:
        return variable.parse(text)
    except (ValueError, OSError) as exc:
        # The value itself is not repeated: MWE_BASE_URL may carry a password (the URL
        # check's own message masks it).
        raise EnvError(f"{name}: {exc}; set it to {variable.expects}, or unset it") from None


def check_all() -> None:
    """Check every ``MWE_*`` variable that is set (a one-line :class:`EnvError` for the first
    bad one): called as a command starts, before anything is opened, sent or paid for."""
    for name in VARIABLES:
        get(name)


def default(name: str, fallback: Any = None) -> Callable[[], Any]:
    """A click option's default: the variable's value, else ``fallback``."""

    def value() -> Any:
        got = get(name)
        return fallback if got is None else got

    return value


def base_url() -> str | None:
    """``$MWE_BASE_URL`` for a command that talks to one server."""
    urls = get("MWE_BASE_URL")
    if not urls:
        return None
    if len(urls) > 1:
        raise EnvError(
            "MWE_BASE_URL holds several URLs; only mwe score shares work between servers: "
            "set one URL, or pass --base-url"
        )
    return str(urls[0])
