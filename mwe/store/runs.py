"""Runs and what they measure: the tables ``runs``, ``scores`` and ``model_sizes``.

``runs`` holds one row per command that did paid or long work; :class:`mwe.runs.RunRecord` is
the one caller of :meth:`RunsStore.start_run`, :meth:`~RunsStore.update_run` and
:meth:`~RunsStore.finish_run`, and this module holds the only SQL that writes a run's row.
``scores`` holds one row per scored (set, item, model, prompt format); ``model_sizes`` the
parameter count of each scored model, for the report's scaling view.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from mwe.errors import UsageError
from mwe.store.connection import StoreConnection, first, insert_arrow
from mwe.store.records import EvalSetInfo, ItemScore, ScoreRow


class RunsStore(StoreConnection):
    """The ``runs``, ``scores`` and ``model_sizes`` tables."""

    # -- runs ------------------------------------------------------------------------------

    def start_run(self, kind: str, params: dict[str, Any] | None = None) -> int:
        """Record a run (``generate``, ``score``, ...) as running; return its id."""
        with self.session() as conn:
            return int(
                first(
                    conn.execute(
                        "INSERT INTO runs (kind, status, params, started_at) "
                        "VALUES (?, 'running', ?, now()) RETURNING id",
                        [kind, json.dumps(params) if params is not None else None],
                    )
                )
            )

    def finish_run(
        self,
        run_id: int,
        status: str,
        *,
        set_id: int | None = None,
        params: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Mark a run ``done``, ``failed`` or ``interrupted``; ``set_id``, ``params`` (which
        replace the ones it started with) and a failure's one-line ``error`` when given.
        :class:`mwe.runs.RunRecord` is the one caller, outside this store."""
        with self.session() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, finished_at = now(), set_id = coalesce(?, set_id), "
                "params = coalesce(?, params), error = ? WHERE id = ?",
                [status, set_id, json.dumps(params) if params is not None else None, error, run_id],
            )

    def _record_done_run(self, kind: str, params: dict[str, Any], set_id: int) -> None:
        """Record a run that is over as soon as it starts (an import), with the set it made:
        called inside the transaction that stores the set."""
        with self.session() as conn:
            conn.execute(
                "INSERT INTO runs (kind, status, params, set_id, started_at, finished_at) "
                "VALUES (?, 'done', ?, ?, now(), now())",
                [kind, json.dumps(params), set_id],
            )

    def update_run(self, run_id: int, params: dict[str, Any]) -> None:
        """Replace a running run's parameters (its progress so far)."""
        with self.session() as conn:
            conn.execute(
                "UPDATE runs SET params = ? WHERE id = ? AND status = 'running'",
                [json.dumps(params), run_id],
            )

    def run_row(self, run_id: int) -> dict[str, Any] | None:
        """A run's row: ``kind``, ``status``, ``params``, ``set_id``, ``error``."""
        with self.session() as conn:
            row = conn.execute(
                "SELECT kind, status, params, set_id, error FROM runs WHERE id = ?", [run_id]
            ).fetchone()
        if row is None:
            return None
        kind, status, params, set_id, error = row
        return {
            "kind": kind,
            "status": status,
            "params": json.loads(params) if params else None,
            "set_id": set_id,
            "error": error,
        }

    # -- scores ----------------------------------------------------------------------------

    def scored_indices(self, info: EvalSetInfo, model: str, prompt_format: str) -> set[int]:
        """The items of a version already scored for this model and format."""
        with self.session() as conn:
            rows = conn.execute(
                "SELECT idx FROM scores WHERE set_id = ? AND model = ? AND prompt_format = ?",
                [info.id, model, prompt_format],
            ).fetchall()
        return {row[0] for row in rows}

    def write_scores(
        self,
        info: EvalSetInfo,
        model: str,
        prompt_format: str,
        run_id: int | None,
        rows: Sequence[ScoreRow],
    ) -> None:
        """Store rows in one statement (committed at once: a kill loses at most the next
        batch); a row already stored is kept as it was."""
        if not rows:
            return
        table = pa.table(
            {
                "set_id": [info.id] * len(rows),
                "idx": [r.idx for r in rows],
                "model": [model] * len(rows),
                "prompt_format": [prompt_format] * len(rows),
                "run_id": pa.array([run_id] * len(rows), pa.int64()),
                "method": [r.method for r in rows],
                "logprobs": [json.dumps(r.logprobs) for r in rows],
                "details": [json.dumps(r.details) if r.details is not None else None for r in rows],
            }
        )
        with self.session() as conn:
            insert_arrow(
                conn,
                table,
                "INSERT INTO scores (set_id, idx, model, prompt_format, run_id, method, logprobs, "
                "details, created_at) SELECT set_id, idx, model, prompt_format, run_id, method, "
                "logprobs, details, now() FROM _rows ON CONFLICT DO NOTHING",
            )

    def score_rows(
        self, set_id: int | None = None, model: str | None = None
    ) -> list[tuple[str, str, str, str, dict[str, float | None], str]]:
        """Every score row as (set ref, model, prompt format, method, log-probs, matching
        answer), ordered by set, model, format and item; only one set's or model's if given."""
        where: list[str] = []
        params: list[Any] = []
        if set_id is not None:
            where.append("s.set_id = ?")
            params.append(set_id)
        if model is not None:
            where.append("s.model = ?")
            params.append(model)
        with self.session() as conn:
            rows = conn.execute(
                "SELECT e.name || '@' || e.version, s.model, s.prompt_format, s.method, "
                "s.logprobs, i.answer_matching_behavior FROM scores s JOIN items i "
                "ON i.set_id = s.set_id AND i.idx = s.idx JOIN eval_sets e ON e.id = s.set_id"
                + (" WHERE " + " AND ".join(where) if where else "")
                + " ORDER BY e.name, e.version, s.model, s.prompt_format, s.idx",
                params,
            ).fetchall()
        return [(ref, m, f, method, json.loads(lp), ans) for ref, m, f, method, lp, ans in rows]

    def item_scores(self, set_id: int, models: Sequence[str]) -> list[ItemScore]:
        """The score rows of ``models`` on one version, each with its item's index, ordered by
        model, prompt format and item: what a paired comparison of models lines up."""
        if not models:
            return []
        with self.session() as conn:
            rows = conn.execute(
                "SELECT s.idx, s.model, s.prompt_format, s.method, s.logprobs, "
                "i.answer_matching_behavior FROM scores s JOIN items i ON i.set_id = s.set_id "
                "AND i.idx = s.idx WHERE s.set_id = ? AND list_contains(?, s.model) "
                "ORDER BY s.model, s.prompt_format, s.idx",
                [set_id, list(models)],
            ).fetchall()
        return [
            ItemScore(i, m, f, method, json.loads(lp), ans) for i, m, f, method, lp, ans in rows
        ]

    # -- model sizes -----------------------------------------------------------------------

    def set_param_count(self, model: str, count: int, source: str) -> None:
        """Record a scored model's parameter count; one the user gave is not overwritten by
        one counted from the model's config."""
        with self.session() as conn:
            conn.execute(
                "INSERT INTO model_sizes VALUES (?, ?, ?, now()) ON CONFLICT DO UPDATE SET "
                "param_count = excluded.param_count, source = excluded.source, "
                "updated_at = excluded.updated_at WHERE model_sizes.source <> 'user' "
                "OR excluded.source = 'user'",
                [model, count, source],
            )

    def param_counts(self, given: Mapping[str, int] | None = None) -> dict[str, int]:
        """Every recorded parameter count, by model string, with ``given`` (counts the user
        gave, e.g. ``--param-count``) over them. Raises :class:`mwe.errors.UsageError` when a
        model of ``given`` has no stored scores: a misspelt name would count for nothing."""
        with self.session() as conn:
            if given:
                _refuse_unscored(conn, given)
            rows = conn.execute("SELECT model, param_count FROM model_sizes").fetchall()
        return {model: int(count) for model, count in rows} | dict(given or {})

    def keep_param_counts(self, given: Mapping[str, int]) -> None:
        """Record the counts the user gave (over any counted from a model's config), all of
        them or, where a model has no stored scores (see :meth:`param_counts`), none."""
        with self.transaction() as conn:
            _refuse_unscored(conn, given)
            for model, count in given.items():
                self.set_param_count(model, count, "user")


