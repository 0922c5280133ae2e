"""Fitted judges: the table ``judges`` (`mwe judge train`'s versions, with what they were
fitted on, their held-out metrics and their weights).

A judge is versioned as a set is: ``name@2`` is a version, ``name`` the latest, and a judge
fitted again from the same data and settings (the same content hash) makes no new version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mwe.errors import NotFoundError, StoreDamagedError
from mwe.refs import SetRef, check_name
from mwe.store.connection import StoreConnection
from mwe.store.records import JudgeInfo

_JUDGE_COLUMNS = "id, name, version, kind, training, metrics, content_hash, created_at"


def _judge_from_row(row: Sequence[Any]) -> JudgeInfo:
    """A row of ``judges``, or a one-line :class:`StoreDamagedError` where it is not what
    `mwe judge train` writes (edited by hand, or damaged)."""
    values = list(row)
    ref = f"{values[1]}@{values[2]}"
    try:
        values[4] = json.loads(values[4])
        values[5] = json.loads(values[5])
    except (TypeError, ValueError):
        raise damaged_judge(ref, "its training or metrics are not JSON") from None
    training, metrics = values[4], values[5]
    if not (
        isinstance(training, dict)
        and isinstance(training.get("items"), int)
        and isinstance(training.get("sets"), list)
        and all(isinstance(name, str) for name in training["sets"])
        and isinstance(metrics, dict)
    ):
        raise damaged_judge(ref, "its training or metrics lack what `mwe judge train` records")
    return JudgeInfo(*values)


def damaged_judge(ref: str, problem: str) -> StoreDamagedError:
    """The error for stored judge ``ref`` that cannot be read."""
    return StoreDamagedError(
        f"the stored judge {ref} is damaged ({problem}): fit it again with `mwe judge train`, "
        "or restore the store from a backup"
    )


class JudgesStore(StoreConnection):
    """The ``judges`` table."""

    def save_judge(
        self,
        name: str,
        weights: bytes,
        *,
        kind: str,
        training: dict[str, Any],
        metrics: dict[str, Any],
        content_hash: str,
    ) -> tuple[JudgeInfo, bool]:
        """Store a fitted judge as the next version of ``name``; return it and whether it is
        new. One fitted from the same data and settings as the latest version (same
        ``content_hash``) makes no new version: the latest is returned."""
        check_name(name)
        with self.transaction() as conn:
            latest = conn.execute(
                "SELECT version, content_hash FROM judges WHERE name = ? "
                "ORDER BY version DESC LIMIT 1",
                [name],
            ).fetchone()
            if latest and latest[1] == content_hash:
                return self.resolve_judge(f"{name}@{latest[0]}"), False
            version = latest[0] + 1 if latest else 1
            conn.execute(
                "INSERT INTO judges (name, version, kind, training, metrics, weights, "
                "content_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, now())",
                [
                    name,
                    version,
                    kind,
                    json.dumps(training),
                    json.dumps(metrics),
                    weights,
                    content_hash,
                ],
            )
            return self.resolve_judge(f"{name}@{version}"), True

    def list_judges(self) -> list[JudgeInfo]:
        """Every stored judge version, by name then version."""
        with self.session() as conn:
            rows = conn.execute(
                f"SELECT {_JUDGE_COLUMNS} FROM judges ORDER BY name, version"
            ).fetchall()
        return [_judge_from_row(row) for row in rows]

    def resolve_judge(self, ref: str) -> JudgeInfo:
        """Find a stored judge by ``name@N``, or the latest version for a bare ``name``."""
        parsed = SetRef.parse(ref)
        with self.session() as conn:
            rows = conn.execute(
                f"SELECT {_JUDGE_COLUMNS} FROM judges WHERE name = ? ORDER BY version",
                [parsed.name],
            ).fetchall()
        if not rows:
            names = sorted({j.name for j in self.list_judges()})
            hint = f"stored: {', '.join(names)}" if names else "none is stored yet"
            raise NotFoundError(
                f"no judge named {parsed.name!r} ({hint}); `mwe judge train` fits one"
            )
        return parsed.pick([_judge_from_row(row) for row in rows], f"judge {parsed.name}")

    def judge_weights(self, info: JudgeInfo) -> bytes:
        """The stored weights of a judge version."""
        with self.session() as conn:
            row = conn.execute("SELECT weights FROM judges WHERE id = ?", [info.id]).fetchone()
        if row is None:
            raise NotFoundError(f"judge {info.ref} is no longer stored")
        return bytes(row[0])
