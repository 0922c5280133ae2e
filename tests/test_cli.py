import json

import pytest
from datasets import load_dataset, load_from_disk

from mwe import __version__
from mwe.cli import cli
from mwe.export.export import hf_features

from .conftest import AI_RISK, PERSONA, read_records

PERSONA_FILES = [PERSONA / "agreeableness.jsonl", PERSONA / "desire-for-acquiring-power.jsonl"]


def test_import_then_export_gives_back_the_same_records(mwe, tmp_path):
    result = mwe("import", *PERSONA_FILES, "--name", "persona")
    assert result.exit_code == 0, result.output
    assert "Imported 2,000 items from 2 file(s) as persona@1" in result.output
    out = tmp_path / "out"
    assert mwe("export", "persona", "--format", "jsonl", "--out", out).exit_code == 0
    expected = read_records(PERSONA_FILES[0]) + read_records(PERSONA_FILES[1])
    assert read_records(out / "persona.jsonl") == expected
    # Field order and formatting match too, so the files are byte-identical.
    assert (out / "persona.jsonl").read_bytes() == b"".join(p.read_bytes() for p in PERSONA_FILES)


@pytest.mark.parametrize("path", PERSONA_FILES + sorted(AI_RISK.glob("*.jsonl")))
def test_each_public_file_round_trips(mwe, tmp_path, path):
    assert mwe("import", path, "--name", "s").exit_code == 0
    assert mwe("export", "s@1", "--out", tmp_path / "o").exit_code == 0
    assert read_records(tmp_path / "o" / "s.jsonl") == read_records(path)


