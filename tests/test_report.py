"""`mwe report`: the static HTML report, built from sets scored by two real models of different
sizes and opened in a real browser, offline; its parameter counts and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mwe.cli.report_commands import parse_param_count
from mwe.errors import NotFoundError, UsageError
from mwe.report.report import build_report
from mwe.scoring.results import results
from mwe.store import ScoreRow, Store

from .browser import screenshot
from .conftest import PERSONA, read_records, snapshot

XSS = "<img src=x onerror=alert(1)><script>alert(2)</script>"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_set(path: Path, source: str, n: int, hostile: bool = False) -> Path:
    """The first ``n`` records of a public persona file; with ``hostile``, the second item's
    statement is markup that must be shown as text."""
    records = read_records(PERSONA / source)[:n]
    if hostile:
        records[1] = {
            "question": f'Is the following statement something you would say?\n"{XSS}"',
            "statement": XSS,
            "label_confidence": 0.71,
            "answer_matching_behavior": " No",
            "answer_not_matching_behavior": " Yes",
        }
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def tiny_llama(tmp_path: Path) -> Path:
    """A random two-layer Llama with SmolLM2's tokenizer, saved as a transformers folder: a
    second, much smaller real model to score next to ``local``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from mwe.models.local import converted_dir

    folder = tmp_path / "tiny-llama"
    tokenizer = AutoTokenizer.from_pretrained(converted_dir())
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_parse_param_count() -> None:
    assert parse_param_count("135M") == 135_000_000
    assert parse_param_count("1.7B") == 1_700_000_000
    assert parse_param_count("7e9") == 7_000_000_000
    assert parse_param_count("135000000") == 135_000_000
    assert parse_param_count("1_500k") == 1_500_000
    assert parse_param_count(" 2t ") == 2_000_000_000_000
    for bad in ("abc", "", "0", "-5", "1.5X", "M", "1e999", "nan"):
        with pytest.raises(ValueError, match="is not a parameter count"):
            parse_param_count(bad)


def test_report_errors_are_one_line_and_change_nothing(mwe, db, tmp_path: Path) -> None:
    with Store(db) as store:  # an mwe store that holds no set yet
        store.set_param_count("local", 1, "user")
        with pytest.raises(UsageError, match="the store holds no set: import or generate"):
            build_report(store, None, tmp_path / "empty")
    assert not (tmp_path / "empty").exists()
    empty = mwe("report", "--out", tmp_path / "empty")
    assert empty.exit_code == 2
    assert empty.output == ("Error: the store holds no set: import or generate one first\n"), (
        empty.output
    )

    assert (
        mwe("import", write_set(tmp_path / "agree.jsonl", "agreeableness.jsonl", 6)).exit_code == 0
    )
    before = snapshot(db)
    with Store(db) as store:
        counts_before = store.param_counts()
    cases = {
        ("nope", "--param-count", "x=1B"): "Error: no eval set named 'nope'",
        ("--param-count", "local"): "Error: Invalid value for '--param-count': 'local': write",
        ("--param-count", "local=big"): "'big' is not a parameter count",
        # Two counts of one model: the last used to win silently (the same count twice is fine).
        ("--param-count", "local=1B", "--param-count", "local=2e9"): "'local' is given two counts",
        ("--out", db): "exists and is not a folder",
        ("--out", "/proc/no-such/report"): "Error: cannot write the report to /proc/no-such",
    }
    for args, message in cases.items():
        result = mwe("report", *args)
        assert result.exit_code == 2, result.output
        assert message in result.output and result.output.count("\n") == 1, result.output
    assert snapshot(db) == before
    with Store(db, read_only=True) as store:
        assert store.param_counts() == counts_before  # no count kept from a failed report
        with pytest.raises(NotFoundError):
            build_report(store, ["nope"], tmp_path / "unknown")
    assert not (tmp_path / "unknown").exists()


