"""The one thread of the process on which local models (torch) load and run.

torch's CPU threads are an OpenMP pool per thread that calls into torch. Work run on whichever
thread is free (``asyncio.to_thread``), or a model loaded on one thread and run on another,
leaves a pool on each: more threads than cores, and libgomp then stops spin-waiting between
operations. So every local model -- the transformers backends, the scoring runner, the sentence
embeddings of the preference model -- loads and runs here.

Once that thread exists, numpy's BLAS (OpenBLAS) is held to one thread, process-wide: its
threads spin-wait after each call, and on a small machine they take the cores from torch's pool
while a model runs (measured on 2 cores: the preference model judged at half the rate of its own
embeddings, 92 against 190 items/s, and at the same rate with BLAS at one thread;
``scripts/bench_pm.py``). mwe's numpy work is small matrices; torch keeps every core.

This module imports no torch: API-only runs use none of it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
_pool: ThreadPoolExecutor | None = None
_thread: threading.Thread | None = None
_lock = threading.Lock()


def torch_worker() -> ThreadPoolExecutor:
    """The executor of that thread, for ``loop.run_in_executor(torch_worker(), fn, ...)``."""
    global _pool
    with _lock:
        if _pool is None:
            _one_blas_thread()
            _pool = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="mwe-torch", initializer=_remember_thread
            )
        return _pool


def torch_future(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """``fn(*args)`` run on that thread, as a future of the running event loop."""
    return asyncio.get_running_loop().run_in_executor(torch_worker(), fn, *args)


def on_torch_worker(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` run on that thread, waiting for it (directly when already there)."""
    if threading.current_thread() is _thread:
        return fn(*args)
    return torch_worker().submit(fn, *args).result()


def _one_blas_thread() -> None:
    """Hold the BLAS libraries loaded so far (numpy's, scipy's) to one thread (see above)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _remember_thread() -> None:
    global _thread
    _thread = threading.current_thread()
