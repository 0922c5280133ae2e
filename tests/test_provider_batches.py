"""`--batch`: the providers' batch APIs (OpenAI Batch, Anthropic Message Batches) through the
real SDKs against the test server, which speaks both protocols and fails chosen lines."""

from __future__ import annotations

import hashlib
import json
import signal
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from mwe.models.pricing import PRICES

from .conftest import PERSONA
from .fake_llm_server import FakeLLMServer, ServerConfig
from .test_generate import DESCRIPTION, _content_hash, _mwe_process, scripted_server, write_examples

# A priced model name: the server answers whatever the name, and the cost uses its price.
MODEL = "openai:gpt-4.1-mini"
assert MODEL in PRICES


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MWE_BATCH_POLL_S", "0.05")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    return write_examples(tmp_path / "examples.jsonl")


def generate(examples: Path, *extra: str) -> list[str]:
    """A small generation with one priced OpenAI model as generator and judge; the server is
    reached through OPENAI_BASE_URL, so no --base-url makes the price unknown."""
    return [
        "generate",
        DESCRIPTION,
        "--generator",
        MODEL,
        "--judge",
        MODEL,
        "-n",
        "20",
        "--examples",
        str(examples),
        *extra,
    ]


def calls(db: Path) -> dict[str, tuple[str, float | None]]:
    """Every cached call: its response and cost, by key."""
    conn = duckdb.connect(str(db), read_only=True)
    try:
        rows = conn.execute("SELECT key, response, cost_usd FROM llm_calls").fetchall()
    finally:
        conn.close()
    return {key: (response, cost) for key, response, cost in rows}


def test_batch_generation_gives_the_same_set_at_half_price(mwe, tmp_path, examples, monkeypatch):
    with scripted_server() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
        direct = mwe("--db", tmp_path / "direct.duckdb", *generate(examples))
        assert direct.exit_code == 0, direct.output
        direct_requests = server.stats.requests
        server.reset()
        batched = mwe("--db", tmp_path / "batch.duckdb", *generate(examples, "--batch"))
        assert batched.exit_code == 0, batched.output
        stats = server.stats
    assert _content_hash(tmp_path / "batch.duckdb") == _content_hash(tmp_path / "direct.duckdb")
    # Only the spec (one call) went directly; the generator's and the judge's calls each went
    # in one batch, every line once.
    assert stats.requests == 1 and direct_requests > 1
    assert len(stats.batches) == 2 and set(stats.batch_submissions.values()) == {1}
    # The same calls are cached with the same responses; each costs half, but the spec.
    before, after = calls(tmp_path / "direct.duckdb"), calls(tmp_path / "batch.duckdb")
    assert set(before) == set(after)
    assert all(before[key][0] == after[key][0] for key in before)
    ratios = Counter(round(after[k][1] / before[k][1], 9) for k in before if before[k][1])
    assert ratios == {0.5: len(stats.batch_submissions), 1.0: 1}, ratios


def test_a_killed_batch_run_polls_instead_of_submitting_again(mwe, tmp_path, examples, monkeypatch):
    with scripted_server() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
        # The uninterrupted run in this process: only the killed runs need processes of their own.
        whole = mwe("--db", tmp_path / "whole.duckdb", *generate(examples))
        assert whole.exit_code == 0, whole.output
        server.reset()
        db = tmp_path / "killed.duckdb"
        args = generate(examples, "--batch")
        # Killed right after the generator's batch is submitted, then (polled and collected
        # by the second run) right after the judge's batch is submitted.
        for _ in range(2):
            killed = _mwe_process(db, args, "batch_submitted:1")
            assert killed.returncode == -signal.SIGKILL, killed.stderr
        final = mwe("--db", db, *args)  # the resuming run is not killed: this process will do
        assert final.exit_code == 0, final.output
        stats = server.stats
    assert len(stats.batches) == 2  # no second batch for the same requests
    assert max(stats.batch_submissions.values()) == 1
    assert stats.requests == 1  # the spec, sent directly once and cached
    assert _content_hash(db) == _content_hash(tmp_path / "whole.duckdb")
    conn = duckdb.connect(str(db), read_only=True)
    try:
        statuses = conn.execute("SELECT status FROM provider_batches").fetchall()
    finally:
        conn.close()
    assert statuses == [("collected",), ("collected",)]


def test_failed_lines_alone_are_resubmitted(mwe, tmp_path, examples, monkeypatch):
    with scripted_server() as server:
        server.config.batch_fail_rate = 0.1
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
        result = mwe("--db", tmp_path / "batch.duckdb", *generate(examples, "--batch"))
        assert result.exit_code == 0, result.output
        stats = server.stats
        server.config.batch_fail_rate = 0.0
        direct = mwe("--db", tmp_path / "direct.duckdb", *generate(examples))
        assert direct.exit_code == 0, direct.output
    failed = set(stats.batch_failed)
    sent_again = {cid for cid, n in stats.batch_submissions.items() if n > 1}
    print(
        f"{len(failed)} of {len(stats.batch_submissions)} lines failed; {len(stats.batches)} batches"
    )
    assert failed and sent_again == failed  # only the failed lines, each once more
    assert max(stats.batch_submissions.values()) == 2
    # One batch per stage (generator, judge), and one more for each stage's failed lines.
    retries = [batch for batch in stats.batches if set(batch) <= failed]
    assert len(stats.batches) == 4 and len(retries) == 2
    assert sum(len(batch) for batch in retries) == len(failed)
    assert _content_hash(tmp_path / "batch.duckdb") == _content_hash(tmp_path / "direct.duckdb")


