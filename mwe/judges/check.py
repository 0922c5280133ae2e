"""Judge-check as a library call: validate a judge on a labelled set before it filters one.

``mwe judge-check`` is these functions and a print:

    options = JudgeCheckOptions(ref="agreeableness", judge="openai:gpt-4.1-mini", limit=100)
    prepared = prepare_judge_check(options)  # checks the judge string and key; no store yet
    report = run_judge_check(store, prepared=prepared)
    report.check.agreement, report.check.auroc, report.caveats

:func:`summarize_checks` gives the median and worst AUROC over the checks of several sets and
how many fall below 0.7.

:func:`plan_judge_check` gives the requests and cost a run would take, sending none; prepared
with ``plan_only`` it needs no API key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_serializer

from mwe.errors import NotFoundError, UsageError
from mwe.estimate import PlannedCalls, judge_plan
from mwe.formats import format_names
from mwe.generate.templates import load_templates
from mwe.items import Item
from mwe.judges.judge import (
    Judge,
    JudgeCheck,
    LMJudge,
    PMJudge,
    check_judgeable,
    check_pm_name,
    is_pm,
    judge_caveats,
    judge_check,
    load_pm,
    single_format,
)
from mwe.models import LM, Backend, check_batch_model, get_backend, plan_backend
from mwe.models.urls import BaseURL
from mwe.options import validated
from mwe.progress import ProgressCallback
from mwe.runs import RunRecord
from mwe.secrets import redact_url
from mwe.store import EvalSetInfo, Store
from mwe.sync import run_sync

VOTES = 5  # samples per item for a judge without log-probs


class JudgeCheckOptions(BaseModel):
    """Everything a judge-check depends on."""

    model_config = ConfigDict(extra="forbid")

    ref: str = Field(description="The labelled set to check the judge on (NAME or NAME@N).")
    judge: str = Field(
        default="pm",
        description="pm (the built-in preference model), pm:NAME (one fitted with `mwe judge "
        "train`) or a model string.",
    )
    base_url: BaseURL | None = Field(default=None, description="OpenAI-compatible server.")
    behavior: str | None = Field(
        default=None, description="The behaviour; the set's description or name if unset."
    )
    limit: int | None = Field(default=None, ge=1, description="Check only the first N items.")
    templates: Path | None = Field(default=None, description="Template folder.")
    calibrate: bool = Field(default=False, description="Contextual calibration of an LM judge.")
    batch: bool = Field(
        default=False, description="Send the judge's calls through the provider's batch API."
    )

    @field_serializer("base_url")
    def _without_credentials(self, url: str | None) -> str | None:
        return redact_url(url)


_FLAGS = {"ref": "REF"}


@dataclass(frozen=True)
class PreparedCheck:
    """Checked options and the judge's backend (``None`` for a preference model, which is
    loaded with the store). Building it touches no store."""

    options: JudgeCheckOptions
    backend: Backend | None


@dataclass(frozen=True)
class JudgeCheckReport:
    """A judge-check's figures and what qualifies them."""

    check: JudgeCheck
    behavior: str  # as the judge was asked about it
    caveats: list[str]  # why the figures may flatter the judge, one line each
    card: dict[str, Any] | None  # a preference model's card: what it was fitted and validated on
    run_id: int  # the judge-check's row in the store's runs


def prepare_judge_check(
    options: JudgeCheckOptions | None = None, *, plan_only: bool = False, **values: Any
) -> PreparedCheck:
    """Check the options and make the judge's backend, or raise a one-line usage error: a bad
    model string or a missing key fails here, before any store is opened. ``values`` are option
    fields, on top of ``options`` when given. With ``plan_only`` (a dry run) the backend is
    planned (:func:`mwe.models.plan_backend`): no key is needed and it cannot run."""
    checked = validated(
        JudgeCheckOptions, (dict(options) if options is not None else {}) | values, _FLAGS
    )
    if is_pm(checked.judge):
        check_pm_name(checked.judge)
        return PreparedCheck(checked, None)
    if checked.batch:
        check_batch_model(checked.judge)
    make = plan_backend if plan_only else get_backend
    url = {"base_url": checked.base_url} if checked.base_url else {}
    return PreparedCheck(checked, make(checked.judge, **url))


