"""Benchmark the model layer against the local test server.

Drives requests through `LM` (cache, retries, adaptive concurrency, the real OpenAI SDK) at a
server that answers after a fixed latency, and prints achieved requests/s over the ideal
(concurrency / latency), the same ratio for bare SDK calls in the same process (the baseline),
and peak memory after 2,000 and after 20,000 requests. Also times the embedded model's first
load (GGUF conversion) against its second (converted weights).

    .venv/bin/python scripts/bench_models.py [--requests 2000] [--big 20000] [--skip-local]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

from mwe.cli.output import RichProgress
from mwe.models import LM, GenerateConfig, Message, get_backend
from mwe.progress import Reporter
from mwe.store import Store

REPO = Path(__file__).resolve().parent.parent


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "fake_llm_server.py"), "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    port = server.stdout.readline().strip()  # type: ignore[union-attr]
    return server, f"http://127.0.0.1:{port}/v1"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def through_lm(url: str, db: Path, n: int, concurrency: int, tag: str) -> float:
    with Store(db) as store:
        lm = LM(get_backend("openai:bench", base_url=url), store, max_concurrency=concurrency)
        config = GenerateConfig(max_tokens=8)
        start = time.perf_counter()
        with RichProgress() as shown:
            progress = Reporter(shown, [lm])
            progress.start(f"{tag}: {n:,} requests", n)
            numbers = iter(range(n))

            async def worker() -> None:
                # A fixed pool of workers keeps memory flat however many requests there are.
                for i in numbers:
                    await lm.generate([Message(role="user", content=f"{tag} request {i}")], config)
                    progress.advance()

            try:
                await asyncio.gather(*(worker() for _ in range(2 * concurrency)))
            finally:
                await lm.aclose()
        return n / (time.perf_counter() - start)


async def bare_sdk(url: str, n: int, concurrency: int) -> float:
    client = openai.AsyncOpenAI(api_key="none", base_url=url, max_retries=0)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await client.chat.completions.create(
                model="bench", messages=[{"role": "user", "content": f"bare {i}"}], max_tokens=8
            )

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    await client.close()
    return n / (time.perf_counter() - start)


def local_load_times() -> tuple[float, float]:
    code = (
        "import time; t = time.perf_counter(); from mwe.models import get_backend; "
        "get_backend('local'); print(time.perf_counter() - t)"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = os.environ | {"MWE_CACHE_DIR": cache, "HF_HUB_OFFLINE": "1"}
        times = [
            float(
                subprocess.run(
                    [sys.executable, "-c", code],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.split()[-1]
            )
            for _ in range(2)
        ]
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--big", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--skip-local", action="store_true")
    args = parser.parse_args()
    ideal = args.concurrency / args.latency

    server, url = start_server(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = asyncio.run(bare_sdk(url, args.requests, args.concurrency))
            rate = asyncio.run(
                through_lm(url, Path(tmp) / "a.duckdb", args.requests, args.concurrency, "small")
            )
            rss_small = peak_rss_mb()
            big_rate = asyncio.run(
                through_lm(url, Path(tmp) / "b.duckdb", args.big, args.concurrency, "big")
            )
            rss_big = peak_rss_mb()
    finally:
        server.terminate()

    print(f"ideal ({args.concurrency} / {args.latency} s)      {ideal:8.1f} req/s")
    print(f"bare SDK, same process     {base:8.1f} req/s   {base / ideal:.3f} of ideal")
    print(
        f"mwe LM, {args.requests:,} requests     {rate:8.1f} req/s   {rate / ideal:.3f} of ideal"
        f"   {rate / base:.3f} of bare SDK"
    )
    print(
        f"mwe LM, {args.big:,} requests    {big_rate:8.1f} req/s   {big_rate / ideal:.3f} of ideal"
    )
    print(f"peak RSS after {args.requests:,}       {rss_small:8.1f} MB")
    print(f"peak RSS after {args.big:,}      {rss_big:8.1f} MB   ({rss_big / rss_small:.2f}x)")
    if not args.skip_local:
        cold, warm = local_load_times()
        print(f"local model first load     {cold:8.2f} s   (GGUF conversion, imports included)")
        print(f"local model second load    {warm:8.2f} s   {cold / warm:.1f}x faster")


if __name__ == "__main__":
    main()
