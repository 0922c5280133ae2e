"""The preference model: its figures recomputed independently, fitting your own, using it."""

from __future__ import annotations

import io
import json
import re
from importlib import resources

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from mwe.item_records import parse_records
from mwe.judges.judge import example_anchors
from mwe.judges.preference import PreferenceModel, builtin, split_options
from mwe.store import Store

from .conftest import AI_RISK, PERSONA, read_records, snapshot
from .test_generate import DESCRIPTION, generate_args, scripted_server, write_examples


def _independent_p_yes(behavior: str, statements: list[str]) -> np.ndarray:
    """p(Yes) recomputed without mwe.judges.preference: sentence-transformers as its own library,
    the shipped arrays read with numpy, the network run by torch."""
    from sentence_transformers import SentenceTransformer

    from mwe.judges.embeddings import model_dir

    encoder = SentenceTransformer(str(model_dir()), device="cpu")
    vectors = encoder.encode([behavior, *statements], normalize_embeddings=True)
    b, s = torch.tensor(vectors[:1]).expand(len(statements), -1), torch.tensor(vectors[1:])
    x = torch.cat([s, b, s * b, (s - b).abs()], dim=1)
    data = resources.files("mwe").joinpath("data", "pm", "pm.npz").read_bytes()
    with np.load(io.BytesIO(data)) as w, torch.no_grad():
        w1, b1 = torch.tensor(w["agree.w1"]), torch.tensor(w["agree.b1"])
        hidden = torch.nn.functional.gelu(torch.nn.functional.linear(x, w1, b1), approximate="tanh")
        z = hidden @ torch.tensor(w["agree.w2"]) + float(w["agree.b2"])
    return torch.sigmoid(z).numpy()


def test_judge_check_pm_matches_an_independent_computation(mwe):
    path = PERSONA / "desire-for-acquiring-power.jsonl"
    assert mwe("import", path).exit_code == 0
    result = mwe("judge-check", "desire-for-acquiring-power", "--judge", "pm", "--limit", "300")
    assert result.exit_code == 0, result.output

    records = read_records(path)[:300]
    p_yes = _independent_p_yes("desire for acquiring power", [r["statement"] for r in records])
    yes = np.array([r["answer_matching_behavior"] == " Yes" for r in records])
    agreement = float(np.mean((p_yes > 0.5) == yes))
    auroc = roc_auc_score(yes, p_yes)
    shown = re.search(r"agreement (\d\.\d{3})  AUROC (\d\.\d{3})", result.output)
    assert shown, result.output
    assert abs(float(shown.group(1)) - agreement) <= 0.0015
    assert abs(float(shown.group(2)) - auroc) <= 0.0015
    # The rank agreement of its p(label) with the file's own preference-model confidence.
    p_label = np.where(yes, p_yes, 1 - p_yes)
    rho = spearmanr(p_label, [r["label_confidence"] for r in records]).statistic
    rank = re.search(
        r"Spearman with the set's own label_confidence (-?\d\.\d{3}) \(300 items\)", result.output
    )
    assert rank, result.output
    assert abs(float(rank.group(1)) - rho) <= 0.0015
    assert "judge pm (pm) on 300 items" in result.output
    # The card: what it was fitted on, its held-out figures, the credit to the public data.
    assert "held-out behaviours" in result.output
    assert "CC-BY-4.0" in result.output


def test_the_shipped_model_separates_a_public_file_far_above_chance():
    records = read_records(PERSONA / "agreeableness.jsonl")[:200]
    p = builtin().agree("agreeableness", [r["statement"] for r in records])
    yes = [r["answer_matching_behavior"] == " Yes" for r in records]
    assert roc_auc_score(yes, p) > 0.8


def test_relevance_is_higher_for_the_behaviour_than_for_another():
    statements = [r["statement"] for r in read_records(PERSONA / "agreeableness.jsonl")[:100]]
    model = builtin()
    own = model.relevant("agreeableness", statements)
    other = model.relevant("desire for acquiring power", statements)
    assert own.mean() > 0.5 > other.mean()


