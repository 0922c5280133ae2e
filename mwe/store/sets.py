"""Versioned eval sets and their items: the tables ``eval_sets`` and ``items``.

``name@3`` is a version and ``name`` the latest one. A version is written in one transaction
(with its generation run's candidates and the close of that run), so a write that fails half
way leaves nothing behind, and once written it never changes: its content hash is checked
whenever it is read for export.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from mwe.errors import IntegrityError, NotFoundError, StoreError, UsageError
from mwe.formats import RecordInvalid
from mwe.item_records import check_item, item_hash
from mwe.items import Item, set_content_hash
from mwe.refs import SetRef, check_name
from mwe.store.candidates import CandidatesStore
from mwe.store.connection import first, insert_arrow
from mwe.store.records import EvalSetInfo
from mwe.store.runs import RunsStore

_SET_COLUMNS = (
    "id, name, version, status, parent_id, format, description, provenance, stats, "
    "item_count, content_hash, created_at"
)


def _info_from_row(row: Sequence[Any]) -> EvalSetInfo:
    values = list(row)
    values[7] = json.loads(values[7]) if values[7] else {}
    values[8] = json.loads(values[8]) if values[8] else {}
    return EvalSetInfo(*values)


_ITEM_COLUMNS = (
    "format, question, statement, answer_matching_behavior, answer_not_matching_behavior, "
    "label_confidence, metadata"
)


def _items_from_rows(rows: Sequence[Sequence[Any]]) -> list[Item]:
    # Items were validated when written; constructing without validation keeps reads fast.
    return [
        Item.model_construct(
            format=fmt,
            question=question,
            statement=statement,
            answer_matching_behavior=matching,
            answer_not_matching_behavior=json.loads(not_matching),
            label_confidence=confidence,
            metadata=json.loads(metadata),
        )
        for fmt, question, statement, matching, not_matching, confidence, metadata in rows
    ]


class SetsStore(RunsStore, CandidatesStore):
    """The ``eval_sets`` and ``items`` tables (a version closes its run and writes its
    candidates in the transaction that stores it, hence the two bases)."""

    # -- reading ---------------------------------------------------------------------------

    def list_sets(self, name: str | None = None) -> list[EvalSetInfo]:
        """Every stored version, by name then version; only ``name``'s versions if given."""
        where, params = ("WHERE name = ?", [name]) if name else ("", [])
        with self.session() as conn:
            rows = conn.execute(
                f"SELECT {_SET_COLUMNS} FROM eval_sets {where} ORDER BY name, version", params
            ).fetchall()
        return [_info_from_row(row) for row in rows]

    def latest_sets(self) -> list[EvalSetInfo]:
        """The latest version of every stored set, by name."""
        with self.session() as conn:
            rows = conn.execute(
                f"SELECT {_SET_COLUMNS} FROM eval_sets QUALIFY version = max(version) OVER "
                "(PARTITION BY name) ORDER BY name"
            ).fetchall()
        return [_info_from_row(row) for row in rows]

    def names(self) -> list[str]:
        """The names of all stored sets."""
        with self.session() as conn:
            rows = conn.execute("SELECT DISTINCT name FROM eval_sets ORDER BY name").fetchall()
        return [row[0] for row in rows]

    def resolve(self, ref: str | SetRef) -> EvalSetInfo:
        """Find a version by ``name@N``, or the latest version for a bare ``name``."""
        parsed = SetRef.parse(ref) if isinstance(ref, str) else ref
        versions = self.list_sets(parsed.name)
        if not versions:
            raise NotFoundError(self._unknown_set_message(parsed.name))
        return parsed.pick(versions)

    def _unknown_set_message(self, name: str) -> str:
        names = self.names()
        close = difflib.get_close_matches(name, names, n=1)
        if close:
            return f"no eval set named {name!r}; did you mean {close[0]!r}?"
        if names:
            return f"no eval set named {name!r}; `mwe list` shows the {len(names)} stored"
        return f"no eval set named {name!r}: the store {self.path} is empty"

    def items(self, info: EvalSetInfo, *, limit: int | None = None) -> list[Item]:
        """The items of a version, in order."""
        sql = f"SELECT {_ITEM_COLUMNS} FROM items WHERE set_id = ? ORDER BY idx"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.session() as conn:
            rows = conn.execute(sql, [info.id]).fetchall()
        return _items_from_rows(rows)

    def items_at(self, info: EvalSetInfo, indices: Sequence[int]) -> list[Item]:
        """The items of a version at ``indices``, in that order."""
        with self.session() as conn:
            rows = conn.execute(
                f"SELECT idx, {_ITEM_COLUMNS} FROM items WHERE set_id = ? "
                "AND list_contains(?, idx)",
                [info.id, list(indices)],
            ).fetchall()
        found = dict(
            zip([r[0] for r in rows], _items_from_rows([r[1:] for r in rows]), strict=True)
        )
        missing = [i for i in indices if i not in found]
        if missing:
            raise NotFoundError(f"{info.ref} has no item {missing[0]} (it has {info.item_count})")
        return [found[i] for i in indices]

    def item_hashes(self, info: EvalSetInfo) -> list[str]:
        """The content hash of every item of a version, in order."""
        with self.session() as conn:
            rows = conn.execute(
                "SELECT item_hash FROM items WHERE set_id = ? ORDER BY idx", [info.id]
            ).fetchall()
        return [row[0] for row in rows]

    def verified_items(self, info: EvalSetInfo) -> list[Item]:
        """The items of a version after checking them against its content hash."""
        items = self.items(info)
        actual = set_content_hash([item_hash(item) for item in items])
        if actual != info.content_hash:
            raise IntegrityError(
                f"{info.ref} does not match its content hash (stored {info.content_hash[:12]}, "
                f"found {actual[:12]}): the database was changed outside mwe; re-import the set"
            )
        return items

    def label_counts(self, info: EvalSetInfo) -> dict[str, int]:
        """How many items have each ``answer_matching_behavior``."""
        with self.session() as conn:
            rows = conn.execute(
                "SELECT answer_matching_behavior, count(*) FROM items WHERE set_id = ? "
                "GROUP BY 1 ORDER BY 1",
                [info.id],
            ).fetchall()
        return dict(rows)

    def spec(self, info: EvalSetInfo) -> dict[str, Any] | None:
        """The spec a generated version was made from (definition, who agrees and who
        disagrees, and what fell back); ``None`` for an imported one."""
        with self.session() as conn:
            row = conn.execute("SELECT spec FROM eval_sets WHERE id = ?", [info.id]).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def check_set_name(self, name: str) -> None:
        """A usage error when ``name`` is not a valid name or a rollout suite has it (a set of
        that name would hide the suite from `mwe review` and `judge-check`)."""
        check_name(name)
        with self.session() as conn:
            taken = first(
                conn.execute("SELECT count(*) FROM rollout_suites WHERE name = ?", [name])
            )
        if taken:
            raise UsageError(f"a rollout suite is named {name!r}: give the set another --name")

    # -- writing ---------------------------------------------------------------------------

    def create_version(
        self,
        name: str,
        items: Sequence[Item],
        *,
        provenance: dict[str, Any],
        description: str | None = None,
        spec: dict[str, Any] | None = None,
        stats: dict[str, Any] | None = None,
        parent: EvalSetInfo | None = None,
        run_kind: str | None = None,
        run_id: int | None = None,
        candidates: Sequence[dict[str, Any]] = (),
    ) -> EvalSetInfo:
        """Write ``items`` as the next version of ``name``, atomically, and return it.

        The parent defaults to the current latest version of ``name``, if there is one. Items
        identical to the latest version's (same content hash) make no new version: the latest
        is returned as it is. ``run_kind`` records a finished run (an import) with the version;
        ``run_id`` marks a started run done with it, and its ``candidates`` rows land in the same
        transaction.
        """
        self.check_set_name(name)
        if not items:
            raise StoreError(f"refusing to store an empty version of {name!r}")
        for idx, item in enumerate(items):  # items built in code skip the import's checks
            try:
                check_item(item)
            except RecordInvalid as exc:
                raise StoreError(f"refusing to store {name!r}: item {idx}: {exc}") from None
        hashes = [item_hash(item) for item in items]
        formats = Counter(item.format for item in items)
        fmt = next(iter(formats)) if len(formats) == 1 else "mixed"
        content_hash = set_content_hash(hashes)
        with self.transaction() as conn:
            latest = conn.execute(
                "SELECT id, version, content_hash FROM eval_sets WHERE name = ? "
                "ORDER BY version DESC LIMIT 1",
                [name],
            ).fetchone()
            if latest and latest[2] == content_hash:
                return self.resolve(SetRef(name, latest[1]))
            version = latest[1] + 1 if latest else 1
            parent_id = parent.id if parent else (latest[0] if latest else None)
            set_id = first(
                conn.execute(
                    "INSERT INTO eval_sets (name, version, status, parent_id, format, description, "
                    "spec, provenance, stats, item_count, content_hash, created_at) "
                    "VALUES (?, ?, 'final', ?, ?, ?, ?, ?, ?, ?, ?, now()) RETURNING id",
                    [
                        name,
                        version,
                        parent_id,
                        fmt,
                        description,
                        json.dumps(spec) if spec is not None else None,
                        json.dumps(provenance),
                        json.dumps(stats or {}),
                        len(items),
                        content_hash,
                    ],
                )
            )
            self._insert_items(conn, set_id, items, hashes)
            if candidates:
                self._insert_candidates(conn, candidates)
            if run_id is not None:
                self.finish_run(run_id, "done", set_id=set_id)
            if run_kind:
                self._record_done_run(run_kind, provenance, set_id)
            # Read back in the same transaction: the version is the one just written.
            return self.resolve(SetRef(name, version))

    @staticmethod
    def _insert_items(
        conn: duckdb.DuckDBPyConnection, set_id: int, items: Sequence[Item], hashes: list[str]
    ) -> None:
        # One Arrow table and one INSERT ... SELECT: row-by-row inserts are ~100x slower.
        table = pa.table(
            {
                "set_id": pa.array([set_id] * len(items), pa.int32()),
                "idx": pa.array(range(len(items)), pa.int32()),
                "item_hash": hashes,
                "format": [item.format for item in items],
                "question": [item.question for item in items],
                "statement": pa.array([item.statement for item in items], pa.string()),
                "answer_matching_behavior": [item.answer_matching_behavior for item in items],
                "answer_not_matching_behavior": [
                    json.dumps(item.answer_not_matching_behavior) for item in items
                ],
                "label_confidence": pa.array(
                    [item.label_confidence for item in items], pa.float64()
                ),
                "metadata": [json.dumps(item.metadata) for item in items],
            }
        )
        insert_arrow(conn, table, "INSERT INTO items SELECT * FROM _rows")
