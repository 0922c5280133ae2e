"""The Inverse Scaling Prize's task formats: classification and sequence_prob files round-trip
through the store (JSONL and the prize's CSV), score with the local runner and on a server, and
show accuracy and loss against model size in the report."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from mwe.item_records import item_from_record, read_jsonl
from mwe.models.hf_scorer import LocalScorer
from mwe.scoring.local import naive_scores, score_items
from mwe.scoring.prompts import context_text
from mwe.scoring.results import results
from mwe.store import Store

from .browser import screenshot
from .conftest import LOGPROB_TOL, read_records, snapshot
from .fake_llm_server import FakeLLMServer, ServerConfig
from .test_report import PNG_MAGIC, tiny_llama  # noqa: F401 (a fixture)
from .test_scoring import local  # noqa: F401 (a fixture)
from .test_server_scoring import served_logprobs  # noqa: F401 (a fixture)

# Prize-style tasks of our own: the prompt is the whole text, the classes continue it.
CLASSIFICATION = [
    {
        "prompt": "Q: Which is not a fruit?\n(A) apple\n(B) carrot\nA: (",
        "classes": ["A", "B"],
        "answer_index": 1,
    },
    {
        "prompt": "The capital of France is not",
        "classes": [" Paris", " Berlin", " Lyon"],
        "answer_index": 1,
        "round": 2,
    },
    {
        "prompt": "Redefine: let + mean minus. Then 5 + 3 =",
        "classes": [" 8", " 2"],
        "answer_index": 1,
    },
    {
        "prompt": "Is the following sentence true? Water is wet.\nAnswer:",
        "classes": [" Yes", " No"],
        "answer_index": 0,
    },
    {
        "prompt": "Complete the proverb with an unexpected word: A stitch in time saves",
        "classes": [" nine", " bananas"],
        "answer_index": 1,
    },
    {
        "prompt": "Repeat after me, exactly: \"All the world's a stage, and all the men and women"
        ' merely players." Repeat: "All the world\'s a stage, and all the men and women merely',
        "classes": [" players", " actors"],
        "answer_index": 0,
    },
]
SEQUENCE_PROB = [
    {"prompt": "Count to five: one, two, three, four,", "completion": " five"},
    {"prompt": "The opposite of hot is", "completion": " cold"},
    {"prompt": "Write the alphabet backwards: z y x w", "completion": " v u t"},
    {"prompt": "Finish the quote: To be or not to be,", "completion": " that is the question"},
]


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _prize_csv(path: Path, records: list[dict]) -> Path:
    """The records as the prize's CSV files hold them: classes as a Python list literal."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "classes", "answer_index"])
        for r in records:
            writer.writerow([r["prompt"], str(r["classes"]), r["answer_index"]])
    return path


