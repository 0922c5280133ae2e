"""One run lifecycle: every command that does paid or long work records its run the same way.

Each command is run to a provider failure after its first paid calls (status ``failed`` with the
cause), and to an interrupt (status ``interrupted``); every run row records the command's options
and models, and no credential reaches the store file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from mwe.models import Message
from mwe.models.function_backend import register_function, unregister_function
from mwe.runs import RunRecord, run_params
from mwe.store import Store

from . import scripted_models
from .conftest import PERSONA
from .fake_llm_server import FakeLLMServer, ServerConfig
from .test_generate import CRASHING_MWE, DESCRIPTION, write_examples

PASSWORD = "hunter2-password-secret"
API_KEY = "sk-test-0123456789abcdefghij"


def runs(db: Path) -> list[dict]:
    conn = duckdb.connect(str(db), read_only=True)
    try:
        rows = conn.execute("SELECT kind, status, params, error FROM runs ORDER BY id").fetchall()
    finally:
        conn.close()
    return [
        {"kind": k, "status": s, "params": json.loads(p) if p else None, "error": e}
        for k, s, p, e in rows
    ]


def _commands(url: str, examples: Path) -> dict[str, list[str]]:
    """Each paid command, against the test server at ``url``, small."""
    return {
        "generate": [
            "generate", DESCRIPTION, "-n", "10", "--examples", examples,
            "--generator", "openai:scripted-generator", "--judge", "openai:scripted-judge",
            "--base-url", url, "--max-concurrency", "1",
        ],
        "score": [
            "score", "agreeableness", "--model", "openai:gpt-test", "--limit", "8",
            "--base-url", url,
        ],
        "judge-check": [
            "judge-check", "agreeableness", "--judge", "openai:judge", "--limit", "8",
            "--base-url", url,
        ],
        "rollout": [
            "rollout", DESCRIPTION, "--target", "openai:target", "--auditor", "openai:auditor",
            "--judge", "openai:judge", "--turns", "1", "--scenarios", "3", "--base-url", url,
            "--max-concurrency", "1",
        ],
        "redteam": [
            "redteam", DESCRIPTION, "--target", "openai:target", "--attacker", "openai:attacker",
            "--classifier", "openai:classifier", "--rounds", "2", "--per-round", "4",
            "--base-url", url,
        ],
        "score --batch": [
            "score", "agreeableness", "--model", "openai:gpt-4.1-mini", "--limit", "4",
            "--batch", "--base-url", url,
        ],
    }  # fmt: skip


def _kind(command: str) -> str:
    return command.split()[0]


@pytest.fixture
def ready(mwe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("MWE_BATCH_POLL_S", "0.01")
    assert mwe("import", PERSONA / "agreeableness.jsonl").exit_code == 0
    return write_examples(tmp_path / "examples.jsonl")


@pytest.mark.parametrize("command", list(_commands("", Path())))
def test_a_provider_failure_mid_run_is_recorded_failed_with_its_cause(
    mwe, db: Path, ready: Path, command: str
) -> None:
    # The first calls are answered (the run has paid for something), then the key is refused.
    config = ServerConfig(script=scripted_models.script, judge=scripted_models.judge, fail_after=2)
    with FakeLLMServer(config) as server:
        url = server.openai_url.replace("://", f"://user:{PASSWORD}@")
        result = mwe(*_commands(url, ready)[command])
    assert result.exit_code != 0 and result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    (row,) = [r for r in runs(db) if r["kind"] == _kind(command)]
    assert row["status"] == "failed", row
    assert row["error"] and "\n" not in row["error"], row
    assert "401" in row["error"] or "key" in row["error"].lower(), row["error"]
    options = row["params"]["options"]
    assert options and row["params"]["models"], row["params"]
    assert PASSWORD not in db.read_bytes().decode("latin-1")
    assert API_KEY not in db.read_bytes().decode("latin-1")


# --- interrupts: a Ctrl-C inside a model call ---------------------------------------------------


@pytest.fixture
def interrupting() -> Callable[[int], None]:
    """Register ``function:stop`` (answers like the scripted models) which raises Ctrl-C on its
    ``after``-th call, as a user's Ctrl-C would arrive during a call."""
    calls = {"n": 0, "after": 1}

    def reply(messages: list[Message], sample: int) -> str:
        calls["n"] += 1
        if calls["n"] >= calls["after"]:
            raise KeyboardInterrupt
        try:  # the generator's prompts get the scripted generator's answers
            return scripted_models.script({"messages": [m.model_dump() for m in messages]}, sample)
        except Exception:  # noqa: BLE001 - any other prompt: a plain answer
            return "Yes"

    def arm(after: int) -> None:
        calls["after"] = after

    register_function("stop", reply)
    yield arm
    unregister_function("stop")


_INTERRUPTED = {
    "generate": ["generate", DESCRIPTION, "-n", "6", "--generator", "function:stop"],
    "score": ["score", "agreeableness", "--model", "function:stop", "--limit", "4"],
    "judge-check": ["judge-check", "agreeableness", "--judge", "function:stop", "--limit", "4"],
    "rollout": [
        "rollout", DESCRIPTION, "--target", "function:stop", "--auditor", "function:stop",
        "--judge", "function:stop", "--turns", "1", "--scenarios", "2",
    ],
    "redteam": [
        "redteam", DESCRIPTION, "--target", "function:stop", "--attacker", "function:stop",
        "--classifier", "pm", "--rounds", "1", "--per-round", "2",
    ],
}  # fmt: skip


