"""The LM call cache: the ``llm_calls`` table of the store.

A row is keyed by a hash of the canonical request: the model's identity (backend, model, base
URL), the kind of call, the messages, the sampling parameters and the sample index. A hit costs
no request. The cache is how a killed run resumes without paying twice, the audit trail of which
prompt produced what, and the cost report. API keys are never part of a key or a row.

Speed matters here: at hundreds of calls a second, one DuckDB statement per call costs more than
the rest of the client. So new rows are buffered and written in batches on a worker thread
(every ``flush_every`` seconds at most), and a lookup skips the database entirely for keys the
cache knows it lacks (it keeps the set of keys it holds for each model, loaded once).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from typing import Any

import pyarrow as pa

from mwe.items import canonical_json
from mwe.models.base import Usage
from mwe.store import Store

_COLUMNS = (
    "key",
    "backend",
    "model",
    "base_url",
    "request",
    "response",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_s",
    "run_id",
)
_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("backend", pa.string()),
        ("model", pa.string()),
        ("base_url", pa.string()),
        ("request", pa.string()),
        ("response", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cost_usd", pa.float64()),
        ("latency_s", pa.float64()),
        ("run_id", pa.int64()),
    ]
)


def request_key(request: dict[str, Any]) -> str:
    """The cache key of a canonical request."""
    return hashlib.sha256(canonical_json(request).encode()).hexdigest()


def _short(key: str) -> int:
    return int(key[:16], 16)


class CallCache:
    """Reads and writes ``llm_calls`` rows through a :class:`Store`."""

    def __init__(self, store: Store, *, flush_every: float = 0.1, max_pending: int = 512) -> None:
        self.store = store
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
            rows = self.store.conn.execute(
                "SELECT key FROM llm_calls WHERE backend = ? AND model = ? "
                "AND base_url IS NOT DISTINCT FROM ?",
                list(ident),
            ).fetchall()
            self._known[ident] = {_short(row[0]) for row in rows}
        return self._known[ident]

    def get_many(self, identity: dict[str, Any], keys: list[str]) -> dict[str, dict[str, Any]]:
        """The stored responses of those ``keys`` (all of one model) that are cached."""
        with self._pending_lock:
            queued = {k: self._pending[k]["response"] for k in keys if k in self._pending}
        found = {k: json.loads(response) for k, response in queued.items()}
        known = self._known_keys(identity)
        ask = [k for k in keys if k not in found and _short(k) in known]
        if ask:
            rows = self.store.conn.execute(
                "SELECT key, response FROM llm_calls WHERE key IN (SELECT unnest(?))", [ask]
            ).fetchall()
            found.update((key, json.loads(response)) for key, response in rows)
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
            self._write(rows)
            # Rows leave the queue only once written, so a lookup always finds a paid call
            # either here or in the database.
            with self._pending_lock:
                for row in rows:
                    if self._pending.get(row["key"]) is row:
                        del self._pending[row["key"]]

    def _write(self, rows: list[dict[str, Any]]) -> None:
        table = pa.Table.from_pylist(rows, schema=_SCHEMA)
        # A cursor is a connection of its own, safe to use from a worker thread.
        cursor = self.store.conn.cursor()
        try:
            cursor.register("_new_calls", table)
            cursor.execute(
                f"INSERT INTO llm_calls ({', '.join(_COLUMNS)}, created_at) "
                f"SELECT {', '.join(_COLUMNS)}, now() FROM _new_calls ON CONFLICT DO NOTHING"
            )
        finally:
            cursor.close()

    def totals(self) -> dict[str, Any]:
        """Calls, tokens and cost over the whole cache (cost ``None`` if any price is unknown)."""
        self.flush()
        row = self.store.conn.execute(
            "SELECT count(*), sum(input_tokens), sum(output_tokens), sum(cost_usd), "
            "count(*) FILTER (WHERE cost_usd IS NULL) FROM llm_calls"
        ).fetchone()
        calls, inputs, outputs, cost, unknown = row
        return {
            "calls": calls,
            "input_tokens": inputs or 0,
            "output_tokens": outputs or 0,
            "cost_usd": None if unknown else (cost or 0.0),
        }
