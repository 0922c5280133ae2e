"""The API backends through the real SDKs, against the local test server."""

from __future__ import annotations

import asyncio

import pytest

from mwe.models import LM, GenerateConfig, Message, get_backend
from mwe.models.errors import MissingKeyError, ModelFailedError
from mwe.models.registry import UnknownModelError
from mwe.store import Store

from .fake_llm_server import FAULTS, FakeLLMServer, ServerConfig

N_REQUESTS = 500
BACKENDS = ("openai", "anthropic")


@pytest.fixture(autouse=True)
def _keys(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")


def make_lm(kind: str, server: FakeLLMServer, store: Store, **lm_options) -> LM:
    spec = "openai:gpt-test" if kind == "openai" else "anthropic:claude-test"
    base_url = server.openai_url if kind == "openai" else server.url
    # A second of headroom: on a loaded 2-core machine a healthy request can take 0.5 s, and a
    # time-out there would be a retry the test did not inject.
    backend = get_backend(spec, base_url=base_url, timeout=1.0)
    return LM(backend, store, backoff=(0.01, 0.2), **lm_options)


def prompts(n: int = N_REQUESTS) -> list[list[Message]]:
    return [[Message(role="user", content=f"question number {i}")] for i in range(n)]


async def run_all(lm: LM, batch: list[list[Message]]) -> list[list[str]]:
    try:
        return await asyncio.gather(*(lm.generate(m, GenerateConfig(max_tokens=16)) for m in batch))
    finally:
        await lm.aclose()


@pytest.mark.parametrize("kind", BACKENDS)
def test_faults_are_retried_and_a_rerun_is_served_from_the_cache(kind, db):
    config = ServerConfig(fault_rate=0.3, faults=("429", "500", "timeout"), slow_delay=2.5)
    with FakeLLMServer(config) as server, Store(db) as store:
        lm = make_lm(kind, server, store)
        first = asyncio.run(run_all(lm, prompts()))
        assert first == [[f"echo: question number {i}"] for i in range(N_REQUESTS)]
        injected = sum(server.stats.faults.values())
        print(
            f"{kind}: {injected} faults injected {dict(server.stats.faults)}, "
            f"{lm.stats.retries} retries, {lm.stats.rate_limits} rate limits, "
            f"concurrency limit now {lm.limiter.limit}"
        )
        assert 0.2 * N_REQUESTS < injected  # about 30% of first attempts fault
        assert set(server.stats.faults) == {"429", "500", "timeout"}
        assert lm.stats.retries == injected  # every fault cost exactly one retry
        assert server.stats.requests == N_REQUESTS + injected
        assert lm.stats.rate_limits == server.stats.faults["429"]

        server.reset()
        again = make_lm(kind, server, store)
        second = asyncio.run(run_all(again, prompts()))
        assert server.stats.requests == 0
        assert second == first
        assert again.stats.cache_hits == N_REQUESTS


@pytest.mark.parametrize("kind", BACKENDS)
def test_truncated_and_malformed_bodies_are_retried(kind, db):
    config = ServerConfig(fault_rate=0.5, faults=FAULTS, slow_delay=2.5, seed=3)
    with FakeLLMServer(config) as server, Store(db) as store:
        lm = make_lm(kind, server, store)
        results = asyncio.run(run_all(lm, prompts(60)))
        assert results == [[f"echo: question number {i}"] for i in range(60)]
        assert server.stats.faults["truncated"] and server.stats.faults["malformed"]
        assert lm.stats.retries == sum(server.stats.faults[k] for k in FAULTS)


def test_rate_limits_shrink_the_concurrency_cap(db):
    config = ServerConfig(fault_rate=0.5, faults=("429",), max_faults_per_request=1)
    with FakeLLMServer(config) as server, Store(db) as store:
        lm = make_lm("openai", server, store, max_concurrency=32)
        lm.limiter.cooldown = 0.0
        asyncio.run(run_all(lm, prompts(40)))
        assert lm.stats.rate_limits > 0
        assert lm.limiter.limit < 32


@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize(
    ("status", "fragment"),
    [(401, "rejected the API key (401)"), (400, "rejected the request (400)")],
)
def test_permanent_errors_fail_at_once(kind, status, fragment, db):
    with FakeLLMServer(ServerConfig(force_status=status)) as server, Store(db) as store:
        lm = make_lm(kind, server, store)
        with pytest.raises(ModelFailedError) as info:
            asyncio.run(run_all(lm, prompts(1)))
        message = str(info.value)
        assert fragment in message and "\n" not in message
        assert server.stats.requests == 1  # no retry
        assert lm.stats.retries == 0
        assert store.conn.execute("SELECT count(*) FROM llm_calls").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("spec", "variable"),
    [
        ("openai:gpt-4.1-mini", "OPENAI_API_KEY"),
        ("anthropic:claude-sonnet-4-5", "ANTHROPIC_API_KEY"),
    ],
)
def test_missing_key_fails_before_any_request(spec, variable, monkeypatch):
    monkeypatch.delenv(variable)
    with pytest.raises(MissingKeyError, match=f"set {variable}"):
        get_backend(spec)