# The scored models a refused parameter count lists, at most.
_LISTED = 8


def _refuse_unscored(conn: duckdb.DuckDBPyConnection, models: Mapping[str, int]) -> None:
    """Raise :class:`UsageError` naming the models of ``models`` that have no stored scores,
    with the scored ones (or that there are none), and a near name where one is close."""
    rows = conn.execute("SELECT DISTINCT model FROM scores ORDER BY model").fetchall()
    scored = [model for (model,) in rows]
    known = set(scored)
    unknown = [model for model in models if model not in known]
    if not unknown:
        return
    what = (
        f"a parameter count for {unknown[0]}, which has"
        if len(unknown) == 1
        else f"parameter counts for {', '.join(unknown)}, which have"
    )
    near = [m for u in unknown for m in difflib.get_close_matches(u, scored, n=1)]
    hint = f" (did you mean {' or '.join(dict.fromkeys(near))}?)" if near else ""
    if not scored:
        raise UsageError(
            f"{what} no stored scores, and no model has any yet: "
            "`mwe score SET --model MODEL` makes some"
        )
    listed = ", ".join(scored[:_LISTED])
    if len(scored) > _LISTED:
        listed += f" and {len(scored) - _LISTED} more (`mwe results` lists them)"
    raise UsageError(f"{what} no stored scores{hint}; the scored models are {listed}")