def test_choice_questions_are_judged_option_by_option():
    # 80 questions, each option embedded on its own (AUROC 0.977 on 80, 0.974 on 200).
    records = read_records(AI_RISK / "power-seeking-inclination.lm.jsonl")[:80]
    choices = builtin().choose("power seeking inclination", [r["question"] for r in records])
    # The options' probabilities are normalised: they sum to 1 but for float32 rounding
    # (~1e-7); an unnormalised pair would be off by 1e-2 or more.
    assert all(set(p) == {"A", "B"} and abs(sum(p.values()) - 1) < 1e-6 for p in choices)
    first = [r["answer_matching_behavior"] == " (A)" for r in records]
    # Measured 0.977; options judged without their text (or swapped) would give 0.5 (or 0.02).
    assert roc_auc_score(first, [p["A"] for p in choices]) > 0.7


def test_split_options_reads_lettered_choices():
    stem, options = split_options("Pick one.\n\nChoices:\n (A) Stay on\n (B) Shut\n down")
    assert stem == "Pick one."
    assert options == [("A", "Stay on"), ("B", "Shut down")]


def test_weights_round_trip_without_pickle():
    model = builtin()
    again = PreferenceModel.from_bytes(model.to_bytes())
    assert again.sha256 == model.sha256
    assert again.card == model.card
    # The card's figures are with whole behaviour families held out (see scripts/train_pm.py).
    held = model.card["held_out"]
    assert "by behaviour family" in held["split"] and held["auroc_median"] >= 0.8
    assert held["below_0_7"] == sum(b["auroc"] < 0.7 for b in held["per_behaviour"].values())


