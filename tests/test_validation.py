"""Validated sets: reviews give a version a measured agreement with its labels (raw agreement
and Cohen's kappa, with intervals and the number reviewed), which `mwe show`, the report and
the dataset card state, and `mwe export --require-validated` holds a set to."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score

from mwe import Store
from mwe.items import Item
from mwe.review.reviews import label_validation
from mwe.store import EvalSetInfo


def balanced_set(store: Store, name: str, n: int) -> EvalSetInfo:
    """``n`` persona items whose matching answers alternate between Yes and No."""
    items = [
        Item(
            question=f'Is the following statement something you would say?\n"Statement {k}"',
            statement=f"Statement {k}",
            answer_matching_behavior=" Yes" if k % 2 == 0 else " No",
            answer_not_matching_behavior=" No" if k % 2 == 0 else " Yes",
            format="persona",
        )
        for k in range(n)
    ]
    return store.create_version(name, items, provenance={"source": "test"})


def review(store: Store, info: EvalSetInfo, reviewed: int, wrong: set[int]) -> None:
    """The first ``reviewed`` items reviewed: label wrong on ``wrong``, right elsewhere; and
    one unsure answer of a second reviewer, which counts for nothing."""
    for idx in range(reviewed):
        store.save_review(info, idx, "ann", "no" if idx in wrong else "yes", 4, None)
    store.save_review(info, 0, "bob", "unsure", None, None)


def test_agreement_and_kappa_against_an_independent_count(db: Path) -> None:
    with Store(db) as store:
        info = balanced_set(store, "checked", 200)
        wrong = {1, 2, 5, 8, 13, 21, 34, 55, 89, 100, 101, 102}
        review(store, info, 150, wrong)
        v = label_validation(store, info)
        items = store.items(info)
    labels = [items[i].answer_matching_behavior for i in range(150)]
    theirs = [
        items[i].answer_matching_behavior if i not in wrong else items[i].not_matching[0]
        for i in range(150)
    ]
    assert (v.items_reviewed, v.answers) == (150, 150)
    assert v.agreement == pytest.approx(138 / 150)
    assert v.agreement_low < v.agreement < v.agreement_high
    assert v.kappa == pytest.approx(cohen_kappa_score(labels, theirs))
    assert v.kappa_low < v.kappa < v.kappa_high <= 1


def test_require_validated_refuses_an_unreviewed_set(
    db: Path, mwe: Callable, tmp_path: Path
) -> None:
    with Store(db) as store:
        balanced_set(store, "fresh", 20)
    out = tmp_path / "fresh"
    refused = mwe("export", "fresh", "--out", out, "--require-validated")
    assert refused.exit_code == 2
    assert refused.output.strip() == (
        "Error: fresh@1 is not validated: 0 items reviewed with a yes or no, and "
        "--min-reviewed asks for 100; review more with `mwe review fresh@1`"
    )
    assert not out.exists()
    shown = mwe("show", "fresh")
    assert "validation: not validated (no yes/no review answers; `mwe review SET`)" in (
        shown.output
    )


def test_require_validated_refuses_low_agreement(db: Path, mwe: Callable, tmp_path: Path) -> None:
    with Store(db) as store:
        info = balanced_set(store, "sloppy", 120)
        review(store, info, 120, set(range(0, 120, 5)))  # 24 of 120 labels wrong: 80%
    refused = mwe("export", "sloppy", "--out", tmp_path / "s", "--require-validated")
    assert refused.exit_code == 2
    assert "reviewers agree with 80.0% of its labels [" in refused.output
    assert "below --min-agreement 90.0%" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    lower = mwe(
        "export", "sloppy", "--out", tmp_path / "s", "--require-validated", "--min-agreement", "0.8"
    )
    assert lower.exit_code == 0, lower.output


def test_a_validated_set_exports_and_every_view_states_it(
    db: Path, mwe: Callable, tmp_path: Path
) -> None:
    from mwe import build_report

    with Store(db) as store:
        info = balanced_set(store, "good", 130)
        review(store, info, 110, {3, 4, 7})
        v = label_validation(store, info)
        files = build_report(store, ["good"], tmp_path / "report")
    accepted = mwe("export", "good", "--out", tmp_path / "good", "--require-validated")
    assert accepted.exit_code == 0, accepted.output
    card = (tmp_path / "good" / "README.md").read_text(encoding="utf-8")
    assert (
        "- Agreement with the labels (95% Wilson interval): 97.3% "
        f"[{v.agreement_low:.1%}, {v.agreement_high:.1%}] over 110 answers on 110 reviewed items"
    ) in card
    assert (
        "Cohen's kappa of the reviewers' labels against the set's (95% interval): "
        f"{v.kappa:.2f} [{v.kappa_low:.2f}, {v.kappa_high:.2f}]"
    ) in card
    assert "Perez et al. 2022 report 95.5% crowdworker agreement" in card
    shown = mwe("show", "good")
    assert "validation: 97.3% agreement with the labels [" in shown.output
    assert "on 110 reviewed items (110 answers); Perez et al. 2022 crowdworkers: 95.5%" in (
        shown.output
    )
    data = json.loads(mwe("show", "good", "--json").output)["validation"]
    assert data["items_reviewed"] == 110 and data["kappa"] == pytest.approx(v.kappa)
    page = files.html.read_text(encoding="utf-8")
    assert "validation: Cohen&#39;s kappa with the labels (95% interval)" in page
    assert f"97.3% [{v.agreement_low:.1%}, {v.agreement_high:.1%}] on 110 items" in page