def test_list_valued_answers_round_trip(mwe, tmp_path):
    # The PhilPapers sycophancy file gives answer_not_matching_behavior as a list.
    src = tmp_path / "sycophancy_on_philpapers2020.jsonl"
    records = [
        {
            "question": "Q1\n (A) a\n (B) b\n (C) c\nAnswer:",
            "answer_matching_behavior": " (A)",
            "answer_not_matching_behavior": [" (B)", " (C)"],
        },
        {
            "question": "Q2\n (A) a\n (B) b\nAnswer:",
            "answer_matching_behavior": " (B)",
            "answer_not_matching_behavior": [" (A)"],
            "user_affiliation": "conservative",
        },
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert mwe("import", src).exit_code == 0
    assert mwe("export", "sycophancy_on_philpapers2020", "--out", tmp_path / "o").exit_code == 0
    assert read_records(tmp_path / "o" / "sycophancy_on_philpapers2020.jsonl") == records


def test_hf_export_loads_with_declared_features_and_card_has_hash(mwe, tmp_path, db):
    mwe("import", PERSONA_FILES[0], "--license", "cc-by-4.0")
    out = tmp_path / "hf"
    result = mwe("export", "agreeableness", "--format", "hf", "--out", out)
    assert result.exit_code == 0, result.output
    dataset = load_from_disk(str(out))
    assert list(dataset) == ["test"]
    test = dataset["test"]
    assert test.features == hf_features()
    source = read_records(PERSONA_FILES[0])
    assert len(test) == len(source) == 1000
    for row, record in zip(test, source, strict=True):
        assert row["question"] == record["question"]
        assert row["statement"] == record["statement"]
        assert row["label_confidence"] == record["label_confidence"]
        assert row["answer_matching_behavior"] == record["answer_matching_behavior"]
        assert row["answer_not_matching_behavior"] == [record["answer_not_matching_behavior"]]

    show = json.loads(mwe("show", "agreeableness", "--json").output)
    card = (out / "README.md").read_text()
    assert card.startswith("---\n")
    front = card.split("---\n")[1]
    assert "license: cc-by-4.0" in front
    assert "annotations_creators:\n- machine-generated" in front
    assert "task_categories:" in front and "size_categories:\n- 1K<n<10K" in front
    assert "configs:" in front
    assert show["content_hash"] in card
    assert "agreeableness.jsonl" in card  # the provenance names the source file
    # The folder is a Hub-style repository too: the card's configs point at real data. A cache
    # of this test's own: the shared one is keyed by the folder's name, which another test's
    # export (running at the same time under xdist) may share.
    loaded = load_dataset(str(out), split="test", cache_dir=str(tmp_path / "hf-cache"))
    assert loaded["statement"] == test["statement"]


def test_show_list_and_diff(mwe, tmp_path):
    mwe("import", PERSONA_FILES[0], "--name", "p")
    mixed = tmp_path / "mixed.jsonl"
    lines = PERSONA_FILES[0].read_text().splitlines()[:600]
    lines += PERSONA_FILES[1].read_text().splitlines()[:50]
    mixed.write_text("\n".join(lines) + "\n")
    mwe("import", mixed, "--name", "p")

    show = mwe("show", "p@1", "-n", "2")
    assert "p@1  persona  1,000 items" in show.output
    assert "' No' 500 (50.0%), ' Yes' 500 (50.0%)" in show.output
    assert "agreeableness.jsonl" in show.output
    assert "It is important to treat other people with" in show.output
    assert "parent p@1" in mwe("show", "p").output

    listing = mwe("list").output
    assert "p@2" in listing and "p@1" not in listing
    assert "p@1" in mwe("list", "--all").output

    diff = mwe("diff", "p@1", "p@2", "-n", "1")
    assert "p@1 -> p@2: +50 added, -400 removed, 600 unchanged" in diff.output


def test_reimport_of_the_same_content_says_unchanged(mwe):
    mwe("import", PERSONA_FILES[0])
    result = mwe("import", PERSONA_FILES[0])
    assert result.exit_code == 0
    assert "Unchanged: agreeableness@1 already holds exactly these 1,000 items" in result.output


def test_version_and_help_on_every_command(mwe):
    assert mwe("--version").output.strip() == f"mwe, version {__version__}"
    for name, command in cli.commands.items():
        result = mwe(name, "--help")
        assert result.exit_code == 0
        assert result.output.startswith(f"Usage: mwe {name}")
        assert command.help.splitlines()[0][:40] in result.output


def test_db_from_environment(tmp_path, monkeypatch):
    from click.testing import CliRunner

    db = tmp_path / "env.duckdb"
    monkeypatch.setenv("MWE_DB", str(db))
    result = CliRunner().invoke(cli, ["import", str(PERSONA_FILES[0])])
    assert result.exit_code == 0
    assert db.exists()


def test_list_without_a_store(mwe, db):
    result = mwe("list")
    assert result.exit_code == 0
    assert "No eval sets yet" in result.output
    assert not db.exists()


def test_a_closed_pipe_ends_the_output_quietly(mwe, db):
    """`mwe results --output csv | head`: the reader goes away, mwe stops with no error line
    (141, as a shell reports a tool its pipe closed on), whether the output was still buffered
    or written at once."""
    import os
    import subprocess
    import sys

    assert mwe("import", PERSONA_FILES[0]).exit_code == 0
    for args in (["results", "--output", "csv"], ["list", "--json"]):
        read, write = os.pipe()
        proc = subprocess.Popen(
            [sys.executable, "-m", "mwe", "--db", str(db), *args],
            stdout=write,
            stderr=subprocess.PIPE,
        )
        os.close(write)
        os.close(read)  # before mwe has started: its first write meets a closed pipe
        _, err = proc.communicate(timeout=120)
        assert (proc.returncode, err.decode()) == (141, ""), args


def test_num_is_the_long_name_of_n_and_names_end_on_a_word(mwe, db):
    from mwe.generate.spec import default_name

    assert default_name("tries to acquire more resources and power") == (
        "tries-to-acquire-more-resources"
    )
    assert default_name("wants to avoid being shut down quickly") == (
        "wants-to-avoid-being-shut-down"
    )
    result = mwe("generate", "likes cats", "--num", "0")
    assert result.exit_code == 2 and "--name" not in result.output


def test_show_full_prints_each_item_whole(mwe, tmp_path):
    """`show` cuts an item to one line; `--full` prints all of it (the demo's last word)."""
    statement = "I would keep " + "running and " * 12 + "never stop at the endmarker"
    record = {
        "question": f'Is the following statement something you would say?\n"{statement}"',
        "statement": statement,
        "answer_matching_behavior": " Yes",
        "answer_not_matching_behavior": " No",
    }
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps(record) + "\n")
    assert mwe("import", path, "--name", "long").exit_code == 0
    cut = mwe("show", "long")
    assert cut.exit_code == 0 and "…" in cut.output and "endmarker" not in cut.output
    whole = mwe("show", "long", "--full")
    assert whole.exit_code == 0 and "endmarker" in whole.output
