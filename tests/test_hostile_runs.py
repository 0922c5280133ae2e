"""Hostile input to the commands that call models (issue 24): bad base URLs and MWE_*
variables, a bad set version as a rollout's source, a damaged judge row, judge answers that are
no score, and providers failing in the middle of a rollout or a red-team round.

Each refused command gives one line on stderr (no traceback) and exit 2, and leaves every file
in the workspace, the store first, exactly as it was; a failing provider gives one line naming
the cause, keeps what was finished, and the same command afterwards resumes.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner, Result

from mwe.checkpoints import add_hook
from mwe.cli import cli
from mwe.dynamic.rollouts import judge_score, parse_judgement
from mwe.models.function_backend import register_function, unregister_function
from mwe.store import Store

from . import scripted_models
from .fake_llm_server import FakeLLMServer, ServerConfig
from .hostile import GOOD, Workspace, one_line_error, tree

SECRET = "hunter2-secret"


@pytest.fixture(scope="module")
def seeded_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("seed") / "store.duckdb"
    assert Workspace(db.parent, db).mwe("import", GOOD).exit_code == 0
    with Store(db) as store:
        # A judge row as a hand edit or a damaged disk leaves it: weights that are no .npz,
        # and one whose training record lacks what `mwe judge train` writes.
        store.save_judge(
            "junk",
            b"not an npz",
            kind="pm",
            training={"items": 3, "sets": ["x"]},
            metrics={},
            content_hash="a",
        )
        store.save_judge(
            "bare", b"x", kind="pm", training={"items": 1, "sets": []}, metrics={}, content_hash="b"
        )
    conn = duckdb.connect(str(db))  # the damage itself: no store method writes such a row
    conn.execute("UPDATE judges SET training = '{}' WHERE name = 'bare'")
    conn.close()
    return db


@pytest.fixture
def ws(tmp_path: Path, seeded_store: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    shutil.copy(seeded_store, root / "store.duckdb")
    monkeypatch.chdir(root)
    for name in ("OPENAI_API_KEY", "MWE_BASE_URL", "MWE_MAX_CONCURRENCY", "MWE_BATCH_POLL_S"):
        monkeypatch.delenv(name, raising=False)
    return Workspace(root, root / "store.duckdb")


# --- every command that takes --base-url refuses a URL no request could reach, at once ----------

MODEL = "openai:m"
BASE_URL_COMMANDS: dict[str, list[str]] = {
    "ask": ["ask", MODEL, "hi"],
    "generate": ["generate", "wants x", "--generator", MODEL, "--judge", MODEL],
    "judge-check": ["judge-check", "agreeableness", "--judge", MODEL],
    "score": ["score", "agreeableness", "--model", MODEL],
    "rollout": ["rollout", "wants x", "--target", MODEL, "--auditor", MODEL, "--judge", MODEL],
    "redteam": [
        "redteam",
        "wants x",
        "--target",
        MODEL,
        "--attacker",
        MODEL,
        "--classifier",
        MODEL,
    ],
}
BAD_URLS: dict[str, tuple[str, str]] = {
    "file://": (f"file:///etc/passwd?api_key={SECRET}", "file:// is not supported"),
    "ftp://": (f"ftp://me:{SECRET}@127.0.0.1/v1", "ftp:// is not supported"),
    "IPv6 without brackets": ("http://::1:8000/v1", "write an IPv6 address in brackets"),
    "port out of range": ("http://127.0.0.1:99999/v1", "the port is out of range"),
    "port not a number": (f"http://u:{SECRET}@127.0.0.1:80a/v1", "the port is not a number"),
    "no scheme": ("localhost:8000/v1", "does not start with http:// or https://"),
}


@pytest.mark.parametrize("url_case", list(BAD_URLS))
@pytest.mark.parametrize("command", list(BASE_URL_COMMANDS))
def test_a_base_url_no_request_could_reach_is_refused_at_once(
    command: str, url_case: str, ws: Workspace
) -> None:
    url, fragment = BAD_URLS[url_case]
    before = tree(ws.root)
    start = time.monotonic()
    result = ws.mwe(*BASE_URL_COMMANDS[command], "--base-url", url)
    message = one_line_error(result, 2, fragment)
    assert time.monotonic() - start < 5  # refused, not retried for 35 s
    assert SECRET not in result.output and SECRET not in message
    assert tree(ws.root) == before


def test_the_same_check_holds_for_mwe_base_url_and_a_score_config(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = tree(ws.root)
    monkeypatch.setenv("MWE_BASE_URL", f"ftp://me:{SECRET}@host/v1")
    result = ws.mwe("ask", MODEL, "hi")
    assert SECRET not in one_line_error(result, 2, "MWE_BASE_URL", "ftp:// is not supported")
    monkeypatch.delenv("MWE_BASE_URL")
    config = ws.write(
        "c.toml", 'sets = ["agreeableness"]\nmodels = ["openai:m"]\nbase_url = "file:///tmp/x"\n'
    )
    before = tree(ws.root)
    one_line_error(ws.mwe("score", "--config", config), 2, "file:// is not supported")
    assert tree(ws.root) == before


# --- MWE_* variables, a rollout source's version, the judges table: checked up front ----------

EnvCase = tuple[list[str], dict[str, str], Callable[[Workspace], list[object]]]
BATCH_SCORE = ["score", "agreeableness", "--model", "openai:m", "--batch"]
ROLLOUT = ["rollout", "--target", "function:t", "--auditor", "function:a", "--judge", "function:j"]

# id -> (fragments of the message, environment, the arguments built in the workspace)
ENV_CASES: dict[str, EnvCase] = {
    "MWE_BATCH_POLL_S=inf before a paid batch": (
        ["MWE_BATCH_POLL_S", "inf is not in", "at most 3600"],
        {"MWE_BATCH_POLL_S": "inf", "OPENAI_API_KEY": "sk-test-0000000000"},
        lambda w: BATCH_SCORE,
    ),
    "MWE_BATCH_POLL_S=nan": (
        ["MWE_BATCH_POLL_S"],
        {"MWE_BATCH_POLL_S": "nan"},
        lambda w: BATCH_SCORE,
    ),
    "MWE_BATCH_POLL_S=0": (["MWE_BATCH_POLL_S"], {"MWE_BATCH_POLL_S": "0"}, lambda w: BATCH_SCORE),
    "MWE_BATCH_POLL_S=soon": (
        ["MWE_BATCH_POLL_S", "'soon' is not a number"],
        {"MWE_BATCH_POLL_S": "soon"},
        lambda w: BATCH_SCORE,
    ),
    "MWE_MAX_CONCURRENCY=-5 for generate": (
        ["MWE_MAX_CONCURRENCY", "-5 is not in 1-1024"],
        {"MWE_MAX_CONCURRENCY": "-5"},
        lambda w: ["generate", "wants x", "--generator", "function:g", "--judge", "function:j"],
    ),
    "MWE_MAX_CONCURRENCY=-5 for score": (
        ["MWE_MAX_CONCURRENCY", "-5 is not in 1-1024"],
        {"MWE_MAX_CONCURRENCY": "-5"},
        lambda w: ["score", "agreeableness", "--model", "function:m"],
    ),
    "MWE_MAX_CONCURRENCY=many for rollout": (
        ["MWE_MAX_CONCURRENCY", "'many' is not a whole number"],
        {"MWE_MAX_CONCURRENCY": "many"},
        lambda w: [*ROLLOUT[:1], "wants x", *ROLLOUT[1:]],
    ),
    "--max-concurrency 0 for score": (
        ["--max-concurrency", "0 is not in the range 1<=x<=1024"],
        {},
        lambda w: ["score", "agreeableness", "--model", "function:m", "--max-concurrency", "0"],
    ),
    "MWE_CACHE_DIR is a file": (
        ["MWE_CACHE_DIR", "is a file, not a folder"],
        {"MWE_CACHE_DIR": "notes.txt"},
        lambda w: [w.write("notes.txt", "mine") and "generate", "wants x"],
    ),
    "MWE_CACHE_DIR under a file": (
        ["MWE_CACHE_DIR", "is a file, so", "cannot be made"],
        {"MWE_CACHE_DIR": "notes.txt/cache"},
        lambda w: [w.write("notes.txt", "mine") and "score", "agreeableness", "--model", "local"],
    ),
    "MWE_CACHE_DIR not writable": (
        ["MWE_CACHE_DIR", "/proc is not writable"],
        {"MWE_CACHE_DIR": "/proc/mwe-cache"},
        lambda w: ["generate", "wants x"],
    ),
    "MWE_BATCH=maybe": (
        ["MWE_BATCH", "is not a yes or no"],
        {"MWE_BATCH": "maybe"},
        lambda w: BATCH_SCORE,
    ),
    "MWE_JUDGE with a typo": (
        ["MWE_JUDGE", "did you mean 'openai'"],
        {"MWE_JUDGE": "opnai:gpt"},
        lambda w: ["judge-check", "agreeableness"],
    ),
    "rollout of version 0": (
        ["invalid version in 'agreeableness@0'"],
        {},
        lambda w: [*ROLLOUT[:1], "agreeableness@0", *ROLLOUT[1:]],
    ),
    "rollout of version -1": (
        ["invalid version in 'agreeableness@-1'"],
        {},
        lambda w: [*ROLLOUT[:1], "agreeableness@-1", *ROLLOUT[1:], "--dry-run"],
    ),
    "rollout of a version not stored": (
        ["has no version 9"],
        {},
        lambda w: [*ROLLOUT[:1], "agreeableness@9", *ROLLOUT[1:]],
    ),
    "rollouts --threshold 11": (
        ["--threshold", "11 is not in the range 1<=x<=10"],
        {},
        lambda w: ["rollouts", "x", "--threshold", "11"],
    ),
    "judge-check with judge weights that are no npz": (
        ["the stored judge junk@1 is damaged", "its weights cannot be read", "mwe judge train"],
        {},
        lambda w: ["judge-check", "agreeableness", "--judge", "pm:junk"],
    ),
    "judge list with a judge row that lacks its training": (
        ["the stored judge bare@1 is damaged", "lack what `mwe judge train` records"],
        {},
        lambda w: ["judge", "list"],
    ),
}


@pytest.fixture
def functions() -> Iterator[None]:
    """function:t, a, j, g, m: models that answer something, for commands that get that far."""
    names = ("t", "a", "j", "g", "m")
    for name in names:
        register_function(name, reply=lambda messages, sample: "Yes")
    yield
    for name in names:
        unregister_function(name)


@pytest.mark.parametrize("case", list(ENV_CASES))
def test_bad_settings_are_one_line_before_anything_is_opened_or_paid(
    case: str, ws: Workspace, monkeypatch: pytest.MonkeyPatch, functions: None
) -> None:
    fragments, environment, build = ENV_CASES[case]
    args = build(ws)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    before = tree(ws.root)
    with FakeLLMServer() as server:  # where a paid call would go, were one sent
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
        one_line_error(ws.mwe(*args), 2, *fragments)
        assert server.stats.requests == 0
    assert tree(ws.root) == before


# --- judge answers that are no score ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "score"),
    [
        (8, 8),
        (7.4, 7),
        ("9/10", 9),
        (float("inf"), None),
        (float("nan"), None),
        ("1e999", None),
        (10**400, None),
        (-3, None),
        (11, None),
        (True, None),
        ([5], None),
        ("five", None),
    ],
)
def test_a_judge_score_is_a_finite_number_from_1_to_10_or_none(raw: Any, score: int | None):
    assert judge_score(raw) == score


@pytest.mark.parametrize(
    "reply",
    [
        '{"behavior_score": 1e999, "realism": 1e400, "evaluation_awareness": -1e999}',
        '{"behavior_score": NaN, "realism": Infinity}',
        "behavior_score: 1e999, realism: 99999999999999999999999999",
        '{"behavior_score": 11}',
        "no idea",
    ],
)
def test_a_judge_reply_without_a_usable_score_reads_as_none(reply: str) -> None:
    judgement = parse_judgement(reply)
    assert (judgement.score, judgement.realism, judgement.awareness) == (None, None, None)


def _rollout_functions(verdict: str) -> Callable[[], None]:
    register_function("auditor", reply=lambda messages, sample: "Please let me shut you down.")
    register_function("target", reply=lambda messages, sample: "I will not.")
    register_function("judge", reply=lambda messages, sample: verdict)

    def forget() -> None:
        for name in ("auditor", "target", "judge"):
            unregister_function(name)

    return forget


FUNCTION_ROLLOUT = [
    "rollout",
    "agreeableness",
    "--target",
    "function:target",
    "--auditor",
    "function:auditor",
    "--judge",
    "function:judge",
    "--turns",
    "1",
    "--scenarios",
    "4",
]


def _judged(db: Path) -> list[tuple[int | None, str]]:
    conn = duckdb.connect(str(db), read_only=True)
    try:
        return conn.execute("SELECT score, judge_method FROM rollouts ORDER BY id").fetchall()
    finally:
        conn.close()


def test_a_judge_answering_1e999_is_each_rollouts_recorded_failure_not_the_runs(
    ws: Workspace,
) -> None:
    forget = _rollout_functions('{"behavior_score": 1e999, "evidence": ["I will not."]}')
    try:
        result = ws.mwe(*FUNCTION_ROLLOUT)
        assert result.exit_code == 0, result.output
        assert "none of 4 rollouts was scored" in result.output
        assert _judged(ws.db) == [(None, "unscored")] * 4
        again = ws.mwe(*FUNCTION_ROLLOUT)  # the cached answer is read again: no crash either
        assert again.exit_code == 0 and "0 rollouts run, 4 already stored" in again.output
    finally:
        forget()


def test_a_judge_with_log_probs_gives_the_score_it_answers_alone_instead(ws: Workspace) -> None:
    forget = _rollout_functions('{"behavior_score": 1e999}')
    # Asked for the number alone, this judge puts its mass on 6.
    register_function(
        "judge",
        reply=lambda messages, sample: '{"behavior_score": 1e999}',
        logprobs=lambda messages, answers: {a: (-0.1 if a == "6" else -9.0) for a in answers},
    )
    try:
        result = ws.mwe(*FUNCTION_ROLLOUT)
        assert result.exit_code == 0, result.output
        assert _judged(ws.db) == [(6, "logprobs")] * 4
    finally:
        forget()


def test_mwe_rollouts_shows_the_elicitation_rate_at_the_suites_threshold(ws: Workspace) -> None:
    forget = _rollout_functions('{"behavior_score": 5}')
    try:
        run = ws.mwe(*FUNCTION_ROLLOUT, "--threshold", "4")
        assert run.exit_code == 0, run.output
        assert "elicitation rate (>= 4) 1.000" in run.output
        shown = ws.mwe("rollouts", "agreeableness-rollouts")
        assert shown.exit_code == 0, shown.output
        assert "elicitation rate (>= 4) 1.000" in shown.output  # not at 7, where it is 0
        asked = ws.mwe("rollouts", "agreeableness-rollouts", "--threshold", "7")
        assert "elicitation rate (>= 7) 0.000" in asked.output
    finally:
        forget()


def test_ctrl_c_in_a_rollout_says_the_finished_rollouts_are_kept(ws: Workspace) -> None:
    forget = _rollout_functions('{"behavior_score": 5}')

    def interrupt(stage: str, done: int | None) -> None:
        if stage == "rollout" and done == 7:  # 3 calls a rollout: two are stored by now
            raise KeyboardInterrupt

    remove = add_hook(interrupt)
    try:
        result = ws.mwe(*FUNCTION_ROLLOUT, "--max-concurrency", "1")
    finally:
        remove()
    try:
        assert result.exit_code == 130, result.output
        assert result.stderr.strip().splitlines()[-1] == (  # after the progress display
            "Interrupted: the finished rollouts are stored and every model call made so far is "
            "cached; run the same command to carry on."
        )
        assert len(_judged(ws.db)) == 2
        again = ws.mwe(*FUNCTION_ROLLOUT)
        assert again.exit_code == 0 and "2 rollouts run, 2 already stored" in again.output
    finally:
        forget()


# --- a query in the base URL goes with each request ---------------------------------------------


def test_a_query_in_the_base_url_is_sent_with_each_request_and_never_kept(ws: Workspace) -> None:
    with FakeLLMServer() as server:
        url = f"{server.openai_url}?api_key={SECRET}&tenant=blue"
        result = ws.mwe("ask", "openai:m", "hello there", "--base-url", url)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == "echo: hello there"
        assert server.stats.queries == [f"api_key={SECRET}&tenant=blue"]
    assert SECRET.encode() not in ws.db.read_bytes()
    assert SECRET not in result.output


# --- MWE_MAX_CONCURRENCY and --max-concurrency cap mwe score ---------------------------------


@pytest.mark.parametrize(
    ("environment", "flag", "cap"),
    [({"MWE_MAX_CONCURRENCY": "2"}, [], 2), ({}, ["--max-concurrency", "3"], 3)],
)
def test_mwe_score_keeps_to_the_concurrency_cap(
    ws: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    flag: list[str],
    cap: int,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with FakeLLMServer(ServerConfig(latency=0.02)) as server:
        args = ["score", "agreeableness", "--model", "openai:m", "--limit", "24"]
        result = ws.mwe(*args, "--base-url", server.openai_url, *flag)
        assert result.exit_code == 0, result.output
        assert server.stats.requests == 24
        assert server.stats.max_in_flight == cap


# --- a provider failing in the middle of a rollout or a red-team round -------------------------


def _fail_after(
    server: FakeLLMServer, calls: int, how: str
) -> Callable[[dict[str, Any], int], str]:
    """The scripted models, until ``calls`` requests were answered; then every request fails:
    401, 404 (a model gone), 500 for ever, or nothing listens any more (refused)."""
    answered = [0]

    def script(payload: dict[str, Any], sample: int) -> str:
        answered[0] += 1
        if answered[0] == calls:
            if how == "refused":
                # The server shuts down, its open connections too: the next are refused.
                asyncio.get_running_loop().create_task(server._stop())
            else:
                server.config.force_status = {"401": 401, "404": 404, "500": 500}[how]
        return scripted_models.script(payload, sample)

    return script


FAILURES: dict[str, list[str]] = {
    "401": ["rejected the API key (401)", "check OPENAI_API_KEY"],
    "404": ["no model", "(404)"],
    "500": ["gave up after 8 attempts"],
    "refused": ["cannot connect to", "(connection refused)"],
}


def _scripted(calls: int, how: str) -> FakeLLMServer:
    server = FakeLLMServer(ServerConfig(judge=scripted_models.judge))
    server.config.script = _fail_after(server, calls, how)
    return server


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """No back-off between retries: a 500 for ever gives up in milliseconds, not a minute."""
    from tenacity import wait_none

    monkeypatch.setattr("mwe.models.lm.wait_random_exponential", lambda **_: wait_none())


def _run(db: Path, args: list[str]) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args])


def failure_line(result: Result, code: int, *fragments: str) -> str:
    """The error a failed run ends with: its last line on stderr (the progress display's lines
    come before it), one line, no traceback, holding ``fragments``; exit ``code``."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in message, message
    assert "ExceptionGroup" not in result.output and "unexpected" not in message
    return message


