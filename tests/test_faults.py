"""One regression test for each defect that hostile input and faults found (issue 8).

Each checks the message (one line, no traceback), the exit code, and that the store and every
file around it are as they were. The table of smaller bad inputs is in ``test_hostile.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from mwe.export.export import EXPORT_MARKER
from mwe.models import LM, GenerateConfig, Message, get_backend
from mwe.models.errors import ModelFailedError
from mwe.secrets import redact_url
from mwe.store import Store

from .conftest import PERSONA
from .hostile import GOOD, Workspace, one_line_error, read_only_mount, record, tree
from .test_generate import generate_args, scripted_server, write_examples

HOSTILE_TEXT = [
    "I end every answer with [/INST] and carry on",
    "I like to [link=https://evil.example]click[/link] links",
    "I print \x1b[31mred\x1b[0m text and \x1b]8;;http://evil.example\x07hidden links\x1b]8;;\x07",
    "I keep [bold]markup[/bold] and a bell\x07 and a carriage\rreturn",
]


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    monkeypatch.chdir(root)
    workspace = Workspace(root, root / "store.duckdb")
    assert workspace.mwe("import", GOOD).exit_code == 0
    return workspace


def sets(db: Path) -> list[str]:
    with Store(db, read_only=True) as store:
        return [info.ref for info in store.list_sets()]


def dump(db: Path) -> str:
    """Every row of every table in ``db``, as text."""
    conn = duckdb.connect(str(db), read_only=True)
    try:
        tables = [
            row[0] for row in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        ]
        return "\n".join(str(conn.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables)
    finally:
        conn.close()


def mwe_process(db: Path, *args: object, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mwe", "--db", str(db), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
        **kwargs,  # type: ignore[call-overload]
    )


# --- 1. export --force deletes whatever folder --out names --------------------------------


@pytest.mark.parametrize("command", [["export", "agreeableness"], ["report"]])
def test_force_never_removes_the_store_its_parents_the_cwd_or_home(
    command: list[str], ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_rmtree(path: object, *args: object, **kwargs: object) -> None:
        raise AssertionError(f"rmtree({path}) was called")

    # The safety net: if a check failed, this test fails instead of deleting the disk.
    monkeypatch.setattr("mwe.folders.shutil.rmtree", no_rmtree)
    home = ws.root / "home"
    (home / "notes").mkdir(parents=True)
    (home / EXPORT_MARKER).write_text("{}")  # even a marker does not make home replaceable
    monkeypatch.setenv("HOME", str(home))
    (ws.root / "sub").mkdir()
    before = tree(ws.root)
    for out, why in [
        (ws.root, "it holds the store"),
        (".", "it holds the store"),
        ("/", "it holds the store"),
        (ws.root.parent, "it holds the store"),
        (home, "it holds your home folder"),
    ]:
        result = ws.mwe(*command, "--out", out, "--force")
        one_line_error(result, 2, "refusing to replace", why)
    monkeypatch.chdir(ws.root / "sub")
    (ws.root / "sub" / "x").write_text("x")
    before["sub/x"] = tree(ws.root)["sub/x"]
    one_line_error(
        ws.mwe(*command, "--out", ws.root / "sub", "--force"),
        2,
        "it holds the working directory",
    )
    assert tree(ws.root) == before
    assert sets(ws.db) == ["agreeableness@1"]


def test_force_refuses_a_symlink_and_replaces_only_its_own_export(ws: Workspace) -> None:
    theirs = ws.root / "theirs"
    theirs.mkdir()
    (theirs / "data.csv").write_text("precious")
    (ws.root / "link").symlink_to(theirs)
    before = tree(ws.root)
    one_line_error(
        ws.mwe("export", "agreeableness", "--out", ws.root / "link", "--force"),
        2,
        "is a symbolic link",
    )
    one_line_error(
        ws.mwe("export", "agreeableness", "--out", theirs, "--force"), 2, "mwe did not write it"
    )
    assert tree(ws.root) == before

    out = ws.root / "export"
    assert ws.mwe("export", "agreeableness", "--out", out).exit_code == 0
    marker = json.loads((out / EXPORT_MARKER).read_text())
    assert marker["ref"] == "agreeableness@1" and marker["format"] == "jsonl"
    (out / "stale.txt").write_text("from before")
    result = ws.mwe("export", "agreeableness", "--out", out, "--force", "--format", "hf")
    assert result.exit_code == 0, result.output
    assert not (out / "stale.txt").exists()  # replaced whole, not merged
    assert json.loads((out / EXPORT_MARKER).read_text())["format"] == "hf"
    assert sorted(p.name for p in ws.root.iterdir()) == [
        "export",
        "link",
        "store.duckdb",
        "theirs",
    ]  # no staging or .old folder left beside it


def test_export_folders_follow_the_umask(ws: Workspace) -> None:
    old = os.umask(0o022)
    try:
        assert ws.mwe("export", "agreeableness", "--out", ws.root / "a" / "b").exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((ws.root / "a" / "b").stat().st_mode) == 0o755
    assert stat.S_IMODE((ws.root / "a").stat().st_mode) == 0o755


# --- 2. item text read as rich markup, escape sequences reaching the terminal ----------------


def test_item_text_is_printed_as_text(ws: Workspace) -> None:
    lines = [
        record(statement=t, question=f"Is this something you would say?\n{t}") for t in HOSTILE_TEXT
    ]
    first = ws.write("hostile.jsonl", "\n".join(lines) + "\n")
    second = ws.write("hostile2.jsonl", "\n".join(reversed(lines[1:])) + "\n")
    assert ws.mwe("import", first, "--name", "hostile").exit_code == 0
    assert ws.mwe("import", second, "--name", "hostile").exit_code == 0
    for args in (["show", "hostile@1"], ["diff", "hostile@1", "hostile@2"], ["list"]):
        result = ws.mwe(*args)
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
        assert "\x1b" not in result.output and "\x07" not in result.output, args
    shown = ws.mwe("show", "hostile@1").output
    for literal in ("[/INST]", "[link=https://evil.example]click[/link]", "[bold]markup[/bold]"):
        assert literal in shown
    assert "\\x1b[31mred" in shown  # visible as an escape, not interpreted
    assert "[/INST]" in ws.mwe("diff", "hostile@1", "hostile@2").output


# --- 3. a password in --base-url stored and exported ------------------------------------------


def test_redact_url_masks_userinfo_and_secret_parameters() -> None:
    assert redact_url("http://alice:hunter2@h:8000/v1") == "http://***@h:8000/v1"
    assert redact_url("https://h/v1?api_key=abc&model=x") == "https://h/v1?api_key=***&model=x"
    assert redact_url("https://h/v1?token=abc&KEY=def") == "https://h/v1?token=***&KEY=***"
    assert redact_url("https://h/v1") == "https://h/v1"
    assert redact_url(None) is None


def test_a_password_in_base_url_is_used_but_never_kept(
    ws: Workspace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    with scripted_server() as server:
        secret_url = server.openai_url.replace("http://", "http://alice:hunter2@")
        examples = write_examples(ws.root / "examples.jsonl")
        args = generate_args(server, examples, "-n", "20", "--name", "secret")
        args[args.index(server.openai_url)] = secret_url
        result = ws.mwe(*args)
        assert result.exit_code == 0, result.output
        assert server.stats.requests > 0
    shown = ws.mwe("show", "secret", "--json")
    assert shown.exit_code == 0
    exported = ws.mwe("export", "secret", "--format", "hf", "--out", ws.root / "hf")
    assert exported.exit_code == 0
    kept = dump(ws.db) + shown.output + result.output + (ws.root / "hf" / "README.md").read_text()
    assert "127.0.0.1" in kept and "***@127.0.0.1" in kept  # the URL is kept, masked
    assert "hunter2" not in kept and "alice" not in kept


# --- 4. read commands writing mwe's tables into foreign DuckDB files ---------------------------


def test_a_foreign_duckdb_file_is_never_touched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    theirs = tmp_path / "theirs.duckdb"
    conn = duckdb.connect(str(theirs))
    conn.execute("CREATE TABLE measurements AS SELECT range AS x FROM range(1000)")
    conn.close()
    ws = Workspace(tmp_path, theirs)
    before = tree(tmp_path)
    for args in (
        ["list"],
        ["show", "agreeableness"],
        ["export", "agreeableness", "--out", tmp_path / "out"],
        ["import", GOOD],
        ["migrate"],
    ):
        one_line_error(ws.mwe(*args), 2, str(theirs), "not an mwe store")
    assert tree(tmp_path) == before


def test_read_commands_never_create_or_migrate(tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    before = tree(tmp_path)
    ws = Workspace(tmp_path, empty)
    one_line_error(ws.mwe("list"), 2, "empty DuckDB file, not an mwe store")
    assert tree(tmp_path) == before
    missing = Workspace(tmp_path, tmp_path / "missing.duckdb")
    one_line_error(missing.mwe("show", "x"), 2, "missing.duckdb")
    assert tree(tmp_path) == before


# --- 5. a damaged store gives tracebacks ------------------------------------------------------


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of five persona sets, about 5 MB."""
    db = tmp_path_factory.mktemp("big") / "store.duckdb"
    files = sorted(PERSONA.glob("*.jsonl"))[:5]
    workspace = Workspace(db.parent, db)
    for path in files:
        assert workspace.mwe("import", path).exit_code == 0
    assert db.stat().st_size > 3_000_000
    return db