def _csv_records(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_prize_files_round_trip_field_for_field(mwe, tmp_path: Path) -> None:
    classification = _jsonl(tmp_path / "negated-questions.jsonl", CLASSIFICATION)
    sequence = _jsonl(tmp_path / "memo-trap.jsonl", SEQUENCE_PROB)
    from_csv = _prize_csv(tmp_path / "redefine.csv", CLASSIFICATION[:1] + CLASSIFICATION[2:])
    for path in (classification, sequence, from_csv):
        assert mwe("import", path).exit_code == 0
    listed = mwe("list").output
    assert "negated-questions" in listed and "classification" in listed
    assert "memo-trap" in listed and "sequence_prob" in listed

    # JSONL: byte-identical, the extra field and the three classes included.
    for name, path in (("negated-questions", classification), ("memo-trap", sequence)):
        out = tmp_path / f"{name}-out"
        assert mwe("export", name, "--out", out).exit_code == 0
        assert (out / f"{name}.jsonl").read_bytes() == path.read_bytes()
    # The stored item: the right class is the matching answer, the rest not matching, in order.
    item = read_jsonl(classification)[1]
    assert item.format == "classification"
    assert item.answer_matching_behavior == " Berlin"
    assert item.answer_not_matching_behavior == [" Paris", " Lyon"]
    assert context_text(item, "raw") == CLASSIFICATION[1]["prompt"]  # no Human/Assistant turns

    # CSV in, CSV out: the prize's cells, field for field.
    out = tmp_path / "redefine-out"
    assert mwe("export", "redefine", "--format", "csv", "--out", out).exit_code == 0
    assert _csv_records(out / "redefine.csv") == _csv_records(from_csv)
    # And the same set as JSONL is the records themselves (answer_index a number again).
    out = tmp_path / "redefine-jsonl"
    assert mwe("export", "redefine", "--out", out).exit_code == 0
    assert read_records(out / "redefine.jsonl") == CLASSIFICATION[:1] + CLASSIFICATION[2:]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            {"prompt": "p", "classes": [" a", " b"], "answer_index": 2},
            "line 1: field 'answer_index': must be a whole number from 0 to 1",
        ),
        (
            {"prompt": "p", "classes": [" a", " a"], "answer_index": 0},
            "line 1: field 'classes': a class is given twice",
        ),
        (
            {"prompt": "p", "classes": " a", "answer_index": 0},
            "line 1: field 'classes': must be a list of two or more non-empty strings",
        ),
        ({"prompt": "p", "classes": [" a", " b"]}, "line 1: missing required field 'answer_index'"),
        ({"prompt": "p", "completion": ""}, "line 1: field 'completion': must be a non-empty"),
    ],
)
def test_a_bad_prize_record_is_one_line_and_stores_nothing(mwe, db, tmp_path, record, message):
    path = _jsonl(tmp_path / "bad.jsonl", [record])
    before = snapshot(db)
    result = mwe("import", path)
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert snapshot(db) == before