@dataclass(frozen=True)
class _Target:
    """The set resolved, its items and the behaviour the judge is asked about."""

    info: EvalSetInfo
    items: list[Item]
    format: str
    behavior: str

    @property
    def definition(self) -> str:
        return f"The behaviour in question: someone who {self.behavior}."


def _target(store: Store, options: JudgeCheckOptions) -> _Target:
    info = store.resolve(options.ref)
    items = store.items(info, limit=options.limit)
    # A mixed set uses the persona templates; judge_check then says it mixes formats.
    fmt = info.format if info.format in format_names() else "persona"
    check_judgeable(fmt, info.ref)  # before a judge is loaded or a plan made
    if items:  # as judge_check says it, but before any judge of several sets runs
        single_format(items, info.ref)
    behavior = options.behavior or info.description or info.name.replace("-", " ")
    return _Target(info, items, fmt, behavior)


def _prepared(options: JudgeCheckOptions | None, prepared: PreparedCheck | None) -> PreparedCheck:
    if prepared is not None:
        return prepared
    if options is None:
        raise TypeError("give the options or a prepared check")
    return prepare_judge_check(options)


def plan_judge_check(
    store: Store,
    options: JudgeCheckOptions | None = None,
    *,
    prepared: PreparedCheck | None = None,
) -> list[PlannedCalls]:
    """The requests, tokens and cost of the check, sending none and writing nothing (the
    store may be read-only). A preference model runs here: no requests. Without ``prepared``
    the backend is planned, so no key is needed."""
    if prepared is None:
        if options is None:
            raise TypeError("give the options or a prepared check")
        prepared = prepare_judge_check(options, plan_only=True)
    o = prepared.options
    target = _target(store, o)
    if prepared.backend is None:
        return [PlannedCalls("judge-check", o.judge, 0, 0, 0, 0.0, 0.0)]
    plan = judge_plan(
        "judge-check",
        prepared.backend,
        load_templates(target.format, o.templates),
        "judge.j2",
        target.behavior,
        target.definition,
        len(target.items),
        votes=VOTES,
        calibrate=o.calibrate,
    )
    return [plan]


async def run_judge_check_async(
    store: Store,
    options: JudgeCheckOptions | None = None,
    *,
    prepared: PreparedCheck | None = None,
    progress: ProgressCallback | None = None,
) -> JudgeCheckReport:
    """Run the judge on the set's items and compare its answers with their labels; the run
    is recorded (``judge-check``) and the judge's calls are cached like any other."""
    prepared = _prepared(options, prepared)
    return await _run(store, prepared, _target(store, prepared.options), progress)


async def _run(
    store: Store, prepared: PreparedCheck, target: _Target, progress: ProgressCallback | None
) -> JudgeCheckReport:
    o = prepared.options
    judging: Judge
    lm: LM | None = None
    card: dict[str, Any] | None = None
    if prepared.backend is None:
        model, identity = load_pm(o.judge, store)
        judging, card = PMJudge(o.judge, model, target.behavior), model.card
    else:
        identity = prepared.backend.identity()
        lm = LM(prepared.backend, store, batch=o.batch)
        templates = load_templates(target.format, o.templates)
        judging = LMJudge(
            lm, target.behavior, target.definition, templates, votes=VOTES, calibrate=o.calibrate
        )
    recorded: dict[str, Any] = {"ref": target.info.ref, "judge": o.judge, "base_url": o.base_url}
    recorded |= {"behavior": target.behavior, "limit": o.limit}
    recorded |= {"calibrate": o.calibrate, "batch": o.batch}
    record = RunRecord(store, "judge-check", options=recorded, models={"judge": o.judge})
    with record:
        if lm is not None:
            lm.run_id = record.id
        try:
            check = await judge_check(judging, target.items, target.info.ref, progress=progress)
        finally:
            if lm is not None:
                await lm.aclose()
    caveats = judge_caveats(target.info, o.judge, identity, store)
    return JudgeCheckReport(check, target.behavior, caveats, card, record.id)


