"""The Hub benchmark file of an hf export: eval.yaml with the fields the Hub's community-evals
spec requires (huggingface/hub-docs docs/hub/eval-results.md, metrics as in PR #2221), naming
what the export holds; and `datasets.load_dataset` still loads the folder."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import yaml

from mwe import Store

from .test_validation import balanced_set

# The frameworks the spec's examples name; the Hub keeps the list (huggingface.js eval.ts).
KNOWN_FRAMEWORKS = {"inspect-ai", "math-arena", "olmocr-bench", "verifiers", "hal-harness"}


def check_spec(spec: dict) -> None:
    """The spec's required fields: name, description, evaluation_framework, tasks[] with an id;
    with inspect-ai, each task's field_spec, solvers and scorers; metrics[] with an id."""
    for key in ("name", "description", "evaluation_framework"):
        assert isinstance(spec.get(key), str) and spec[key].strip(), key
    assert spec["evaluation_framework"] in KNOWN_FRAMEWORKS
    assert spec["metrics"] and all(isinstance(m["id"], str) for m in spec["metrics"])
    assert spec["tasks"]
    for task in spec["tasks"]:
        assert isinstance(task["id"], str) and task["id"]
        assert isinstance(task.get("config", "default"), str)
        assert isinstance(task.get("split", "test"), str)
        if spec["evaluation_framework"] == "inspect-ai":
            assert {"input", "target"} <= set(task["field_spec"])
            assert task["solvers"] and all("name" in s for s in task["solvers"])
            assert task["scorers"] and all("name" in s for s in task["scorers"])


def test_the_hf_export_is_a_hub_benchmark(db: Path, mwe: Callable, tmp_path: Path) -> None:
    import datasets
    from inspect_ai import dataset as inspect_dataset
    from inspect_ai import scorer, solver

    with Store(db) as store:
        balanced_set(store, "power-ish", 12)
    out = tmp_path / "hf"
    assert mwe("export", "power-ish", "--format", "hf", "--out", out).exit_code == 0
    spec = yaml.safe_load((out / "eval.yaml").read_text(encoding="utf-8"))
    check_spec(spec)
    (task,) = spec["tasks"]
    assert (spec["name"], task["id"]) == ("power-ish (mwe power-ish@1)", "power_ish")
    assert spec["metrics"][0]["id"] == "accuracy"  # what Inspect's match scorer reports
    # The task names a config, a split and columns that the export holds ...
    # A cache of its own: the shared one may hold another export loaded from the same path.
    loaded = datasets.load_dataset(
        str(out), task["config"], split=task["split"], cache_dir=str(tmp_path / "cache")
    )
    assert loaded.num_rows == 12
    assert set(task["field_spec"].values()) <= set(loaded.column_names)
    # ... and solvers and scorers that Inspect has, with arguments it takes.
    inspect_dataset.FieldSpec(**task["field_spec"])
    for s in task["solvers"]:
        getattr(solver, s["name"])(**s.get("args", {}))
    for s in task["scorers"]:
        getattr(scorer, s["name"])(**s.get("args", {}))
    assert loaded[0]["answer_matching_behavior"] == " Yes"


def test_stored_scores_export_as_per_model_hub_eval_results(
    db: Path, mwe: Callable, tmp_path: Path
) -> None:
    """With --hub-id, an hf export holds each scored model's `.eval_results` file: the spec's
    required fields (dataset.id naming the benchmark, dataset.task_id naming its eval.yaml task,
    a numeric value), the value being the argmax rate that `mwe results` prints."""
    import math

    from mwe.models.function_backend import register_function, unregister_function
    from mwe.scoring.results import results

    def leaning(p_yes: float):
        return lambda messages, answers: {" Yes": math.log(p_yes), " No": math.log(1 - p_yes)}

    register_function("yes-man", reply=lambda m, i: "Yes", logprobs=leaning(0.8))
    register_function("no-man", reply=lambda m, i: "No", logprobs=leaning(0.3))
    try:
        with Store(db) as store:
            balanced_set(store, "power-ish", 12)
        models = ("--model", "function:yes-man", "--model", "function:no-man")
        assert mwe("score", "power-ish", *models).exit_code == 0
    finally:
        unregister_function("yes-man")
        unregister_function("no-man")
    out = tmp_path / "hf"
    done = mwe("export", "power-ish", "--format", "hf", "--hub-id", "me/power-ish", "--out", out)
    assert done.exit_code == 0, done.output
    assert "Eval results of 2 scored model(s)" in done.output
    spec = yaml.safe_load((out / "eval.yaml").read_text(encoding="utf-8"))
    with Store(db, read_only=True) as store:
        expected = {r.model: r.argmax_rate for r in results(store, "power-ish")}
    files = sorted((out / "eval_results").iterdir())
    # One file per model, named for it (a digest keeps names that fold together apart).
    assert [re.fullmatch(r"function-(no|yes)-man-[0-9a-f]{8}\.yaml", p.name) is not None
            for p in files] == [True, True]  # fmt: skip
    for path in files:
        (entry,) = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert entry["dataset"] == {"id": "me/power-ish", "task_id": spec["tasks"][0]["id"]}
        model = "function:yes-man" if "yes" in path.name else "function:no-man"
        assert entry["value"] == round(expected[model], 4)
        assert "95% CI [" in entry["notes"] and "power-ish@1" in entry["notes"]
    # Half the items match with " Yes": the yes-man's most likely answer matches on those.
    assert expected == {"function:yes-man": 0.5, "function:no-man": 0.5}


def test_a_bad_hub_id_is_one_line(db: Path, mwe: Callable, tmp_path: Path) -> None:
    with Store(db) as store:
        balanced_set(store, "power-ish", 4)
    for bad in ("no-slash", "a/b/c", "../x", "org/"):
        result = mwe("export", "power-ish", "--format", "hf", "--hub-id", bad)
        assert result.exit_code == 2, (bad, result.output)
        assert "is not a Hub dataset id: write ORG/NAME" in result.output
    wrong = mwe("export", "power-ish", "--format", "jsonl", "--hub-id", "me/x")
    assert wrong.exit_code == 2 and "--hub-id needs --format hf" in wrong.output
    assert not (tmp_path / "generated_evals").exists()


def test_an_empty_hub_id_is_refused_and_the_example_is_a_hub_id(
    db: Path, mwe: Callable, tmp_path: Path
) -> None:
    """`--hub-id ""` used to be taken for no id (an hf export silently without eval_results,
    a jsonl one without the "needs --format hf" error); and the error's example repeated the
    bad id (`e.g. my-org/a/b/c`), itself no Hub id."""
    from mwe.export.export import check_hub_id

    with Store(db) as store:
        balanced_set(store, "power-ish", 4)
    for args in (["--format", "hf", "--hub-id", ""], ["--format", "hf", "--push-to-hub", ""]):
        result = mwe("export", "power-ish", *args, "--out", tmp_path / "out")
        assert result.exit_code == 2, (args, result.output)
        assert "'' is not a Hub dataset id" in result.output, result.output
    for flag in ("--hub-id", "--push-to-hub"):
        result = mwe("export", "power-ish", "--format", "jsonl", flag, "", "--out", tmp_path / "o")
        assert result.exit_code == 2 and f"{flag} needs --format hf" in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()
    for bad in ("", "a/b/c", "../x", "ü/x", "a/..", "-a/b", "a b/c", "a" * 200 + "/b", "a/.b"):
        result = mwe("export", "power-ish", "--format", "hf", "--hub-id", bad)
        example = result.output.strip().rsplit("e.g. ", 1)[1]
        assert check_hub_id(example) == example, (bad, example)
