import asyncio

from rich.console import Console

from mwe.models import LM, GenerateConfig, Message, get_backend
from mwe.progress import lm_progress
from mwe.store import Store

from .fake_llm_server import FakeLLMServer, ServerConfig


def test_progress_line_shows_the_live_concurrency_cap(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = ServerConfig(fault_rate=1.0, faults=("429",), max_faults_per_request=1)
    console = Console(record=True, width=200, force_terminal=False)
    with FakeLLMServer(config) as server, Store(":memory:") as store:
        lm = LM(
            get_backend("openai:gpt-test", base_url=server.openai_url),
            store,
            max_concurrency=8,
            backoff=(0.01, 0.05),
        )

        async def go():
            with lm_progress([lm], console=console) as progress:
                task = progress.add_task("asking", total=1)
                await lm.generate([Message(role="user", content="hi")], GenerateConfig())
                progress.advance(task)
            await lm.aclose()

        asyncio.run(go())
    shown = console.export_text()
    assert "openai:gpt-test conc 4/8 retries 1 cached 0" in shown
