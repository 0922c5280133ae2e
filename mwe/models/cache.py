"""The LM call cache: every call's request and response, keyed by a hash of the request.

A row is keyed by a hash of the canonical request: the model's identity (backend, model, base
URL), the kind of call, the messages, the sampling parameters and the sample index. A hit costs
no request. The cache is how a killed run resumes without paying twice, the audit trail of which
prompt produced what, and the cost report. API keys are never part of a key or a row.

Where rows live is a :class:`CallStore`: the DuckDB store (its ``llm_calls`` table) for the CLI,
or :class:`MemoryCalls` for a library user or a test that wants none, so the model layer needs
no database.

Speed matters here: at hundreds of calls a second, one DuckDB statement per call costs more than
the rest of the client. So new rows are buffered and written in batches on a worker thread
(every ``flush_every`` seconds at most), and a lookup skips the store entirely for keys the
cache knows it lacks (it keeps the set of keys it holds for each model, loaded once).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from mwe.items import canonical_json
from mwe.models.base import Usage


class CallStore(Protocol):
    """Where cached calls are kept; :class:`mwe.store.Store` is one."""

    def call_keys(self, identity: dict[str, Any]) -> list[str]:
        """The keys of every cached call of one model (backend, model, base URL)."""
        ...

    def call_responses(self, keys: Sequence[str]) -> dict[str, str]:
        """The responses (JSON text) of those ``keys`` that are cached."""
        ...

    def write_calls(self, rows: Sequence[dict[str, Any]]) -> None:
        """Keep new calls; a key already kept stays as it was. Called from a worker thread."""
        ...

    def call_totals(self) -> dict[str, Any]:
        """Calls, tokens and cost over everything kept."""
        ...


class MemoryCalls:
    """A :class:`CallStore` in memory, for a run that keeps nothing once it ends."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def call_keys(self, identity: dict[str, Any]) -> list[str]:
        ident = (identity["backend"], identity["model"], identity.get("base_url"))
        with self._lock:
            return [
                k
                for k, r in self.rows.items()
                if (r["backend"], r["model"], r["base_url"]) == ident
            ]

    def call_responses(self, keys: Sequence[str]) -> dict[str, str]:
        with self._lock:
            return {k: self.rows[k]["response"] for k in keys if k in self.rows}

    def write_calls(self, rows: Sequence[dict[str, Any]]) -> None:
        with self._lock:
            for row in rows:
                self.rows.setdefault(row["key"], row)

    def call_totals(self) -> dict[str, Any]:
        with self._lock:
            rows = list(self.rows.values())
        costs = [r["cost_usd"] for r in rows]
        return {
            "calls": len(rows),
            "input_tokens": sum(r["input_tokens"] or 0 for r in rows),
            "output_tokens": sum(r["output_tokens"] or 0 for r in rows),
            "cost_usd": None if None in costs else float(sum(costs)),
        }


def request_key(request: dict[str, Any]) -> str:
    """The cache key of a canonical request."""
    return hashlib.sha256(canonical_json(request).encode()).hexdigest()


def _short(key: str) -> int:
    return int(key[:16], 16)


class CallCache:
    """Reads calls from a :class:`CallStore` and writes new ones to it in batches."""

    def __init__(
        self, calls: CallStore, *, flush_every: float = 1.0, max_pending: int = 512
    ) -> None:
        # A second between writes at most: each write opens the store file (some 25 ms, see
        # mwe.store.connection), which other processes cannot read meanwhile; a kill loses at
        # most that second's calls (the scoring runner flushes after each chunk anyway).
        self.calls = calls
        self.flush_every = flush_every
        self.max_pending = max_pending
        self._pending: dict[str, dict[str, Any]] = {}
        self._known: dict[tuple[str, str, str | None], set[int]] = {}
        self._write_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._flusher: asyncio.Task[None] | None = None

    def _known_keys(self, identity: dict[str, Any]) -> set[int]:
        ident = (identity["backend"], identity["model"], identity.get("base_url"))
        if ident not in self._known:
            self._known[ident] = {_short(key) for key in self.calls.call_keys(identity)}
        return self._known[ident]

    def get_many(self, identity: dict[str, Any], keys: list[str]) -> dict[str, dict[str, Any]]:
        """The stored responses of those ``keys`` (all of one model) that are cached."""
        with self._pending_lock:
            queued = {k: self._pending[k]["response"] for k in keys if k in self._pending}
        found = {k: json.loads(response) for k, response in queued.items()}
        known = self._known_keys(identity)
        ask = [k for k in keys if k not in found and _short(k) in known]
        if ask:
            stored = self.calls.call_responses(ask)
            found.update((key, json.loads(response)) for key, response in stored.items())
        return found

    def put(
        self,
        key: str,
        request: dict[str, Any],
        response: dict[str, Any],
        *,
        usage: Usage,
        cost_usd: float | None,
        latency_s: float,
        run_id: int | None = None,
    ) -> None:
        """Queue one call for writing; a key already stored is left as it was."""
        row = {
            "key": key,
            "backend": request["backend"],
            "model": request["model"],
            "base_url": request.get("base_url"),
            "request": json.dumps(request),
            "response": json.dumps(response),
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cost_usd": cost_usd,
            "latency_s": latency_s,
            "run_id": run_id,
        }
        with self._pending_lock:
            self._pending[key] = row
        self._known_keys(request).add(_short(key))
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()  # no event loop: write at once
            return
        if len(self._pending) >= self.max_pending:
            loop.create_task(self.aflush())
        elif self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_every)
        await self.aflush()

    async def aflush(self) -> None:
        """Write the queued rows on a worker thread, leaving the event loop free."""
        await asyncio.to_thread(self.flush)

    def flush(self) -> None:
        """Write every queued row now; returns once they (and any write in progress) are in
        the database."""
        with self._write_lock:
            with self._pending_lock:
                rows = list(self._pending.values())
            if not rows:
                return
            self.calls.write_calls(rows)
            # Rows leave the queue only once written, so a lookup always finds a paid call
            # either here or in the database.
            with self._pending_lock:
                for row in rows:
                    if self._pending.get(row["key"]) is row:
                        del self._pending[row["key"]]

    def totals(self) -> dict[str, Any]:
        """Calls, tokens and cost over the whole cache (cost ``None`` if any price is unknown)."""
        self.flush()
        return self.calls.call_totals()
