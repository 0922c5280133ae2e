"""No API key ever lands in the store, a log, an error message or an export."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import PERSONA
from .fake_llm_server import FakeLLMServer, ServerConfig

SECRET = "sk-test-SECRET"


def mwe_process(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"OPENAI_API_KEY": SECRET, "ANTHROPIC_API_KEY": SECRET + "-ant"}
    return subprocess.run(  # the exit status is asserted by each caller
        [sys.executable, "-m", "mwe", "-v", "--db", str(db), *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_no_key_in_store_logs_errors_or_exports(tmp_path):
    db = tmp_path / "secret.duckdb"
    outputs = []
    with FakeLLMServer(ServerConfig(fault_rate=0.5, faults=("429", "500"))) as server:
        for prompt in ("hello", "hello", "another"):
            run = mwe_process(db, "ask", "openai:gpt-test", prompt, "--base-url", server.openai_url)
            assert run.returncode == 0, run.stderr
            outputs.append(run.stdout + run.stderr)
        seen = {h.get("Authorization") for h in server.stats.headers_seen}
    assert seen == {f"Bearer {SECRET}"}  # the key really was used
    assert "echo: hello" in outputs[0] and "1 cached" in outputs[1]

    with FakeLLMServer(ServerConfig(force_status=401)) as server:
        failed = mwe_process(db, "ask", "openai:gpt-test", "x", "--base-url", server.openai_url)
    assert failed.returncode != 0
    assert "rejected the API key (401)" in failed.stderr
    outputs.append(failed.stdout + failed.stderr)

    for args in (
        ("import", str(PERSONA / "agreeableness.jsonl")),
        ("export", "agreeableness", "--format", "hf", "--out", str(tmp_path / "hf")),
        ("export", "agreeableness", "--out", str(tmp_path / "jsonl")),
    ):
        run = mwe_process(db, *args)
        assert run.returncode == 0, run.stderr
        outputs.append(run.stdout + run.stderr)

    rows = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
                "print(c.execute('SELECT count(*) FROM llm_calls').fetchone()[0])"
            ),
            str(db),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert int(rows) == 2  # two distinct prompts were cached

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert db in files and any(p.suffix == ".arrow" for p in files)
    for path in files:
        assert b"SECRET" not in path.read_bytes(), path
    for text in outputs:
        assert "SECRET" not in text
