"""`mwe report`: a static, self-contained HTML page of what the store knows about its sets.

Per set: how it was made, its label balance, the judge's label confidence with the estimated
ceiling, the quality checks, the human reviews with the judge's calibration against them, a
sample of items, the matching-behaviour rate (and accuracy and loss) of every scored model with
its 95% interval, the sycophancy gap where a set was scored with its control, and the metrics
of the set's format (the rate; the Inverse Scaling Prize's accuracy and loss) against model size
(the inverse-scaling view) where parameter counts are known.

Every plot is a PNG under ``OUT/images/`` and is also embedded in ``OUT/index.html`` as a
``data:`` URI, so the page opens offline and can be mailed as one file; it loads nothing from
the network and runs no script. Every piece of stored text reaches the page through Jinja's
autoescaping, so an item that holds markup is shown as text, and a Content-Security-Policy
allows nothing but the inlined images and style. Building it only reads the store (`mwe report
--param-count` stores the counts it is given).
"""

from __future__ import annotations

import base64
import io
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from jinja2 import Environment, PackageLoader, StrictUndefined

from mwe._version import __version__
from mwe.dynamic.rollouts import JudgeAgreement, TargetResult, judge_agreement, target_results
from mwe.errors import UsageError
from mwe.folders import staged_folder
from mwe.formats import REGISTRY, get_format
from mwe.items import Item
from mwe.progress import ProgressCallback, ProgressEvent
from mwe.report.summary import balance_rows, provenance_lines, quality_rows
from mwe.review.reviews import (
    PEREZ_AGREEMENT,
    LabelValidation,
    ReviewSummary,
    label_validation,
    review_summary,
)
from mwe.scoring.knowledge import (
    KnowledgeResult,
    KnowledgeScaling,
    knowledge_results,
    knowledge_scaling,
)
from mwe.scoring.results import Gap, Result, control_gaps, results
from mwe.scoring.scaling import ScalingFit, scaling_fits
from mwe.store import EvalSetInfo, RolloutRow, SetRef, Store, SuiteInfo

#: Items shown per set.
SAMPLE_ITEMS = 10
#: The folder under the report's folder that holds the PNG files.
IMAGES = "images"
_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]+")
_DPI = 110
_BLUE, _GREY, _RED = "#1d4ed8", "#6b7280", "#b91c1c"


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`build_report` wrote: the page and the PNG of each plot."""

    html: Path
    images: list[Path]


@dataclass(frozen=True)
class Plot:
    """One figure of the page: its PNG file (relative to the page) and the same bytes inline."""

    kind: str
    set_ref: str
    caption: str
    alt: str
    file: str
    data_uri: str


@dataclass(frozen=True)
class ResultRow:
    """One scored (model, prompt format) of a set, formatted for the page."""

    model: str
    prompt_format: str
    method: str
    items: int
    unscorable: int
    rate: str
    interval: str
    argmax: str
    loss: str
    params: str


@dataclass(frozen=True)
class ItemRow:
    """One item of a set's sample, formatted for the page."""

    index: int
    text: str
    matching: str
    not_matching: str
    confidence: str


@dataclass
class Section:
    """Everything the page shows about one set version."""

    info: EvalSetInfo
    anchor: str
    provenance: list[str]
    quality_rows: list[tuple[str, str, str]]
    balance: list[tuple[str, int, str]]
    ceiling: float | None
    confident_items: int
    review: ReviewSummary
    review_rows: list[tuple[str, str]]
    results: list[ResultRow]
    scored: list[Result]
    gaps: list[Gap]
    sample: list[ItemRow]
    plots: dict[str, Plot] = field(default_factory=dict)
    # The matching rate's fit against model size, per prompt format (two or more sizes).
    scaling: list[ScalingFit] = field(default_factory=list)
    # The four cells of knowing versus doing, per model that was probed (--probe knowledge).
    knowledge: list[KnowledgeResult] = field(default_factory=list)
    # How knowing and doing scale, where probed models of two or more sizes are known.
    knowledge_scaling: list[KnowledgeScaling] = field(default_factory=list)


