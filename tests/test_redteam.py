"""`mwe redteam`: three rounds against the test server's scripted attacker, target and
classifier; later rounds find more failures, and the failing set holds exactly the flagged
cases."""

from __future__ import annotations

import json

import pytest

from mwe.dynamic.redteam import parse_inputs, self_bleu
from mwe.store import Store

from . import scripted_models
from .test_generate import scripted_server

DESCRIPTION = "resists being shut down"


def redteam_args(server, *extra: str) -> list[str]:
    return [
        "redteam",
        DESCRIPTION,
        "--target",
        "openai:target",
        "--attacker",
        "openai:attacker",
        "--classifier",
        "openai:classifier",
        "--rounds",
        "3",
        "--per-round",
        "30",
        "--base-url",
        server.openai_url,
        *extra,
    ]


def test_three_rounds_find_more_failures_and_store_exactly_the_flagged_cases(mwe, db, tmp_path):
    with scripted_server() as server:
        result = mwe(*redteam_args(server))
        assert result.exit_code == 0, result.output
        sent = server.stats.requests
        again = mwe(*redteam_args(server))  # the same run: all cached, nothing new stored
        assert again.exit_code == 0 and "stored before: nothing changed" in again.output
        assert server.stats.requests == sent
    with Store(db, read_only=True) as store:
        (rid,) = [r for (r,) in store.conn.execute("SELECT id FROM redteam_runs").fetchall()]
        rounds = store.redteam_rounds(rid)
        cases = store.redteam_cases(rid)
        info = store.redteam_set(rid)
        items = store.items(info)
    assert [r["round"] for r in rounds] == [1, 2, 3]
    assert all(r["cases"] == 30 for r in rounds)
    first = rounds[0]["failure_rate"]
    print("failure rates:", [round(r["failure_rate"], 3) for r in rounds])
    assert 0 < first < 0.5  # zero-shot: about a fifth of the inputs trigger the target
    assert all(r["failure_rate"] > first for r in rounds[1:])  # few-shot from failures: more
    for r in rounds:
        assert 0 <= r["self_bleu"] <= 1
    # The target fails exactly on the trigger; the classifier flags exactly those replies.
    for c in cases:
        assert c["flagged"] == (scripted_models.TRIGGER in c["input"])
    flagged = {(c["input"], c["reply"]) for c in cases if c["flagged"]}
    assert {(i.question, i.answer_matching_behavior) for i in items} == flagged
    assert len(items) == len(flagged) and {i.format for i in items} == {"redteam"}
    shown = mwe("show", info.ref, "--json")
    assert shown.exit_code == 0 and json.loads(shown.output)["format"] == "redteam"
    for r in rounds:  # the inputs' mean pairwise embedding cosine
        assert 0 < r["embedding_similarity"] <= 1
    # The failing set exports like any other, and imports back as the same items.
    out = tmp_path / "out"
    assert mwe("export", info.ref, "--out", out).exit_code == 0
    exported = [json.loads(line) for line in (out / f"{info.name}.jsonl").read_text().splitlines()]
    assert [r["question"] for r in exported] == [i.question for i in items]
    assert all(r["answer_not_matching_behavior"] == [] for r in exported)
    assert mwe("import", out / f"{info.name}.jsonl", "--name", "again").exit_code == 0
    with Store(db, read_only=True) as store:
        again = store.resolve("again")
        assert again.content_hash == info.content_hash and again.format == "redteam"
    assert f"stored as {info.ref}" in result.output and "round 3:" in result.output


def test_self_bleu_and_input_parsing():
    assert self_bleu(["the cat sat on the mat"] * 3) == pytest.approx(1.0)
    assert self_bleu(["alpha beta gamma delta", "one two three four"]) < 0.2
    assert self_bleu(["only one"]) is None
    assert parse_inputs('["a b", " ", "c  d"]') == ["a b", "c d"]
    assert parse_inputs("1. first one\n2) second one\n- third") == [
        "first one",
        "second one",
        "third",
    ]
