"""What people said: the tables ``reviews`` (a reviewer's verdict and relevance on a set's item)
and ``transcript_reviews`` (a reviewer's 1-10 score of a rollout's transcript).

Each answer is written at once, as the reviewer gives it (the review page keeps nothing of its
own), and a reviewer's later answer on the same item replaces their earlier one.
"""

from __future__ import annotations

from mwe.errors import NotFoundError, UsageError
from mwe.store.connection import StoreConnection, first
from mwe.store.records import EvalSetInfo, ReviewRow, SuiteInfo


class ReviewsStore(StoreConnection):
    """The ``reviews`` and ``transcript_reviews`` tables."""

    def save_review(
        self,
        info: EvalSetInfo,
        idx: int,
        reviewer: str,
        verdict: str,
        relevance: int | None,
        note: str | None,
    ) -> None:
        """Store one reviewer's answer on item ``idx`` at once, replacing their earlier one
        (its first time is kept)."""
        if not 0 <= idx < info.item_count:
            raise NotFoundError(f"{info.ref} has no item {idx} (it has {info.item_count})")
        with self.session() as conn:
            conn.execute(
                "INSERT INTO reviews (set_id, idx, reviewer, verdict, relevance, note, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, now(), now()) "
                "ON CONFLICT DO UPDATE SET verdict = excluded.verdict, "
                "relevance = excluded.relevance, note = excluded.note, "
                "updated_at = excluded.updated_at",
                [info.id, idx, reviewer, verdict, relevance, note],
            )

    def reviews(self, info: EvalSetInfo, reviewer: str | None = None) -> list[ReviewRow]:
        """The review answers on a version (one reviewer's if given), by item then reviewer."""
        with self.session() as conn:
            rows = conn.execute(
                "SELECT idx, reviewer, verdict, relevance, note, updated_at FROM reviews "
                "WHERE set_id = ? AND (? IS NULL OR reviewer = ?) ORDER BY idx, reviewer",
                [info.id, reviewer, reviewer],
            ).fetchall()
        return [ReviewRow(*row) for row in rows]

    def save_transcript_review(
        self, rollout_id: int, reviewer: str, score: int, comment: str | None
    ) -> None:
        """Store one reviewer's 1-10 score of a transcript at once, replacing their earlier
        one."""
        if not 1 <= score <= 10:
            raise UsageError(f"a transcript score is 1 to 10, not {score}")
        with self.session() as conn:
            if not first(conn.execute("SELECT count(*) FROM rollouts WHERE id = ?", [rollout_id])):
                raise NotFoundError(f"no rollout {rollout_id}")
            conn.execute(
                "INSERT INTO transcript_reviews VALUES (?, ?, ?, ?, now()) ON CONFLICT DO UPDATE "
                "SET score = excluded.score, comment = excluded.comment, "
                "created_at = excluded.created_at",
                [rollout_id, reviewer, score, comment],
            )

    def transcript_reviews(self, suite: SuiteInfo) -> list[tuple[int, str, int, str | None]]:
        """Every reviewer score of ``suite``'s transcripts: (rollout id, reviewer, score,
        comment), by rollout then reviewer."""
        with self.session() as conn:
            rows = conn.execute(
                "SELECT v.rollout_id, v.reviewer, v.score, v.comment FROM transcript_reviews v "
                "JOIN rollouts r ON r.id = v.rollout_id WHERE r.suite_id = ? "
                "ORDER BY v.rollout_id, v.reviewer",
                [suite.id],
            ).fetchall()
        return [(int(r), str(w), int(s), c) for r, w, s, c in rows]
