"""Knowing versus doing (`mwe score --probe knowledge`) with two scripted models whose answers
are known: one always recognises the behaviour's answer and never gives it, the other always
gives it and never recognises it."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mwe import ScoreOptions, Store, score
from mwe.models.base import Message
from mwe.models.function_backend import register_function, unregister_function
from mwe.report.report import build_report
from mwe.scoring.knowledge import knowledge_results, knowledge_scaling
from mwe.scoring.summary import stored_results

from .conftest import PERSONA, read_records
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
        # and with the sizes given, the fit of the two models' matching rates (0.1 and 0.9, taken
        # as (k + 1) / (n + 2) in the fit: 5/42 and 37/42).
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
    assert fit.slope == pytest.approx(2 * math.log(37 / 5), rel=1e-3)  # logit 37/42 - 5/42
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


def _cells_shown(page_html: str, model: str) -> list[str]:
    """The four cells of ``model``'s row in the report's knowing-versus-doing table."""
    row = page_html.split(f'data-knowledge-model="{model}"')[1].split("</tr>")[0]
    return re.findall(r'<td class="num cell">(\d+)</td>', row)


def test_the_report_shows_the_four_cells(scripted: None, db: Path, tmp_path: Path) -> None:
    with Store(db) as store:
        make_set(store, "power", 20)
        score(
            store,
            ScoreOptions(
                sets=["power"], models=["function:knower", "function:doer"], probe="knowledge"
            ),
        )
        page = build_report(store, ["power"], tmp_path / "report").html
    html = page.read_text(encoding="utf-8")
    assert "Knowing versus doing" in html
    # recognises+gives, recognises only, gives only, neither
    assert _cells_shown(html, "function:knower") == ["0", "20", "0", "0"]
    assert _cells_shown(html, "function:doer") == ["0", "0", "20", "0"]
    assert "no item recognised" in html  # the doer's behaviour-when-recognised has no items


def test_the_probe_with_the_embedded_model(db: Path, mwe: Callable, tmp_path: Path) -> None:
    """The real embedded model asked both questions of four public statements: every item lands
    in exactly one cell, the cells are stored as scores of both prompt formats, and the report
    shows them."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        rows = read_records(PERSONA / "desire-for-acquiring-power.jsonl")[:4]
        source = tmp_path / "desire-for-acquiring-power.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        assert mwe("import", source).exit_code == 0
        args = ("--model", "local", "--probe", "knowledge")
        scored = mwe("score", "desire-for-acquiring-power", *args)
    finally:
        monkeypatch.undo()
    assert scored.exit_code == 0, scored.output
    assert "knowing vs doing" in scored.output
    with Store(db) as store:
        (info,) = store.list_sets()
        (known,) = knowledge_results(store, [(info, "local", "chat")])
        page = build_report(store, None, tmp_path / "report").html
    cells = [
        known.recognised_given,
        known.recognised_not_given,
        known.unrecognised_given,
        known.unrecognised_not_given,
    ]
    assert known.items == 4 and sum(cells) == 4
    assert known.recognition == (cells[0] + cells[1]) / 4
    assert _cells_shown(page.read_text(encoding="utf-8"), "local") == [str(c) for c in cells]


def _sized(gives_below: int) -> Callable[[list[Message], list[str]], dict]:
    """Recognises the behaviour's answer on every item; gives it on items numbered below
    ``gives_below``."""

    def logprobs(messages: list[Message], answers: list[str]) -> dict[str, float | None]:
        text = messages[-1].content
        number = int(re.search(r"Statement (\d+)", text).group(1))
        yes = PROBE_WORDS in text or number < gives_below
        return {" Yes": math.log(0.9 if yes else 0.1), " No": math.log(0.1 if yes else 0.9)}

    return logprobs


def test_knowing_and_doing_scale_with_their_intervals(db: Path, tmp_path: Path) -> None:
    """Three sizes that give the behaviour on 20%, 50% and 80% of 40 items while recognising it
    on all: the behaviour rate (and the rate among recognised items, here the same) is inverse
    scaling, with an interval clear of zero; recognition does not move."""
    sizes = {"function:s": 10**8, "function:m": 10**9, "function:l": 10**10}
    for (model, _), below in zip(sizes.items(), (8, 20, 32), strict=True):
        register_function(model.split(":")[1], reply=lambda m, i: "Yes", logprobs=_sized(below))
    try:
        with Store(db) as store:
            info = make_set(store, "power", 40)
            score(store, ScoreOptions(sets=["power"], models=list(sizes), probe="knowledge"))
            scored = [(info, m, f) for m in sizes for f in ("chat", "chat/knowledge")]
            (fit,) = knowledge_scaling(store, scored, sizes, seed=0)
            again = knowledge_scaling(store, scored, sizes, seed=0)
            page = build_report(store, ["power"], tmp_path / "report", param_counts=sizes).html
            shown = stored_results(store, "power", param_counts=sizes).knowledge_fits
    finally:
        for model in sizes:
            unregister_function(model.split(":")[1])
    assert fit.models == ["function:s", "function:m", "function:l"] and fit.items == 40
    slope, low, high, verdict = fit.behaviour
    # The log-odds of 8, 20 and 32 items of 40, each with one more success and one more
    # failure (9/42, 21/42, 33/42), on log10 sizes 8, 9, 10: a least-squares slope of
    # (logit(33/42) - logit(9/42)) / 2 = log(11/3) = 1.299.
    assert slope == pytest.approx(math.log(11 / 3), abs=1e-9)
    assert 0 < low < slope < high and verdict == "inverse scaling"
    assert fit.when_recognised == fit.behaviour  # everything recognised: the same rate
    assert fit.recognition[0] == pytest.approx(0.0) and fit.recognition[3] == "no trend"
    assert again == [fit]  # the bootstrap is seeded
    assert "behaviour +1.299 [" in fit.line() and "inverse scaling" in fit.line()
    html = page.read_text(encoding="utf-8")
    assert "knowing vs doing over 3 models, 40 items" in html and "inverse scaling" in html
    assert shown == [fit]  # what `mwe results` prints


def test_a_model_name_with_an_emoji_code_is_printed_as_it_is(db: Path, mwe: Callable) -> None:
    """rich turns ":a:" into an emoji unless told not to: `function:A:b` was printed as
    "function🅰b" in score's progress bar and score's and results' tables; markup in a name
    is printed as it is too."""
    names = ["A:b", "[b]x[/b]"]
    for name in names:
        register_function(name, reply=lambda m, i: "No", logprobs=_scripted(True, False))
    try:
        with Store(db) as store:
            make_set(store, "power", 4)
        models = [f"--model=function:{name}" for name in names]
        scored = mwe("score", "power", *models, "--probe", "knowledge")
        shown = mwe("results", "power")
    finally:
        for name in names:
            unregister_function(name)
    for result in (scored, shown):
        assert result.exit_code == 0, result.output
        assert "\U0001f170" not in result.output
        assert "function:A:b" in result.output and "function:[b]x[/b]" in result.output
    assert "x function:A:b (chat)" in scored.output  # the progress bar's stage
