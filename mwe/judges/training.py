"""`train_judge`: fit the preference model's head to a user's labelled sets (`mwe judge train`).

The head starts from the built-in model's weights and is fitted to the sets' persona labels
(" Yes" matches the behaviour), each read against its own behaviour (the set's description or
name). The fitted judge is stored in the store as the next version of its name; its identity is
a hash of the sets' content, their behaviours, the settings and the starting weights, so fitting
again on the same data stores nothing new.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mwe.errors import NotFoundError, UsageError
from mwe.item_records import item_hash
from mwe.items import set_content_hash
from mwe.judges.judge import PMJudge, judge_check
from mwe.judges.preference import FitSettings, PreferenceModel, builtin, fit_head, pair_features
from mwe.models.worker import on_torch_worker
from mwe.review.reviews import reviewed_labels
from mwe.store import EvalSetInfo, JudgeInfo, Store, check_name
from mwe.sync import run_sync

KIND = "pm"
# Fine-tuning a few hundred labels: a gentler rate than the built-in's training from scratch.
USER_SETTINGS = FitSettings(epochs=10, lr=3e-4, batch=32)


@dataclass(frozen=True)
class TrainedJudge:
    """A fitted judge as stored, and whether this call stored it (``False``: unchanged)."""

    info: JudgeInfo
    new: bool

    def lines(self) -> list[str]:
        """Its figures, one line each."""
        m = self.info.metrics
        lines = [f"AUROC on its own training items {m['train_auroc']:.3f}"]
        for ref, check in m.get("checks", {}).items():
            lines.append(
                f"on {ref} ({check['items']:,} items, not fitted on): AUROC {check['auroc']:.3f}, "
                f"agreement {check['agreement']:.3f}  (built-in pm: AUROC "
                f"{check['builtin_auroc']:.3f}, agreement {check['builtin_agreement']:.3f})"
            )
        return lines


def behavior_of(info: EvalSetInfo, given: str | None = None) -> str:
    """The behaviour a set is about: the given text, else its description, else its name."""
    return given or info.description or info.name.replace("-", " ")


def train_judge(
    store: Store,
    refs: Sequence[str],
    name: str,
    *,
    behavior: str | None = None,
    checks: Sequence[str] = (),
    settings: FitSettings = USER_SETTINGS,
    reviewed: bool = False,
    progress: Any = None,
) -> TrainedJudge:
    """Fit a preference model to the persona sets ``refs`` and store it as ``name``; report its
    AUROC on the sets ``checks`` (which it was not fitted on) beside the built-in model's.
    ``reviewed`` fits the labels people gave in `mwe review` instead of the sets' own: only
    reviewed items, each with the label the reviewers' majority found right."""
    check_name(name)
    infos = [store.resolve(ref) for ref in refs]
    seen: dict[str, str] = {}
    for ref, info in zip(refs, infos, strict=True):
        # The same items twice would weigh them double in the fit and in its item count.
        if info.name in seen:
            first = seen[info.name]
            said = f"{ref} is given twice" if first == ref else f"{first} and {ref} name one set"
            raise UsageError(f"{said}: give each set once, in one version")
        seen[info.name] = ref
    check_infos = [store.resolve(ref) for ref in checks]
    if overlap := {i.ref for i in infos} & {c.ref for c in check_infos}:
        raise UsageError(f"--check {min(overlap)} is also a training set: check on another")
    base = builtin()
    behaviors = [behavior_of(info, behavior) for info in infos]
    for info in infos:
        if info.format != "persona":
            raise UsageError(
                f"{info.ref} is a {info.format} set: `mwe judge train` fits persona labels "
                "(statements with Yes/No answers)"
            )
    item_lists = [reviewed_labels(store, i) if reviewed else store.items(i) for i in infos]
    if reviewed and not any(item_lists):
        raise UsageError(
            "no reviewed items with a clear verdict in these sets: `mwe review SET` first"
        )
    identity = {
        "kind": KIND,
        "sets": [
            [
                set_content_hash([item_hash(item) for item in items])
                if reviewed
                else info.content_hash,
                b,
            ]
            for info, items, b in zip(infos, item_lists, behaviors, strict=True)
        ],
        "settings": asdict(settings),
        "start": base.sha256,
    }
    content_hash = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    try:
        latest = store.resolve_judge(name)
    except NotFoundError:
        latest = None
    if latest is not None and latest.content_hash == content_hash:
        return TrainedJudge(latest, new=False)  # fitted on exactly this before: no work to do

    statements, labels, rows = [], [], []
    for what, items in zip(behaviors, item_lists, strict=True):
        for item in items:
            statements.append(item.text)
            labels.append(item.answer_matching_behavior.strip() == "Yes")
            rows.append(what)
    if len(set(labels)) < 2:
        raise UsageError("the training sets hold only one label: give sets with Yes and No items")
    if progress is not None:
        progress.print(f"embedding {len(statements):,} statements of {len(infos)} set(s)")
    features = _features(rows, statements)
    # On the torch thread, where the embeddings were computed (see mwe.models.worker).
    head = on_torch_worker(
        functools.partial(fit_head, start=base.heads["agree"]), features, np.array(labels), settings
    )
    model = PreferenceModel(
        {"agree": head, "relevant": base.heads["relevant"]},
        card={
            "data": f"{len(statements):,} labelled items of {', '.join(i.ref for i in infos)}",
            "start": "the built-in pm",
        },
    )
    from sklearn.metrics import roc_auc_score

    train_scores = model.heads["agree"].logits(features)
    metrics: dict[str, Any] = {"train_auroc": float(roc_auc_score(labels, train_scores))}
    if check_infos:
        metrics["checks"] = {}
    for checked in check_infos:
        what = behavior_of(checked, None)
        items = store.items(checked)
        mine = run_sync(judge_check(PMJudge(f"pm:{name}", model, what), items, checked.ref))
        theirs = run_sync(judge_check(PMJudge("pm", base, what), items, checked.ref))
        metrics["checks"][checked.ref] = {
            "items": mine.items,
            "auroc": mine.auroc,
            "agreement": mine.agreement,
            "builtin_auroc": theirs.auroc,
            "builtin_agreement": theirs.agreement,
        }
    training = {
        "sets": [info.ref for info in infos],
        "behaviors": behaviors,
        "items": len(statements),
        "labels": "reviewed" if reviewed else "the sets' own",
        "settings": asdict(settings),
        "start": {"model": "pm", "sha256": base.sha256},
    }
    stored, new = store.save_judge(
        name,
        model.to_bytes(),
        kind=KIND,
        training=training,
        metrics=metrics,
        content_hash=content_hash,
    )
    return TrainedJudge(stored, new)


def _features(behaviors: Sequence[str], statements: Sequence[str]) -> np.ndarray:
    from mwe.judges.embeddings import embed

    names = sorted(set(behaviors))
    vectors = dict(zip(names, embed(names), strict=True))
    b = np.stack([vectors[x] for x in behaviors])
    return pair_features(b, embed(statements))
