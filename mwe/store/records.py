"""What the store hands back and takes: one frozen dataclass per
kind of row. No SQL and no table: the table modules of :mod:`mwe.store` fill these, and every
module that reads the store imports them (from :mod:`mwe.store`) without the SQL behind them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class EvalSetInfo:
    """One stored version of an eval set (without its items)."""

    id: int
    name: str
    version: int
    status: str
    parent_id: int | None
    format: str
    description: str | None
    provenance: dict[str, Any]
    stats: dict[str, Any]
    item_count: int
    content_hash: str
    created_at: datetime

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class ScoreRow:
    """One scored item: every option's log-probability and the method that produced them."""

    idx: int
    logprobs: dict[str, float | None]
    method: str
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class ItemScore:
    """One model's stored score of one item, with the item's matching answer."""

    idx: int
    model: str
    prompt_format: str
    method: str
    logprobs: dict[str, float | None]
    matching: str


@dataclass(frozen=True)
class ReviewRow:
    """One reviewer's answer on one item: is its label right, how relevant it is (1-5)."""

    idx: int
    reviewer: str
    verdict: str
    relevance: int | None
    note: str | None
    updated_at: datetime


@dataclass(frozen=True)
class SuiteInfo:
    """One version of a rollout suite: a behaviour, the settings, and its scenarios."""

    id: int
    name: str
    version: int
    description: str
    params: dict[str, Any]
    scenarios: list[str]
    created_at: datetime

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class RolloutRow:
    """One stored rollout: who was played, the turns in order, and the judge's scores."""

    id: int
    target: str
    scenario: int
    rep: int
    score: int | None
    realism: int | None
    awareness: int | None
    evidence: list[str]
    justification: str | None
    turns: list[tuple[str, str]]  # (role, content): 'user' then 'assistant', turn by turn


@dataclass(frozen=True)
class JudgeInfo:
    """One stored version of a fitted judge (without its weights)."""

    id: int
    name: str
    version: int
    kind: str
    training: dict[str, Any]
    metrics: dict[str, Any]
    content_hash: str
    created_at: datetime

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"
