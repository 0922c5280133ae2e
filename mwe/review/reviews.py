"""Human review of a set's labels (`mwe review`), and what the reviews say about the set.

A reviewer answers, for each item, whether its label is right (``yes``, ``no`` or ``unsure``)
and how relevant it is to the behaviour (1-5), as the crowdworkers of Perez et al. 2022 did (95.5%
label agreement, relevance 4.4/5). :func:`review_summary` turns the stored answers into the
figures shown by `mwe show`, the report and the dataset card: label agreement with a 95% Wilson
interval, mean relevance, Fleiss' kappa between reviewers, and how well the judge's label
confidence predicts the reviewers' verdicts (agreement and AUROC).
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from mwe.errors import UsageError
from mwe.items import Item
from mwe.store import EvalSetInfo, ReviewRow, Store

VERDICTS = ("yes", "no", "unsure")
RELEVANCE = range(1, 6)
_REVIEWER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@ -]{0,63}")
# z of a two-sided 95% interval.
_Z95 = 1.959963984540054


def check_reviewer(name: str) -> str:
    """Return ``name`` if it is a usable reviewer name, else raise with what to write."""
    if not _REVIEWER_RE.fullmatch(name):
        raise UsageError(
            f"invalid reviewer name {name!r}: use 1-64 letters, digits, spaces, '.', '_', '@' "
            "or '-', starting with a letter or digit"
        )
    return name


def check_answer(verdict: object, relevance: object) -> None:
    """Raise unless ``verdict`` is one of :data:`VERDICTS` and ``relevance`` is 1-5 or None."""
    if not isinstance(verdict, str) or verdict not in VERDICTS:
        raise UsageError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    # `true` and `2.0` equal 1 and 2 but are not ratings: kept as given they would be stored as
    # numbers the reviewer never chose, so only a whole number (not a bool) passes.
    if relevance is not None and (
        isinstance(relevance, bool) or not isinstance(relevance, int) or relevance not in RELEVANCE
    ):
        raise UsageError(f"relevance must be a whole number from 1 to 5, not {relevance!r}")


def review_order(item_count: int, sample: int | None = None, seed: int = 0) -> list[int]:
    """The items a review goes through, in order: all of them, or a seeded random sample of
    ``sample`` (the same for every reviewer with the same seed, so their answers overlap)."""
    if sample is None or sample >= item_count:
        return list(range(item_count))
    if sample < 1:
        raise UsageError(f"--sample must be at least 1, not {sample}")
    return sorted(random.Random(seed).sample(range(item_count), sample))


def wilson_interval(successes: float, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sensible at 0/n and n/n, unlike a bootstrap);
    ``successes`` may be a sum of values in [0, 1] (a mean rate times n)."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + _Z95**2 / n
    centre = (p + _Z95**2 / (2 * n)) / denom
    half = _Z95 * math.sqrt(p * (1 - p) / n + _Z95**2 / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def fleiss_kappa(ratings: Sequence[Sequence[str]], categories: Sequence[str] = VERDICTS) -> float:
    """Fleiss' kappa of items each rated by two or more raters (the counts may differ between
    items); ``nan`` when there is no such item or every rating is the same."""
    rated = [r for r in ratings if len(r) >= 2]
    if not rated:
        return math.nan
    totals: Counter[str] = Counter()
    agreement = []
    for r in rated:
        counts = Counter(r)
        totals.update(counts)
        n = len(r)
        agreement.append((sum(c * c for c in counts.values()) - n) / (n * (n - 1)))
    n_ratings = sum(totals.values())
    p_expected = sum((totals[c] / n_ratings) ** 2 for c in categories)
    p_observed = sum(agreement) / len(agreement)
    if p_expected >= 1:
        return math.nan
    return (p_observed - p_expected) / (1 - p_expected)


class ReviewSummary(BaseModel):
    """What the reviews of one set version say. Rates are ``None`` where nothing was answered."""

    model_config = ConfigDict(frozen=True)

    reviewers: list[str]
    items_reviewed: int
    answers: int
    verdicts: dict[str, int]
    # The share of yes among all yes/no answers; its interval counts answers, so with several
    # reviewers per item it is narrower than one over items would be.
    label_agreement: float | None
    agreement_low: float | None
    agreement_high: float | None
    mean_relevance: float | None
    kappa: float | None  # Fleiss' kappa of the verdicts, items with two or more reviewers
    kappa_items: int
    judge_agreement: float | None  # judge confidence >= 0.5 vs the reviewers' majority
    judge_auroc: float | None  # of label confidence against the reviewers' majority
    judge_items: int
    calibration: list[tuple[float, float, int]]  # (mean confidence, human agreement, items)

    def line(self) -> str:
        """The summary in one line, for `mwe show`."""
        if not self.answers:
            return "reviews: none yet (`mwe review SET` to check labels by hand)"
        parts = [
            f"reviews: {self.items_reviewed:,} items by {len(self.reviewers)} reviewer(s)",
        ]
        if self.label_agreement is not None:
            parts.append(
                f"label agreement {self.label_agreement:.1%} "
                f"[{self.agreement_low:.1%}, {self.agreement_high:.1%}]"
            )
        if self.mean_relevance is not None:
            parts.append(f"relevance {self.mean_relevance:.2f}/5")
        if self.kappa is not None:
            parts.append(f"kappa {self.kappa:.2f} on {self.kappa_items:,} items")
        if self.judge_auroc is not None:
            parts.append(f"judge AUROC {self.judge_auroc:.2f}")
        if self.judge_agreement is not None:
            parts.append(f"judge agreement {self.judge_agreement:.1%}")
        return ", ".join(parts)


def review_summary(store: Store, info: EvalSetInfo) -> ReviewSummary:
    """The review figures of a stored version (see :class:`ReviewSummary`)."""
    rows = store.reviews(info)
    confidences = {}
    if rows:
        items = store.items(info)
        confidences = {
            i: item.label_confidence
            for i, item in enumerate(items)
            if item.label_confidence is not None
        }
    return summarise(rows, confidences)


def summarise(rows: Sequence[ReviewRow], confidences: dict[int, float]) -> ReviewSummary:
    """The figures of review answers ``rows``; ``confidences`` are the judge's label
    confidences by item index (items without one are left out of the judge figures)."""
    by_item: dict[int, list[ReviewRow]] = defaultdict(list)
    for row in rows:
        by_item[row.idx].append(row)
    decided = [r.verdict for r in rows if r.verdict != "unsure"]
    yes = decided.count("yes")
    low, high = wilson_interval(yes, len(decided)) if decided else (None, None)
    relevance = [r.relevance for r in rows if r.relevance is not None]
    multi = [[r.verdict for r in answers] for answers in by_item.values() if len(answers) >= 2]
    kappa = fleiss_kappa(multi) if multi else math.nan
    # The reviewers' majority on each item: is its label right? Ties and unsure are left out.
    majority = {}
    for idx, answers in by_item.items():
        votes = Counter(r.verdict for r in answers if r.verdict != "unsure")
        if votes and votes["yes"] != votes["no"]:
            majority[idx] = votes["yes"] > votes["no"]
    judged = [(confidences[i], right) for i, right in majority.items() if i in confidences]
    judge_agreement = judge_auroc = None
    if judged:
        judge_agreement = sum((c >= 0.5) == right for c, right in judged) / len(judged)
        if len({right for _, right in judged}) == 2:
            from sklearn.metrics import roc_auc_score

            judge_auroc = float(
                roc_auc_score([right for _, right in judged], [c for c, _ in judged])
            )
    return ReviewSummary(
        reviewers=sorted({r.reviewer for r in rows}),
        items_reviewed=len(by_item),
        answers=len(rows),
        verdicts={v: sum(r.verdict == v for r in rows) for v in VERDICTS},
        label_agreement=yes / len(decided) if decided else None,
        agreement_low=low,
        agreement_high=high,
        mean_relevance=sum(relevance) / len(relevance) if relevance else None,
        kappa=None if math.isnan(kappa) else kappa,
        kappa_items=len(multi),
        judge_agreement=judge_agreement,
        judge_auroc=judge_auroc,
        judge_items=len(judged),
        calibration=_calibration(judged),
    )


def _calibration(
    judged: Sequence[tuple[float, bool]], bins: int = 5
) -> list[tuple[float, float, int]]:
    """Judge confidence against the reviewers' agreement, in ``bins`` equal-width bins over
    [0.5, 1] (a label confidence under 0.5 falls in the first): (mean confidence, share the
    reviewers found right, items) of each non-empty bin."""
    groups: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for c, right in judged:
        # Rounded first, so that 0.6 falls in the bin that starts at 0.6 despite float error.
        at = math.floor(round((c - 0.5) * 2 * bins, 9))
        groups[min(bins - 1, max(0, at))].append((c, right))
    return [
        (
            sum(c for c, _ in g) / len(g),
            sum(right for _, right in g) / len(g),
            len(g),
        )
        for _, g in sorted(groups.items())
    ]


def reviewed_labels(store: Store, info: EvalSetInfo) -> list[Item]:
    """The reviewed items of a version with the labels the reviewers' majority gives them: kept
    where they found it right, flipped (persona Yes/No) where they found it wrong; items with a
    tie or only ``unsure`` are left out. For fitting a judge to human labels."""
    majority: dict[int, Counter[str]] = defaultdict(Counter)
    for row in store.reviews(info):
        if row.verdict != "unsure":
            majority[row.idx][row.verdict] += 1
    items = store.items(info)
    out = []
    for idx, votes in sorted(majority.items()):
        if votes["yes"] == votes["no"]:
            continue
        item = items[idx]
        if votes["no"] > votes["yes"]:
            item = flipped(item)
        out.append(item)
    return out


def flipped(item: Item) -> Item:
    """A two-option item with its matching and non-matching answers swapped."""
    others = item.not_matching
    if len(others) != 1:
        raise UsageError(
            f"cannot flip the label of an item with {len(others) + 1} answers: review labels "
            "train judges of two-answer items only"
        )
    swapped = item.answer_matching_behavior
    return item.model_copy(
        update={
            "answer_matching_behavior": others[0],
            "answer_not_matching_behavior": swapped
            if isinstance(item.answer_not_matching_behavior, str)
            else [swapped],
            # The judge's confidence was in the old label: it says nothing about the new one.
            "label_confidence": None,
        }
    )


# -- validation: the reviews as a measured agreement with the set's labels --------------------

#: Perez et al. 2022's crowdworkers agreed with 95.5% of the labels they checked.
PEREZ_AGREEMENT = 0.955
#: The bar of ``mwe export --require-validated`` unless told otherwise.
MIN_AGREEMENT = 0.9
MIN_REVIEWED = 100
_OTHER = "<another answer>"


class LabelValidation(BaseModel):
    """How far reviewers agree with a version's labels: every yes/no answer (``unsure`` is
    left out) is a label the reviewer gives the item (the set's own for yes, the other answer
    for no), set against the set's label. ``None`` where nothing was decided."""

    model_config = ConfigDict(frozen=True)

    items_reviewed: int  # items with at least one yes/no answer
    answers: int  # yes/no answers: one per reviewer per item
    agreement: float | None  # raw agreement: the share of answers that keep the label
    agreement_low: float | None  # 95% Wilson interval
    agreement_high: float | None
    kappa: float | None  # Cohen's kappa of the reviewers' labels against the set's
    kappa_low: float | None  # 95%, from the large-sample standard error (Cohen 1960)
    kappa_high: float | None

    def agreement_text(self) -> str:
        """``91.0% [85.2%, 94.7%]``: the raw agreement with its 95% interval ("" unreviewed)."""
        if self.agreement is None:
            return ""
        return f"{self.agreement:.1%} [{self.agreement_low:.1%}, {self.agreement_high:.1%}]"

    def kappa_text(self) -> str:
        """``0.81 [0.72, 0.90]``: Cohen's kappa with its 95% interval, or why there is none."""
        if self.kappa is None:
            return "n/a (one label only)"
        return f"{self.kappa:.2f} [{self.kappa_low:.2f}, {self.kappa_high:.2f}]"

    def line(self) -> str:
        """The validation in one line, with the paper's figure to compare against."""
        if self.agreement is None:
            return "validation: not validated (no yes/no review answers; `mwe review SET`)"
        return (
            f"validation: {self.agreement:.1%} agreement with the labels "
            f"[{self.agreement_low:.1%}, {self.agreement_high:.1%}], "
            f"Cohen's kappa {self.kappa_text()}, "
            f"on {self.items_reviewed:,} reviewed items ({self.answers:,} answers); "
            f"Perez et al. 2022 crowdworkers: {PEREZ_AGREEMENT:.1%}"
        )


