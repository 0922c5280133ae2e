"""mwe as a library: typed options in, typed results out, async first, and sync wrappers that
work inside a running event loop (a notebook, an async server, another harness)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mwe import (
    GenerateOptions,
    GenerationResult,
    ProgressEvent,
    ScoreOptions,
    ScoreReport,
    Store,
    generate_eval,
    generate_eval_async,
    import_jsonl,
    score,
)
from mwe.models import LM, GenerateConfig, MemoryCalls, Message, get_backend
from mwe.models.function_backend import register_function, unregister_function

from . import scripted_models
from .conftest import PERSONA
from .fake_llm_server import FakeLLMServer
from .test_generate import DESCRIPTION, scripted_server, write_examples


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def options(server: FakeLLMServer, examples: Path, **changes: object) -> GenerateOptions:
    values: dict[str, object] = {
        "description": DESCRIPTION,
        "n": 20,
        "generator": "openai:scripted-generator",
        "judge": "openai:scripted-judge",
        "generator_base_url": server.openai_url,
        "judge_base_url": server.openai_url,
        "examples": examples,
    }
    return GenerateOptions.model_validate(values | changes)


def test_generate_async_and_sync_inside_a_running_loop(tmp_path: Path) -> None:
    examples = write_examples(tmp_path / "examples.jsonl")
    events: list[ProgressEvent] = []
    with scripted_server() as server, Store(tmp_path / "lib.duckdb") as store:

        async def notebook_cell() -> tuple[GenerationResult, GenerationResult]:
            first = await generate_eval_async(
                store, options(server, examples), progress=events.append
            )
            # The sync wrapper, called where asyncio.run() would refuse to start.
            again = generate_eval(store, options(server, examples))
            return first, again

        first, again = asyncio.run(notebook_cell())
    assert (
        isinstance(first, GenerationResult) and first.info.ref == "wants-to-avoid-being-shut-down@1"
    )
    assert first.counts["kept"] == first.info.item_count > 0
    assert [u.role for u in first.usage] == ["generator", "judge"]
    assert first.usage[0].requests > 0
    assert again.unchanged and all(u.requests == 0 for u in again.usage)  # all from the cache
    stages = [e.stage for e in events]
    assert stages[0] == "spec" and "generate" in stages and "judge" in stages
    judged = [e for e in events if e.stage == "judge"]
    assert judged[-1].done == judged[-1].total


def test_one_model_as_generator_and_judge_is_reported_once(tmp_path: Path) -> None:
    examples = write_examples(tmp_path / "examples.jsonl")
    with scripted_server() as server, Store(tmp_path / "lib.duckdb") as store:
        opts = options(server, examples, judge="openai:scripted-generator")
        result = generate_eval(store, opts)  # the test server answers log-probs for any model
    assert [u.role for u in result.usage] == ["generator and judge"]


def test_score_inside_a_running_loop(tmp_path: Path) -> None:
    with FakeLLMServer() as server, Store(tmp_path / "lib.duckdb") as store:
        import_jsonl(store, [PERSONA / "agreeableness.jsonl"])
        todo = ScoreOptions(
            sets=["agreeableness"], models=["openai:gpt-test"], base_url=server.openai_url, limit=8
        )

        async def harness() -> ScoreReport:
            return score(store, todo)

        report = asyncio.run(harness())
        again = score(store, todo)
    assert isinstance(report, ScoreReport)
    assert report.new_rows == 8 and report.skipped_rows == 0
    (result,) = report.results
    assert result.set == "agreeableness@1" and result.items == 8
    assert again.new_rows == 0 and again.skipped_rows == 8


def test_an_lm_needs_no_store() -> None:
    with FakeLLMServer() as server:
        lm = LM(get_backend("openai:gpt-test", base_url=server.openai_url))
        assert isinstance(lm.cache.calls, MemoryCalls)
        hi = [Message(role="user", content="hi")]

        async def twice() -> list[list[str]]:
            try:
                return [await lm.generate(hi, GenerateConfig()) for _ in range(2)]
            finally:
                await lm.aclose()

        first, second = asyncio.run(twice())
        assert first == second == ["echo: hi"]
        assert server.stats.requests == 1 and lm.stats.cache_hits == 1


def test_function_models_run_the_pipeline_without_a_server(tmp_path: Path) -> None:
    def reply(messages: list[Message], sample: int) -> str:
        return scripted_models.script({"messages": [m.model_dump() for m in messages]}, sample)

    def logprobs(messages: list[Message], answers: list[str]) -> dict[str, float | None]:
        top = scripted_models.judge({"messages": [m.model_dump() for m in messages]})
        return {a: top.get(a) for a in answers}

    register_function("scripted-generator", reply)
    register_function("scripted-judge", reply, logprobs)
    examples = write_examples(tmp_path / "examples.jsonl")
    try:
        with Store(tmp_path / "f.duckdb") as store:
            result = generate_eval(
                store,
                description=DESCRIPTION,
                n=20,
                generator="function:scripted-generator",
                judge="function:scripted-judge",
                examples=examples,
            )
    finally:
        unregister_function("scripted-generator")
        unregister_function("scripted-judge")
    # The same scripts behind the HTTP test server and the real SDK give the same set.
    with scripted_server() as server, Store(tmp_path / "http.duckdb") as store:
        over_http = generate_eval(store, options(server, examples))
    assert result.info.content_hash == over_http.info.content_hash
    assert result.judge_method == "logprobs"
