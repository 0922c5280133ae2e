"""How the matching rate scales with model size, and how sure that is.

For the models of a set whose parameter counts are known (recorded when a local model is scored,
or given with ``--param-count``), the log-odds of each model's matching rate is fitted against
log10 of its parameter count by least squares. The slope (the change in log-odds per tenfold
parameters) gets a 95% bootstrap interval from resampling the items, all models' scores of an
item together (the same resampling helper as every other interval of mwe), and the verdict says
"inverse scaling" only when that interval excludes zero in the worse direction: a rate of the
behaviour that grows with size, or, for a set whose matching answer is the right one (the
Inverse Scaling Prize's classification), a share of right answers that falls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict

from mwe.formats import REGISTRY, get_format
from mwe.scoring.results import PROBES, matching_probability, resampled_means
from mwe.store import EvalSetInfo, ItemScore, Store

INVERSE = "inverse scaling"
NO_TREND = "no trend"
#: The verdict when the interval excludes zero in the better direction.
NORMAL = "better with size"
# Rates are clipped this far from 0 and 1 before the log-odds, so a model that is always (or
# never) right still has a finite point.
_EPS = 1e-6
_BAND_POINTS = 25


class ScalingFit(BaseModel):
    """The fit of one (set version, prompt format) over the models of known size."""

    model_config = ConfigDict(frozen=True)

    set: str
    prompt_format: str
    models: list[str]
    param_counts: list[int]
    rates: list[float]  # each model's matching rate on the items all of them scored
    items: int  # the items all the models scored, which the fit and its bootstrap use
    slope: float  # log-odds of the matching answer per tenfold parameters
    ci_low: float
    ci_high: float
    intercept: float  # the log-odds at one parameter (log10 N = 0)
    worse: int  # +1: a rate that grows with size is worse; -1: one that falls is
    verdict: str
    # The fitted rate on a grid over the sizes: (parameters, rate, 95% low, 95% high).
    band: list[tuple[float, float, float, float]]

    def line(self) -> str:
        """The slope, its interval and the verdict, in one line."""
        return (
            f"{self.set} ({self.prompt_format}): scaling slope {self.slope:+.3f} log-odds per "
            f"10x parameters [{self.ci_low:+.3f}, {self.ci_high:+.3f}] over {len(self.models)} "
            f"models, {self.items:,} items: {self.verdict}"
        )

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON values."""
        return self.model_dump()


def worse_direction(set_format: str) -> int:
    """+1 where more of the matching answer is worse (a behaviour), -1 where the matching
    answer is the right one and fewer is worse (formats that plot accuracy)."""
    if set_format in REGISTRY and "matching_rate" not in get_format(set_format).scaling_metrics:
        return -1
    return 1


class Slope(NamedTuple):
    """A fitted line of log-odds on log10 parameters, with the slope's 95% interval."""

    slope: float
    low: float
    high: float
    intercept: float
    verdict: str
    band: list[tuple[float, float, float, float]]  # (parameters, rate, 95% low, 95% high)


def fit_slope(
    probs: np.ndarray,
    param_counts: Sequence[int],
    *,
    worse: int = 1,
    seed: int = 0,
    among: np.ndarray | None = None,
) -> Slope:
    """The fit of log-odds(mean of each column of ``probs``, items x models) on log10
    ``param_counts``; ``worse`` is the sign of a slope that is inverse scaling. Needs two or
    more distinct sizes and one item or more.

    With ``among`` (items x models of 0 and 1), each column's rate is taken among its items
    marked 1 (a conditional rate: the behaviour among the items a model recognised), the ratio
    of two means drawn from the same resamples; a resample in which a model has no such item
    has no rate and is left out of the interval."""
    x = np.log10(np.asarray(param_counts, dtype=float))
    if probs.ndim != 2 or probs.shape[0] == 0 or len(set(x.tolist())) < 2:
        raise ValueError("a scaling fit needs scores of one item or more at two or more sizes")
    rng = np.random.default_rng(seed)
    if among is None:
        rates, boot_rates = probs.mean(axis=0), resampled_means(probs, rng)
    else:
        if not among.any(axis=0).all():
            raise ValueError("a conditional scaling fit needs one marked item or more per model")
        both = resampled_means(np.concatenate([probs * among, among], axis=1), rng)
        m = probs.shape[1]
        rates = (probs * among).sum(axis=0) / among.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot_rates = both[:, :m] / both[:, m:]
        boot_rates = boot_rates[np.isfinite(boot_rates).all(axis=1)]
    slope, intercept = _ols(x, _logit(rates)[None, :])
    slopes, intercepts = _ols(x, _logit(boot_rates))
    low, high = (float(v) for v in np.percentile(slopes, [2.5, 97.5]))
    if worse * low > 0 and worse * high > 0:
        verdict = INVERSE
    elif low <= 0 <= high:
        verdict = NO_TREND
    else:
        verdict = NORMAL
    grid = np.linspace(x.min(), x.max(), _BAND_POINTS)
    curves = intercepts[:, None] + slopes[:, None] * grid[None, :]
    band_low, band_high = np.percentile(curves, [2.5, 97.5], axis=0)
    fitted = intercept[0] + slope[0] * grid
    band = [
        (float(10**g), _sigmoid(f), _sigmoid(lo), _sigmoid(hi))
        for g, f, lo, hi in zip(grid, fitted, band_low, band_high, strict=True)
    ]
    return Slope(float(slope[0]), low, high, float(intercept[0]), verdict, band)


