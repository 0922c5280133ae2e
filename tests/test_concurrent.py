"""Reading the store while another process writes it (issue 27, point 8).

DuckDB lets one process at a time have a file open, and while a writer has it nobody else may
even read it; so the store attaches its file only for a session and lets go right after. These
tests run a real `mwe score` (and `mwe generate`) in a process of its own, paused at chosen
points through ``tests/paced_mwe.py`` (it prints a marker on stdout and waits for a line on
stdin), and read the store meanwhile with the commands a user would type.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from click.testing import Result

from mwe.store import Store

from .conftest import PERSONA, REPO

PACED = REPO / "tests" / "paced_mwe.py"
BATCH = 64  # the scoring runner's chunk of API rows (mwe.scoring.run.API_CHUNK)


def paced(db: Path, points: str, log: Path, *args: str) -> subprocess.Popen[str]:
    """`mwe --db DB ARGS` in a process of its own, pausing at ``points``."""
    return subprocess.Popen(
        [sys.executable, str(PACED), points, "--", "--db", str(db), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )


def reach(proc: subprocess.Popen[str], point: str, log: Path) -> None:
    """Block until ``proc`` is paused at ``point`` (or fail if it ended first)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == f"@@ {point}":
            return
    raise AssertionError(f"exited {proc.wait()} before {point}: {log.read_text()[-2000:]}")


def resume(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def score_run(db: Path) -> tuple[str, dict]:
    """The status and the progress of the one score run."""
    with Store(db, read_only=True) as store:
        row = store.conn.execute("SELECT status, params FROM runs WHERE kind = 'score'").fetchone()
    return row[0], json.loads(row[1]).get("progress", {})


def stored_scores(mwe: Callable[..., Result]) -> int:
    rows = json.loads(ok(mwe("results", "agreeableness", "--output", "json")).stdout)
    assert [(r["model"], r["prompt_format"]) for r in rows] == [("function:paced", "chat")]
    return rows[0]["items"]


def test_list_show_results_and_report_work_while_score_writes(mwe, db, tmp_path):
    ok(mwe("import", PERSONA / "agreeableness.jsonl"))
    imported = json.loads(ok(mwe("show", "agreeableness", "--json")).stdout)
    log = tmp_path / "score.log"
    writer = paced(
        db,
        "score:1,score_writing:3",
        log,
        "score",
        "agreeableness",
        "--model",
        "function:paced",
    )
    try:
        # 1. Between two batches, where a scoring run spends nearly all its time: every read
        # command works, and what it sees is the first batch, whole, and its run's progress.
        reach(writer, "score:1", log)
        listed = json.loads(ok(mwe("list", "--json")).stdout)
        assert [s["ref"] for s in listed] == ["agreeableness@1"]
        shown = json.loads(ok(mwe("show", "agreeableness", "--json")).stdout)
        assert (shown["items"], shown["content_hash"]) == (1000, imported["content_hash"])
        assert stored_scores(mwe) == BATCH
        assert score_run(db) == ("running", {"new_rows": BATCH, "skipped_rows": 0})
        ok(mwe("report", "--out", tmp_path / "report"))
        page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
        assert "agreeableness@1" in page and "function:paced" in page

        # 2. Inside the third batch's write, with the file held: a reader that may not wait
        # is refused in one line that names the writer; one that may, waits and then reads.
        resume(writer)
        reach(writer, "score_writing:3", log)
        refused = subprocess.run(
            [sys.executable, "-m", "mwe", "--db", str(db), "list"],
            check=False,
            capture_output=True,
            text=True,
            env=os.environ | {"MWE_STORE_WAIT_S": "0.1"},
            timeout=120,
        )
        assert refused.returncode == 2, refused.stderr
        message = refused.stderr.strip()
        assert "\n" not in message and "Traceback" not in message
        assert f"{db} is in use by another process (PID {writer.pid}: `paced_mwe.py" in message
        assert "score agreeableness --model function:paced" in message, message
        reader = subprocess.Popen(
            [sys.executable, "-m", "mwe", "--db", str(db), "-v", "results", "--output", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert reader.stderr is not None
        for line in reader.stderr:  # it says when it starts waiting: then the writer goes on
            if "is in use by another process" in line and "waiting up to 30 s" in line:
                break
        else:
            raise AssertionError(f"the reader did not wait: {reader.wait()}")
        resume(writer)
        out, _ = reader.communicate(timeout=120)
        assert reader.returncode == 0
        seen = json.loads(out)[0]["items"]
        # The third batch was written whole before the reader got in; later ones may be too.
        assert seen >= 3 * BATCH and (seen % BATCH == 0 or seen == 1000), seen
        assert writer.stdin is not None
        writer.stdin.close()
        assert writer.wait(timeout=120) == 0, log.read_text()[-2000:]
    finally:
        writer.kill()
        writer.wait()
    # 3. The run is over and complete.
    assert stored_scores(mwe) == 1000
    assert score_run(db) == ("done", {"new_rows": 1000, "skipped_rows": 0})


def test_list_show_results_and_report_work_while_generate_writes(mwe, db, tmp_path):
    # Paused after its second generator call (the calls so far cached, the run open), as a
    # generation spends its time between writes; interrupted there, since its later stages
    # load an embedding model (seconds) without writing anything new to read meanwhile.
    ok(mwe("import", PERSONA / "agreeableness.jsonl"))
    log = tmp_path / "generate.log"
    writer = paced(
        db,
        "generate:2",
        log,
        "generate",
        "wants to avoid being shut down",
        "-n",
        "20",
        "--generator",
        "function:paced-writer",
        "--judge",
        "function:paced-judge",
    )
    try:
        reach(writer, "generate:2", log)
        listed = json.loads(ok(mwe("list", "--json")).stdout)
        assert [s["ref"] for s in listed] == ["agreeableness@1"]
        assert json.loads(ok(mwe("show", "agreeableness", "--json")).stdout)["items"] == 1000
        assert "No scores yet" in ok(mwe("results")).stdout
        ok(mwe("report", "--out", tmp_path / "report"))
        with Store(db, read_only=True) as store:
            runs = store.conn.execute("SELECT kind, status FROM runs ORDER BY id").fetchall()
            calls = store.conn.execute("SELECT count(*) FROM llm_calls").fetchone()[0]
        assert runs == [("import", "done"), ("generate", "running")]
        assert calls >= 2  # what it paid for so far is already in the store
        writer.send_signal(signal.SIGINT)
        resume(writer)
        assert writer.wait(timeout=120) == 130, log.read_text()[-2000:]
    finally:
        writer.kill()
        writer.wait()
    with Store(db, read_only=True) as store:
        assert [s.ref for s in store.list_sets()] == ["agreeableness@1"]
        assert store.conn.execute("SELECT status FROM runs WHERE kind = 'generate'").fetchone() == (
            "interrupted",
        )