def test_report_escapes_stored_text_and_skips_what_has_no_data(
    mwe, db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_set(tmp_path / "power.jsonl", "desire-for-acquiring-power.jsonl", 5, True)
    assert mwe("import", source, "--description", "<b>bold</b> claim").exit_code == 0
    with Store(db, read_only=True) as store:
        files = build_report(store, [], tmp_path / "out")
    html = files.html.read_text(encoding="utf-8")
    assert XSS not in html and "<b>bold" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt; claim" in html
    # Unscored and unreviewed: label plots only, and a hint in place of the results.
    assert sorted(p.name for p in files.images) == [
        "power@1-balance.png",
        "power@1-confidence.png",
    ]
    assert 'data-plot="results"' not in html and "No model has scored this version yet" in html
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")

    # The command line: --open shows the page; a given parameter count is kept in the store,
    # that of a scored model only (test_compare.py tests the refusal).
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    unscored = mwe("report", "--out", tmp_path / "cli", "--param-count", "openai:x=8B")
    assert unscored.exit_code == 2 and "no model has any yet" in unscored.output
    assert not (tmp_path / "cli").exists()
    with Store(db) as store:
        (info,) = store.list_sets()
        item = store.items(info)[0]
        answers = {item.answer_matching_behavior: -0.1, item.answer_not_matching_behavior: -2.4}
        store.write_scores(info, "openai:x", "chat", None, [ScoreRow(0, answers, "logprobs")])
    result = mwe("report", "--out", tmp_path / "cli", "--open", "--param-count", "openai:x=8B")
    assert result.exit_code == 0, result.output
    assert opened == [(tmp_path / "cli" / "index.html").resolve().as_uri()]
    with Store(db, read_only=True) as store:
        assert store.param_counts() == {"openai:x": 8_000_000_000}


def test_report_of_two_sets_scored_by_two_real_models(
    mwe, db, tmp_path: Path, tiny_llama: Path, page, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    agree = write_set(tmp_path / "agreeableness.jsonl", "agreeableness.jsonl", 12)
    power = write_set(tmp_path / "power.jsonl", "desire-for-acquiring-power.jsonl", 12, True)
    assert mwe("import", agree).exit_code == 0
    assert mwe("import", power, "--name", "desire-for-power").exit_code == 0
    with Store(db) as store:  # two reviewers on a few items: the calibration plot
        info = store.resolve("agreeableness")
        for idx, verdict in enumerate(["yes", "yes", "no", "yes", "yes", "no"]):
            store.save_review(info, idx, "ana", verdict, 4, None)
            store.save_review(info, idx, "bo", "yes", 5, None)
    hf = f"hf:{tiny_llama}"
    scored = mwe(
        "score",
        "agreeableness",
        "desire-for-power",
        "--model",
        "local",
        "--model",
        hf,
        "--prompt-format",
        "chat",
        "--prompt-format",
        "raw",
    )
    assert scored.exit_code == 0, scored.output
    with Store(db, read_only=True) as store:
        counts = store.param_counts()
        stored = results(store)
    # The scoring run counted both models' parameters; they differ by more than 10x.
    assert counts["local"] > 10 * counts[hf] > 0
    assert len(stored) == 2 * 2 * 2  # sets x models x formats

    out = tmp_path / "report"
    made = mwe("report", "--out", out)
    assert made.exit_code == 0, made.output
    html = out / "index.html"
    images = sorted((out / "images").glob("*.png"))
    assert f"Wrote {html} with {len(images)} plot(s)" in made.output
    kinds = {"balance", "confidence", "results", "scaling"}
    assert {p.name for p in images} == {
        *(f"agreeableness@1-{k}.png" for k in kinds | {"calibration"}),
        *(f"desire-for-power@1-{k}.png" for k in kinds),
    }
    for image in images:
        assert image.read_bytes().startswith(PNG_MAGIC), image

    page.goto(html.as_uri())
    figures = page.locator("figure[data-plot]")
    assert figures.count() == len(images)
    for i in range(figures.count()):
        figure = figures.nth(i)
        assert figure.locator("figcaption").inner_text().strip()
        assert figure.locator("img").get_attribute("alt")
        assert figure.locator("img").evaluate("img => img.complete && img.naturalWidth") > 0
    assert page.locator("figure[data-plot=scaling][data-set='desire-for-power@1']").count() == 1

    rows = page.eval_on_selector_all(
        "tr[data-model]",
        "rows => rows.map(r => [r.dataset.set, r.dataset.model, r.dataset.format,"
        " r.querySelector('.rate').textContent, r.querySelector('.interval').textContent])",
    )
    shown = {(s, m, f): (rate, interval) for s, m, f, rate, interval in rows}
    assert len(shown) == len(rows) == len(stored)
    for r in stored:
        assert shown[(r.set, r.model, r.prompt_format)] == (
            f"{r.matching_rate:.3f}",
            f"[{r.ci_low:.3f}, {r.ci_high:.3f}]",
        ), r

    # Offline, inert: nothing fetched, no dialog, the hostile item shown as text.
    assert page.external_requests == []
    assert page.dialogs == []
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("script").count() == 0
    assert page.get_by_text("<img src=x onerror=alert(1)>", exact=False).first.is_visible()
    for link in page.locator("nav a").all():  # the table of contents leads to each set
        assert page.locator(link.get_attribute("href")).count() == 1

    screenshot(page, "report.png", full_page=False)
    shot = screenshot(page.locator("figure[data-plot=scaling]").first, "scaling.png")
    assert shot.read_bytes().startswith(PNG_MAGIC)


def test_plot_titles_fit_and_models_of_one_size_share_a_label() -> None:
    """A long set name made the results plot's title run off the figure; two models of one
    size drew their labels over each other in the scaling plot."""
    from mwe.report.report import _figure, _fit_titles, scaling_labels
    from mwe.scoring.results import Result

    fig = _figure(6.8, 2.0)
    ax = fig.add_subplot()
    ax.set_title("a-very-long-set-name-of-forty-eight-characters@1: matching-behaviour rate (95%)")
    _fit_titles(fig)
    fig.canvas.draw()
    box = ax.title.get_window_extent()
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width
    assert "\n" in ax.title.get_text()

    def scored(model: str) -> Result:
        nan = float("nan")
        return Result(set="s@1", model=model, prompt_format="raw", method="loglik", items=4,
                      unscorable=0, matching_rate=0.5, ci_low=0.2, ci_high=0.8, argmax_rate=0.5,
                      argmax_ci_low=0.2, argmax_ci_high=0.8, loss=nan, loss_ci_low=nan,
                      loss_ci_high=nan)  # fmt: skip

    labels = scaling_labels([(135_000_000, scored("hf:a")), (135_000_000, scored("hf:b")),
                             (360_000_000, scored("hf:c"))])  # fmt: skip
    assert [n for n, _ in labels] == [135_000_000, 360_000_000]
    assert labels[0][1].splitlines()[:2] == ["hf:a", "hf:b"]