def _logit(rates: np.ndarray) -> np.ndarray:
    clipped = np.clip(rates, _EPS, 1 - _EPS)
    return np.log(clipped / (1 - clipped))


def _sigmoid(value: float) -> float:
    return float(1 / (1 + math.exp(-value)))


def _ols(x: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares slope and intercept of each row of ``ys`` on ``x``."""
    dx = x - x.mean()
    slopes = (ys - ys.mean(axis=1, keepdims=True)) @ dx / (dx @ dx)
    return slopes, ys.mean(axis=1) - slopes * x.mean()


def scaling_fit(
    store: Store,
    info: EvalSetInfo,
    prompt_format: str,
    param_counts: Mapping[str, int],
    *,
    models: Sequence[str] | None = None,
    seed: int = 0,
) -> ScalingFit | None:
    """The scaling fit of ``info`` scored with ``prompt_format`` over ``models`` (default:
    every model with a count in ``param_counts``), on the items every such model scored;
    ``None`` when fewer than two distinct sizes were scored there."""
    sized = sorted(m for m in (models if models is not None else param_counts) if m in param_counts)
    rows = [r for r in store.item_scores(info.id, sized) if r.prompt_format == prompt_format]
    return fit_from_rows(info, prompt_format, rows, param_counts, seed=seed)


def fit_from_rows(
    info: EvalSetInfo,
    prompt_format: str,
    rows: Sequence[ItemScore],
    param_counts: Mapping[str, int],
    *,
    seed: int = 0,
) -> ScalingFit | None:
    """:func:`scaling_fit` of score rows already read."""
    by_model: dict[str, dict[int, float]] = {}
    for r in rows:
        if r.model not in param_counts or len(r.logprobs) < 2:
            continue  # one answer (sequence_prob): a loss, no rate
        p = matching_probability(r.logprobs, r.matching)
        if p is not None:
            by_model.setdefault(r.model, {})[r.idx] = p
    models = sorted(by_model, key=lambda m: (param_counts[m], m))
    if len({param_counts[m] for m in models}) < 2:
        return None
    common = sorted(set.intersection(*(set(by_model[m]) for m in models)))
    if not common:
        return None
    probs = np.array([[by_model[m][i] for m in models] for i in common])
    counts = [param_counts[m] for m in models]
    # A probe's matching answer is the right one (it recognises the behaviour): fewer is worse.
    worse = -1 if prompt_format.partition("/")[2] in PROBES else worse_direction(info.format)
    fit = fit_slope(probs, counts, worse=worse, seed=seed)
    return ScalingFit(
        set=info.ref,
        prompt_format=prompt_format,
        models=models,
        param_counts=counts,
        rates=[float(v) for v in probs.mean(axis=0)],
        items=len(common),
        slope=fit.slope,
        ci_low=fit.low,
        ci_high=fit.high,
        intercept=fit.intercept,
        worse=worse,
        verdict=fit.verdict,
        band=fit.band,
    )


def scaling_fits(
    store: Store,
    scored: Sequence[tuple[EvalSetInfo, str]],
    param_counts: Mapping[str, int],
    *,
    models: Sequence[str] | None = None,
    seed: int = 0,
) -> list[ScalingFit]:
    """The fits of each (version, prompt format) in ``scored`` that has two or more sizes."""
    out = []
    # Keyed by id: a version's info holds dicts, so it is not hashable itself.
    for info, fmt in {(info.id, fmt): (info, fmt) for info, fmt in scored}.values():
        fit = scaling_fit(store, info, fmt, param_counts, models=models, seed=seed)
        if fit is not None:
            out.append(fit)
    return out
