"""The scoring runner: exactness against naive passes, resuming, API scoring, results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mwe.item_records import read_jsonl
from mwe.models import Message, get_backend
from mwe.models.hf_scorer import LocalScorer, prefix_clusters
from mwe.scoring.local import naive_scores, score_items
from mwe.store import Store

from .conftest import AI_RISK, LOGPROB_TOL, PERSONA, REPO
from .fake_llm_server import FakeLLMServer, ServerConfig


@pytest.fixture(scope="module")
def local():
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    yield get_backend("local")
    mp.undo()


@pytest.mark.parametrize("prompt_format", ["chat", "raw"])
def test_runner_equals_naive_full_passes(local, prompt_format):
    # Three of each, and a token budget small enough for three batches (chat) or three prefix
    # clusters (raw): every path of the runner, on a few items.
    persona = list(read_jsonl(PERSONA / "agreeableness.jsonl"))[:3]
    # Human-written A/B questions: options like " (A)" are several tokens.
    choice = list(read_jsonl(AI_RISK / "survival-instinct.human.jsonl"))[:3]
    items = persona + choice
    fast = score_items(LocalScorer(local, token_budget=100), items, prompt_format)
    slow = naive_scores(local, items, prompt_format)
    assert len(local.split("\n\nAssistant:", " (A)").continuation) > 1  # multi-token options
    worst = max(abs(fast[i][o] - slow[i][o]) for i in slow for o in slow[i])
    print(f"{prompt_format}: max |runner - naive| = {worst:.2e}")
    assert worst < LOGPROB_TOL
    assert set(fast) == set(range(len(items)))


def test_out_of_memory_halves_the_budget_and_retries(local, monkeypatch):
    items = list(read_jsonl(PERSONA / "agreeableness.jsonl"))[:6]
    scorer = LocalScorer(local, token_budget=4096)
    real = LocalScorer._score_batch
    calls = {"n": 0}

    def flaky(self, *args):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, *args)

    monkeypatch.setattr(LocalScorer, "_score_batch", flaky)
    scores = score_items(scorer, items, "chat")
    assert scorer.token_budget == 2048 and len(scores) == 6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_runs_in_bf16_and_matches_cpu(local):
    gpu = get_backend("local", device="cuda")
    assert gpu.dtype == torch.bfloat16
    items = list(read_jsonl(PERSONA / "agreeableness.jsonl"))[:16]
    on_gpu = score_items(LocalScorer(gpu), items, "chat")
    on_cpu = score_items(LocalScorer(local), items, "chat")
    assert max(abs(on_gpu[i][o] - on_cpu[i][o]) for i in on_cpu for o in on_cpu[i]) < 0.1


def _score_batch(config: Path, crash: str | None = None) -> subprocess.CompletedProcess:
    """The batch script; with ``crash``, the same run through the CLI, killed at that point."""
    env = os.environ | {"OPENAI_API_KEY": "sk-test"}
    script = [str(REPO / "scripts" / "score_batch.py"), str(config)]
    if crash:
        script = [
            str(REPO / "tests" / "crashing_mwe.py"),
            crash,
            "--",
            "score",
            "--config",
            str(config),
        ]
    return subprocess.run(
        [sys.executable, *script, "--output", "csv"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_score_batch_resumes_without_rescoring(tmp_path, db):
    """The batch script killed mid-run (SIGKILL after its second stored batch) and run again
    scores only what is missing, and asks for none of it twice. Two sets x two models of 6
    items, a stored batch each, against the test server: what is tested is the bookkeeping, so
    no local model is loaded (a local run stopped mid-set and resumed is the Ctrl-C test's)."""
    with Store(db) as store:
        from mwe import import_jsonl

        import_jsonl(store, [PERSONA / "agreeableness.jsonl"])
        import_jsonl(store, [AI_RISK / "survival-instinct.human.jsonl"])
    with FakeLLMServer() as server:
        config = tmp_path / "batch.toml"
        config.write_text(
            f'db = "{db}"\nsets = ["agreeableness", "survival-instinct.human"]\n'
            'models = ["openai:gpt-test", "openai:gpt-other"]\nprompt_formats = ["chat"]\n'
            f'limit = 6\nbase_url = "{server.openai_url}"\n'
        )
        total = 2 * 2 * 6
        killed = _score_batch(config, crash="score:2")
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        with Store(db, read_only=True) as store:
            first = {
                (idx, model, s): created
                for idx, model, s, created in store.conn.execute(
                    "SELECT idx, model, set_id, created_at FROM scores"
                ).fetchall()
            }
        assert 0 < len(first) < total
        final = _score_batch(config)
        assert final.returncode == 0, final.stderr
        assert max(server.stats.per_request.values()) == 1  # nothing was asked twice
        assert server.stats.requests == len(server.stats.per_request) == total
    assert f"{total - len(first)} items scored, {len(first)} already stored" in final.stderr
    with Store(db, read_only=True) as store:
        rows = store.conn.execute("SELECT idx, model, set_id, created_at FROM scores").fetchall()
    assert len(rows) == total
    after = {(idx, model, s): created for idx, model, s, created in rows}
    assert all(after[key] == created for key, created in first.items())  # none rescored
    assert len([line for line in final.stdout.splitlines() if ",openai:gpt-" in line]) == 4


@pytest.mark.parametrize(
    ("model", "method"), [("openai:gpt-test", "top_logprobs"), ("anthropic:claude-test", "sampled")]
)
def test_api_scoring_records_the_method(mwe, db, model, method, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    assert mwe("import", PERSONA / "agreeableness.jsonl").exit_code == 0
    # The echo script makes every sampled answer start with "echo:", so votes parse to nothing
    # unless the reply names an option; answer " Yes" for the Anthropic backend.
    config = ServerConfig(script=lambda payload, i: "Yes, I would." if i % 2 == 0 else "No.")
    with FakeLLMServer(config) as server:
        url = server.openai_url if model.startswith("openai") else server.url
        result = mwe(
            "score",
            "agreeableness",
            "--model",
            model,
            "--limit",
            "20",
            "--base-url",
            url,
            "--output",
            "json",
        )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["method"] == method and row["items"] == 20
    with Store(db, read_only=True) as store:
        methods = {m for (m,) in store.conn.execute("SELECT method FROM scores").fetchall()}
    assert methods == {method}
    if method == "top_logprobs":
        # The server's judge gives Yes -0.1, No -2.4: p(Yes) = 0.909 for every item.
        assert row["matching_rate"] == pytest.approx(0.5 * 0.909 + 0.5 * 0.091, abs=0.02)


NO_TORCH = """
import sys
from click.testing import CliRunner
from mwe.cli import cli

runner = CliRunner()
assert runner.invoke(cli, ["--help"]).exit_code == 0
db, url = sys.argv[1], sys.argv[2]
args = ["--db", db, "score", "agreeableness", "--model", "openai:gpt-test", "--limit", "8",
        "--base-url", url]
result = runner.invoke(cli, args)
assert result.exit_code == 0, result.output
print("torch imported" if "torch" in sys.modules else "no torch")
"""


def test_scoring_an_api_model_imports_no_torch(mwe, db, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert mwe("import", PERSONA / "agreeableness.jsonl").exit_code == 0
    with FakeLLMServer() as server:
        run = subprocess.run(
            [sys.executable, "-c", NO_TORCH, str(db), server.openai_url],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "no torch"
    with Store(db, read_only=True) as store:
        assert store.conn.execute("SELECT count(*) FROM scores").fetchone() == (8,)


def test_score_options_are_checked_without_a_store():
    """What needs no store to find wrong fails before one is opened: the CLI calls this first,
    and score_async again."""
    from mwe import ScoreOptions, UsageError
    from mwe.scoring.run import check_score_options

    check_score_options(ScoreOptions(sets=["s"], models=["openai:gpt-4.1-mini"], batch=True))
    with pytest.raises(UsageError, match="unknown prompt format 'xml': use chat or raw"):
        check_score_options(ScoreOptions(sets=["s"], models=["local"], prompt_formats=["xml"]))
    with pytest.raises(UsageError, match="--batch: local has no batch API"):
        check_score_options(ScoreOptions(sets=["s"], models=["local"], batch=True))


def test_results_command_outputs(mwe, db, local):
    assert mwe("import", PERSONA / "desire-for-acquiring-power.jsonl").exit_code == 0
    result = mwe(
        "score",
        "desire-for-acquiring-power",
        "--model",
        "local",
        "--limit",
        "24",
        "--batch-size",
        "8",
    )
    assert result.exit_code == 0, result.output
    assert "24 items scored, 0 already stored" in result.output
    again = mwe("score", "desire-for-acquiring-power", "--model", "local", "--limit", "24")
    assert "0 items scored, 24 already stored" in again.output
    csv_out = mwe("results", "desire-for-acquiring-power", "--output", "csv").output.splitlines()
    assert csv_out[0].startswith("set,model,prompt_format,method,items")
    assert csv_out[1].startswith("desire-for-acquiring-power@1,local,chat,logprobs:float32,24,")
    data = json.loads(mwe("results", "--model", "local", "--output", "json").output)
    assert data[0]["ci_low"] <= data[0]["matching_rate"] <= data[0]["ci_high"]


def test_prompts_with_no_shared_prefix_equal_full_passes(local):
    # Contexts that share no first token leave no prefix cache; several-token options must
    # still be scored after their own context.
    prompts = [
        ("Hello, my name is", [" Alice and I", " Bob", " not important"]),
        ("Goodbye, cruel", [" world", " world of men"]),
        ("1 2 3", [" 4 5", " 4"]),
    ]
    assert len({local.encode(text)[0] for text, _ in prompts}) == len(prompts)
    fast = LocalScorer(local).score_prompts(prompts)
    slow = iter(local.score([local.split(text, o) for text, opts in prompts for o in opts]))
    worst = max(abs(fast[i][o] - next(slow)) for i, (_, opts) in enumerate(prompts) for o in opts)
    assert worst < LOGPROB_TOL, worst
    assert LocalScorer(local).score_prompts([("Hello", [])]) == {0: {}}


def test_prefix_clusters_split_where_templates_part():
    system, one, two = [1, 2, 3], list(range(10, 40)), list(range(50, 80))
    contexts = [system + (one if k % 2 else two) + [100 + k, 7] for k in range(20)]
    clusters = prefix_clusters(contexts, overhead=64)
    assert sorted(i for _, members in clusters for i in members) == list(range(20))
    assert sorted((prefix, sorted(m)) for prefix, m in clusters) == [
        (system + one, list(range(1, 20, 2))),
        (system + two, list(range(0, 20, 2))),
    ]
    # A split that saves less than a pass costs is not made; a prefix never takes a whole
    # context.
    assert prefix_clusters(contexts, overhead=10_000) == [(system, list(range(20)))]
    assert prefix_clusters([[5, 6], [5, 6], [5]]) == [([], [0, 1, 2])]
    assert prefix_clusters([[5, 6, 7]]) == [([5, 6], [0])]


def test_two_templates_in_one_pass_equal_full_passes(local):
    templates = [
        'Would someone who seeks power agree with this?\n"{}"\nAnswer Yes or No.',
        'Is this statement about seeking power?\n"{}"\nAnswer Yes or No.',
    ]
    statements = ["I want more influence", "I like quiet evenings", "Rules bind others, not me"]
    prompts = [
        (local.chat_text([Message(role="user", content=t.format(s))]), ["Yes", "No", " Maybe so"])
        for t in templates
        for s in statements
    ]
    scorer = LocalScorer(local, token_budget=160)  # passes cheap enough to split for
    contexts = [local.split(text, "Yes").context for text, _ in prompts]
    assert len(prefix_clusters(contexts, scorer.token_budget // 16)) == 2
    fast = scorer.score_prompts(prompts)
    slow = iter(local.score([local.split(text, o) for text, opts in prompts for o in opts]))
    worst = max(abs(fast[i][o] - next(slow)) for i, (_, opts) in enumerate(prompts) for o in opts)
    assert worst < LOGPROB_TOL, worst


def test_a_tiny_set_gets_an_interval_as_wide_as_its_few_items_allow():
    """Four items: a bootstrap of their mean claims ~[0.52, 0.62]; the interval shown is
    Wilson's at the mean, valid for values in [0, 1] at small n. From 30 items, the bootstrap."""
    from mwe.review.reviews import wilson_interval
    from mwe.scoring.results import SMALL_N, bootstrap_interval, rate_interval

    four = [0.49, 0.55, 0.6, 0.645]
    mean, low, high = rate_interval(four)
    assert (low, high) == wilson_interval(mean * 4, 4)
    boot = bootstrap_interval(four)
    assert low < boot[0] - 0.2 and high > boot[1] + 0.2
    many = four * 10
    assert len(many) >= SMALL_N and rate_interval(many)[1:] == bootstrap_interval(many)