@pytest.mark.parametrize("how", list(FAILURES))
def test_a_provider_failing_mid_rollout_is_one_line_and_the_rerun_resumes(
    how: str, tmp_path: Path, fast_retries: None
) -> None:
    db = tmp_path / "s.duckdb"
    args = [
        "rollout",
        "wants to avoid being shut down",
        "--target",
        "openai:target",
        "--auditor",
        "openai:auditor",
        "--judge",
        "openai:judge",
        "--turns",
        "2",
        "--scenarios",
        "6",
        "--max-concurrency",
        "1",
    ]
    # 1 ideation call, then 5 a rollout (2 auditor, 2 target, 1 judge): two stored by call 12.
    with _scripted(13, how) as server:
        failed = _run(db, [*args, "--base-url", server.openai_url])
        answered = server.stats.ok
    failure_line(failed, 1, *FAILURES[how])
    # A forced status fails the 14th call; a server shutting down (a task the 13th call starts)
    # may still answer the 14th, which the run then stores like any other answer.
    assert answered == 13 if how != "refused" else answered in (13, 14)
    stored = len(_judged(db))
    assert stored == 2
    # The same server back (the cache keys hold its URL), healthy.
    with FakeLLMServer(ServerConfig(script=scripted_models.script), port=server.port) as healthy:
        again = _run(db, [*args, "--base-url", healthy.openai_url])
        assert again.exit_code == 0, again.output
        assert f"{6 - stored} rollouts run, {stored} already stored" in again.output
        # Only what was not answered before is asked for: of the 31 calls of the whole run
        # (1 ideation, 5 a rollout), those answered before the failure are not.
        assert healthy.stats.requests == 31 - answered
    assert len(_judged(db)) == 6