def _vote(payload: dict, sample: int) -> str:
    """A judge that votes Yes or No by the prompt, the same in a batch as directly."""
    prompt = payload["messages"][-1]["content"]
    return "Yes" if hashlib.sha256(prompt.encode()).digest()[0] % 3 else "No"


def test_anthropic_message_batches_answer_as_direct_calls(mwe, tmp_path):
    """judge-check with an Anthropic judge (votes by sampling, one request per sample) through
    Message Batches, with 10% of the lines errored or expired: the cache holds the same calls
    and responses as a direct run, and the failed lines alone were sent again."""
    assert (
        mwe("--db", tmp_path / "a.duckdb", "import", PERSONA / "agreeableness.jsonl").exit_code == 0
    )
    assert (
        mwe("--db", tmp_path / "b.duckdb", "import", PERSONA / "agreeableness.jsonl").exit_code == 0
    )
    outputs = {}
    with FakeLLMServer(ServerConfig(script=_vote, batch_fail_rate=0.1)) as server:
        for db, extra in (("a", ()), ("b", ("--batch",))):
            result = mwe(
                "--db",
                tmp_path / f"{db}.duckdb",
                "judge-check",
                "agreeableness",
                "--judge",
                "anthropic:claude-test",
                "--base-url",
                server.url,
                "--limit",
                "12",
                *extra,
            )
            assert result.exit_code == 0, result.output
            outputs[db] = result.output
        stats = server.stats
    assert outputs["a"] == outputs["b"]
    direct, batched = calls(tmp_path / "a.duckdb"), calls(tmp_path / "b.duckdb")
    assert {k: r for k, (r, _) in direct.items()} == {k: r for k, (r, _) in batched.items()}
    assert len(direct) == 12 * 5  # five votes per item, each a request of its own
    assert set(stats.batch_submissions) == set(batched)
    failed = set(stats.batch_failed)
    assert failed and {c for c, n in stats.batch_submissions.items() if n > 1} == failed


@pytest.mark.parametrize("model", ["openai:gpt-test", "anthropic:claude-test"])
def test_batch_scoring_stores_the_same_scores(mwe, tmp_path, model):
    for db in ("a", "b"):
        assert (
            mwe(
                "--db", tmp_path / f"{db}.duckdb", "import", PERSONA / "agreeableness.jsonl"
            ).exit_code
            == 0
        )
    with FakeLLMServer(ServerConfig(script=_vote)) as server:
        url = server.openai_url if model.startswith("openai") else server.url
        for db, extra in (("a", ()), ("b", ("--batch",))):
            result = mwe(
                "--db",
                tmp_path / f"{db}.duckdb",
                "score",
                "agreeableness",
                "--model",
                model,
                "--limit",
                "10",
                "--base-url",
                url,
                "--output",
                "json",
                *extra,
            )
            assert result.exit_code == 0, result.output
        stats = server.stats
    assert len(stats.batches) == 1
    rows = {}
    for db in ("a", "b"):
        conn = duckdb.connect(str(tmp_path / f"{db}.duckdb"), read_only=True)
        try:
            rows[db] = conn.execute(
                "SELECT idx, logprobs, method FROM scores ORDER BY idx"
            ).fetchall()
        finally:
            conn.close()
    assert len(rows["a"]) == 10 and rows["a"] == rows["b"]


@pytest.mark.parametrize(
    "args",
    [
        ["generate", DESCRIPTION, "--generator", "local", "--batch"],
        ["generate", DESCRIPTION, "--generator", MODEL, "--judge", "local", "--batch"],
        ["score", "agreeableness", "--model", "local", "--batch"],
        ["judge-check", "agreeableness", "--judge", "hf:/nowhere", "--batch"],
    ],
)
def test_batch_with_a_local_model_is_a_usage_error(mwe, db, args):
    result = mwe(*args)
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("Error: ") and "\n" not in message and "has no batch API" in message
    assert not db.exists()


def test_a_batch_is_recorded_before_it_is_polled(tmp_path):
    """The store holds a submitted batch and its lines' cache requests at once; the LM layer
    with calls kept in memory batches too."""
    import asyncio

    from mwe.models import LM, GenerateConfig, Message, get_backend
    from mwe.store import Store

    async def run(lm: LM) -> list[list[str]]:
        try:
            return await asyncio.gather(
                *(
                    lm.generate([Message(role="user", content=f"q{i}")], GenerateConfig(n=2))
                    for i in range(5)
                )
            )
        finally:
            await lm.aclose()

    with FakeLLMServer() as server:
        with Store(tmp_path / "s.duckdb") as store:
            backend = get_backend("openai:gpt-test", base_url=server.openai_url)
            lm = LM(backend, store, batch=True, batch_options={"poll_s": 0.01})
            texts = asyncio.run(run(lm))
            rows = store.conn.execute(
                "SELECT b.status, b.lines, count(*) FROM provider_batches b "
                "JOIN provider_batch_lines l ON l.batch_id = b.id GROUP BY ALL"
            ).fetchall()
            requests = store.conn.execute("SELECT requests FROM provider_batch_lines").fetchall()
        memory = LM(get_backend("openai:gpt-test", base_url=server.openai_url), batch=True)
        assert asyncio.run(run(memory)) == texts
    assert texts == [[f"echo: q{i}"] * 2 for i in range(5)]
    assert rows == [("collected", 5, 5)]
    assert all(len(json.loads(r)) == 2 for (r,) in requests)  # two samples per line
    assert lm.stats.batched == 5 and lm.stats.requests == 5
