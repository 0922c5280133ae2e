"""The DuckDB store: versioned eval sets, their items, and the tables later stages fill.

One file (``./mwe.duckdb`` by default, ``--db`` / ``MWE_DB`` to change it) is the only shared
state. ``name@3`` is a version and ``name`` the latest one. A version is written in one
transaction, so a write that fails half way leaves nothing behind, and once written it never
changes: its content hash is checked whenever it is read for export.

Every SQL statement of mwe lives in this package, one module per group of tables:

- :mod:`~mwe.store.connection`: opening the file, schema checks, sessions and transactions,
  DuckDB's errors as one line (no table);
- :mod:`~mwe.store.migrations`: the schema, and ``_migrations``;
- :mod:`~mwe.store.sets`: ``eval_sets``, ``items``;
- :mod:`~mwe.store.candidates`: ``candidates``;
- :mod:`~mwe.store.runs`: ``runs``, ``scores``, ``model_sizes``;
- :mod:`~mwe.store.reviews`: ``reviews``, ``transcript_reviews``;
- :mod:`~mwe.store.dynamic`: ``rollout_suites``, ``rollouts``, ``rollout_turns``,
  ``redteam_runs``, ``redteam_cases``, ``redteam_rounds``;
- :mod:`~mwe.store.judges`: ``judges``;
- :mod:`~mwe.store.calls`: ``llm_calls``, ``provider_batches``, ``provider_batch_lines``;
- :mod:`~mwe.store.records`: the rows handed back (no SQL); set names and references are
  :mod:`mwe.refs`'s, exported here too.

:class:`Store` is the one class callers use: it is made of one part per table module, over the
one connection, so ``from mwe.store import Store`` is all a caller needs.
"""

from __future__ import annotations

from mwe.refs import SetRef, check_name, slugify
from mwe.store.calls import CallsStore
from mwe.store.connection import DEFAULT_DB, default_db_path, store_failure
from mwe.store.dynamic import DynamicStore
from mwe.store.judges import JudgesStore, damaged_judge
from mwe.store.records import (
    EvalSetInfo,
    ItemScore,
    JudgeInfo,
    ReviewRow,
    RolloutRow,
    ScoreRow,
    SuiteInfo,
)
from mwe.store.reviews import ReviewsStore

__all__ = [
    "DEFAULT_DB",
    "EvalSetInfo",
    "ItemScore",
    "JudgeInfo",
    "ReviewRow",
    "RolloutRow",
    "ScoreRow",
    "SetRef",
    "Store",
    "SuiteInfo",
    "check_name",
    "damaged_judge",
    "default_db_path",
    "slugify",
    "store_failure",
]


class Store(DynamicStore, ReviewsStore, JudgesStore, CallsStore):
    """A connection to the DuckDB store, with every table's reads and writes.

    Open read-only for anything that only reads, so several readers can share the file. Use as
    a context manager, or call :meth:`close`. (Its methods come from the table modules: sets
    and items, candidates, runs and scores, reviews, rollouts and red teaming, judges, and the
    call cache.)
    """