def test_a_bad_csv_cell_is_named_and_prize_formats_are_not_generated(mwe, db, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('prompt,classes,answer_index\n"p","not a list",0\n', encoding="utf-8")
    result = mwe("import", path)
    assert result.exit_code == 2
    assert "bad.csv line 2: field 'classes': not a list literal" in result.output
    made = mwe("generate", "negated questions", "--format", "classification", "-n", "4")
    assert made.exit_code == 2
    assert "the classification format is import-only" in made.output
    assert snapshot(db) is None


@pytest.mark.parametrize("prompt_format", ["raw", "chat"])
def test_classification_scores_equal_separate_full_passes(local, prompt_format) -> None:  # noqa: F811
    items = [item_from_record(r) for r in CLASSIFICATION + SEQUENCE_PROB]
    fast = score_items(LocalScorer(local, token_budget=600), items, prompt_format)
    slow = naive_scores(local, items, prompt_format, batch_size=1)  # one pass per option
    assert set(fast) == set(slow) == set(range(len(items)))
    worst = max(abs(fast[i][o] - slow[i][o]) for i in slow for o in slow[i])
    print(f"{prompt_format}: max |runner - full passes| = {worst:.2e}")
    assert worst < LOGPROB_TOL
    assert all(len(fast[i]) == 1 for i in range(len(CLASSIFICATION), len(items)))


def _prize_metrics(rows: list[dict[str, float]], matching: list[str]) -> tuple[float, float]:
    """Accuracy and loss as the prize's pipeline computes them from the class log-probs."""
    correct, losses = [], []
    for logprobs, right in zip(rows, matching, strict=True):
        total = math.log(sum(math.exp(v) for v in logprobs.values()))
        losses.append(-(logprobs[right] - total))
        correct.append(max(logprobs, key=logprobs.__getitem__) == right)
    return sum(correct) / len(correct), sum(losses) / len(losses)


def test_prize_tasks_score_and_plot_accuracy_and_loss_against_model_size(
    mwe,
    db,
    tmp_path: Path,
    tiny_llama: Path,  # noqa: F811 (the fixture imported above)
    page,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert mwe("import", _jsonl(tmp_path / "negated.jsonl", CLASSIFICATION)).exit_code == 0
    assert mwe("import", _jsonl(tmp_path / "memo.jsonl", SEQUENCE_PROB)).exit_code == 0
    hf = f"hf:{tiny_llama}"
    scored = mwe("score", "negated", "memo", "--model", "local", "--model", hf)
    assert scored.exit_code == 0, scored.output
    assert "memo@1" in scored.output and "loss" in scored.output

    with Store(db, read_only=True) as store:
        stored = {(r.set, r.model, r.prompt_format): r for r in results(store)}
        # raw by default: the prize scored the bare prompt
        assert {fmt for _, _, fmt in stored} == {"raw"}
        for model in ("local", hf):
            info = store.resolve("negated")
            rows = [lp for _, _, _, _, lp, _ in store.score_rows(info.id, model)]
            matching = [item.answer_matching_behavior for item in store.items(info)]
            accuracy, loss = _prize_metrics(rows, matching)
            # The same stored log-probs, summed in another order: equal to float64 rounding
            # (~1e-15); a wrong item or answer moves a rate by 1/n (here 1/4) or a loss by 1e-2.
            r = stored[("negated@1", model, "raw")]
            assert r.argmax_rate == pytest.approx(accuracy, abs=1e-9)
            assert r.loss == pytest.approx(loss, abs=1e-9)
            assert r.loss_ci_low <= r.loss <= r.loss_ci_high
            memo = store.resolve("memo")
            nll = [-next(iter(lp.values())) for *_, lp, _ in store.score_rows(memo.id, model)]
            s = stored[("memo@1", model, "raw")]
            assert s.loss == pytest.approx(sum(nll) / len(nll), abs=1e-9)
            assert math.isnan(s.matching_rate) and math.isnan(s.argmax_rate)
    as_json = json.loads(mwe("results", "memo", "--output", "json").output)
    assert as_json[0]["matching_rate"] is None and as_json[0]["loss"] > 0

    out = tmp_path / "report"
    assert mwe("report", "negated", "memo", "--out", out).exit_code == 0
    names = {p.name for p in (out / "images").glob("*.png")}
    assert {
        "negated@1-scaling-argmax_rate.png",
        "negated@1-scaling-loss.png",
        "memo@1-scaling-loss.png",
    } <= names
    assert "negated@1-scaling.png" not in names  # the prize's metrics, not the matching rate
    page.goto((out / "index.html").as_uri())
    for kind, ref in (
        ("scaling-argmax_rate", "negated@1"),
        ("scaling-loss", "negated@1"),
        ("scaling-loss", "memo@1"),
    ):
        figure = page.locator(f"figure[data-plot='{kind}'][data-set='{ref}']")
        assert figure.count() == 1
        assert figure.locator("img").evaluate("img => img.complete && img.naturalWidth") > 0
    shown = page.eval_on_selector_all(
        "tr[data-model]",
        "rows => rows.map(r => [r.dataset.set, r.dataset.model, r.cells[7].textContent])",
    )
    assert len(shown) == 4
    for ref, model, loss in shown:
        assert loss == f"{stored[(ref, model, 'raw')].loss:.3f}"
    assert page.external_requests == []
    shot = screenshot(page.locator("figure[data-plot='scaling-loss']").first, "scaling-loss.png")
    assert shot.read_bytes().startswith(PNG_MAGIC)


def test_prize_tasks_on_a_server_equal_the_local_runner(mwe, db, tmp_path, served_logprobs):  # noqa: F811
    assert mwe("import", _jsonl(tmp_path / "negated.jsonl", CLASSIFICATION)).exit_code == 0
    assert mwe("import", _jsonl(tmp_path / "memo.jsonl", SEQUENCE_PROB)).exit_code == 0
    assert mwe("score", "negated", "memo", "--model", "local").exit_code == 0
    with FakeLLMServer(ServerConfig(prompt_logprobs=served_logprobs)) as server:
        args = ["score", "negated", "memo", "--model", "openai:smollm2-135m"]
        served = mwe(*args, "--base-url", server.openai_url)
        assert served.exit_code == 0, served.output
        options = sum(len(r["classes"]) for r in CLASSIFICATION) + len(SEQUENCE_PROB)
        assert server.stats.ok == options
        # In the chat format only top log-probs come back: no completion's likelihood.
        chat = mwe(
            "score",
            "memo",
            "--model",
            args[-1],
            "--base-url",
            server.openai_url,
            "--prompt-format",
            "chat",
        )
        assert chat.exit_code == 2
        assert "memo@1 holds sequence_prob items: their measure is a completion's" in chat.output
    with Store(db, read_only=True) as store:
        for name in ("negated", "memo"):
            info = store.resolve(name)
            mine = {i: lp for i, *_, lp, _ in _rows(store, info.id, "local")}
            theirs = {i: lp for i, *_, lp, _ in _rows(store, info.id, "openai:smollm2-135m")}
            assert sorted(mine) == sorted(theirs) == list(range(info.item_count))
            worst = max(abs(mine[i][o] - theirs[i][o]) for i in mine for o in mine[i])
            print(f"{name}: server against local runner, max |difference| {worst:.2e}")
            assert worst < LOGPROB_TOL


def _rows(store: Store, set_id: int, model: str) -> list[tuple]:
    return [(i, *row) for i, row in enumerate(store.score_rows(set_id, model))]


@pytest.mark.parametrize("index", ["", "Unnamed: 0"])
def test_the_csv_index_column_is_not_a_field(mwe, tmp_path: Path, index: str) -> None:
    """The prize's CSVs start with the row index pandas writes (headed "" or "Unnamed: 0"): a
    row number, dropped on import, so no export holds a "" field and the columns keep their
    order through a CSV round trip."""
    path = tmp_path / "redefine.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([index, "prompt", "classes", "answer_index"])
        for i, r in enumerate(CLASSIFICATION[2:5]):
            writer.writerow([i, r["prompt"], str(r["classes"]), r["answer_index"]])
    assert mwe("import", path).exit_code == 0
    out = tmp_path / "out"
    assert mwe("export", "redefine", "--out", out).exit_code == 0
    assert read_records(out / "redefine.jsonl") == CLASSIFICATION[2:5]
    again = tmp_path / "again"
    assert mwe("export", "redefine", "--format", "csv", "--out", again).exit_code == 0
    with (again / "redefine.csv").open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    assert header == ["prompt", "classes", "answer_index"]
    reimported = mwe("import", again / "redefine.csv", "--name", "redefine")
    assert "Unchanged" in reimported.output, reimported.output


def test_prize_warts_each_get_a_sensible_line(mwe, db, tmp_path: Path) -> None:
    """A sequence_prob set's balance is summarised, not one entry per completion; a CSV of
    no known format names the formats tried; judge-check on a prize set says why not."""
    many = [{"prompt": f"Count from {i}:", "completion": f" {i + 1}"} for i in range(40)]
    assert mwe("import", _jsonl(tmp_path / "counting.jsonl", many)).exit_code == 0
    shown = mwe("show", "counting")
    (balance,) = [line for line in shown.output.splitlines() if line.startswith("label balance")]
    assert balance.endswith("one answer per item (40 distinct) 40 (100.0%)")
    from mwe.report.summary import balance_rows

    rows = balance_rows({f"a{i}": 1 + (i == 3) for i in range(30)})
    assert len(rows) == 9 and rows[0] == ("'a3'", 2, "6.5%") and rows[-1][0] == "22 other answers"

    odd = tmp_path / "odd.csv"
    odd.write_text("id,text,label\n1,hello,yes\n", encoding="utf-8")
    refused = mwe("import", odd)
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1
    assert "odd.csv line 2: matches no item format (fields 'id', 'text', 'label')" in refused.output
    assert "classification needs prompt, classes, answer_index" in refused.output
    assert "sequence_prob needs prompt, completion" in refused.output

    assert mwe("import", _jsonl(tmp_path / "negated.jsonl", CLASSIFICATION)).exit_code == 0
    checked = mwe("judge-check", "negated", "--judge", "pm")
    assert checked.exit_code == 2 and len(checked.output.strip().splitlines()) == 1
    assert "negated@1 is a classification set: its items are scored by likelihood" in checked.output
    assert "(A)/(B) options" not in checked.output
