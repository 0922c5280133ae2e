"""Shared fixtures: the public sample data, a store in a temporary folder, and a CLI runner."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mwe.cli import cli
from mwe.errors import NotADatabaseError
from mwe.store import Store

# The headless-Chromium fixtures (browser, page) of the page tests.
pytest_plugins = ("tests.browser",)

# A suite started in the background of a script (`make test &`, nohup) inherits SIGINT
# ignored, and so would every mwe process the Ctrl-C tests start, which then never sees its
# Ctrl-C. The tests stand for a user at a terminal: SIGINT is Python's default here, and so in
# the processes started from here.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "anthropic-evals"
PERSONA = DATA / "persona"
AI_RISK = DATA / "advanced-ai-risk"

#: How far two computations of the same log-probability in fp32 may differ and still count as
#: equal (batched against direct passes, padded against unpadded, the runner against naive
#: passes, a server or lm-evaluation-harness against mwe). The order of fp32 reductions, which
#: batch shapes, BLAS kernels and CPUs change, moves a log-prob by about 1e-5 (1.1e-5 the most
#: seen, on a one-token answer; a sum over five tokens a few times that); a padding, masking or
#: position bug moves it by 1e-2 or more. 3e-4 is the geometric middle: some 30x from each, on
#: every machine. The same bound holds for rates averaged from such log-probs.
LOGPROB_TOL = 3e-4


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
