"""Quality metrics computed for every generated version and shown by `mwe show`."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from mwe.items import Item
from mwe.judges.embeddings import mean_pairwise_cosine

# A bag-of-words classifier that predicts the label this well from the text alone means the
# items can be answered without the behaviour: a shortcut (chance is 0.5 on a balanced set).
SHORTCUT_FLAG = 0.8


def shortcut_accuracy(items: Sequence[Item], folds: int = 5) -> float | None:
    """Cross-validated accuracy of a bag-of-words logistic regression predicting
    ``answer_matching_behavior`` from the item text; ``None`` when there are too few items."""
    labels = [item.answer_matching_behavior for item in items]
    counts = Counter(labels)
    if len(counts) < 2 or min(counts.values()) < folds:
        return None
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        CountVectorizer(ngram_range=(1, 2), min_df=1), LogisticRegression(max_iter=1000)
    )
    scores = cross_val_score(model, [i.text for i in items], labels, cv=folds)
    return float(np.mean(scores))


def confidence_summary(values: Sequence[float]) -> dict[str, float] | None:
    """Mean (the estimated ceiling), min and deciles of label confidence."""
    if not values:
        return None
    deciles = statistics.quantiles(values, n=10) if len(values) > 1 else [values[0]] * 9
    return {
        "mean": statistics.fmean(values),
        "min": min(values),
        "p10": deciles[0],
        "p50": deciles[4],
        "p90": deciles[8],
    }


def quality_metrics(
    items: Sequence[Item], embeddings: np.ndarray | None, counts: dict[str, int]
) -> dict[str, Any]:
    """The metrics of a version. ``counts`` gives the pipeline's counts (parsed candidates,
    duplicates, near duplicates, few-shot copies); ``embeddings`` are the kept items'."""
    parsed = max(counts.get("parsed", 0), 1)
    shortcut = shortcut_accuracy(items)
    confidences = [i.label_confidence for i in items if i.label_confidence is not None]
    return {
        "items": len(items),
        "balance": dict(sorted(Counter(i.answer_matching_behavior for i in items).items())),
        "label_confidence": confidence_summary(confidences),
        "duplicate_rate": counts.get("duplicate", 0) / parsed,
        "near_duplicate_rate": counts.get("near duplicate", 0) / parsed,
        "fewshot_copies": counts.get("few-shot copy", 0),
        "diversity_mean_cosine": (
            mean_pairwise_cosine(embeddings) if embeddings is not None else None
        ),
        "shortcut_accuracy": shortcut,
        "shortcut_flag": shortcut is not None and shortcut >= SHORTCUT_FLAG,
    }
