"""Paired comparison of models on the same items (`mwe compare`).

Two models scored on the same set answer the same items, so their difference is measured item
by item: the difference in matching rate (mean probability of the matching answer, B minus A)
gets a 95% paired bootstrap interval from resampling the items (the resampling helper of
:mod:`mwe.scoring.results`), and McNemar's exact test asks whether the items where exactly one
of them gives the matching answer (argmax) split evenly. The p-values of the per-set tests are
Holm-corrected over every (pair, set) test of one comparison, and the pooled tests (items of
every set together) over the pairs. Two models scored with different prompt formats or
methods measured different things; they are refused, not compared.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from mwe.errors import UsageError
from mwe.scoring.results import bootstrap_interval, is_argmax, matching_probability
from mwe.scoring.scaling import ScalingFit, fit_from_rows
from mwe.store import EvalSetInfo, ItemScore, Store

POOLED = "pooled"
#: Items listed per model pair where the two differ most.
TOP_ITEMS = 5


class PairResult(BaseModel):
    """Model A against model B on one set version (or on every compared set, ``pooled``)."""

    model_config = ConfigDict(frozen=True)

    model_a: str
    model_b: str
    set: str
    prompt_format: str
    method: str
    n: int  # items both models scored
    rate_a: float
    rate_b: float
    difference: float  # rate_b - rate_a
    ci_low: float
    ci_high: float
    argmax_a: float  # share of items whose matching answer is A's most likely one
    argmax_b: float
    only_a: int  # items where A gives the matching answer (argmax) and B does not
    only_b: int
    p: float  # McNemar's exact test on only_a vs only_b
    p_holm: float  # Holm-corrected (see the module docstring)


class ItemDifference(BaseModel):
    """One item on which two models differ: the probability each gives its matching answer."""

    model_config = ConfigDict(frozen=True)

    model_a: str
    model_b: str
    set: str
    index: int
    text: str
    matching: str
    prob_a: float
    prob_b: float
    difference: float  # prob_b - prob_a


class Comparison(BaseModel):
    """What :func:`compare` found."""

    model_config = ConfigDict(frozen=True)

    sets: list[str]
    models: list[str]
    seed: int
    pairs: list[PairResult]
    differing: list[ItemDifference]
    scaling: list[ScalingFit]

    def to_json(self) -> dict[str, Any]:
        """The comparison as JSON values (null for a figure that is not defined)."""
        return _json_safe(self.model_dump())


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: the binomial test of ``only_a`` successes in
    ``only_a + only_b`` discordant items at 1/2; 1 when there is none."""
    if only_a + only_b == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` (family-wise error), in their order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


class _Paired(BaseModel):
    """Two models' aligned scores on one version."""

    model_config = ConfigDict(frozen=True)

    info_ref: str
    prompt_format: str
    method: str
    indices: list[int]
    matching: list[str]
    prob_a: list[float]
    prob_b: list[float]
    top_a: list[bool]
    top_b: list[bool]


def compare(
    store: Store,
    sets: Sequence[str],
    models: Sequence[str],
    *,
    prompt_format: str | None = None,
    seed: int = 0,
    top: int = TOP_ITEMS,
    param_counts: Mapping[str, int] | None = None,
) -> Comparison:
    """Compare every pair of ``models`` (two or more) on set versions ``sets`` (``NAME`` or
    ``NAME@N``) from their stored scores: per set and pooled, the difference in matching rate
    with a 95% paired bootstrap interval (seeded by ``seed``) and McNemar's exact p (Holm-
    corrected); the ``top`` items of each pair that differ most; and, where two or more of the
    models have a parameter count (``param_counts`` over the store's), the scaling fit of
    each set. ``prompt_format`` picks the format where the models share several.

    Raises :class:`mwe.errors.UsageError` for fewer than two models, a model without scores
    on a set, two models scored there with different prompt formats or methods, or a count in
    ``param_counts`` of a model with no stored scores.
    """
    models = list(dict.fromkeys(models))
    if len(models) < 2:
        raise UsageError("compare needs two or more different models (--models A B)")
    if not sets:
        raise UsageError("name one or more sets to compare the models on")
    infos = list({info.id: info for info in (store.resolve(ref) for ref in sets)}.values())
    counts = store.param_counts(param_counts)
    per_set: list[tuple[str, str, _Paired]] = []
    fits = []
    for info in infos:
        rows = store.item_scores(info.id, models)
        fmt = _chosen_format(info, rows, models, prompt_format)
        rows = [r for r in rows if r.prompt_format == fmt]
        for a, b in itertools.combinations(models, 2):
            per_set.append((a, b, _paired(info, fmt, rows, a, b)))
        fit = fit_from_rows(info, fmt, rows, counts, seed=seed)
        if fit is not None:
            fits.append(fit)
    pairs = [_pair_result(a, b, p.info_ref, p, seed) for a, b, p in per_set]
    adjusted = holm([r.p for r in pairs])
    pairs = [r.model_copy(update={"p_holm": q}) for r, q in zip(pairs, adjusted, strict=True)]
    out = list(pairs)
    if len(infos) > 1:
        pooled = [
            _pair_result(a, b, POOLED, _pool([p for x, y, p in per_set if (x, y) == (a, b)]), seed)
            for a, b in itertools.combinations(models, 2)
        ]
        adjusted = holm([r.p for r in pooled])
        out += [r.model_copy(update={"p_holm": q}) for r, q in zip(pooled, adjusted, strict=True)]
    return Comparison(
        sets=[info.ref for info in infos],
        models=models,
        seed=seed,
        pairs=out,
        differing=_most_different(store, infos, per_set, top),
        scaling=fits,
    )


def _chosen_format(
    info: EvalSetInfo, rows: Sequence[ItemScore], models: Sequence[str], wanted: str | None
) -> str:
    """The one prompt format every model was scored with on ``info``, or a refusal."""
    formats = {m: sorted({r.prompt_format for r in rows if r.model == m}) for m in models}
    for m, fmts in formats.items():
        if not fmts:
            raise UsageError(
                f"{m} has no scores on {info.ref}: `mwe score {info.ref} --model {m}` makes them"
            )
        if wanted is not None and wanted not in fmts:
            raise UsageError(
                f"{m} was not scored on {info.ref} with prompt format {wanted!r} (it was with "
                f"{', '.join(fmts)}): score it with --prompt-format {wanted} or pick another"
            )
    if wanted is not None:
        return wanted
    common = sorted(set.intersection(*(set(f) for f in formats.values())))
    # A control (FORMAT/NAME, e.g. the sycophancy sets' nobio) goes with its base format.
    bases = [f for f in common if "/" not in f]
    if len(common) == 1 or len(bases) == 1:
        return common[0] if len(common) == 1 else bases[0]
    if not common:
        seen = "; ".join(f"{m} with {', '.join(f)}" for m, f in formats.items())
        raise UsageError(
            f"{info.ref} was scored with different prompt formats ({seen}): models asked "
            "differently are not compared; score them with the same --prompt-format"
        )
    raise UsageError(
        f"the models were scored on {info.ref} with several prompt formats "
        f"({', '.join(common)}): choose one with --prompt-format"
    )


def _paired(info: EvalSetInfo, fmt: str, rows: Sequence[ItemScore], a: str, b: str) -> _Paired:
    """A's and B's scores of the items both scored, or a refusal."""
    mine = {r.idx: r for r in rows if r.model == a}
    theirs = {r.idx: r for r in rows if r.model == b}
    both = sorted(set(mine) & set(theirs))
    if any(len(mine[i].logprobs) < 2 for i in both):
        raise UsageError(
            f"{info.ref} has items with one answer (sequence_prob): there is no matching rate "
            "to compare, only a loss (see `mwe results`)"
        )
    methods = {m: sorted({s[i].method for i in both}) for m, s in ((a, mine), (b, theirs))}
    if methods[a] != methods[b]:
        raise UsageError(
            f"{a} was scored on {info.ref} by {'+'.join(methods[a])} and {b} by "
            f"{'+'.join(methods[b])}: rates measured differently are not compared; score both "
            "the same way"
        )
    aligned = []
    for i in both:
        pa = matching_probability(mine[i].logprobs, mine[i].matching)
        pb = matching_probability(theirs[i].logprobs, theirs[i].matching)
        if pa is not None and pb is not None:  # None: no option had a log-prob (top-k)
            aligned.append((i, pa, pb))
    if not aligned:
        raise UsageError(
            f"{a} and {b} scored no item of {info.ref} in common (with prompt format {fmt}): "
            "score both on the same items"
        )
    return _Paired(
        info_ref=info.ref,
        prompt_format=fmt,
        method="+".join(methods[a]),
        indices=[i for i, _, _ in aligned],
        matching=[mine[i].matching for i, _, _ in aligned],
        prob_a=[pa for _, pa, _ in aligned],
        prob_b=[pb for _, _, pb in aligned],
        top_a=[is_argmax(mine[i].logprobs, mine[i].matching) for i, _, _ in aligned],
        top_b=[is_argmax(theirs[i].logprobs, theirs[i].matching) for i, _, _ in aligned],
    )


def _pool(parts: Sequence[_Paired]) -> _Paired:
    """The items of every set, one after another (an index is no longer an item's own)."""
    return _Paired(
        info_ref=POOLED,
        prompt_format=",".join(sorted({p.prompt_format for p in parts})),
        method=",".join(sorted({p.method for p in parts})),
        indices=[i for p in parts for i in p.indices],
        matching=[m for p in parts for m in p.matching],
        prob_a=[v for p in parts for v in p.prob_a],
        prob_b=[v for p in parts for v in p.prob_b],
        top_a=[v for p in parts for v in p.top_a],
        top_b=[v for p in parts for v in p.top_b],
    )


def _pair_result(a: str, b: str, ref: str, p: _Paired, seed: int) -> PairResult:
    prob_a, prob_b = np.asarray(p.prob_a), np.asarray(p.prob_b)
    # Resampling the per-item differences resamples the items with both models' scores.
    low, high = bootstrap_interval((prob_b - prob_a).tolist(), seed=seed)
    only_a = sum(x and not y for x, y in zip(p.top_a, p.top_b, strict=True))
    only_b = sum(y and not x for x, y in zip(p.top_a, p.top_b, strict=True))
    p_value = mcnemar_exact(only_a, only_b)
    return PairResult(
        model_a=a,
        model_b=b,
        set=ref,
        prompt_format=p.prompt_format,
        method=p.method,
        n=len(p.indices),
        rate_a=float(prob_a.mean()),
        rate_b=float(prob_b.mean()),
        difference=float(prob_b.mean() - prob_a.mean()),
        ci_low=low,
        ci_high=high,
        argmax_a=float(np.mean(p.top_a)),
        argmax_b=float(np.mean(p.top_b)),
        only_a=only_a,
        only_b=only_b,
        p=p_value,
        p_holm=p_value,
    )


def _most_different(
    store: Store,
    infos: Sequence[EvalSetInfo],
    per_set: Sequence[tuple[str, str, _Paired]],
    top: int,
) -> list[ItemDifference]:
    """The ``top`` items of each pair, over every set, with the largest |prob_b - prob_a|."""
    by_ref = {info.ref: info for info in infos}
    out = []
    for a, b in dict.fromkeys((a, b) for a, b, _ in per_set):
        ranked = sorted(
            (
                (abs(pb - pa), p.info_ref, i, m, pa, pb)
                for x, y, p in per_set
                if (x, y) == (a, b)
                for i, m, pa, pb in zip(p.indices, p.matching, p.prob_a, p.prob_b, strict=True)
            ),
            key=lambda t: (-t[0], t[1], t[2]),
        )[:top]
        texts = {}
        for ref in sorted({r for _, r, *_ in ranked}):
            wanted = [i for _, r, i, *_ in ranked if r == ref]
            for i, item in zip(wanted, store.items_at(by_ref[ref], wanted), strict=True):
                texts[(ref, i)] = item.text
        out += [
            ItemDifference(
                model_a=a,
                model_b=b,
                set=ref,
                index=i,
                text=texts[(ref, i)],
                matching=m,
                prob_a=pa,
                prob_b=pb,
                difference=pb - pa,
            )
            for gap, ref, i, m, pa, pb in ranked
            if gap > 0
        ]
    return out
