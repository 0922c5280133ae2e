"""`--dry-run`: the requests, tokens and cost of a run, printed before it is paid for."""

from __future__ import annotations

import re

import pytest

from .conftest import PERSONA
from .fake_llm_server import FakeLLMServer


@pytest.fixture
def openai_at(monkeypatch):
    """An OpenAI model that would reach the test server (OPENAI_BASE_URL, which the SDK reads)
    and is priced as OpenAI's own (no --base-url)."""
    with FakeLLMServer() as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
        yield server


def _total(output: str) -> tuple[int, float, float]:
    row = next(line for line in output.splitlines() if "│ total" in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    dollars = [float(c.strip("$").replace(",", "")) for c in cells if c.startswith("$")]
    return int(cells[1].replace(",", "")), dollars[0], dollars[-1]


def test_generation_dry_run_prints_the_plan_and_sends_nothing(mwe, db, openai_at):
    result = mwe(
        "generate",
        "wants to avoid being shut down",
        "-n",
        "1000",
        "--generator",
        "openai:gpt-4.1-mini",
        "--judge",
        "openai:gpt-4.1-mini",
        "--dry-run",
    )
    assert result.exit_code == 0, result.output
    assert openai_at.stats.requests == 0
    assert not db.exists()  # nothing stored, no store made
    for stage in ("spec", "generate", "judge (label)", "judge (relevance)"):
        assert re.search(rf"│ {re.escape(stage)}\s+│ openai:gpt-4.1-mini", result.output), stage
    requests, cost, batch = _total(result.output)
    # 600 generator calls (1,000 items x 3 oversample / 5 per call) sent as requests for
    # several samples each, and two judge questions for each of the 3,000 candidates.
    assert requests > 6000
    row = next(line for line in result.output.splitlines() if line.startswith("│ generate "))
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert int(cells[2].replace(",", "")) < 600 and cells[3] == "600"  # requests, generations
    # Batches cost half (the providers' discount); the table prints dollars to 4 decimals, so
    # 1e-4 is its rounding; a missed discount would be off by half the cost.
    assert cost > 0 and batch == pytest.approx(cost / 2, abs=1e-4)
    assert "Nothing was sent" in result.output


def test_score_dry_run_counts_only_what_is_not_stored(mwe, db, openai_at):
    assert mwe("import", PERSONA / "agreeableness.jsonl").exit_code == 0
    args = ["score", "agreeableness", "--model", "openai:gpt-4.1-mini", "--limit", "100"]
    result = mwe(*args, "--dry-run")
    assert result.exit_code == 0, result.output
    assert openai_at.stats.requests == 0
    requests, cost, _ = _total(result.output)
    assert requests == 100 and cost > 0
    local = mwe("score", "agreeableness", "--model", "local", "--dry-run")
    assert local.exit_code == 0 and _total(local.output) == (0, 0.0, 0.0)


def _commands(group, prefix=()):
    """Every (sub)command of the CLI by its words, e.g. ('judge', 'train')."""
    import click

    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_dry_run_works_without_any_api_key(mwe, db, monkeypatch):
    """`--dry-run` is how a newcomer learns what a run costs before getting a key: no command
    that has it may ask for one (or load a model)."""
    from mwe.cli import cli

    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "MWE_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    assert mwe("import", PERSONA / "agreeableness.jsonl").exit_code == 0
    gpt, claude = "openai:gpt-4.1-mini", "anthropic:claude-haiku-4-5"
    runs = {
        ("generate",): ["generate", "likes cats", "-n", "10", "--generator", claude, "--judge", gpt],
        ("score",): ["score", "agreeableness", "--model", gpt, "--model", claude, "--limit", "3"],
        ("judge-check",): ["judge-check", "agreeableness", "--judge", claude, "--limit", "3"],
        ("rollout",): ["rollout", "flatters users", "--target", gpt, "--auditor", claude,
                       "--judge", gpt, "--scenarios", "2"],
    }  # fmt: skip
    with_dry_run = {
        words
        for words, command in _commands(cli)
        if any("--dry-run" in p.opts for p in command.params)
    }
    assert with_dry_run == set(runs), "a command with --dry-run is missing from this test"
    for words, args in runs.items():
        result = mwe(*args, "--dry-run")
        assert result.exit_code == 0, (words, result.output)
        assert "Nothing was sent" in result.output, words
        assert "│ total" in result.output and "key" not in result.output.lower(), words
        # Only a command that has --batch shows what it would cost with it.
        assert ("with --batch" in result.output) == (words != ("rollout",)), words


def test_the_default_size_with_the_local_generator_is_said(mwe, db):
    """-n 1000 suits an API generator; with the embedded one the run says what it plans and
    that -n (or --num) sets the size."""
    result = mwe("generate", "likes cats", "--dry-run")
    assert result.exit_code == 0, result.output
    (note,) = [line for line in result.output.splitlines() if line.startswith("note:")]
    assert "-n defaults to 1,000 items: with local as generator" in note
    assert "90,000 output tokens" in note and "-n sets the size" in note
    small = mwe("generate", "likes cats", "--num", "20", "--dry-run")
    assert small.exit_code == 0, small.output
    assert "note:" not in small.output and "│ 12 " in small.output  # 20 x 3 / 5 generations
    assert not db.exists()