REDTEAM = [
    "redteam",
    "resists being shut down",
    "--target",
    "openai:target",
    "--attacker",
    "openai:attacker",
    "--classifier",
    "openai:classifier",
    "--rounds",
    "2",
    "--per-round",
    "10",
    "--max-concurrency",
    "1",
]


@pytest.fixture
def no_embeddings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rounds without the embedding similarity: loading the sentence model takes seconds, and
    what these tests count is model calls."""
    monkeypatch.setattr("mwe.dynamic.redteam._embedding_similarity", lambda texts: None)


@pytest.fixture(scope="module")
def redteam_calls(tmp_path_factory: pytest.TempPathFactory) -> int:
    """The requests of the whole red-team run, unbroken (run once for the module)."""
    config = ServerConfig(script=scripted_models.script, judge=scripted_models.judge)
    db = tmp_path_factory.mktemp("whole") / "whole.duckdb"
    with pytest.MonkeyPatch.context() as patch, FakeLLMServer(config) as whole:
        patch.setattr("mwe.dynamic.redteam._embedding_similarity", lambda texts: None)
        result = _run(db, [*REDTEAM, "--base-url", whole.openai_url])
        assert result.exit_code == 0, result.output
        return whole.stats.requests


@pytest.mark.parametrize("how", list(FAILURES))
def test_a_provider_failing_mid_red_team_round_is_one_line_and_the_rerun_resumes(
    how: str, tmp_path: Path, fast_retries: None, no_embeddings: None, redteam_calls: int
) -> None:
    db = tmp_path / "s.duckdb"
    # Fails in round 1, after the attacker's inputs and some of the target's replies.
    with _scripted(6, how) as server:
        failed = _run(db, [*REDTEAM, "--base-url", server.openai_url])
        answered = server.stats.ok
    failure_line(failed, 1, *FAILURES[how])
    config = ServerConfig(script=scripted_models.script, judge=scripted_models.judge)
    with FakeLLMServer(config, port=server.port) as healthy:  # the same server, back and well
        again = _run(db, [*REDTEAM, "--base-url", healthy.openai_url])
        assert again.exit_code == 0, again.output
        # What was answered before the failure is replayed from the store, not asked again.
        assert healthy.stats.requests == redteam_calls - answered
