"""The LM call cache: the ``llm_calls`` table of the store.

A row is keyed by a hash of the canonical request: the model's identity (backend, model, base
URL), the kind of call, the messages, the sampling parameters and the sample index. A hit costs
no request. The cache is how a killed run resumes without paying twice, the audit trail of which
prompt produced what, and the cost report. API keys are never part of a key or a row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from mwe.items import canonical_json
from mwe.models.base import Usage
from mwe.store import Store


def request_key(request: dict[str, Any]) -> str:
    """The cache key of a canonical request."""
    return hashlib.sha256(canonical_json(request).encode()).hexdigest()


@dataclass(frozen=True)
class CachedCall:
    """One stored call."""

    key: str
    response: dict[str, Any]


class CallCache:
    """Reads and writes ``llm_calls`` rows through a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The stored responses of those ``keys`` that are cached."""
        if not keys:
            return {}
        rows = self.store.conn.execute(
            "SELECT key, response FROM llm_calls WHERE key IN (SELECT unnest(?))", [keys]
        ).fetchall()
        return {key: json.loads(response) for key, response in rows}

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
        """Store one call; a key already present is left as it was (first answer wins)."""
        self.store.conn.execute(
            "INSERT INTO llm_calls (key, backend, model, base_url, request, response, "
            "input_tokens, output_tokens, cost_usd, latency_s, run_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now()) ON CONFLICT DO NOTHING",
            [
                key,
                request["backend"],
                request["model"],
                request.get("base_url"),
                json.dumps(request),
                json.dumps(response),
                usage.input_tokens,
                usage.output_tokens,
                cost_usd,
                latency_s,
                run_id,
            ],
        )

    def totals(self) -> dict[str, Any]:
        """Calls, tokens and cost over the whole cache (cost ``None`` if any price is unknown)."""
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
