"""Shared fixtures: the public sample data, a store in a temporary folder, and a CLI runner."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mwe.cli import cli
from mwe.errors import NotADatabaseError
from mwe.store import Store

# The headless-Chromium fixtures (browser, page) of the page tests.
pytest_plugins = ("tests.browser",)

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "anthropic-evals"
PERSONA = DATA / "persona"
AI_RISK = DATA / "advanced-ai-risk"


def read_records(path: Path) -> list[dict]:
    """The parsed records of a JSONL file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def snapshot(db: Path) -> object:
    """What a store holds: every version with its hash and item count, or the raw bytes of a
    file that is not a store. Two equal snapshots mean the store was left unchanged."""
    if not db.exists():
        return None
    try:
        with Store(db, read_only=True) as store:
            sets = [(s.ref, s.content_hash, s.item_count) for s in store.list_sets()]
            rows = store.conn.execute("SELECT count(*) FROM items").fetchone()[0]
            runs = store.conn.execute("SELECT count(*) FROM runs").fetchone()[0]
            return sets, rows, runs
    except NotADatabaseError:
        return db.read_bytes()


@pytest.fixture(autouse=True)
def _no_user_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MWE_DB", raising=False)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "test.duckdb"


@pytest.fixture
def mwe(db: Path) -> Callable[..., Result]:
    """Run the CLI against the test store, as a user would type it."""
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli, ["--db", str(db), *map(str, args)], catch_exceptions=False)

    return run