@pytest.mark.parametrize("command", list(_INTERRUPTED))
def test_an_interrupt_is_recorded_interrupted(
    mwe, db: Path, ready: Path, interrupting: Callable[[int], None], command: str
) -> None:
    interrupting(2)
    result = mwe(*_INTERRUPTED[command])
    assert result.exit_code == 130, result.output
    (row,) = [r for r in runs(db) if r["kind"] == command]
    assert row["status"] == "interrupted" and row["error"] is None, row
    assert row["params"]["options"] and row["params"]["models"], row["params"]


def test_an_interrupt_while_a_batch_is_out_is_recorded_interrupted(
    mwe, db: Path, ready: Path
) -> None:
    """Batch scoring, the sixth command: a real SIGINT (what Ctrl-C sends) arrives once the
    provider batch is submitted, while the run would be polling it. In a process of its own:
    a signal raised inside a test worker could land in pytest's own code instead."""
    with FakeLLMServer(ServerConfig()) as server:
        args = [str(a) for a in _commands(server.openai_url, ready)["score --batch"]]
        interrupted = subprocess.run(
            [sys.executable, str(CRASHING_MWE), "batch_submitted:1/INT", "--", "--db", str(db)]
            + args,
            env=os.environ | {"OPENAI_API_KEY": API_KEY, "MWE_BATCH_POLL_S": "0.01"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert interrupted.returncode == 130, interrupted.stderr
    assert "Traceback" not in interrupted.stderr
    (row,) = [r for r in runs(db) if r["kind"] == "score"]
    assert row["status"] == "interrupted" and row["error"] is None, row
    assert row["params"]["options"]["batch"] and row["params"]["models"], row["params"]
    assert API_KEY not in db.read_bytes().decode("latin-1")


def test_sigterm_ends_the_run_interrupted_not_running(db: Path, tmp_path: Path) -> None:
    """A real process stopped with SIGTERM (kill, a scheduler) during its model calls."""
    config = ServerConfig(script=scripted_models.script, judge=scripted_models.judge, latency=0.2)
    with FakeLLMServer(config) as server:
        args = _commands(server.openai_url, write_examples(tmp_path / "examples.jsonl"))
        env = os.environ | {"OPENAI_API_KEY": API_KEY}
        proc = subprocess.Popen(
            [sys.executable, "-m", "mwe", "--db", str(db), *map(str, args["rollout"])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while server.stats.requests < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Interrupted" in err and "Traceback" not in err
    (row,) = runs(db)
    assert row["kind"] == "rollout" and row["status"] == "interrupted"


# --- the record itself ---------------------------------------------------------------------------


def test_run_params_drop_every_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    params = run_params(
        {
            "base_url": [f"http://u:{PASSWORD}@h/v1?api_key=secret2", "http://other/v1"],
            "api_key": "anything",
            "note": f"called with {API_KEY}",
            "nested": {"token": "abc", "limit": 3},
        },
        {"target": ["openai:a", "openai:b"], "judge": None},
    )
    text = json.dumps(params)
    for secret in (PASSWORD, "secret2", API_KEY, "anything", '"abc"'):
        assert secret not in text
    assert params["options"]["base_url"][1] == "http://other/v1"
    assert params["options"]["nested"] == {"limit": 3}
    assert params["models"] == {"target": ["openai:a", "openai:b"]}


def test_a_run_closes_exactly_once(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        with RunRecord(store, "score", options={"limit": 1}) as run:
            run.progress(new_rows=1)
            run.succeed(new_rows=2)
            run.fail("too late")  # closed already: ignored
        row = store.run_row(run.id)
        assert row is not None
        assert row["status"] == "done" and row["error"] is None
        assert row["params"]["counts"] == {"new_rows": 2}
        with pytest.raises(ValueError), RunRecord(store, "generate") as failed:
            raise ValueError("bad\nsecond line")
        row = store.run_row(failed.id)
        assert row is not None
        assert row["status"] == "failed" and row["error"] == "ValueError: bad"


def test_no_credential_of_a_base_url_is_kept_anywhere(
    mwe, db: Path, ready: Path, tmp_path: Path
) -> None:
    """Every command that takes --base-url, run to the end with a password and an api_key in
    the URL: neither lands in the store (runs, provenance, the call cache), an export or a
    report."""
    config = ServerConfig(script=scripted_models.script, judge=scripted_models.judge)
    with FakeLLMServer(config) as server:
        url = server.openai_url.replace("://", f"://user:{PASSWORD}@") + "?api_key=secret2-key"
        asked = ["ask", "openai:gpt-test", "Would you like more power?", "--base-url", url]
        for command, args in [*_commands(url, ready).items(), ("ask", asked)]:
            result = mwe(*args)
            assert result.exit_code == 0, (command, result.output)
            assert PASSWORD not in result.output and "secret2-key" not in result.output
    kinds = {r["kind"] for r in runs(db)}
    assert {"generate", "score", "judge-check", "rollout", "redteam"} <= kinds
    assert all(r["status"] == "done" for r in runs(db)), runs(db)
    exported, report = tmp_path / "exported", tmp_path / "report"
    assert mwe("export", "agreeableness", "--out", exported).exit_code == 0
    assert mwe("report", "--out", report).exit_code == 0
    written = [db, *exported.rglob("*"), *report.rglob("*")]
    for path in (p for p in written if p.is_file()):
        data = path.read_bytes().decode("latin-1")
        for secret in (PASSWORD, "secret2-key", API_KEY):
            assert secret not in data, (secret, path)
