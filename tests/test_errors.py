"""Every usage or input error: one line on stderr, exit 2, and the store left as it was."""

import subprocess
import sys

import pytest

from .conftest import PERSONA, snapshot

GOOD = PERSONA / "agreeableness.jsonl"


@pytest.fixture
def seeded(mwe, db):
    """A store holding one set, and its snapshot."""
    assert mwe("import", GOOD).exit_code == 0
    return snapshot(db)


def one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("Error: ")
    assert "\n" not in message
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_file(mwe, db, seeded, tmp_path):
    missing = tmp_path / "nope.jsonl"
    one_line_error(mwe("import", missing), f"{missing}: no such file")
    assert snapshot(db) == seeded


def test_unreadable_files(mwe, db, seeded, tmp_path):
    one_line_error(mwe("import", tmp_path), "is a directory")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage\n")
    one_line_error(mwe("import", binary), f"{binary}: not UTF-8 text")
    assert snapshot(db) == seeded


def test_malformed_line_names_the_line_and_writes_nothing(mwe, db, seeded, tmp_path):
    bad = tmp_path / "bad.jsonl"
    lines = GOOD.read_text().splitlines()
    lines[6] = lines[6][:-5]  # cut the closing of line 7
    bad.write_text("\n".join(lines) + "\n")
    # The good file first: nothing of it may be stored when the second file fails.
    one_line_error(mwe("import", GOOD, bad, "--name", "x"), f"{bad} line 7: not valid JSON")
    assert snapshot(db) == seeded


def test_record_missing_a_required_field(mwe, db, seeded, tmp_path):
    bad = tmp_path / "missing.jsonl"
    bad.write_text(
        GOOD.read_text().splitlines()[0] + "\n" + '{"question": "q", '
        '"answer_not_matching_behavior": " No"}\n'
    )
    one_line_error(
        mwe("import", bad), f"{bad} line 2: missing required field 'answer_matching_behavior'"
    )
    assert snapshot(db) == seeded


def test_empty_file_and_bad_name(mwe, db, seeded, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    one_line_error(mwe("import", empty), "no records")
    one_line_error(mwe("import", GOOD, "--name", "Has Spaces"), "invalid set name", "'has-spaces'")
    assert snapshot(db) == seeded


def test_unknown_set_or_version(mwe, db, seeded, tmp_path):
    one_line_error(mwe("show", "agreeablness"), "did you mean 'agreeableness'")
    one_line_error(mwe("show", "agreeableness@4"), "agreeableness has no version 4")
    one_line_error(
        mwe("export", "nothing-like-it", "--out", tmp_path / "o"),
        "no eval set named 'nothing-like-it'",
    )
    one_line_error(mwe("diff", "agreeableness@1", "agreeableness@2"), "no version 2")
    assert not (tmp_path / "o").exists()
    assert snapshot(db) == seeded


def test_export_into_a_non_empty_folder_needs_force(mwe, db, seeded, tmp_path):
    out = tmp_path / "out"
    assert mwe("export", "agreeableness", "--out", out).exit_code == 0
    one_line_error(mwe("export", "agreeableness", "--out", out), f"{out} is not empty", "--force")
    assert snapshot(db) == seeded
    assert mwe("export", "agreeableness", "--out", out, "--force").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        ".mwe-export",
        "README.md",
        "agreeableness.jsonl",
    ]


def test_force_never_replaces_a_folder_mwe_did_not_write(mwe, db, seeded, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    one_line_error(
        mwe("export", "agreeableness", "--out", out, "--force"),
        f"refusing to replace {out}: mwe did not write it",
    )
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert snapshot(db) == seeded


def test_database_locked_by_another_process(mwe, db, seeded, monkeypatch):
    # A store in use is waited for (MWE_STORE_WAIT_S, 30 s by default), then refused in one
    # line naming the process and its command.
    monkeypatch.setenv("MWE_STORE_WAIT_S", "0.2")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
                "time.sleep(60)"
            ),
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        one_line_error(
            mwe("import", PERSONA / "desire-for-acquiring-power.jsonl"),
            f"{db} is in use by another process (PID {holder.pid}: `",
            "import duckdb, sys, time",
            "stayed so for 0.2 s",
        )
        one_line_error(mwe("show", "agreeableness"), str(db), "in use")
    finally:
        holder.kill()
        holder.wait()
    assert snapshot(db) == seeded


def test_file_that_is_not_duckdb(tmp_path):
    from click.testing import CliRunner

    from mwe.cli import cli

    fake = tmp_path / "notes.duckdb"
    fake.write_text("these are my notes, not a database\n" * 50)
    before = fake.read_bytes()
    runner = CliRunner()
    for args in (["list"], ["show", "x"], ["import", str(GOOD)]):
        result = runner.invoke(cli, ["--db", str(fake), *args])
        one_line_error(result, f"{fake} is not a DuckDB database")
    assert fake.read_bytes() == before


def test_read_command_without_a_store(mwe, db):
    one_line_error(mwe("show", "anything"), f"no database at {db}")
    assert not db.exists()
