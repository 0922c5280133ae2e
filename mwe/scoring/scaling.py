"""How the matching rate scales with model size, and how sure that is.

For the models of a set whose parameter counts are known (recorded when a local model is scored,
or given with ``--param-count``), the log-odds of each model's matching rate is fitted against
log10 of its parameter count by least squares. The slope (the change in log-odds per tenfold
parameters) gets a 95% interval from a Bayesian bootstrap of the items, all models' scores of an
item weighted together, with two pseudo-items, one whose rate rises with size and its mirror
(see :func:`fit_slope`), and the verdict says "inverse scaling" only when that interval excludes
zero in the worse direction: a rate of the behaviour that grows with size, or, for a set whose
matching answer is the right one (the Inverse Scaling Prize's classification), a share of right
answers that falls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict

from mwe.formats import REGISTRY, get_format
from mwe.scoring.results import BOOTSTRAP_SAMPLES, PROBES, matching_probability
from mwe.store import EvalSetInfo, ItemScore, Store

INVERSE = "inverse scaling"
NO_TREND = "no trend"
#: The verdict when the interval excludes zero in the better direction.
NORMAL = "better with size"
# The weight of each of the two pseudo-items (see fit_slope), in items: one success and one
# failure per model in all.
_PRIOR = 1.0
# A guard only: with the pseudo-items no rate reaches 0 or 1, but a draw may come within float
# precision of it.
_EPS = 1e-12
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
    of two weighted sums drawn with the same weights; each model needs one marked item or more.

    The interval is a Bayesian bootstrap (Rubin 1981: each draw weighs the items by
    Dirichlet(1, ..., 1), all models' scores of an item by the same weight, so the models stay
    paired by item, as in the item bootstrap it matches on many items) over the items and two
    pseudo-items, each weighing as much as one item: one whose rate rises linearly in log size
    from 0 at the smallest model to 1 at the largest, and its mirror. Why: resampling the items
    alone gives every resample the same rates when each model gives the same answer on every
    item (all 0 at the small sizes, all 1 at the large ones), an interval of zero width on the
    strength of a few items, and log-odds that only clipping kept finite. With the pair, each
    model's rate holds one success and one failure more (Laplace's rule of succession:
    (k + 1) / (n + 2), finite log-odds at 0 and n), and since the two pseudo-items weigh
    differently in each draw, items that all go one way still leave room for the other. At two
    sizes, on answers of 0 and 1, the chance of a rise is then exactly that of a sign test with
    a uniform prior on the items where the two models differ: three items that all rise leave
    P(no rise) = 1/16 and get no verdict, five (1/64) get one. Jeffreys' half a success and
    half a failure (Haldane-Anscombe) is bolder than that: three such items come out at
    P = 0.024-0.033, on the edge of a verdict, where the exact sign test (p = 0.25) is far from
    one. On hundreds of items the pair's weight, and this choice, hardly matter."""
    sizes = np.asarray(param_counts, dtype=float)
    if sizes.ndim != 1 or not (np.isfinite(sizes) & (sizes >= 1)).all():
        raise ValueError("a scaling fit needs parameter counts of 1 or more")
    x = np.log10(sizes)
    if probs.ndim != 2 or probs.shape[0] == 0 or len(set(x.tolist())) < 2:
        raise ValueError("a scaling fit needs scores of one item or more at two or more sizes")
    if probs.shape[1] != len(x):
        raise ValueError(f"{probs.shape[1]} models' scores but {len(x)} parameter counts")
    # A NaN compared false with everything and came out "better with size", slope +nan.
    if not (np.isfinite(probs) & (probs >= 0) & (probs <= 1)).all():
        raise ValueError("a scaling fit needs probabilities between 0 and 1 (a NaN is none)")
    marked = np.ones_like(probs) if among is None else among.astype(float)
    if not marked.any(axis=0).all():
        raise ValueError("a conditional scaling fit needs one marked item or more per model")
    rises = (x - x.min()) / (x.max() - x.min())
    # Items, then the pseudo-item that rises and the one that falls; marked for every model.
    values = np.vstack([probs * marked, rises, 1 - rises])
    marks = np.vstack([marked, np.ones((2, len(x)))])
    weights = np.concatenate([np.ones(len(probs)), [_PRIOR, _PRIOR]])
    rates = weights @ values / (weights @ marks)
    rng = np.random.default_rng(seed)
    draws = rng.gamma(weights, size=(BOOTSTRAP_SAMPLES, len(weights)))
    boot_rates = draws @ values / (draws @ marks)
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
        # NaN where every option's log-prob is -inf: no rate, as with none (its item is left
        # out of the fit, for every model).
        if p is not None and math.isfinite(p):
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
