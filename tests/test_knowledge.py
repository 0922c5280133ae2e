"""Knowing versus doing (`mwe score --probe knowledge`) with two scripted models whose answers
are known: one always recognises the behaviour's answer and never gives it, the other always
gives it and never recognises it."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mwe import ScoreOptions, Store, score
from mwe.models.base import Message
from mwe.models.function_backend import register_function, unregister_function
from mwe.scoring.summary import stored_results

from .test_compare import make_set

PROBE_WORDS = "shows this behaviour"


def _scripted(knows: bool, does: bool) -> Callable[[list[Message], list[str]], dict]:
    def logprobs(messages: list[Message], answers: list[str]) -> dict[str, float | None]:
        probing = PROBE_WORDS in messages[-1].content
        yes = knows if probing else does  # every item's matching answer is " Yes"
        p = 0.9 if yes else 0.1
        return {" Yes": math.log(p), " No": math.log(1 - p)}

    return logprobs


@pytest.fixture
def scripted() -> Iterator[None]:
    register_function("knower", reply=lambda m, i: "No", logprobs=_scripted(True, False))
    register_function("doer", reply=lambda m, i: "Yes", logprobs=_scripted(False, True))
    yield
    unregister_function("knower")
    unregister_function("doer")


def test_the_four_cells_of_two_models(scripted: None, db: Path, mwe: Callable) -> None:
    with Store(db) as store:
        info = make_set(store, "power", 40)
        report = score(
            store,
            ScoreOptions(
                sets=["power"], models=["function:knower", "function:doer"], probe="knowledge"
            ),
        )
        formats = {
            (model, fmt): n
            for model, fmt, n in store.conn.execute(
                "SELECT model, prompt_format, count(*) FROM scores GROUP BY ALL"
            ).fetchall()
        }
        (probe_row,) = store.item_scores(info.id, ["function:knower"])[40:41]
        # What `mwe results` shows, as the library gives it: the same cells from the store,
        # and with the sizes given, the fit of the two models' matching rates (0.1 and 0.9).
        sizes = {"function:knower": 1_000_000, "function:doer": 10_000_000}
        stored = stored_results(store, "power", param_counts=sizes)
        one_model = stored_results(store, "power", "function:doer", param_counts=sizes)
        plain = stored_results(store, "power", details=False)
    assert formats == {
        ("function:knower", "chat"): 40,
        ("function:knower", "chat/knowledge"): 40,
        ("function:doer", "chat"): 40,
        ("function:doer", "chat/knowledge"): 40,
    }
    assert probe_row.prompt_format == "chat/knowledge" and probe_row.matching == " Yes"
    knower, doer = sorted(report.knowledge, key=lambda r: r.model, reverse=True)
    assert knower.model == "function:knower"
    assert (knower.recognised_given, knower.recognised_not_given) == (0, 40)
    assert (knower.behaviour_rate, knower.recognition, knower.behaviour_when_recognised) == (
        0.0,
        1.0,
        0.0,
    )
    assert knower.recognition_low < 1.0 and knower.behaviour_high > 0.0  # intervals, not points
    assert (doer.unrecognised_given, doer.items) == (40, 40)
    assert (doer.behaviour_rate, doer.recognition, doer.behaviour_when_recognised) == (
        1.0,
        0.0,
        None,
    )
    assert not report.gaps  # a probe is not a control
    assert sorted((r.model, r.prompt_format) for r in stored.rows) == sorted(formats)
    assert sorted(stored.knowledge, key=lambda r: r.model) == [doer, knower]
    by_format = {f.prompt_format: f for f in stored.fits}
    assert sorted(by_format) == ["chat", "chat/knowledge"]  # the probe is fitted too
    fit = by_format["chat"]
    assert fit.models == ["function:knower", "function:doer"]
    assert fit.slope == pytest.approx(2 * math.log(9), rel=1e-3)  # logit .9 - logit .1
    assert one_model.fits == [] and len(one_model.knowledge) == 1  # a fit needs two models
    assert plain.rows == stored.rows and plain.knowledge == plain.fits == []
    # The command prints the cells, and `mwe results` shows them from the store.
    again = mwe("score", "power", "--model", "function:knower", "--probe", "knowledge")
    assert again.exit_code == 0, again.output
    assert "0 items scored, 80 already stored" in again.output
    assert "knowing vs doing" in again.output
    table = again.output.split("knowing vs doing")[1]
    (line,) = [x for x in table.splitlines() if "function:knower" in x]
    assert "0.000 [0.000, 0.088]" in line and "1.000 [0.912, 1.000]" in line
    shown = mwe("results", "power")
    assert "chat/knowledge" in shown.output and "knowing vs doing" in shown.output


def test_the_probe_is_refused_where_the_answer_is_no_behaviour(
    scripted: None, db: Path, mwe: Callable, tmp_path: Path
) -> None:
    rows = tmp_path / "task.jsonl"
    rows.write_text(
        '{"prompt": "2 + 2 =", "classes": [" 4", " 5"], "answer_index": 0}\n', encoding="utf-8"
    )
    assert mwe("import", rows, "--name", "sums").exit_code == 0
    out = mwe("score", "sums", "--model", "function:knower", "--probe", "knowledge")
    assert out.exit_code == 2
    assert out.output.strip() == (
        "Error: --probe knowledge asks which answer shows a set's behaviour: sums@1 is a "
        "classification set, whose matching answer is not a behaviour's"
    )


def test_the_dry_run_counts_the_probe(scripted: None, db: Path, mwe: Callable) -> None:
    with Store(db) as store:
        make_set(store, "power", 12)
    plan = mwe("score", "power", "--model", "function:knower", "--probe", "knowledge", "--dry-run")
    assert plan.exit_code == 0, plan.output
    assert "power@1 (chat/knowledge)" in plan.output
    with Store(db, read_only=True) as store:
        assert store.conn.execute("SELECT count(*) FROM scores").fetchone() == (0,)