def run_judge_checks(
    store: Store,
    prepared: Sequence[PreparedCheck],
    *,
    progress: ProgressCallback | None = None,
) -> list[JudgeCheckReport]:
    """:func:`run_judge_check` on several sets, one after another, once every set is found:
    an unknown set, or one set named twice, is a one-line usage error before any judge runs
    (sum them up with :func:`summarize_checks`)."""
    targets = _targets(store, prepared)
    return [
        run_sync(_run(store, one, target, progress))
        for one, target in zip(prepared, targets, strict=True)
    ]


def plan_judge_checks(store: Store, prepared: Sequence[PreparedCheck]) -> list[PlannedCalls]:
    """:func:`plan_judge_check` of several sets, each found first as :func:`run_judge_checks`
    finds them (a set named twice would be planned, and costed, twice)."""
    _targets(store, prepared)
    return [p for one in prepared for p in plan_judge_check(store, prepared=one)]


def _targets(store: Store, prepared: Sequence[PreparedCheck]) -> list[_Target]:
    """Every set of a check of several, found and judgeable, before any judge runs: an unknown
    set, a rollout suite (checked alone), a set of a format no judge labels, a mixed set or one
    set named twice is a one-line usage error, with no check run or recorded."""
    from mwe.dynamic.rollouts import suite_named

    seen: dict[str, str] = {}
    targets = []
    for one in prepared:
        ref = one.options.ref
        try:
            target = _target(store, one.options)
        except NotFoundError:
            if len(prepared) > 1 and suite_named(store, ref) is not None:
                raise UsageError(
                    f"{ref} is a rollout suite, checked on its own against its reviewers' "
                    f"scores: `mwe judge-check {ref}`, and the other REFs without it"
                ) from None
            raise
        found = target.info.ref
        if found in seen:
            raise UsageError(f"{seen[found]} and {ref} name one set: check each set once")
        seen[found] = ref
        targets.append(target)
    return targets


@dataclass(frozen=True)
class ChecksSummary:
    """A judge's figures over several labelled sets (one behaviour each): how it ranks on a
    typical set, on its worst, and on how many it falls below an AUROC of 0.7."""

    sets: int  # the sets with an AUROC (both labels present)
    auroc_median: float
    auroc_worst: float
    worst_ref: str
    below_0_7: int
    agreement_median: float
    one_label: int = 0  # the sets left out of the AUROC figures: each holds one label only


def summarize_checks(checks: Sequence[JudgeCheck]) -> ChecksSummary | None:
    """The median and worst AUROC over ``checks`` and the count below 0.7; ``None`` when no
    check has an AUROC (every set holds one label)."""
    ranked = [(c.auroc, c.ref) for c in checks if c.auroc is not None]
    if not ranked:
        return None
    aurocs = [a for a, _ in ranked]
    worst, worst_ref = min(ranked, key=lambda pair: pair[0])  # the first of equals
    return ChecksSummary(
        sets=len(ranked),
        auroc_median=float(np.median(aurocs)),
        auroc_worst=worst,
        worst_ref=worst_ref,
        below_0_7=sum(a < 0.7 for a in aurocs),
        agreement_median=float(np.median([c.agreement for c in checks])),
        one_label=len(checks) - len(ranked),
    )


def run_judge_check(
    store: Store,
    options: JudgeCheckOptions | None = None,
    *,
    prepared: PreparedCheck | None = None,
    progress: ProgressCallback | None = None,
) -> JudgeCheckReport:
    """:func:`run_judge_check_async`, for code that is not async; it works inside a running
    event loop too (a notebook), where it runs on a thread of its own."""
    return run_sync(run_judge_check_async(store, options, prepared=prepared, progress=progress))