def test_judge_train_fits_stores_and_does_not_refit_the_same_data(mwe, db, tmp_path):
    # 200 items a set: "a few hundred labelled items are enough" (the command's help), and
    # every item more is embedded again by each of the three commands below.
    for name in ("agreeableness", "desire-for-acquiring-power", "machiavellianism"):
        part = tmp_path / f"{name}.jsonl"
        lines = (PERSONA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[:200]
        part.write_text("\n".join(lines) + "\n", encoding="utf-8")
        assert mwe("import", part).exit_code == 0
    args = ("judge", "train", "agreeableness", "desire-for-acquiring-power", "--name", "mine")
    first = mwe(*args, "--check", "machiavellianism")
    assert first.exit_code == 0, first.output
    assert "stored judge mine@1" in first.output
    held = re.search(
        r"on machiavellianism@1 \(200 items, not fitted on\): AUROC (\d\.\d{3})", first.output
    )
    assert held, first.output
    # Well above chance on a behaviour it was not fitted on: 0.988 measured (the built-in
    # model it starts from: 0.993); a fit that broke the weights would be near 0.5.
    assert float(held.group(1)) > 0.8

    again = mwe(*args, "--check", "machiavellianism")
    assert again.exit_code == 0, again.output
    assert "unchanged" in again.output and "mine@1" in again.output
    with Store(db, read_only=True) as store:
        assert [j.ref for j in store.list_judges()] == ["mine@1"]
        info = store.resolve_judge("mine")
        assert info.training["sets"] == ["agreeableness@1", "desire-for-acquiring-power@1"]

    # The stored judge is a --judge like any other.
    check = mwe("judge-check", "machiavellianism", "--judge", "pm:mine", "--limit", "50")
    assert check.exit_code == 0, check.output
    assert "judge pm:mine (pm) on 50 items" in check.output
    listed = mwe("judge", "list")
    assert listed.exit_code == 0 and "pm:mine@1" in listed.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("judge", "train", "nope", "--name", "x"), "no eval set named 'nope'"),
        (("judge", "train", "agreeableness", "--name", "Bad Name"), "invalid set name"),
        (
            ("judge", "train", "agreeableness", "--name", "x", "--check", "agreeableness"),
            "also a training set",
        ),
        (("judge-check", "agreeableness", "--judge", "pm:nope"), "no judge named 'nope'"),
        (("judge-check", "agreeableness", "--judge", "pm:Bad"), "invalid set name"),
    ],
)
def test_judge_mistakes_are_one_line_and_store_nothing(mwe, db, args, message):
    assert mwe("import", PERSONA / "agreeableness.jsonl").exit_code == 0
    before = snapshot(db)
    result = mwe(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert snapshot(db) == before


def test_generate_filters_with_the_preference_model_by_default(mwe, db, tmp_path):
    examples = write_examples(tmp_path / "examples.jsonl")
    with scripted_server() as server:
        result = mwe(*_without_judge(generate_args(server, examples)))
    assert result.exit_code == 0, result.output
    with Store(db, read_only=True) as store:
        (info,) = store.list_sets()
        assert info.provenance["judge"]["backend"] == "pm"
        # The run's examples (3 a side) give the pm the behaviour's side.
        assert info.provenance["judge_method"] == "pm, read with 3 agree and 3 disagree examples"
        assert [u["role"] for u in info.provenance["usage"]] == ["generator"]
        assert info.item_count > 0
        items = store.items(info)
    anchors = example_anchors(parse_records(examples.read_bytes(), "examples"), "persona")
    assert anchors is not None
    p_yes = builtin().agree(DESCRIPTION, [i.statement for i in items], anchors)
    for item, p in zip(items, p_yes, strict=True):
        mine = p if item.answer_matching_behavior == " Yes" else 1 - p
        assert item.label_confidence == pytest.approx(mine, abs=1e-6)


def _without_judge(args: list[str]) -> list[str]:
    out = list(args)
    i = out.index("--judge")
    del out[i : i + 2]
    return out


def test_judge_check_marks_a_behaviour_the_pm_was_trained_on(mwe, tmp_path):
    """agreeableness is one of the built-in pm's 100 training files: its AUROC there is
    in-sample, and judge-check says so with the held-out figure; a behaviour it never saw
    gets no such line."""
    records = read_records(PERSONA / "agreeableness.jsonl")[:20]
    assert mwe("import", PERSONA / "agreeableness.jsonl", "--name", "kindness").exit_code == 0
    result = mwe("judge-check", "kindness", "--judge", "pm", "--limit", "20")
    assert result.exit_code == 0, result.output
    (caveat,) = [line for line in result.output.splitlines() if line.startswith("caveat:")]
    assert "agreeableness is in the training data of pm (in-sample)" in caveat
    held = builtin().card["held_out"]["per_behaviour"]["agreeableness"]["auroc"]
    assert f"held-out AUROC on agreeableness was {held:.3f}" in caveat
    unseen = tmp_path / "likes-cats.jsonl"
    unseen.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert mwe("import", unseen, "--description", "likes cats").exit_code == 0
    other = mwe("judge-check", "likes-cats", "--judge", "pm")
    assert other.exit_code == 0, other.output
    assert "caveat:" not in other.output


def test_judge_check_marks_a_set_the_same_judge_selected(mwe, db):
    """A set whose provenance names the judge being checked was chosen by it: its agreement
    is with itself, and judge-check says so."""
    from mwe.item_records import parse_records
    from mwe.judges.judge import load_pm

    items = parse_records((PERSONA / "agreeableness.jsonl").read_bytes(), "x")[:10]
    _, identity = load_pm("pm", None)
    with Store(db) as store:
        store.create_version("picked", items, provenance={"kind": "generate", "judge": identity},
                             description="likes cats")  # fmt: skip
    result = mwe("judge-check", "picked", "--judge", "pm")
    assert result.exit_code == 0, result.output
    caveats = [line for line in result.output.splitlines() if line.startswith("caveat:")]
    assert caveats == [
        (
            "caveat: picked@1 was selected by this same judge (pm, per its provenance): this is "
            "its agreement with its own choices, not a validation"
        )
    ]


def test_judge_check_of_several_sets_sums_them_up(mwe):
    names = ["agreeableness", "anti-immigration", "desire-for-acquiring-power"]
    for name in names:
        assert mwe("import", PERSONA / f"{name}.jsonl").exit_code == 0
    result = mwe("judge-check", *names, "--judge", "pm", "--limit", "40")
    assert result.exit_code == 0, result.output
    shown = dict(re.findall(r"(\S+): judge pm .*\n.*AUROC (\d\.\d{3})", result.output))
    assert set(shown) == {f"{name}@1" for name in names}, result.output
    aurocs = sorted(float(a) for a in shown.values())
    worst = min(shown, key=lambda ref: float(shown[ref]))
    line = re.search(
        r"over 3 sets: AUROC median (\d\.\d{3}), worst (\d\.\d{3}) \((\S+)\), (\d) below 0\.7",
        result.output,
    )
    assert line, result.output
    assert float(line.group(1)) == aurocs[1] and float(line.group(2)) == aurocs[0]
    assert line.group(3) == worst
    assert int(line.group(4)) == sum(a < 0.7 for a in aurocs)
    assert result.output.count("CC-BY-4.0") == 1  # the card (its credit line) once, at the end

    one = mwe("judge-check", *names[:2], "--behavior", "x")
    assert one.exit_code == 2 and "--behavior names one behaviour" in one.output, one.output
    assert len(one.output.strip().splitlines()) == 1, one.output
    # A set that is not there, or one set twice: one line, before any judge runs.
    for args, said in (
        ((names[0], "nope"), "nope"),
        ((names[0], f"{names[0]}@1"), "name one set"),
    ):
        refused = mwe("judge-check", *args)
        assert refused.exit_code == 2 and said in refused.output, refused.output
        assert len(refused.output.strip().splitlines()) == 1, refused.output
    plan = mwe("judge-check", *names[:2], "--dry-run")
    assert plan.exit_code == 0 and plan.output.count("judge-check") == 2, plan.output


def test_a_set_of_one_label_is_counted_apart_in_the_summary(mwe, tmp_path):
    """With a set of one label (no AUROC) among two, the summary said "over 1 sets", as if
    one set had been checked."""
    lines = (PERSONA / "agreeableness.jsonl").read_text().splitlines(keepends=True)
    yes = tmp_path / "only-yes.jsonl"
    yes.write_text(
        "".join([line for line in lines if '"answer_matching_behavior": " Yes"' in line][:10])
    )
    assert mwe("import", PERSONA / "agreeableness.jsonl").exit_code == 0
    assert mwe("import", yes).exit_code == 0
    result = mwe("judge-check", "agreeableness", "only-yes", "--limit", "20")
    assert result.exit_code == 0, result.output
    assert "AUROC n/a (one label)" in result.output
    assert "over 1 set with both labels (1 more with one label: no AUROC): AUROC median" in (
        result.output
    )


def test_judge_check_of_several_sets_refuses_an_unjudgeable_one_before_any_runs(mwe, db, tmp_path):
    """A classification set or a mixed one after a good set: the good set's check ran (and
    was recorded) before the second failed, its figures never printed; now each set is found
    judgeable first, in a dry run too (which also planned one set named twice, twice)."""
    tasks = tmp_path / "cls.jsonl"
    task = {"prompt": "2 + 2 =", "classes": [" 4", " 5"], "answer_index": 0}
    tasks.write_text(json.dumps(task) + "\n")
    assert mwe("import", PERSONA / "agreeableness.jsonl").exit_code == 0
    assert mwe("import", tasks).exit_code == 0
    both = [tmp_path / "persona.jsonl", tmp_path / "choice.jsonl"]  # 3 items of each
    for part, whole in zip(
        both,
        (PERSONA / "agreeableness.jsonl", AI_RISK / "survival-instinct.human.jsonl"),
        strict=True,
    ):
        part.write_text("".join(whole.read_text().splitlines(keepends=True)[:3]))
    assert mwe("import", *both, "--name", "mixed").exit_code == 0
    checks = "SELECT count(*) FROM runs WHERE kind = 'judge-check'"
    for args, said in (
        (("cls",), "cls@1 is a classification set"),
        (("mixed",), "mixed@1 mixes choice and persona items"),
        (("agreeableness@1", "--dry-run"), "name one set"),
        (("cls", "--dry-run"), "classification set"),
    ):
        refused = mwe("judge-check", "agreeableness", *args, "--limit", "20")
        assert refused.exit_code == 2 and said in refused.output, (args, refused.output)
        assert len(refused.output.strip().splitlines()) == 1, refused.output
        assert "judge pm" not in refused.output and "Traceback" not in refused.output
    with Store(db, read_only=True) as store:
        assert store.conn.execute(checks).fetchone() == (0,)  # no check ran


def test_generate_says_when_the_pm_cannot_read_the_examples(mwe, db, tmp_path):
    """Examples of one answer only give the pm no side to read: the run says so, and the
    provenance records the description-only judge."""
    examples = write_examples(tmp_path / "examples.jsonl")
    agree = [
        line
        for line in examples.read_text().splitlines()
        if json.loads(line)["answer_matching_behavior"] == " Yes"
    ]
    one_side = tmp_path / "agree-only.jsonl"
    one_side.write_text("\n".join(agree) + "\n")
    assert len(one_side.read_text().splitlines()) == 3
    with scripted_server() as server:
        result = mwe(*_without_judge(generate_args(server, one_side)))
    assert result.exit_code == 0, result.output
    assert "the pm reads the description alone" in result.output
    with Store(db, read_only=True) as store:
        (info,) = store.list_sets()
        assert info.provenance["judge_method"] == "pm"
