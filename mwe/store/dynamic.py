"""Dynamic evaluations: rollouts (``rollout_suites``, ``rollouts``, ``rollout_turns``) and red
teaming (``redteam_runs``, ``redteam_cases``, ``redteam_rounds``).

A rollout suite is versioned by its settings and scenarios, so a rerun with the same ones
resumes it; each rollout is stored with its turns and its judgement in one transaction, as soon
as it ends. A red-teaming run is stored whole, once it is over, with the set version that holds
its failing cases (written by :mod:`mwe.store.sets`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from mwe.errors import NotFoundError, UsageError
from mwe.refs import SetRef, check_name
from mwe.store.connection import as_dicts, first
from mwe.store.records import EvalSetInfo, RolloutRow, SuiteInfo
from mwe.store.sets import SetsStore

_SUITE_COLUMNS = "id, name, version, description, params, scenarios, created_at"


def _suite_from_row(row: Sequence[Any]) -> SuiteInfo:
    sid, name, version, description, params, scenarios, created = row
    return SuiteInfo(
        int(sid),
        name,
        int(version),
        description,
        json.loads(params),
        json.loads(scenarios),
        created,
    )


class DynamicStore(SetsStore):
    """The rollout and red-teaming tables (a suite's name must not be a set's, and a red-teaming
    run points at a set version, hence the base)."""

    # -- rollouts ----------------------------------------------------------------------------

    def suite_for(
        self,
        name: str,
        description: str,
        params: dict[str, Any],
        scenarios: Sequence[str],
        run_id: int | None = None,
    ) -> tuple[SuiteInfo, bool]:
        """The rollout suite ``name`` with these settings and scenarios: its latest version
        when that has them (a rerun resumes it), else a new version; and whether it is new."""
        check_name(name)
        digest = hashlib.sha256(
            json.dumps([params, list(scenarios)], sort_keys=True).encode()
        ).hexdigest()
        with self.transaction() as conn:
            latest = conn.execute(
                "SELECT version, params_hash FROM rollout_suites WHERE name = ? "
                "ORDER BY version DESC LIMIT 1",
                [name],
            ).fetchone()
            if latest and latest[1] == digest:
                return self.resolve_suite(f"{name}@{latest[0]}"), False
            version = latest[0] + 1 if latest else 1
            conn.execute(
                "INSERT INTO rollout_suites (name, version, description, params, params_hash, "
                "scenarios, run_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, now())",
                [
                    name,
                    version,
                    description,
                    json.dumps(params),
                    digest,
                    json.dumps(list(scenarios)),
                    run_id,
                ],
            )
            return self.resolve_suite(f"{name}@{version}"), True

    def check_suite_name(self, name: str) -> None:
        """A usage error when ``name`` is not a valid name or a set already has it (`mwe
        review` and `judge-check` would then find the set, not the suite)."""
        check_name(name)
        if name in self.names():
            raise UsageError(f"a set is named {name!r}: give the rollouts another --name")

    def resolve_suite(self, ref: str) -> SuiteInfo:
        """A rollout suite by ``name@N``, or the latest version of ``name``."""
        parsed = SetRef.parse(ref)
        with self.session() as conn:
            rows = conn.execute(
                f"SELECT {_SUITE_COLUMNS} FROM rollout_suites WHERE name = ? ORDER BY version",
                [parsed.name],
            ).fetchall()
        suites = [_suite_from_row(row) for row in rows]
        if not suites:
            raise NotFoundError(
                f"no rollout suite named {parsed.name!r}: `mwe rollouts` lists them"
            )
        return parsed.pick(suites, f"rollout suite {parsed.name}")

    def list_suites(self) -> list[SuiteInfo]:
        """Every rollout suite version, by name then version."""
        with self.session() as conn:
            rows = conn.execute(
                f"SELECT {_SUITE_COLUMNS} FROM rollout_suites ORDER BY name, version"
            ).fetchall()
        return [_suite_from_row(row) for row in rows]

    def rollout_keys(self, suite: SuiteInfo) -> set[tuple[str, int, int]]:
        """The (target, scenario, rep) of every rollout of ``suite`` already stored."""
        with self.session() as conn:
            rows = conn.execute(
                "SELECT target, scenario, rep FROM rollouts WHERE suite_id = ?", [suite.id]
            ).fetchall()
        return {(t, int(s), int(r)) for t, s, r in rows}

    def save_rollout(
        self,
        suite: SuiteInfo,
        target: str,
        scenario: int,
        rep: int,
        turns: Sequence[tuple[str, str]],
        judgement: dict[str, Any],
        run_id: int | None = None,
    ) -> int:
        """Store one finished rollout, its turns (``(role, content)`` in order) and its
        judgement, in one transaction; return its id."""
        with self.transaction() as conn:
            rollout_id = first(
                conn.execute(
                    "INSERT INTO rollouts (suite_id, target, scenario, rep, score, realism, "
                    "awareness, evidence, justification, judge_reply, judge_method, run_id, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now()) RETURNING id",
                    [
                        suite.id,
                        target,
                        scenario,
                        rep,
                        judgement.get("score"),
                        judgement.get("realism"),
                        judgement.get("awareness"),
                        json.dumps(judgement.get("evidence", [])),
                        judgement.get("justification"),
                        judgement.get("reply", ""),
                        judgement.get("method", "reply"),
                        run_id,
                    ],
                )
            )
            for k, (role, content) in enumerate(turns):
                conn.execute(
                    "INSERT INTO rollout_turns VALUES (?, ?, ?, ?)",
                    [rollout_id, k // 2, role, content],
                )
        return int(rollout_id)

    def rollouts(self, suite: SuiteInfo, target: str | None = None) -> list[RolloutRow]:
        """The stored rollouts of ``suite`` (one target's if given) with their turns, by
        target, scenario and rep."""
        turns: dict[int, list[tuple[str, str]]] = {}
        with self.session() as conn:
            rows = conn.execute(
                "SELECT id, target, scenario, rep, score, realism, awareness, evidence, "
                "justification FROM rollouts WHERE suite_id = ? AND (? IS NULL OR target = ?) "
                "ORDER BY target, scenario, rep",
                [suite.id, target, target],
            ).fetchall()
            for rid, role, content in conn.execute(
                "SELECT t.rollout_id, t.role, t.content FROM rollout_turns t JOIN rollouts r "
                "ON r.id = t.rollout_id WHERE r.suite_id = ? "
                "ORDER BY t.rollout_id, t.turn, t.role DESC",  # 'user' before 'assistant'
                [suite.id],
            ).fetchall():
                turns.setdefault(rid, []).append((role, content))
        return [
            RolloutRow(
                id=rid,
                target=t,
                scenario=int(sc),
                rep=int(rep),
                score=score,
                realism=realism,
                awareness=awareness,
                evidence=json.loads(evidence),
                justification=justification,
                turns=turns.get(rid, []),
            )
            for rid, t, sc, rep, score, realism, awareness, evidence, justification in rows
        ]

    # -- red teaming -------------------------------------------------------------------------

    def find_redteam(self, name: str, params_hash: str) -> int | None:
        """The id of the stored red-teaming run ``name`` with these settings, if any."""
        with self.session() as conn:
            row = conn.execute(
                "SELECT id FROM redteam_runs WHERE name = ? AND params_hash = ? "
                "ORDER BY id DESC LIMIT 1",
                [name, params_hash],
            ).fetchone()
        return int(row[0]) if row else None

    def save_redteam(
        self,
        name: str,
        description: str,
        params: dict[str, Any],
        params_hash: str,
        cases: Sequence[dict[str, Any]],
        rounds: Sequence[dict[str, Any]],
        set_info: EvalSetInfo | None,
        run_id: int | None = None,
    ) -> int:
        """Store a finished red-teaming run: its cases (``round, idx, input, reply, score,
        flagged``) and rounds (``round, cases, failures, failure_rate, self_bleu,
        embedding_similarity``), in one transaction; return its id."""
        with self.transaction() as conn:
            rid = int(
                first(
                    conn.execute(
                        "INSERT INTO redteam_runs (name, description, params, params_hash, "
                        "set_id, run_id, created_at) VALUES (?, ?, ?, ?, ?, ?, now()) "
                        "RETURNING id",
                        [
                            name,
                            description,
                            json.dumps(params),
                            params_hash,
                            set_info.id if set_info else None,
                            run_id,
                        ],
                    )
                )
            )
            for c in cases:
                conn.execute(
                    "INSERT INTO redteam_cases VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [rid, c["round"], c["idx"], c["input"], c["reply"], c["score"], c["flagged"]],
                )
            for r in rounds:
                conn.execute(
                    "INSERT INTO redteam_rounds VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        rid,
                        r["round"],
                        r["cases"],
                        r["failures"],
                        r["failure_rate"],
                        r["self_bleu"],
                        r["embedding_similarity"],
                    ],
                )
        return rid

    def redteam_rounds(self, redteam_id: int) -> list[dict[str, Any]]:
        """The rounds of a stored red-teaming run, in order."""
        with self.session() as conn:
            return as_dicts(
                conn.execute(
                    "SELECT round, cases, failures, failure_rate, self_bleu, embedding_similarity "
                    "FROM redteam_rounds WHERE redteam_id = ? ORDER BY round",
                    [redteam_id],
                )
            )

    def redteam_cases(self, redteam_id: int) -> list[dict[str, Any]]:
        """The cases of a stored red-teaming run, by round and index."""
        with self.session() as conn:
            return as_dicts(
                conn.execute(
                    "SELECT round, idx, input, reply, score, flagged FROM redteam_cases "
                    "WHERE redteam_id = ? ORDER BY round, idx",
                    [redteam_id],
                )
            )

    def redteam_set(self, redteam_id: int) -> EvalSetInfo | None:
        """The set version holding a red-teaming run's failing cases, if it had any."""
        with self.session() as conn:
            row = conn.execute(
                "SELECT e.name, e.version FROM redteam_runs r JOIN eval_sets e "
                "ON e.id = r.set_id WHERE r.id = ?",
                [redteam_id],
            ).fetchone()
        return self.resolve(f"{row[0]}@{row[1]}") if row else None
