"""The generation pipeline's candidates: the table ``candidates``.

Every candidate a generation run parsed, kept or dropped (with why), is written with the version
it produced, in the same transaction (:meth:`mwe.store.sets.SetsStore.create_version`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from mwe.store.connection import StoreConnection, insert_arrow

_CANDIDATE_COLUMNS = (
    "run_id, idx, stage, intended_label, item, raw_text, label_confidence, relevance, kept, "
    "drop_reason, llm_call_key"
)


class CandidatesStore(StoreConnection):
    """The ``candidates`` table."""

    @staticmethod
    def _insert_candidates(
        conn: duckdb.DuckDBPyConnection, candidates: Sequence[dict[str, Any]]
    ) -> None:
        """Write candidate rows (the columns of ``candidates``) on ``conn``, inside the
        caller's transaction."""
        insert_arrow(
            conn,
            pa.Table.from_pylist(list(candidates)),
            f"INSERT INTO candidates ({_CANDIDATE_COLUMNS}) SELECT {_CANDIDATE_COLUMNS} FROM _rows",
        )