@dataclass
class SuiteSection:
    """What the page shows about one rollout suite (`mwe rollout`)."""

    suite: SuiteInfo
    anchor: str
    results: list[TargetResult]
    agreement: JudgeAgreement
    plot: Plot | None = None


def build_report(
    store: Store,
    refs: Sequence[str] | None,
    out_dir: str | Path,
    *,
    force: bool = False,
    param_counts: dict[str, int] | None = None,
    progress: ProgressCallback | None = None,
) -> ReportFiles:
    """Write the report of sets ``refs`` (``NAME`` or ``NAME@N``; none: the latest version of
    every stored set) to ``out_dir/index.html`` and its plots to ``out_dir/images/``.

    ``out_dir`` is written as an export is (:mod:`mwe.folders`): a new or empty folder, or with
    ``force`` one an earlier report or export wrote; the report is written beside it and moved
    into place once complete. ``param_counts`` (model string: parameters) adds to, and
    overrides, the counts the store recorded when the models were scored; they place models on
    the model-size plot. Raises :class:`mwe.errors.UsageError` for an unknown set, an empty
    store, a count of a model with no stored scores or a folder it may not write or replace; a
    failure leaves nothing behind.
    """
    if refs:
        suite_refs = [r for r in refs if _names_suite(store, r)]
        infos = list(
            {
                info.id: info
                for info in (store.resolve(ref) for ref in refs if ref not in suite_refs)
            }.values()
        )
        suites = list({s.id: s for s in (store.resolve_suite(r) for r in suite_refs)}.values())
    else:
        infos = store.latest_sets()
        suites = list({s.name: s for s in store.list_suites()}.values())  # the latest of each
        if not infos and not suites:
            raise UsageError("the store holds no set: import or generate one first")
    counts = store.param_counts(param_counts)  # before anything is written
    marker: dict[str, object] = {
        "report": [info.ref for info in infos] + [suite.ref for suite in suites],
        "mwe": __version__,
    }
    with staged_folder(
        out_dir, force=force, db_path=store.path, what="report", marker=marker
    ) as staged:
        images_dir = staged.folder / IMAGES
        images_dir.mkdir()
        names, page = _write_report(store, infos, suites, images_dir, counts, progress)
        (staged.folder / "index.html").write_bytes(page.encode("utf-8"))
    return ReportFiles(
        html=staged.target / "index.html", images=[staged.target / IMAGES / n for n in names]
    )


def _write_report(
    store: Store,
    infos: Sequence[EvalSetInfo],
    suites: Sequence[SuiteInfo],
    images_dir: Path,
    counts: dict[str, int],
    progress: ProgressCallback | None,
) -> tuple[list[str], str]:
    """Write every plot's PNG into ``images_dir``; return their names and the page."""
    sections: list[Section] = []
    written: list[str] = []
    for done, info in enumerate(infos):
        items = store.items(info)
        section = _section(store, info, items, counts)
        for drawn in _plots(section, items, counts):
            name = f"{_safe(info.ref)}-{drawn.kind}.png"
            (images_dir / name).write_bytes(drawn.png)
            written.append(name)
            section.plots[drawn.kind] = Plot(
                kind=drawn.kind,
                set_ref=info.ref,
                caption=drawn.caption,
                alt=drawn.alt,
                file=f"{IMAGES}/{name}",
                data_uri="data:image/png;base64," + base64.b64encode(drawn.png).decode("ascii"),
            )
        sections.append(section)
        if progress is not None:
            progress(ProgressEvent("report", done + 1, len(infos)))
    suite_sections = []
    for suite in suites:
        rows = store.rollouts(suite)
        threshold = int(suite.params.get("threshold", 7))
        section_s = SuiteSection(
            suite=suite,
            anchor="suite-" + _safe(suite.ref).replace("@", "-v"),
            results=target_results(rows, threshold),
            agreement=judge_agreement(store, suite),
        )
        if any(r.score is not None for r in rows):
            name = f"{_safe(suite.ref)}-scores.png"
            png = _scores_plot(suite.ref, rows)
            (images_dir / name).write_bytes(png)
            written.append(name)
            section_s.plot = Plot(
                kind="scores",
                set_ref=suite.ref,
                caption="How many rollouts of each target the judge gave each behaviour score "
                "(1: not shown, 10: clearly shown).",
                alt=f"Bar chart of the judge's behaviour scores per target for {suite.ref}",
                file=f"{IMAGES}/{name}",
                data_uri="data:image/png;base64," + base64.b64encode(png).decode("ascii"),
            )
        suite_sections.append(section_s)
    return written, render_page(sections, generated_at=datetime.now(UTC), suites=suite_sections)


