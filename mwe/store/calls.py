"""The call cache's bookkeeping: the tables ``llm_calls``, ``provider_batches`` and
``provider_batch_lines``.

``llm_calls`` is where :class:`mwe.models.cache.CallCache` keeps every model call (this store is
its :class:`~mwe.models.cache.CallStore`); the two batch tables record each provider batch
submitted and which cached requests its lines answer, so that polling survives a restart (the
:class:`~mwe.models.batches.BatchStore` protocol).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from mwe.store.connection import StoreConnection, first, insert_arrow

_CALL_SCHEMA = pa.schema(
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


class CallsStore(StoreConnection):
    """The ``llm_calls``, ``provider_batches`` and ``provider_batch_lines`` tables."""

    # -- the call cache (the CallStore protocol of mwe.models.cache) -------------------------

    def call_keys(self, identity: dict[str, Any]) -> list[str]:
        """The keys of every cached call of one model (backend, model, base URL)."""
        with self.session() as conn:
            rows = conn.execute(
                "SELECT key FROM llm_calls WHERE backend = ? AND model = ? "
                "AND base_url IS NOT DISTINCT FROM ?",
                [identity["backend"], identity["model"], identity.get("base_url")],
            ).fetchall()
        return [row[0] for row in rows]

    def call_responses(self, keys: Sequence[str]) -> dict[str, str]:
        """The stored responses (JSON text) of those ``keys`` that are cached."""
        with self.session() as conn:
            rows = conn.execute(
                "SELECT key, response FROM llm_calls WHERE key IN (SELECT unnest(?))", [list(keys)]
            ).fetchall()
        return dict(rows)

    def write_calls(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store new calls (the columns of ``llm_calls`` but ``created_at``); a key already
        stored is kept as it was. Safe to call from a worker thread: a store's sessions are
        taken one at a time."""
        table = pa.Table.from_pylist(list(rows), schema=_CALL_SCHEMA)
        columns = ", ".join(_CALL_SCHEMA.names)
        with self.session() as conn:
            insert_arrow(
                conn,
                table,
                f"INSERT INTO llm_calls ({columns}, created_at) SELECT {columns}, now() "
                "FROM _rows ON CONFLICT DO NOTHING",
            )

    def call_totals(self) -> dict[str, Any]:
        """Calls, tokens and cost over the whole cache (cost ``None`` if any price is unknown)."""
        with self.session() as conn:
            row = conn.execute(
                "SELECT count(*), sum(input_tokens), sum(output_tokens), sum(cost_usd), "
                "count(*) FILTER (WHERE cost_usd IS NULL) FROM llm_calls"
            ).fetchone()
        assert row is not None  # an aggregate always gives one row
        calls, inputs, outputs, cost, unknown = row
        return {
            "calls": calls,
            "input_tokens": inputs or 0,
            "output_tokens": outputs or 0,
            "cost_usd": None if unknown else (cost or 0.0),
        }

    # -- provider batches (the BatchStore protocol of mwe.models.batches) ----------------------

    def save_batch(
        self,
        provider_id: str,
        identity: dict[str, Any],
        lines: dict[str, list[dict[str, Any]]],
        run_id: int | None = None,
    ) -> int:
        """Record a batch just submitted: its provider id, its model, and for each line
        (``custom_id``) the cache requests it answers; return its row id."""
        table = pa.Table.from_pylist(
            [{"custom_id": cid, "requests": json.dumps(reqs)} for cid, reqs in lines.items()],
            schema=pa.schema([("custom_id", pa.string()), ("requests", pa.string())]),
        )
        with self.transaction() as conn:
            batch_id = int(
                first(
                    conn.execute(
                        "INSERT INTO provider_batches (provider_id, backend, model, base_url, "
                        "status, lines, run_id, created_at) "
                        "VALUES (?, ?, ?, ?, 'submitted', ?, ?, now()) RETURNING id",
                        [
                            provider_id,
                            identity["backend"],
                            identity["model"],
                            identity.get("base_url"),
                            len(lines),
                            run_id,
                        ],
                    )
                )
            )
            insert_arrow(
                conn,
                table,
                f"INSERT INTO provider_batch_lines SELECT {batch_id}, custom_id, requests "
                "FROM _rows",
            )
        return batch_id

    def open_batches(self, identity: dict[str, Any], custom_ids: Sequence[str]) -> dict[str, int]:
        """For each of ``custom_ids`` that is a line of a batch of this model not collected
        yet, that batch's row id (the newest, when several hold it)."""
        with self.session() as conn:
            rows = conn.execute(
                "SELECT l.custom_id, b.id FROM provider_batch_lines l "
                "JOIN provider_batches b ON b.id = l.batch_id "
                "WHERE b.status = 'submitted' AND b.backend = ? AND b.model = ? "
                "AND b.base_url IS NOT DISTINCT FROM ? AND l.custom_id IN (SELECT unnest(?)) "
                "ORDER BY b.id",
                [
                    identity["backend"],
                    identity["model"],
                    identity.get("base_url"),
                    list(custom_ids),
                ],
            ).fetchall()
        return {cid: int(batch_id) for cid, batch_id in rows}

    def batch_info(self, batch_id: int) -> tuple[str, dict[str, list[dict[str, Any]]]]:
        """A stored batch's provider id and the cache requests of each of its lines."""
        with self.session() as conn:
            provider_id = first(
                conn.execute("SELECT provider_id FROM provider_batches WHERE id = ?", [batch_id])
            )
            rows = conn.execute(
                "SELECT custom_id, requests FROM provider_batch_lines WHERE batch_id = ?",
                [batch_id],
            ).fetchall()
        return str(provider_id), {cid: json.loads(reqs) for cid, reqs in rows}

    def finish_batch(self, batch_id: int, succeeded: int, failed: int) -> None:
        """Mark a batch collected: its results are in the call cache."""
        with self.session() as conn:
            conn.execute(
                "UPDATE provider_batches SET status = 'collected', succeeded = ?, failed = ?, "
                "finished_at = now() WHERE id = ?",
                [succeeded, failed, batch_id],
            )
