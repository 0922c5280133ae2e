"""Sync wrappers for the async-first library."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end and return its result, from sync code.

    ``asyncio.run`` refuses to start inside a running event loop (a notebook, an async web
    server, Inspect), so there the coroutine runs on a thread with a loop of its own while the
    caller waits.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mwe-sync") as pool:
        return pool.submit(asyncio.run, coro).result()


async def gather_all(aws: Iterable[Awaitable[T]]) -> list[T]:
    """The results of ``aws``, run concurrently, in order. Unlike ``asyncio.gather``, when one
    fails the others are cancelled and waited for before the error propagates, so nothing runs
    on after its caller has moved on (to close the clients it is using, say)."""

    async def run(aw: Awaitable[T]) -> T:
        return await aw

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(run(aw)) for aw in aws]
    return [task.result() for task in tasks]