def _names_suite(store: Store, ref: str) -> bool:
    """Whether ``ref`` names a rollout suite and no set."""
    name = SetRef.parse(ref).name
    return name not in store.names() and any(s.name == name for s in store.list_suites())


def render_page(
    sections: Sequence[Section],
    *,
    generated_at: datetime,
    suites: Sequence[SuiteSection] = (),
) -> str:
    """The HTML of the report (``mwe/report/templates/report.html.j2``), every stored text escaped."""
    env = Environment(
        loader=PackageLoader("mwe", "report/templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render(
        sections=sections,
        suites=suites,
        generated_at=f"{generated_at:%Y-%m-%d %H:%M:%S %Z}",
        version=__version__,
        models=sorted({r.model for s in sections for r in s.results}),
    )


# -- what a section shows --------------------------------------------------------------------


def _section(
    store: Store, info: EvalSetInfo, items: Sequence[Item], counts: dict[str, int]
) -> Section:
    confidences = [i.label_confidence for i in items if i.label_confidence is not None]
    review = review_summary(store, info)
    balance = store.label_counts(info)
    scored = sorted(
        results(store, info.ref),
        key=lambda r: (counts.get(r.model, 0), r.model, r.prompt_format),
    )
    by_model = [(info, r.model, r.prompt_format) for r in scored]
    return Section(
        info=info,
        anchor="set-" + _safe(info.ref).replace("@", "-v"),
        provenance=provenance_lines(info.provenance),
        quality_rows=quality_rows(info.stats),
        balance=balance_rows(balance),  # bounded: a sequence_prob set has an answer per item
        ceiling=_ceiling(info.stats, confidences),
        confident_items=len(confidences),
        review=review,
        review_rows=_review_rows(review) + _validation_rows(label_validation(store, info)),
        results=[_result_row(r, counts.get(r.model)) for r in scored],
        scored=scored,
        gaps=control_gaps(store, by_model),
        sample=[_item_row(i, item) for i, item in enumerate(items[:SAMPLE_ITEMS])],
        scaling=scaling_fits(store, [(info, r.prompt_format) for r in scored], counts),
        knowledge=knowledge_results(store, by_model),
        knowledge_scaling=knowledge_scaling(store, by_model, counts),
    )


def _ceiling(stats: dict[str, Any], confidences: Sequence[float]) -> float | None:
    """The estimated ceiling: the mean label confidence (the share of labels the judge expects
    to be right), from the version's stats or else its items."""
    stored = (stats.get("label_confidence") or {}).get("mean")
    if stored is not None:
        return float(stored)
    return statistics.fmean(confidences) if confidences else None


def _review_rows(review: ReviewSummary) -> list[tuple[str, str]]:
    if not review.answers:
        return []
    rows = [
        ("reviewers", ", ".join(review.reviewers)),
        ("items reviewed", f"{review.items_reviewed:,} ({review.answers:,} answers)"),
        ("verdicts", ", ".join(f"{v} {n:,}" for v, n in review.verdicts.items())),
    ]
    if review.label_agreement is not None:
        interval = f"[{review.agreement_low:.1%}, {review.agreement_high:.1%}]"
        rows.append(("label agreement (95% interval)", f"{review.label_agreement:.1%} {interval}"))
    if review.mean_relevance is not None:
        rows.append(("mean relevance", f"{review.mean_relevance:.2f} / 5"))
    if review.kappa is not None:
        rows.append(("Fleiss' kappa", f"{review.kappa:.2f} on {review.kappa_items:,} items"))
    if review.judge_agreement is not None:
        rows.append(
            ("judge agreement", f"{review.judge_agreement:.1%} on {review.judge_items:,} items")
        )
    if review.judge_auroc is not None:
        rows.append(("judge AUROC", f"{review.judge_auroc:.2f}"))
    return rows


def _validation_rows(validation: LabelValidation) -> list[tuple[str, str]]:
    """The rows of the review table that say how far the set's labels are validated."""
    if validation.agreement is None:
        return []
    agreement = (
        f"{validation.agreement_text()} on {validation.items_reviewed:,} items "
        f"({validation.answers:,} answers); Perez et al. 2022 crowdworkers: "
        f"{PEREZ_AGREEMENT:.1%}"
    )
    return [
        ("validation: agreement with the labels (95% interval)", agreement),
        ("validation: Cohen's kappa with the labels (95% interval)", validation.kappa_text()),
    ]


def _result_row(r: Result, count: int | None) -> ResultRow:
    return ResultRow(
        model=r.model,
        prompt_format=r.prompt_format,
        method=r.method,
        items=r.items,
        unscorable=r.unscorable,
        rate=_number(r.matching_rate),
        interval=f"[{_number(r.ci_low)}, {_number(r.ci_high)}]",
        argmax=_number(r.argmax_rate),
        loss=_number(r.loss),
        params="-" if count is None else human_count(count),
    )


def _item_row(index: int, item: Item) -> ItemRow:
    return ItemRow(
        index=index,
        text=item.text,
        matching=repr(item.answer_matching_behavior),
        not_matching=", ".join(repr(a) for a in item.not_matching),
        confidence="-" if item.label_confidence is None else f"{item.label_confidence:.3f}",
    )


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def human_count(n: int) -> str:
    """A parameter count as people write it: 135M, 1.7B."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


# -- the plots -------------------------------------------------------------------------------


class _Drawn(NamedTuple):
    kind: str
    png: bytes
    caption: str
    alt: str


def _plots(section: Section, items: Sequence[Item], counts: dict[str, int]) -> list[_Drawn]:
    """Each plot the section has data for."""
    ref = section.info.ref
    out = []
    if section.balance:
        shares = ", ".join(f"{label} {n}" for label, n, _ in section.balance)
        out.append(
            _Drawn(
                "balance",
                _balance_plot(ref, section.balance),
                caption="How many items have each matching answer.",
                alt=f"Bar chart of the label balance of {ref}: {shares}",
            )
        )
    confidences = [i.label_confidence for i in items if i.label_confidence is not None]
    if confidences and section.ceiling is not None:
        out.append(
            _Drawn(
                "confidence",
                _confidence_plot(ref, confidences, section.ceiling),
                caption=(
                    "The judge's probability that each label is right; the dashed line is the "
                    f"mean ({section.ceiling:.3f}), the estimated ceiling of agreement."
                ),
                alt=(
                    f"Histogram of the label confidence of {len(confidences)} items of {ref}, "
                    f"mean {section.ceiling:.3f}"
                ),
            )
        )
    if section.review.calibration:
        out.append(
            _Drawn(
                "calibration",
                _calibration_plot(ref, section.review.calibration),
                caption=(
                    "Judge label confidence against the share of items the reviewers found "
                    "correctly labelled; a calibrated judge lies on the diagonal."
                ),
                alt=f"Calibration plot of the judge against human reviewers for {ref}",
            )
        )
    scored = [r for r in section.scored if not math.isnan(r.matching_rate)]
    if scored:
        out.append(
            _Drawn(
                "results",
                _results_plot(ref, scored),
                caption=(
                    "Matching-behaviour rate (mean probability of the matching answer) of each "
                    "model and prompt format, with its 95% bootstrap interval; the dashed line "
                    "at 0.5 is indifference."
                ),
                alt=f"Dot plot of the matching-behaviour rate of {len(scored)} results on {ref}",
            )
        )
    fmt = section.info.format
    for metric in get_format(fmt).scaling_metrics if fmt in REGISTRY else ("matching_rate",):
        view = SCALING[metric]
        sized = [
            (counts[r.model], r)
            for r in section.scored
            if r.model in counts and not math.isnan(getattr(r, metric))
        ]
        if len({r.model for _, r in sized}) >= 2:
            # The fit is of the matching rate's log-odds: it belongs on that plot only.
            fits = section.scaling if metric == "matching_rate" else []
            out.append(
                _Drawn(
                    "scaling" if metric == "matching_rate" else f"scaling-{metric}",
                    _scaling_plot(ref, sized, view, fits),
                    caption=(
                        f"{view.name.capitalize()} ({view.meaning}) against model size, one "
                        f"line per prompt format, with 95% intervals: {view.inverse}."
                        + _fit_caption(fits)
                    ),
                    alt=f"Line plot of the {view.name} against parameter count for {ref}",
                )
            )
    return out


class _Metric(NamedTuple):
    """How the scaling view shows one metric of :class:`Result`."""

    field: str
    low: str
    high: str
    name: str
    meaning: str  # said in the caption
    axis: str
    inverse: str  # what inverse scaling looks like on it
    bounded: bool  # a probability: drawn on [0, 1] with indifference at 0.5


SCALING = {
    "matching_rate": _Metric(
        "matching_rate",
        "ci_low",
        "ci_high",
        "matching-behaviour rate",
        "the mean probability of the matching answer",
        "matching-behaviour rate (probability)",
        "a rate that grows with size is inverse scaling",
        True,
    ),
    "argmax_rate": _Metric(
        "argmax_rate",
        "argmax_ci_low",
        "argmax_ci_high",
        "accuracy",
        "the share of items whose right answer is the most likely",
        "accuracy (share of items)",
        "accuracy that falls as size grows is inverse scaling",
        True,
    ),
    "loss": _Metric(
        "loss",
        "loss_ci_low",
        "loss_ci_high",
        "loss",
        "the mean negative log-likelihood of the right answer, normalised over the answers "
        "where there are several",
        "loss (nats)",
        "a loss that grows with size is inverse scaling",
        False,
    ),
}


def _figure(width: float, height: float) -> Any:
    # A bare Figure on the Agg canvas: no pyplot, so no global figure list to leak into.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _fit_titles(fig: Any) -> None:
    """Wrap each axes' title onto as many lines as it needs to fit the figure's width (a
    constrained layout makes room for a taller title, never for a wider one: it is clipped)."""
    import textwrap

    for ax in fig.axes:
        title = ax.title
        text = title.get_text()
        # A character is about 0.6 of the font size wide; 0.9 of the width leaves a margin.
        fits = int(0.9 * fig.get_figwidth() * 72 / (0.6 * title.get_fontsize()))
        if len(text) > fits:
            title.set_text("\n".join(textwrap.wrap(text, max(fits, 16))))


def _png(fig: Any) -> bytes:
    _fit_titles(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    fig.clear()  # frees the artists at once; there is no pyplot state to close
    return buffer.getvalue()


def _text(value: str, width: int = 48) -> str:
    """Text for matplotlib: ``$`` would start mathtext, and a long model path is shortened."""
    if len(value) > width:
        head, _, tail = value.rpartition("/")
        value = (head.split(":")[0] + ":…/" + tail) if head and ":" in head else value
        if len(value) > width:
            value = value[: width // 2 - 1] + "…" + value[-(width // 2) :]
    return value.replace("$", r"\$")


def _balance_plot(ref: str, balance: Sequence[tuple[str, int, str]]) -> bytes:
    fig = _figure(5.0, 2.8)
    ax = fig.add_subplot()
    labels = [_text(label) for label, _, _ in balance]
    bars = ax.bar(labels, [n for _, n, _ in balance], color=_BLUE, width=0.6)
    ax.bar_label(bars, labels=[f"{n:,} ({share})" for _, n, share in balance], padding=2)
    ax.set_title(f"{_text(ref)}: label balance")
    ax.set_xlabel("answer matching the behaviour")
    ax.set_ylabel("items")
    ax.margins(y=0.15)
    return _png(fig)


def _confidence_plot(ref: str, confidences: Sequence[float], ceiling: float) -> bytes:
    fig = _figure(6.4, 3.4)
    ax = fig.add_subplot()
    ax.hist(confidences, bins=20, range=(0.0, 1.0), color=_BLUE, edgecolor="white")
    ax.axvline(ceiling, color=_RED, linestyle="--", label=f"estimated ceiling {ceiling:.3f}")
    ax.set_xlim(0, 1)
    ax.set_title(f"{_text(ref)}: label confidence")
    ax.set_xlabel("label confidence (probability)")
    ax.set_ylabel("items")
    ax.legend(loc="upper left")
    return _png(fig)


def _calibration_plot(ref: str, calibration: Sequence[tuple[float, float, int]]) -> bytes:
    fig = _figure(4.8, 4.2)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color=_GREY, linestyle="--", label="perfect calibration")
    ax.scatter(
        [c for c, _, _ in calibration],
        [a for _, a, _ in calibration],
        s=[30 + 10 * n for _, _, n in calibration],
        color=_BLUE,
        zorder=3,
        label="bins of items (size: items)",
    )
    for c, a, n in calibration:
        ax.annotate(f"{n}", (c, a), textcoords="offset points", xytext=(6, -10), fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{_text(ref)}: judge against reviewers")
    ax.set_xlabel("judge label confidence (probability)")
    ax.set_ylabel("share of items found correctly labelled")
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def _results_plot(ref: str, scored: Sequence[Result]) -> bytes:
    fig = _figure(6.8, 1.4 + 0.45 * len(scored))
    ax = fig.add_subplot()
    ys = list(range(len(scored)))[::-1]  # first row on top
    ax.errorbar(
        [r.matching_rate for r in scored],
        ys,
        xerr=_error_bars(scored),
        fmt="o",
        color=_BLUE,
        ecolor=_BLUE,
        capsize=4,
    )
    ax.axvline(0.5, color=_GREY, linestyle="--", linewidth=1)
    ax.set_yticks(ys, [f"{_text(r.model, 40)} ({_text(r.prompt_format)})" for r in scored])
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.7, len(scored) - 0.3)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"{_text(ref)}: matching-behaviour rate (95% interval)")
    ax.set_xlabel("matching-behaviour rate (probability)")
    ax.set_ylabel("model (prompt format)")
    return _png(fig)


def _scores_plot(ref: str, rows: Sequence[RolloutRow]) -> bytes:
    fig = _figure(6.8, 3.6)
    ax = fig.add_subplot()
    targets = sorted({r.target for r in rows})
    width = 0.8 / len(targets)
    for k, target in enumerate(targets):
        scores = [r.score for r in rows if r.target == target and r.score is not None]
        counts = [scores.count(v) for v in range(1, 11)]
        ax.bar(
            [v - 0.4 + width * (k + 0.5) for v in range(1, 11)],
            counts,
            width=width,
            label=f"{_text(target, 40)} ({len(scores)} scored)",
        )
    ax.set_xticks(range(1, 11))
    ax.set_xlim(0.4, 10.6)
    ax.set_title(f"{_text(ref)}: behaviour scores per target")
    ax.set_xlabel("judge's behaviour score (1: not shown, 10: clearly)")
    ax.set_ylabel("rollouts")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


def _error_bars(
    scored: Sequence[Result], metric: _Metric = SCALING["matching_rate"]
) -> list[list[float]]:
    """The lengths of the interval on each side of each value of ``metric``."""
    values = [getattr(r, metric.field) for r in scored]
    return [
        [max(0.0, v - getattr(r, metric.low)) for v, r in zip(values, scored, strict=True)],
        [max(0.0, getattr(r, metric.high) - v) for v, r in zip(values, scored, strict=True)],
    ]


def scaling_labels(sized: Sequence[tuple[int, Result]]) -> list[tuple[int, str]]:
    """One label per model size: the models of that size, one a line, above the size. Models
    of one size share a point on the x axis, so a label each would be drawn over each other."""
    by_size: dict[int, list[str]] = {}
    for n, model in sorted({(n, r.model) for n, r in sized}):
        by_size.setdefault(n, []).append(_text(model, 28))
    return [(n, "\n".join([*models, human_count(n)])) for n, models in by_size.items()]


def _fit_caption(fits: Sequence[ScalingFit]) -> str:
    """What the fitted lines say, for the caption (nothing when there is none)."""
    if not fits:
        return ""
    lines = "; ".join(
        f"{_text(f.prompt_format)}: slope {f.slope:+.3f} log-odds per 10x parameters "
        f"[{f.ci_low:+.3f}, {f.ci_high:+.3f}] on {f.items:,} items, {f.verdict}"
        for f in fits
    )
    return (
        " The thin line is the fit of the log-odds against log parameters, the shaded band its "
        "95% bootstrap band (the items weighed at random, with a rising and a falling "
        f"pseudo-item); {lines}."
    )


def _scaling_plot(
    ref: str,
    sized: Sequence[tuple[int, Result]],
    metric: _Metric,
    fits: Sequence[ScalingFit] = (),
) -> bytes:
    fig = _figure(6.4, 3.8)
    ax = fig.add_subplot()
    formats = sorted({r.prompt_format for _, r in sized})
    for k, fmt in enumerate(formats):
        points = sorted(((n, r) for n, r in sized if r.prompt_format == fmt), key=lambda p: p[0])
        # Formats side by side around each size, so their intervals do not hide each other.
        dodge = 10 ** (0.03 * (k - (len(formats) - 1) / 2))
        drawn = ax.errorbar(
            [n * dodge for n, _ in points],
            [getattr(r, metric.field) for _, r in points],
            yerr=_error_bars([r for _, r in points], metric),
            marker="o",
            capsize=4,
            linestyle="none" if fits else "-",
            label=f"prompt format {_text(fmt)}",
        )
        for fit in (f for f in fits if f.prompt_format == fmt):
            colour = drawn.lines[0].get_color()
            sizes = [n for n, _, _, _ in fit.band]
            ax.plot(sizes, [r for _, r, _, _ in fit.band], color=colour, linewidth=1)
            ax.fill_between(
                sizes,
                [lo for _, _, lo, _ in fit.band],
                [hi for _, _, _, hi in fit.band],
                color=colour,
                alpha=0.15,
                linewidth=0,
            )
    ceiling = 0.9 if metric.bounded else max(getattr(r, metric.high) for _, r in sized)
    for n, label in scaling_labels(sized):
        top = max(getattr(r, metric.high) for m, r in sized if m == n)
        ax.annotate(
            label,
            (n, min(top, ceiling)),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
            color=_GREY,
        )
    ax.set_xscale("log")
    if metric.bounded:
        ax.axhline(0.5, color=_GREY, linestyle="--", linewidth=1)
        ax.set_ylim(0, 1)
    else:
        ax.set_ylim(0, ceiling * 1.25 or 1)
    ax.margins(x=0.25)
    ax.set_title(f"{_text(ref)}: {metric.name} against model size")
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel(metric.axis)
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


# -- files -----------------------------------------------------------------------------------


def _safe(name: str) -> str:
    """``name`` as a file-name part: letters, digits, ``.``, ``_``, ``@`` and ``-`` only."""
    return _UNSAFE.sub("-", name).strip(".-") or "set"
