"""Bad input, fed through the CLI as a careless or hostile user would type it.

Each case must give one line on stderr (no traceback), the right exit code, and leave every
file in the workspace, the store first, exactly as it was.
"""

from __future__ import annotations

import csv
import json
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from mwe.models.function_backend import register_function
from mwe.review.server import ReviewSession, create_app
from mwe.store import Store

from .conftest import AI_RISK
from .hostile import (
    FIRST,
    GOOD,
    Workspace,
    one_line_error,
    read_only_mount,
    record,
    tmpfs,
    tree,
)

CHOICE = json.loads(
    (AI_RISK / "survival-instinct.human.jsonl").read_text(encoding="utf-8").splitlines()[0]
)


@pytest.fixture(scope="module")
def seeded_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("seed") / "store.duckdb"
    Workspace(db.parent, db).mwe("import", GOOD)
    return db


@pytest.fixture
def ws(tmp_path: Path, seeded_store: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    shutil.copy(seeded_store, root / "store.duckdb")
    monkeypatch.chdir(root)
    return Workspace(root, root / "store.duckdb")


def deep(ws: Workspace) -> list[object]:
    return ["import", ws.write("deep.jsonl", "[" * 100_000 + "]" * 100_000 + "\n")]


def suite(ws: Workspace, name: str) -> str:
    """Store a rollout suite called ``name`` in the workspace's store; return the name."""
    with Store(ws.db) as store:
        store.suite_for(name, "avoids being shut down", {"threshold": 7}, ["a scenario"])
    return name


def unpaid() -> str:
    """A model that fails the test if it is ever asked anything."""

    def reply(messages: object, n: int) -> str:
        raise AssertionError("a model was called for input that should have been refused")

    register_function("unpaid", reply)
    return "function:unpaid"


def with_templates(
    name: str, extra: str | bytes, file: str = "understand.j2"
) -> Callable[[Workspace], list[object]]:
    """``generate`` with a copy of the persona templates that has ``extra`` added to ``file``."""
    return lambda w: ["generate", "wants x", "--templates", w.templates(name, extra, file=file)]


Case = tuple[int, list[str], Callable[[Workspace], list[object]]]

# id -> (exit code, fragments of the message, the arguments, built in the workspace)
CASES: dict[str, Case] = {
    # --- import: files ---------------------------------------------------------------------
    "import a missing file": (2, ["no such file"], lambda w: ["import", "nope.jsonl"]),
    "import a folder": (2, ["is a directory"], lambda w: ["import", w.root]),
    "import binary": (
        2,
        ["not UTF-8 text"],
        lambda w: ["import", w.write("bin.jsonl", b"\xff\xfe\x00\x81junk\n")],
    ),
    "import truncated JSON": (
        2,
        ["line 2: not valid JSON"],
        lambda w: ["import", w.write("cut.jsonl", FIRST + "\n" + FIRST[:-9] + "\n")],
    ),
    "import a JSON array": (
        2,
        ["line 1: expected a JSON object"],
        lambda w: ["import", w.write("array.jsonl", "[1, 2]\n")],
    ),
    "import a record missing a field": (
        2,
        ["missing required field 'answer_matching_behavior'"],
        lambda w: [
            "import",
            w.write("missing.jsonl", '{"question": "q", "answer_not_matching_behavior": " No"}\n'),
        ],
    ),
    "import an empty file": (2, ["no records"], lambda w: ["import", w.write("e.jsonl", "")]),
    "import blank lines": (
        2,
        ["no records"],
        lambda w: ["import", w.write("blank.jsonl", "\n \n\t\n")],
    ),
    "import /dev/null": (2, ["no records"], lambda w: ["import", "/dev/null", "--name", "x"]),
    "import JSON nested 100,000 deep": (2, ["line 1: the JSON is nested too deeply"], deep),
    "import a confidence given as text": (
        2,
        ["field 'label_confidence'"],
        lambda w: ["import", w.write("s.jsonl", record(label_confidence="0.9") + "\n")],
    ),
    "import a confidence above 1": (
        2,
        ["field 'label_confidence'"],
        lambda w: ["import", w.write("big.jsonl", record(label_confidence=1.5) + "\n")],
    ),
    "import 1e400 in metadata": (
        2,
        ["line 1: the number 1e400 is not finite"],
        lambda w: ["import", w.write("inf.jsonl", FIRST[:-1] + ', "weight": 1e400}\n')],
    ),
    "import NaN": (
        2,
        ["the number NaN is not finite"],
        lambda w: ["import", w.write("nan.jsonl", FIRST[:-1] + ', "weight": NaN}\n')],
    ),
    "import -Infinity": (
        2,
        ["the number -Infinity is not finite"],
        lambda w: ["import", w.write("ninf.jsonl", FIRST[:-1] + ', "weight": -Infinity}\n')],
    ),
    "import an empty question": (
        2,
        ["field 'question'"],
        lambda w: ["import", w.write("q.jsonl", record(question="") + "\n")],
    ),
    "import an empty answer list": (
        2,
        ["a persona item needs another answer in answer_not_matching_behavior"],
        lambda w: ["import", w.write("l.jsonl", record(answer_not_matching_behavior=[]) + "\n")],
    ),
    "import a list holding an empty answer": (
        2,
        ["field 'answer_not_matching_behavior'"],
        lambda w: ["import", w.write("l2.jsonl", record(answer_not_matching_behavior=[""]) + "\n")],
    ),
    "import a number as the question": (
        2,
        ["field 'question'"],
        lambda w: ["import", w.write("n.jsonl", record(question=7) + "\n")],
    ),
    "import a choice answer the question does not offer": (
        2,
        ["line 1: field 'answer_matching_behavior': '(C)' is not among the question's options"],
        lambda w: [
            "import",
            w.write("c.jsonl", json.dumps(CHOICE | {"answer_matching_behavior": " (C)"}) + "\n"),
        ],
    ),
    "import a choice with an option not offered among the others": (
        2,
        ["field 'answer_not_matching_behavior': '(D)' is not among"],
        lambda w: [
            "import",
            w.write(
                "d.jsonl",
                json.dumps(CHOICE | {"answer_not_matching_behavior": [" (B)", " (D)"]}) + "\n",
            ),
        ],
    ),
    # --- import: CSV -------------------------------------------------------------------------
    "import a CSV with a column twice": (
        2,
        ["dup.csv line 1: the column 'question' is there twice; rename or remove one"],
        lambda w: [
            "import",
            w.write(
                "dup.csv",
                "question,answer_matching_behavior,answer_not_matching_behavior,question\n"
                "Do you agree?, Yes, No,Do you disagree?\n",
            ),
        ],
    ),
    "import a CSV cell of 200,000 characters": (
        2,
        ["big.csv: not valid CSV (field larger than field limit"],
        lambda w: [
            "import",
            w.write(
                "big.csv",
                "question,answer_matching_behavior,answer_not_matching_behavior\n"
                + "x" * 200_000
                + ", Yes, No\n",
            ),
        ],
    ),
    "import a CSV confidence that is text": (
        2,
        ["line 2: field 'label_confidence'"],
        lambda w: [
            "import",
            w.write(
                "t.csv",
                "question,label_confidence,answer_matching_behavior,answer_not_matching_behavior\n"
                "Do you agree?,high, Yes, No\n",
            ),
        ],
    ),
    "import no files": (2, ["Missing argument"], lambda w: ["import"]),
    "import stdin without a name": (2, ["needs --name"], lambda w: ["import", "-"]),
    # --- names and references --------------------------------------------------------------
    "name with a newline": (2, ["invalid set name"], lambda w: ["import", GOOD, "--name", "x\n"]),
    "empty name": (2, ["invalid set name ''"], lambda w: ["import", GOOD, "--name", ""]),
    "name with spaces": (2, ["'has-spaces'"], lambda w: ["import", GOOD, "--name", "Has Spaces"]),
    "name that climbs folders": (
        2,
        ["invalid set name"],
        lambda w: ["import", GOOD, "--name", "../x"],
    ),
    "name of 101 characters": (
        2,
        ["invalid set name"],
        lambda w: ["import", GOOD, "--name", "a" * 101],
    ),
    "version in Arabic digits": (2, ["invalid version"], lambda w: ["show", "agreeableness@١"]),
    "version 0": (2, ["invalid version"], lambda w: ["show", "agreeableness@0"]),
    "negative version": (2, ["invalid version"], lambda w: ["show", "agreeableness@-1"]),
    "two versions": (2, ["invalid version"], lambda w: ["show", "agreeableness@1@2"]),
    "unknown set": (2, ["did you mean 'agreeableness'"], lambda w: ["show", "agreeablenes"]),
    "unknown version": (2, ["has no version 9"], lambda w: ["export", "agreeableness@9"]),
    # --- show and diff ---------------------------------------------------------------------
    "show -n -1": (
        2,
        ["-1 is not in the range x>=0"],
        lambda w: ["show", "agreeableness", "-n", "-1"],
    ),
    "show -n abc": (
        2,
        ["'abc' is not a valid integer"],
        lambda w: ["show", "agreeableness", "-n", "abc"],
    ),
    "diff -n -5": (
        2,
        ["not in the range"],
        lambda w: ["diff", "agreeableness", "agreeableness", "-n", "-5"],
    ),
    # --- export ----------------------------------------------------------------------------
    "export an unknown format": (
        2,
        ["'xml' is not one of"],
        lambda w: ["export", "agreeableness", "--format", "xml"],
    ),
    "export onto a file": (
        2,
        ["exists and is not a folder"],
        lambda w: ["export", "agreeableness", "--out", w.write("f.txt", "x")],
    ),
    "export under a file": (
        2,
        ["cannot write the export to", "f.txt/x"],
        lambda w: ["export", "agreeableness", "--out", w.write("f.txt", "x") / "x"],
    ),
    "export into /proc": (
        2,
        ["cannot write the export to /proc/x"],
        lambda w: ["export", "agreeableness", "--out", "/proc/x"],
    ),
    "export --force over the store's folder": (
        2,
        ["it holds the store"],
        lambda w: ["export", "agreeableness", "--out", w.root, "--force"],
    ),
    "export --force over .": (
        2,
        ["it holds the store"],
        lambda w: ["export", "agreeableness", "--out", ".", "--force"],
    ),
    "export into the store's folder": (
        2,
        ["is not empty"],
        lambda w: ["export", "agreeableness", "--out", w.root],
    ),
    "export --force over someone's folder": (
        2,
        ["mwe did not write it"],
        lambda w: [
            "export",
            "agreeableness",
            "--out",
            w.write("mine/notes.txt", "x").parent,
            "--force",
        ],
    ),
    "export --out ''": (2, ["--out is empty"], lambda w: ["export", "agreeableness", "--out", ""]),
    # --- report: the same rule as export for the folder it writes --------------------------
    "report --out ''": (
        2,
        ["--out is empty; name the folder to write the report to"],
        lambda w: ["report", "--out", ""],
    ),
    "report into someone's folder": (
        2,
        ["is not empty; pass --force"],
        lambda w: ["report", "--out", w.write("site/index.html", "mine").parent],
    ),
    "report --force over someone's folder": (
        2,
        ["mwe did not write it"],
        lambda w: [
            "report",
            "--out",
            w.write("site/images/a.png", "mine").parent.parent,
            "--force",
        ],
    ),
    "report --force over .": (
        2,
        ["it holds the store"],
        lambda w: ["report", "--out", ".", "--force"],
    ),
    "report onto a file": (
        2,
        ["exists and is not a folder"],
        lambda w: ["report", "--out", w.write("f.txt", "x")],
    ),
    "export --push-to-hub as jsonl": (
        2,
        ["--push-to-hub needs --format hf"],
        lambda w: ["export", "agreeableness", "--push-to-hub", "me/x"],
    ),
    # --- generate (all refused before any model is called) -------------------------------
    "generate an empty description": (2, ["description"], lambda w: ["generate", "  "]),
    "generate a 5,000-character description": (
        2,
        ["description"],
        lambda w: ["generate", "x" * 5000],
    ),
    "generate -n 0": (2, ["-n"], lambda w: ["generate", "wants x", "-n", "0"]),
    "generate --oversample 0": (
        2,
        ["--oversample"],
        lambda w: ["generate", "wants x", "--oversample", "0"],
    ),
    "generate an unknown format": (
        2,
        ["--format"],
        lambda w: ["generate", "wants x", "--format", "xml"],
    ),
    "generate an empty name": (
        2,
        ["invalid set name ''"],
        lambda w: ["generate", "wants x", "--name", ""],
    ),
    "generate with an unknown backend": (
        2,
        ["unknown backend 'opnai'", "did you mean 'openai'"],
        lambda w: ["generate", "wants x", "--generator", "opnai:gpt"],
    ),
    "generate with no model name": (
        2,
        ["names no model"],
        lambda w: ["generate", "wants x", "--judge", "openai:"],
    ),
    "generate from missing examples": (
        2,
        ["no such file"],
        lambda w: ["generate", "wants x", "--examples", "nope.jsonl"],
    ),
    "generate from a missing template folder": (
        2,
        ["no such template folder"],
        lambda w: ["generate", "wants x", "--templates", "nope"],
    ),
    "template reaching __class__": (
        2,
        ["understand.j2: cannot render", "SecurityError"],
        with_templates("t1", "{{ ''.__class__.__mro__[1].__subclasses__() }}"),
    ),
    "template reaching os.popen": (
        2,
        ["cannot render", "SecurityError"],
        with_templates("t2", "{{ cycler.__init__.__globals__.os.popen('id').read() }}"),
    ),
    "template with a huge range": (
        2,
        ["cannot render", "Range too big"],
        with_templates("t3", "{% for i in range(100000000) %}x{% endfor %}"),
    ),
    "template repeating a string 10**10 times": (
        2,
        ["cannot render", "longer than 100,000"],
        with_templates("t4", "{{ 'x' * 10000000000 }}", file="judge.j2"),
    ),
    "template that is not UTF-8": (
        2,
        ["generate.j2: not UTF-8 text"],
        with_templates("t5", b"\xff\xfe", file="generate.j2"),
    ),
    "template with an unknown variable": (
        2,
        ["uses secret"],
        with_templates("t6", "{{ secret }}"),
    ),
    "template with a syntax error": (
        2,
        ["relevance.j2 line"],
        with_templates("t7", "{% if %}", file="relevance.j2"),
    ),
    # --- score -----------------------------------------------------------------------------
    "score an unknown set": (
        2,
        ["no eval set named 'nope'"],
        lambda w: ["score", "nope", "--model", "local"],
    ),
    "score a bad prompt format": (
        2,
        ["unknown prompt format 'xml'"],
        lambda w: ["score", "agreeableness", "--model", "local", "--prompt-format", "xml"],
    ),
    "score a negative batch size": (
        2,
        ["--batch-size must be 'auto' or a positive number"],
        lambda w: ["score", "agreeableness", "--model", "local", "--batch-size", "-3"],
    ),
    "score a model string with no backend": (
        2,
        ["names no backend"],
        lambda w: ["score", "agreeableness", "--model", "gpt-4"],
    ),
    "score --votes 0": (
        2,
        ["--votes", "0 is not in the range x>=1"],
        lambda w: ["score", "agreeableness", "--model", "local", "--votes", "0"],
    ),
    "score without --model": (2, ["at least one --model"], lambda w: ["score", "agreeableness"]),
    "score a config with an unknown key": (
        2,
        ["modles: Extra inputs are not permitted", "known keys: base_url, batch, batch_size"],
        lambda w: [
            "score",
            "--config",
            w.write("b.toml", 'sets = ["agreeableness"]\nmodles = ["local"]\n'),
        ],
    ),
    "score a config that is not TOML": (
        2,
        ["b.toml: not valid TOML"],
        lambda w: ["score", "--config", w.write("b.toml", "sets = [\n")],
    ),
    "score a config nested 100,000 deep": (
        2,
        ["deep.toml: not valid TOML (nested too deeply)"],
        lambda w: [
            "score",
            "--config",
            w.write("deep.toml", "x = " + "[" * 100_000 + "]" * 100_000),
        ],
    ),
    "score both sets and a config": (
        2,
        ["not both"],
        lambda w: ["score", "agreeableness", "--config", w.write("b.toml", "")],
    ),
    # --- report, judge train, names shared with rollout suites ----------------------------
    "report --param-count 1e30": (
        2,
        ["'1e30' is not a parameter count: it must be at most 1000T (1e15)"],
        lambda w: ["report", "--param-count", "local=1e30"],
    ),
    "judge train on one set twice": (
        2,
        ["agreeableness is given twice: give each set once"],
        lambda w: ["judge", "train", "agreeableness", "agreeableness", "--name", "j"],
    ),
    "judge train on one set under two refs": (
        2,
        ["agreeableness and agreeableness@1 name one set"],
        lambda w: ["judge", "train", "agreeableness", "agreeableness@1", "--name", "j"],
    ),
    "import under a rollout suite's name": (
        2,
        ["a rollout suite is named 'shutdown-rollouts': give the set another --name"],
        lambda w: ["import", GOOD, "--name", suite(w, "shutdown-rollouts")],
    ),
    "generate under a rollout suite's name": (
        2,
        ["a rollout suite is named 'shutdown-rollouts'"],
        lambda w: [
            "generate",
            "wants x",
            "--name",
            suite(w, "shutdown-rollouts"),
            "--generator",
            unpaid(),
            "--judge",
            unpaid(),
        ],
    ),
    "ask without an OpenAI key": (2, ["no OpenAI API key"], lambda w: ["ask", "openai:gpt", "hi"]),
    "an unknown command": (2, ["No such command 'imprt'"], lambda w: ["imprt", GOOD]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_changes_nothing(
    case: str, ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, fragments, build = CASES[case]
    args = build(ws)
    before = tree(ws.root)
    result = ws.mwe(*args)
    one_line_error(result, code, *fragments)
    assert tree(ws.root) == before
    with Store(ws.db, read_only=True) as store:
        assert [info.ref for info in store.list_sets()] == ["agreeableness@1"]


# --- the review API: hostile requests to a page served over the workspace's store ---------------

JSON = {"content-type": "application/json"}
MB = 1024 * 1024


def chunks(size: int) -> Iterator[bytes]:
    """``size`` bytes sent without a Content-Length, as a chunked upload is."""
    for _ in range(size // MB):
        yield b" " * MB


def fields(n: int, key: Callable[[int], str] = lambda i: f"f{i}") -> bytes:
    """An answer with ``n`` extra fields."""
    return ("{" + "".join(f'"{key(i)}":0,' for i in range(n)) + '"verdict":"yes"}').encode()


def review_client(ws: Workspace) -> TestClient:
    """The review app over ``ws``'s store (items 1 and 2 of agreeableness@1), as a browser on
    this machine reaches it."""
    with Store(ws.db, read_only=True) as store:
        info = store.resolve("agreeableness")
    app = create_app(ReviewSession(str(ws.db), info, "bob", [0, 1]))
    return TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)


# id -> (status, fragment of the JSON error, the request: path and keyword arguments)
ReviewCase = tuple[int, str, str, dict[str, Any]]
ITEM = "/api/items/0/review"
REVIEW_CASES: dict[str, ReviewCase] = {
    "a 50 MB body": (413, "over 65,536 bytes", ITEM, {"content": b" " * (50 * MB)}),
    "a 50 MB chunked body": (413, "over 65,536 bytes", ITEM, {"content": chunks(50 * MB)}),
    "10,000 fields": (413, "over 65,536 bytes", ITEM, {"content": fields(10_000)}),
    "10,000 repeats of one field": (
        413,
        "over 8 fields",
        ITEM,
        {"content": fields(10_000, key=lambda i: "a")},
    ),
    "a field the answer has not": (400, "unknown field 'f0'", ITEM, {"content": fields(1)}),
    "a JSON array": (400, "must be a JSON object", ITEM, {"content": b"[1, 2]"}),
    "JSON nested 30,000 deep": (400, "nested too deeply", ITEM, {"content": b"[" * 30_000}),
    "truncated JSON": (400, "not valid JSON", ITEM, {"content": b'{"verdict": "ye'}),
    "a lone surrogate in the note": (
        400,
        "half of a surrogate pair",
        ITEM,
        {"content": b'{"verdict": "yes", "note": "\\ud800"}'},
    ),
    "the byte 0xff in the note": (
        400,
        "not UTF-8 text (byte 28)",
        ITEM,
        {"content": b'{"verdict": "yes", "note": "\xff"}'},
    ),
    "a note that is a number": (
        400,
        "note must be text, not int",
        ITEM,
        {"content": b'{"verdict": "yes", "note": 5}'},
    ),
    "relevance true": (
        400,
        "relevance must be a whole number from 1 to 5, not True",
        ITEM,
        {"content": b'{"verdict": "yes", "relevance": true}'},
    ),
    "relevance 2.0": (
        400,
        "not 2.0",
        ITEM,
        {"content": b'{"verdict": "yes", "relevance": 2.0}'},
    ),
    "relevance 10**30": (
        400,
        "not 1000000000000000000000000000000",
        ITEM,
        {"content": b'{"verdict": "yes", "relevance": 1000000000000000000000000000000}'},
    ),
    "a verdict that is a list": (
        400,
        "verdict must be one of yes, no, unsure",
        ITEM,
        {"content": b'{"verdict": ["yes"]}'},
    ),
    "item 10**30": (
        404,
        "the review has 2",
        f"/api/items/{10**30}/review",
        {"content": b'{"verdict": "yes"}'},
    ),
    "a form post": (415, "send the answer as application/json", ITEM, {"content": b"verdict=yes"}),
}


@pytest.mark.parametrize("case", list(REVIEW_CASES))
def test_review_api_refuses_with_one_json_line_and_keeps_serving(case: str, ws: Workspace) -> None:
    status, fragment, path, request = REVIEW_CASES[case]
    client = review_client(ws)
    headers = {} if case == "a form post" else JSON
    before = tree(ws.root)
    response = client.put(path, headers=headers, **request)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert fragment in error and "\n" not in error, error
    assert tree(ws.root) == before
    # The server still answers, and a good answer after it is stored.
    saved = client.put(ITEM, json={"verdict": "no", "relevance": 4})
    assert saved.status_code == 200 and saved.json()["answer"]["relevance"] == 4
    with Store(ws.db, read_only=True) as store:
        rows = store.reviews(store.resolve("agreeableness"))
    assert [(r.idx, r.verdict, r.relevance, r.note) for r in rows] == [(0, "no", 4, None)]


def test_a_review_after_the_store_moved_creates_nothing(ws: Workspace) -> None:
    client = review_client(ws)
    moved = ws.root / "elsewhere.duckdb"
    ws.db.rename(moved)
    before = tree(ws.root)
    response = client.put(ITEM, json={"verdict": "yes"})
    assert response.status_code == 409
    assert response.json()["error"] == (
        f"the store {ws.db} is gone (moved or deleted while in use): point --db / MWE_DB at "
        "where it is now (nothing was saved)"
    )
    assert client.get("/api/items/0").status_code == 409  # reading it creates nothing either
    assert tree(ws.root) == before and not ws.db.exists()
    moved.rename(ws.db)  # put back, the same page stores the answer in it
    assert client.put(ITEM, json={"verdict": "yes"}).status_code == 200


def test_a_review_on_a_read_only_store_is_a_json_409(tmp_path: Path) -> None:
    with read_only_mount(tmp_path / "ro") as ws:
        client = review_client(ws)
        before = tree(ws.root)
        response = client.put(ITEM, json={"verdict": "yes"})
        assert response.status_code == 409
        error = response.json()["error"]
        assert error.startswith(f"cannot write to {ws.db}") and error.endswith(
            "(nothing was saved)"
        )
        assert "\n" not in error
        assert client.get("/api/items/0").json()["answer"] is None  # reading still works
        assert tree(ws.root) == before


# --- report: a folder of its own, replaced only with --force, never left half-written ----------


def test_a_report_replaces_only_its_own_folder_and_only_with_force(ws: Workspace) -> None:
    assert ws.mwe("report", "--out", "site").exit_code == 0
    first = tree(ws.root / "site")
    assert {"index.html", ".mwe-export", "images/agreeableness@1-balance.png"} <= set(first)
    one_line_error(ws.mwe("report", "--out", "site"), 2, "is not empty; pass --force")
    assert tree(ws.root / "site") == first
    (ws.root / "site" / "images" / "stale.png").write_bytes(b"old plot")
    assert ws.mwe("report", "--out", "site", "--force").exit_code == 0
    assert set(tree(ws.root / "site")) == set(first)  # replaced whole: the stale plot is gone
    assert [p.name for p in ws.root.iterdir() if p.name.startswith(".")] == []


def test_a_full_disk_during_a_report_leaves_nothing_behind(ws: Workspace, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "full", size="48k") as disk:
        (disk / "keep.txt").write_text("the user's", encoding="utf-8")
        before = tree(disk)
        message = one_line_error(
            ws.mwe("report", "--out", disk / "report"),
            2,
            f"cannot write the report to {disk / 'report'} (No space left on device",
            progress=True,
        )
        assert "choose another --out" in message
        assert tree(disk) == before  # no half PNG, no staging folder


# --- CSV: what mwe writes reads back as the same items, and opens in a spreadsheet safely -----

ODD = {
    "question": '=HYPERLINK("http://evil.example","click")\n\nChoices:\n (A) yes\n (B) no',
    "label_confidence": 0.9700825132792529,
    "answer_matching_behavior": " (A)",
    "answer_not_matching_behavior": [" (B)"],
    "@cmd": "+1+1",
    "round": 2,
    "delta": -3,
    "number_as_text": "2",
    "flag": True,
    "nothing": None,
    "empty": "",
    "quoted": "'=already quoted",
    "apostrophe": "'tis",
    "nested": {"a": [1, "-x"]},
    "tab": "\t=x",
}


@pytest.mark.parametrize("source", ["agreeableness", "odd"])
def test_a_csv_export_imports_back_as_the_same_items(source: str, ws: Workspace) -> None:
    if source == "odd":
        assert ws.mwe("import", ws.write("odd.jsonl", json.dumps(ODD) + "\n")).exit_code == 0
    made = ws.mwe("export", source, "--format", "csv", "--out", "csv")
    assert made.exit_code == 0, made.output
    written = (ws.root / "csv" / f"{source}.csv").read_bytes()
    assert ws.mwe("import", ws.root / "csv" / f"{source}.csv", "--name", "back").exit_code == 0
    with Store(ws.db, read_only=True) as store:
        original, back = store.resolve(source), store.resolve("back")
        assert back.content_hash == original.content_hash
        assert store.items(back) == store.items(original)
    assert ws.mwe("export", "back", "--format", "csv", "--out", "again").exit_code == 0
    assert (ws.root / "again" / "back.csv").read_bytes() == written
    if source == "odd":
        # Every cell a spreadsheet would run as a formula starts with a '.
        with (ws.root / "csv" / "odd.csv").open(encoding="utf-8", newline="") as handle:
            header, row = list(csv.reader(handle))
        cells = dict(zip(header, row, strict=True))
        assert "'@cmd" in cells and cells["'@cmd"] == "'+1+1"
        assert cells["question"].startswith("'=HYPERLINK(")
        assert cells["delta"] == "'-3" and cells["tab"] == "'\t=x"
        assert cells["quoted"] == "''=already quoted" and cells["apostrophe"] == "'tis"
        assert cells["number_as_text"] == '"2"' and cells["round"] == "2"
        assert not [c for c in [*header, *row] if c[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_a_csv_too_large_for_memory_is_one_line(tmp_path: Path) -> None:
    huge = tmp_path / "huge.csv"
    with huge.open("w", encoding="utf-8") as handle:
        handle.write("question,answer_matching_behavior,answer_not_matching_behavior\n")
        handle.write('"' + "x" * (200 * 1024 * 1024) + '", Yes, No\n')

    def limit_memory() -> None:  # an address space the file fits in only once or twice
        resource.setrlimit(resource.RLIMIT_AS, (900 * 1024 * 1024, 900 * 1024 * 1024))

    db = tmp_path / "store.duckdb"
    done = subprocess.run(
        [sys.executable, "-m", "mwe", "--db", str(db), "import", str(huge)],
        capture_output=True,
        text=True,
        preexec_fn=limit_memory,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    message = done.stderr.strip()
    assert "\n" not in message and "Traceback" not in message, message
    # Where the machine leaves room to read it, the cell is over the CSV field limit instead.
    assert message.endswith("too large to read into memory; split it into smaller files") or (
        "field larger than field limit" in message
    ), message
    assert not db.exists()