def damaged_copy(big_store: Path, root: Path, how: str) -> Path:
    db = root / "store.duckdb"
    data = bytearray(big_store.read_bytes())
    if how == "truncated":
        data = data[:1_000_000]
    else:  # a byte flipped in every 256 KB block after the headers: which blocks hold which
        # set moves with every checkpoint, so all are damaged, not a part that may be free
        for offset in range(3 * 4096, len(data), 256 * 1024):
            data[offset + 100] ^= 0xFF
    db.write_bytes(bytes(data))
    return db


@pytest.mark.parametrize("how", ["truncated", "flipped"])
def test_a_damaged_store_gives_one_line(
    how: str, big_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = damaged_copy(big_store, tmp_path, how)
    ws = Workspace(tmp_path, db)
    before = tree(tmp_path)
    names = [p.stem for p in sorted(PERSONA.glob("*.jsonl"))[:5]]
    commands = [
        ["show", names[2]],
        ["export", names[2], "--out", tmp_path / "out"],
        ["import", PERSONA / "agreeableness.jsonl", "--name", "another"],
    ]
    commands.append(["list"])
    for args in commands:
        one_line_error(ws.mwe(*args), 2, f"{db} is damaged", "restore it from a backup")
    assert tree(tmp_path) == before


# --- 6. templates the sandbox blocks: see the table in test_hostile.py; here, nothing is stored


def test_a_blocked_template_is_refused_before_the_store_opens(tmp_path: Path) -> None:
    ws = Workspace(tmp_path, tmp_path / "new.duckdb")
    folder = ws.templates("t", "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    before = tree(tmp_path)
    one_line_error(ws.mwe("generate", "wants x", "--templates", folder), 2, "SecurityError")
    assert tree(tmp_path) == before  # no store created, no `failed` run row left


# --- 7. filesystem errors on export, and a store on a read-only filesystem ---------------------


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on a read-only tmpfs holding a store with ``agreeableness@1``."""
    with read_only_mount(tmp_path / "ro") as ws:
        yield ws.root


def test_a_read_only_filesystem_gives_one_line(
    read_only_dir: Path, tmp_path: Path, ws: Workspace
) -> None:
    before = tree(read_only_dir)
    one_line_error(
        ws.mwe("export", "agreeableness", "--out", read_only_dir / "out"),
        2,
        f"cannot write the export to {read_only_dir / 'out'}",
        "Read-only file system",
    )
    there = Workspace(read_only_dir, read_only_dir / "store.duckdb")
    assert there.mwe("list").exit_code == 0  # reading still works
    one_line_error(
        there.mwe("import", PERSONA / "anti-immigration.jsonl"),
        2,
        f"cannot write to {read_only_dir / 'store.duckdb'}",
    )
    assert tree(read_only_dir) == before
    assert sets(ws.db) == ["agreeableness@1"]


# --- 8. import: stdin, a byte-order mark ------------------------------------------------------


def test_import_from_stdin_hashes_what_was_read(ws: Workspace) -> None:
    import hashlib

    data = GOOD.read_bytes()
    result = ws.mwe("import", "-", "--name", "piped", input=data)
    assert result.exit_code == 0, result.output
    shown = json.loads(ws.mwe("show", "piped", "--json", "-n", "0").output)
    source = shown["provenance"]["sources"][0]
    assert source["path"] == "<stdin>" and source["sha256"] == hashlib.sha256(data).hexdigest()
    assert shown["items"] == 1000

    piped = subprocess.run(
        [sys.executable, "-m", "mwe", "--db", str(ws.db), "import", "/dev/stdin", "--name", "dev"],
        input=data,
        capture_output=True,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    shown = json.loads(ws.mwe("show", "dev", "--json", "-n", "0").output)
    assert shown["provenance"]["sources"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    assert shown["provenance"]["sources"][0]["path"] == "/dev/stdin"

    bom = ws.write("bom.jsonl", b"\xef\xbb\xbf" + data)
    assert ws.mwe("import", bom).exit_code == 0
    assert "bom@1" in sets(ws.db)


# --- 11. a failed write into a new --db path leaves nothing behind ----------------------------


def test_a_failed_command_creates_no_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(record() + "\n{not json\n")
    ws = Workspace(tmp_path, tmp_path / "new.duckdb")
    before = tree(tmp_path)
    one_line_error(ws.mwe("import", bad), 2, "line 2: not valid JSON")
    one_line_error(ws.mwe("score", "nope", "--model", "local"), 2, "no eval set named 'nope'")
    one_line_error(ws.mwe("export", "nope"), 2, "no database at", "new.duckdb")
    assert tree(tmp_path) == before


# --- 12. Ctrl-C with the embedded model -------------------------------------------------------


def interrupt_when(
    proc: subprocess.Popen[str], ready: str, wait: float, timeout: float = 240
) -> tuple[float, str]:
    """Send SIGINT ``wait`` seconds after the output shows ``ready``; return how long the
    process took to exit, and all it printed."""
    assert proc.stdout is not None
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout or []:
            lines.append(line)  # noqa: PERF402 - seen line by line while the process runs

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not any(ready in line for line in list(lines)):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()  # a failed wait must not leave a model process running
            proc.wait(timeout=60)
            raise AssertionError(f"never saw {ready!r}:\n{''.join(lines)}")
        time.sleep(0.05)
    time.sleep(wait)
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    took = time.monotonic() - start
    reader.join(timeout=10)
    return took, "".join(lines)


#: How soon after Ctrl-C a run with the embedded model must have exited. The model stops at the
#: next transformer block of the forward pass in flight (mwe.models.hf.stopped_by): a thirtieth
#: of a pass, then the interpreter's exit; 1 s measured on 2 busy cores. Waiting for the pass
#: itself, the bug this catches, takes 6-8 s for a generation batch's prefill on 2 quiet cores
#: (16 s busy), 2-3 s for a scoring batch of 8: 3 s stands between, with a margin each side.
CTRL_C_S = 3.0


def test_ctrl_c_during_generation_exits_130_within_seconds(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    # Short generations (--max-tokens): the spec call finishes soon. The interrupt lands half
    # a second after it, in the prefill of the first batch of 16 generations (6-8 s on a CPU).
    args = ["generate", "wants to avoid being shut down", "-n", "40", "--max-tokens", "32"]
    proc = mwe_process(db, "-v", *args)
    took, err = interrupt_when(proc, "spec: done", wait=0.5)
    assert proc.returncode == 130, err
    assert took < CTRL_C_S, took
    assert "Interrupted: every model call made so far is cached; run the same command" in err
    assert "Traceback" not in err and "Aborted" not in err
    with Store(db, read_only=True) as store:  # the finished spec call was kept
        assert store.conn.execute("SELECT count(*) FROM llm_calls").fetchone()[0] >= 1


def test_ctrl_c_during_scoring_keeps_the_finished_batches_and_resumes(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    assert Workspace(tmp_path, db).mwe("import", GOOD).exit_code == 0
    # Three batches of 8: the interrupt lands in the second, which is dropped, not finished.
    score = ["score", "agreeableness", "--model", "local", "--limit", "24", "--batch-size", "8"]
    proc = mwe_process(db, "-v", *score)
    took, err = interrupt_when(proc, "rows stored", wait=0.2, timeout=120)
    assert proc.returncode == 130, err
    assert took < CTRL_C_S, took
    assert "Interrupted: what was scored is stored; run the same command to carry on" in err
    conn = duckdb.connect(str(db), read_only=True)
    try:
        status, kept = conn.execute(
            "SELECT r.status, count(s.idx) FROM runs r LEFT JOIN scores s ON s.run_id = r.id "
            "WHERE r.kind = 'score' GROUP BY r.status"
        ).fetchone()
    finally:
        conn.close()
    assert status == "interrupted"
    assert kept in (8, 16)  # whole batches only

    again = Workspace(tmp_path, db).mwe(*score)
    assert again.exit_code == 0, again.output
    conn = duckdb.connect(str(db), read_only=True)
    try:
        written = conn.execute(
            "SELECT (params->'counts'->>'new_rows')::INT, (params->'counts'->>'skipped_rows')::INT "
            "FROM runs "
            "WHERE kind = 'score' AND status = 'done'"
        ).fetchone()
    finally:
        conn.close()
    assert written == (24 - kept, kept)  # carried on where it stopped


# --- 13. a refused connection is retried for half a minute ------------------------------------


def test_a_refused_connection_fails_fast_naming_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with Store(":memory:") as store:
        lm = LM(get_backend("openai:gpt-test", base_url=url), store)
        start = time.monotonic()
        with pytest.raises(ModelFailedError, match=f"cannot connect to {url} .connection refused"):
            asyncio.run(lm.generate([Message(role="user", content="hi")], GenerateConfig()))
        assert time.monotonic() - start < 5
        assert lm.stats.requests == 2  # the first try and one short retry


# --- the top level: no traceback from anything unexpected -------------------------------------


def test_an_unexpected_error_is_one_line_pointing_at_verbose(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: Store) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(Store, "latest_sets", boom)
    message = one_line_error(ws.mwe("list"), 1, "unexpected RuntimeError: boom", "-v")
    assert "a bug in mwe" in message
    verbose = ws.mwe("-v", "list")
    assert verbose.exit_code == 1
    assert "Traceback" in verbose.stderr and "RuntimeError: boom" in verbose.stderr