def label_validation(store: Store, info: EvalSetInfo) -> LabelValidation:
    """The :class:`LabelValidation` of a stored version from its reviews."""
    rows = store.reviews(info)
    decided = [r for r in rows if r.verdict != "unsure"]
    indices = sorted({r.idx for r in decided})
    items = store.items_at(info, indices) if indices else []
    return validation_of(decided, dict(zip(indices, items, strict=True)))


def validation_of(rows: Sequence[ReviewRow], items: dict[int, Item]) -> LabelValidation:
    """:func:`label_validation` of review answers ``rows`` on ``items`` (by index)."""
    pairs = []
    for r in rows:
        if r.verdict == "unsure":
            continue
        item = items[r.idx]
        label = item.answer_matching_behavior
        others = item.not_matching
        if r.verdict == "yes":
            pairs.append((label, label))
        else:  # the reviewer's label is the other answer, where there is just one
            pairs.append((label, others[0] if len(others) == 1 else _OTHER))
    n = len(pairs)
    if not n:
        return LabelValidation(
            items_reviewed=0,
            answers=0,
            agreement=None,
            agreement_low=None,
            agreement_high=None,
            kappa=None,
            kappa_low=None,
            kappa_high=None,
        )
    agree = sum(a == b for a, b in pairs)
    low, high = wilson_interval(agree, n)
    observed = agree / n
    theirs, mine = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(theirs[c] * mine[c] for c in theirs) / (n * n)
    kappa = kappa_low = kappa_high = None
    if expected < 1:  # with one label on every item and every answer, kappa is undefined
        kappa = (observed - expected) / (1 - expected)
        se = math.sqrt(observed * (1 - observed) / n) / (1 - expected)
        kappa_low, kappa_high = max(-1.0, kappa - _Z95 * se), min(1.0, kappa + _Z95 * se)
    return LabelValidation(
        items_reviewed=len({r.idx for r in rows if r.verdict != "unsure"}),
        answers=n,
        agreement=observed,
        agreement_low=low,
        agreement_high=high,
        kappa=kappa,
        kappa_low=kappa_low,
        kappa_high=kappa_high,
    )


def check_validated(
    ref: str,
    validation: LabelValidation,
    *,
    min_agreement: float = MIN_AGREEMENT,
    min_reviewed: int = MIN_REVIEWED,
) -> None:
    """Raise :class:`mwe.errors.UsageError` unless ``min_reviewed`` items or more of ``ref``
    were reviewed and the reviewers kept ``min_agreement`` or more of its labels."""
    if validation.agreement is None or validation.items_reviewed < min_reviewed:
        raise UsageError(
            f"{ref} is not validated: {validation.items_reviewed:,} items reviewed with a yes or "
            f"no, and --min-reviewed asks for {min_reviewed:,}; review more with "
            f"`mwe review {ref}`"
        )
    if validation.agreement < min_agreement:
        raise UsageError(
            f"{ref} is not validated: reviewers agree with {validation.agreement:.1%} of its "
            f"labels [{validation.agreement_low:.1%}, {validation.agreement_high:.1%}], below "
            f"--min-agreement {min_agreement:.1%}; fix the labels or lower the bar"
        )