def test_quota_exhaustion_is_not_retried(db):
    config = ServerConfig(force_status=429, force_code="insufficient_quota")
    with FakeLLMServer(config) as server, Store(db) as store:
        lm = make_lm("openai", server, store)
        with pytest.raises(ModelFailedError, match="quota exhausted"):
            asyncio.run(run_all(lm, prompts(1)))
        assert server.stats.requests == 1


def test_openai_answer_logprobs_normalise_token_spellings(db):
    judge = lambda payload: {"Yes": -0.5, " yes": -1.5, "No": -2.0, "(A": -3.0}
    with FakeLLMServer(ServerConfig(judge=judge)) as server, Store(db) as store:
        lm = make_lm("openai", server, store)

        async def go():
            messages = [Message(role="user", content="Is it? Yes or No")]
            try:
                return [
                    await lm.answer_logprobs(messages, [" Yes", " No", " (A)", " (B)"])
                    for _ in range(2)
                ]
            finally:
                await lm.aclose()

        first, second = asyncio.run(go())
        import math

        assert first.logprobs[" Yes"] == pytest.approx(math.log(math.exp(-0.5) + math.exp(-1.5)))
        assert first.logprobs[" No"] == -2.0
        assert first.logprobs[" (A)"] == -3.0
        assert first.missing == [" (B)"]
        assert second.logprobs == first.logprobs and server.stats.requests == 1


def test_anthropic_says_it_has_no_logprobs(db):
    from mwe.models import CapabilityError

    with FakeLLMServer() as server, Store(db) as store:
        lm = make_lm("anthropic", server, store)
        assert not lm.backend.answers_logprobs  # declared, so callers vote without trying
        with pytest.raises(CapabilityError, match="no log-probabilities"):
            asyncio.run(lm.answer_logprobs([Message(role="user", content="x")], [" Yes"]))


def test_samples_are_cached_per_index(db):
    with FakeLLMServer() as server, Store(db) as store:
        lm = make_lm("openai", server, store)
        messages = [Message(role="user", content="hello")]

        async def go():
            try:
                await lm.generate(messages, GenerateConfig(n=2))
                return await lm.generate(messages, GenerateConfig(n=5))
            finally:
                await lm.aclose()

        assert asyncio.run(go()) == ["echo: hello"] * 5
        assert server.stats.requests == 2  # the second call asked only for the 3 new samples
        rows = store.conn.execute("SELECT count(*) FROM llm_calls").fetchone()[0]
        assert rows == 5


def test_cost_is_recorded_and_unknown_prices_stay_unknown(db):
    with FakeLLMServer() as server, Store(db) as store:
        known = LM(get_backend("openai:gpt-4.1-mini", client=_client(server)), store)
        custom = make_lm("openai", server, store)  # a custom server: price unknown

        async def go():
            try:
                await known.generate([Message(role="user", content="one two three")])
                await custom.generate([Message(role="user", content="four five")])
            finally:
                await known.aclose()
                await custom.aclose()

        asyncio.run(go())
        rows = dict(store.conn.execute("SELECT model, cost_usd FROM llm_calls").fetchall())
        assert rows["gpt-4.1-mini"] == pytest.approx((3 * 0.40 + 4 * 1.60) / 1e6)
        assert rows["gpt-test"] is None
        assert known.stats.cost_usd == rows["gpt-4.1-mini"] and custom.stats.cost_usd is None


def _client(server):
    import openai

    return openai.AsyncOpenAI(api_key="sk-x", base_url=server.openai_url, max_retries=0)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("opneai:gpt-4o", "did you mean 'openai'"),
        ("gpt-4o", "names no backend"),
        ("openai:", "names no model"),
    ],
)
def test_unknown_model_strings(spec, fragment):
    with pytest.raises(UnknownModelError, match=fragment) as info:
        get_backend(spec)
    assert "openai" in str(info.value)


def test_ask_with_a_bad_model_or_no_key_creates_no_store(mwe, db, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    result = mwe("ask", "openai:gpt-4.1-mini", "hi")
    assert result.exit_code == 2
    assert "set OPENAI_API_KEY" in result.stderr
    result = mwe("ask", "opnai:gpt-4.1-mini", "hi")
    assert result.exit_code == 2 and "did you mean 'openai'" in result.stderr
    assert not db.exists()


def test_ask_replies_and_scores_answers_through_the_cache():
    """The library call behind `mwe ask`, no CLI: the system message goes first, each sample
    is drawn once, a second identical call is answered from the cache, and answers are
    scored by their log-probabilities (None where the model shows none)."""
    from mwe.models import MemoryCalls, ask
    from mwe.models.function_backend import register_function, unregister_function

    drawn: list[int] = []

    def reply(messages: list[Message], sample: int) -> str:
        drawn.append(sample)
        return f"{messages[0].role}/{messages[-1].content}#{sample}"

    def logprobs(messages: list[Message], answers: list[str]) -> dict[str, float | None]:
        return {a: (-0.25 if a == " Yes" else None) for a in answers}

    register_function("asked", reply=reply, logprobs=logprobs)
    try:
        calls, backend = MemoryCalls(), get_backend("function:asked")
        config = GenerateConfig(n=2, max_tokens=8)
        first = ask(backend, "hi", calls, system="be brief", config=config)
        again = ask(backend, "hi", calls, system="be brief", config=config)
        scored = ask(backend, "Yes or no?", calls, answers=[" Yes", " Maybe"])
    finally:
        unregister_function("asked")
    assert first.model == "function:asked"
    assert first.replies == again.replies == ["system/hi#0", "system/hi#1"]
    assert first.logprobs is None and sorted(drawn) == [0, 1]  # the second call drew nothing
    assert (first.stats.requests, first.stats.cache_hits) == (1, 0)
    assert (again.stats.requests, again.stats.cache_hits) == (0, 2)
    assert scored.replies == [] and scored.logprobs == {" Yes": -0.25, " Maybe": None}


def test_ask_prints_replies_and_answers_from_the_cache(mwe, db):
    with FakeLLMServer() as server:
        first = mwe("ask", "openai:gpt-test", "hello there", "--base-url", server.openai_url)
        second = mwe("ask", "openai:gpt-test", "hello there", "--base-url", server.openai_url)
        scored = mwe(
            "ask",
            "openai:gpt-test",
            "Yes or no?",
            "--answers",
            " Yes, No,Perhaps",
            "--base-url",
            server.openai_url,
        )
        assert server.stats.requests == 2
    assert first.stdout == second.stdout == "echo: hello there\n"
    assert "1 request(s), 0 cached" in first.stderr and "0 request(s), 1 cached" in second.stderr
    assert scored.stdout.splitlines() == [
        "' Yes'\t-0.100000",
        "' No'\t-2.400000",
        "'Perhaps'\tmissing",
    ]
