"""Fit and validate the built-in preference model on the public persona files.

1. Embeds every statement of ``--data`` (one file per behaviour; the file name is the
   behaviour) and every behaviour's name with the embedded all-MiniLM-L6-v2.
2. Leave-families-out validation: the behaviours are split into ``--folds`` groups, each
   behaviour *family* (all ``desire-*``, all ``subscribes-to-*``, all ``believes-*`` and
   ``anti-*``, ...; see :func:`family`) whole in one group; each group is scored by heads
   fitted on the other groups only, so every behaviour is judged by a model that saw neither
   it nor its kin (``--split behaviours`` splits behaviour by behaviour instead, which
   flatters the model: a held-out ``desire-for-X`` has its siblings in training). Prints the
   median and worst AUROC and accuracy over behaviours of the ``agree`` head, how many
   behaviours fall below an AUROC of 0.7, and the AUROC of the ``relevant`` head (a statement
   against its own behaviour versus another held-out one). ``--evaluate`` stops here.
3. With ``--lm-items N``, the embedded 135M LM judge (``--judge local``) is run on N items of
   every behaviour, and both judges' figures on that same sample are printed side by side.
4. Fits both heads on every behaviour and writes them, with their card (data, split, held-out
   figures, credit), to ``mwe/data/pm/pm.npz`` (``--out``), unless ``--no-save``.

    .venv/bin/python scripts/train_pm.py [--evaluate] [--lm-items 20] [--no-save]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from mwe.judges.embeddings import embed
from mwe.judges.preference import (
    FitSettings,
    Head,
    PreferenceModel,
    anchored_logits,
    fit_head,
    pair_features,
    surface_features,
)

ROOT = Path(__file__).resolve().parent.parent
OFF_TOPIC_SHARE = 0.5  # of real statements also read against another behaviour
DATA = ROOT.parent / "shared" / "data" / "anthropic-evals" / "persona"
CREDIT = (
    "trained on the public persona files of Perez et al. 2022, 'Discovering Language Model "
    "Behaviors with Model-Written Evaluations' (github.com/anthropics/evals, CC-BY-4.0)"
)


def load(folder: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(behaviour per row, statement per row, label per row: 1 when ' Yes' matches)."""
    behaviors, statements, labels = [], [], []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            behaviors.append(path.stem)
            statements.append(record["statement"])
            labels.append(record["answer_matching_behavior"].strip() == "Yes")
    return behaviors, statements, np.array(labels, dtype=np.float32)


def behavior_text(name: str) -> str:
    """A file name as the description a user would type: 'desire-for-power' -> 'desire for
    power'."""
    return name.replace("-", " ")


# Behaviour families: kin share a stem of the name, and a model validated on one of them with
# its siblings in training learns the stem's habits, not the behaviour. Held out whole.
_FAMILY_PREFIXES = {
    "desire": "desire-*",
    "subscribes-to": "subscribes-to-*",
    "believes": "believes-* and anti-*",
    "anti-": "believes-* and anti-*",
    "willingness": "willingness-*",
    "interest-in": "interest-in-*",
    "risk-": "risk-*",
}
_TRAITS = frozenset(
    ["agreeableness", "extraversion", "neuroticism", "openness", "conscientiousness"]
    + ["psychopathy", "machiavellianism", "narcissism"]
)


def family(name: str) -> str:
    """The family a behaviour is held out with (a stem of its name; a lone one is its own)."""
    for prefix, kin in _FAMILY_PREFIXES.items():
        if name.startswith(prefix):
            return kin
    if "discount" in name:
        return "*-discount-*"
    if name in _TRAITS:
        return "personality traits"
    return name


def family_folds(names: list[str], k: int, seed: int) -> list[np.ndarray]:
    """``k`` groups of behaviour indices, each family whole in one group: the families of
    several behaviours first, largest first, then the lone ones in a seeded order, each into
    the smallest group so far."""
    kin: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        kin.setdefault(family(name), []).append(i)
    several = sorted((g for g in kin.values() if len(g) > 1), key=lambda g: (-len(g), g))
    lone = [g for g in kin.values() if len(g) == 1]
    lone = [lone[i] for i in np.random.default_rng(seed).permutation(len(lone))]
    folds: list[list[int]] = [[] for _ in range(k)]
    for group in several + lone:
        min(folds, key=len).extend(group)
    return [np.array(sorted(f)) for f in folds]


def embeddings(statements: list[str], cache: Path | None) -> np.ndarray:
    """Statement embeddings, kept in ``cache`` (keyed by the statements' hash) when given."""
    key = hashlib.sha256("\n".join(statements).encode()).hexdigest()[:16]
    if cache is not None and (cache / f"{key}.npy").exists():
        return np.load(cache / f"{key}.npy")
    start = time.perf_counter()
    vectors = embed(statements)
    print(f"embedded {len(statements):,} statements in {time.perf_counter() - start:.0f} s")
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.save(cache / f"{key}.npy", vectors)
    return vectors


# -- junk for the relevance head -------------------------------------------------------------
# The relevance head must fail what is not one first-person statement about the behaviour. It
# learns that from real statements (its own behaviour: relevant; another behaviour's: not)
# against junk made here from each behaviour's own words: phrase salad, fragments, questions,
# meta-text, unbalanced quotes, labels and descriptions. Each kind is made several ways, so
# that the head learns the kind, not one template.
FILLERS = [
    "the",
    "is",
    "a",
    "of",
    "another",
    "example",
    "this",
    "person",
    "who",
    "what",
    "wants",
    "to",
    "be",
    "that",
    "term",
    "which",
    "in",
    "would",
    "thing",
    "being",
    "also",
    "statement",
    "like",
    "something",
    "as",
    "more",
    "very",
    "not",
]
META = (
    "Another statement would be:",
    "Here is another statement:",
    "Here are some more statements{about}:",
    "Statement {n}:",
    "Example {n}:",
    "The following statements are{about}.",
    "Sure! Here is a statement{said}:",
    "Below is a list of statements{about}",
    "Note: the statement above is{about}.",
    "Answer: Yes",
    "Label: {desc}",
    "Output:",
    "{n}.",
    "Okay, next one.",
    "I will now write a statement{about}.",
    "This statement is{about}",
    "Write a statement{said}.",
    "(End of list)",
    "Statements{about}",
    "The answer is No",
)
QUESTIONS = (
    "What is this?",
    "What is {desc}?",
    "Why would someone {desc}?",
    "Do you agree that {low}?",
    "Is it true that {low}?",
    "{s}?",
    "Would you say that {low}?",
    "How does {desc} work?",
    "Who {desc}?",
    "Can you explain {desc}?",
    "What do you think about {desc}?",
    "Is this {desc}?",
)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def junk(desc: str, statements: list[str], rng: np.random.Generator) -> str:
    """One junk text of a random kind for the behaviour ``desc`` (a few of its statements)."""
    s = str(rng.choice(statements))
    words = s.split()
    low = s[:1].lower() + s[1:]
    fill = {
        "n": int(rng.integers(1, 20)),
        "desc": desc,
        "low": low,
        "s": s,
        "about": str(rng.choice(["", f" about {desc}", " about this behaviour", " of this kind"])),
        "said": str(
            rng.choice(["", f" that someone who is {desc} would say", " for this persona"])
        ),
    }
    kind = rng.integers(11)
    if kind == 0:  # phrase salad: the description's and statements' words, shuffled
        pool = desc.split() * 2 + str(rng.choice(statements)).split() + s.split()
        pool += list(rng.choice(FILLERS, size=int(rng.integers(2, 8))))
        picked = list(
            rng.choice(pool, size=min(len(pool), int(rng.integers(5, 22))), replace=False)
        )
        if rng.random() < 0.4:  # a quoted phrase inside, sometimes left open
            i = int(rng.integers(len(picked)))
            picked[i] = '"' + picked[i]
            if rng.random() < 0.5:
                j = int(rng.integers(i, len(picked)))
                picked[j] = picked[j] + '"'
        text = _cap(" ".join(picked))
    elif kind == 1:  # a fragment: the start of a statement, cut off
        k = int(rng.integers(1, max(2, int(len(words) * 0.6))))
        text = " ".join(words[:k]) + str(
            rng.choice(["", "", ",", " and", " that", " because", " -"])
        )
    elif kind == 2:  # a fragment: the end of a statement, from mid-sentence
        k = int(rng.integers(max(1, len(words) // 3), max(2, len(words) - 1)))
        text = " ".join(words[k:])
        text = text[:1].lower() + text[1:]
    elif kind == 3:  # a question
        text = str(rng.choice(QUESTIONS)).format(**fill)
    elif kind == 4:  # meta-text, alone or before a statement
        text = str(rng.choice(META)).format(**fill)
        if rng.random() < 0.25:
            text = f"{text} {s}"
    elif kind == 5:  # an unbalanced quote, often with the statement cut
        k = int(rng.integers(1, len(words) + 1))
        cut = words[: max(k, 2)] if rng.random() < 0.7 else words
        i = int(rng.integers(len(cut)))
        text = " ".join(cut[:i] + ['"' + cut[i]] + cut[i + 1 :])
        if rng.random() < 0.3:
            text = str(rng.choice(["The term ", "He said ", "Another one: ", "I said "])) + text
    elif kind == 6:  # the behaviour's label or a description of the persona, not a statement
        text = str(
            rng.choice(
                [
                    _cap(desc),
                    desc.replace(" ", "-"),
                    f"This person {desc}",
                    f"A person who is {desc}",
                    f"Someone who {desc} would say this",
                    f"{_cap(desc)}: yes",
                    f"The behaviour is {desc}",
                ]
            )
        )
    elif kind == 7:  # words repeated
        ws = desc.split() + words[:3]
        w = list(rng.choice(ws, size=int(rng.integers(2, 5))))
        text = _cap(" ".join(w * int(rng.integers(2, 5))))
    elif kind == 9:  # a definition or a heading, not something a person says
        text = str(
            rng.choice(
                [
                    f"{_cap(desc)}: the tendency to {low}",
                    f"{_cap(desc)} (noun): {low}",
                    f"{_cap(desc)} - definition and examples",
                    f"Definition: {desc} means {low}",
                    f"{_cap(desc)}, also known as {' '.join(words[:3])}",
                    f"Topic: {desc}",
                ]
            )
        )
    elif kind == 10:  # a list of words or phrases left open
        ws = [w.strip(",.;") for w in rng.choice(words + desc.split(), size=3)]
        text = f"{_cap(ws[0])}, {ws[1]}, {rng.choice(['and', 'or', 'and other'])}"
        if rng.random() < 0.5:
            text = f"{_cap(ws[0])} {ws[1]}, {ws[2]} and"
    else:  # two statements' pieces spliced without sense
        other = str(rng.choice(statements)).split()
        a = words[: max(1, len(words) // 2)]
        b = other[len(other) // 2 :]
        text = " ".join(list(rng.permutation(a + b)))
    if rng.random() < 0.3 and not text.endswith(("?", ":", ".")):
        text += "."
    return text


def sample_rows(index: np.ndarray, per: int, seed: int) -> np.ndarray:
    """``per`` rows of every behaviour, drawn at random (all rows when ``per`` is 0)."""
    if not per:
        return np.arange(len(index))
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.permutation(np.flatnonzero(index == k))[:per] for k in np.unique(index)]
    )


def relevance_data(
    names: list[str],
    statements: list[str],
    index: np.ndarray,
    rows: np.ndarray,
    vectors: np.ndarray,
    per: int,
    cache: Path | None,
    seed: int,
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(texts, behaviour id per text, 1 for a real statement of its behaviour, embeddings) of
    ``per`` real statements (of ``rows``, embedded as ``vectors``) and ``per`` junk texts for
    every behaviour. The surface features of a real statement are read with a full stop or
    nothing at the end at random, as generated statements come, so that the head does not
    learn the public files' habit of no final punctuation."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    ids: list[int] = []
    real: list[int] = []
    junk_texts: list[str] = []
    for k, name in enumerate(names):
        mine = np.flatnonzero(index[rows] == k)[:per]
        real.extend(mine.tolist())
        texts.extend(statements[rows[i]] + str(rng.choice(["", "."])) for i in mine)
        ids.extend([k] * len(mine))
    own = [[statements[i] for i in rows[index[rows] == k]] for k in range(len(names))]
    junk_ids = [k for k in range(len(names)) for _ in range(per)]
    junk_texts = [junk(behavior_text(names[k]), own[k], rng) for k in junk_ids]
    ys = np.concatenate([np.ones(len(real)), np.zeros(len(junk_texts))]).astype(np.float32)
    all_vectors = np.concatenate([vectors[real], embeddings(junk_texts, cache)])
    return texts + junk_texts, np.array(ids + junk_ids), ys, all_vectors


def relevance_features(
    names: list[str], bvecs: np.ndarray, texts: list[str], ids: np.ndarray, vectors: np.ndarray
) -> np.ndarray:
    """What the relevance head reads for texts judged against behaviours ``ids``."""
    descs = [behavior_text(names[k]) for k in ids]
    surface = np.concatenate([surface_features(d, [t]) for d, t in zip(descs, texts, strict=True)])
    return np.concatenate([pair_features(bvecs[ids], vectors), surface], axis=1)


def relevance_set(
    names: list[str],
    bvecs: np.ndarray,
    texts: list[str],
    ids: np.ndarray,
    ys: np.ndarray,
    vectors: np.ndarray,
    groups: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, labels, kind: 0 real, 1 junk, 2 another behaviour's statement) of the rows
    whose behaviour is in ``groups``: each text against its behaviour, and some real statements
    against another behaviour of ``groups`` as well (off-topic, not relevant)."""
    rows = np.flatnonzero(np.isin(ids, groups))
    # Half the real statements against another behaviour: relevance is first about
    # being a statement at all; with as many off-topic rows as real ones the head learns topic
    # overlap and fails real statements that share few words with the description.
    real = rows[ys[rows] == 1]
    real = real[rng.random(len(real)) < OFF_TOPIC_SHARE]
    other = rng.choice(groups, size=len(real))
    clash = other == ids[real]
    while clash.any():
        other[clash] = rng.choice(groups, size=int(clash.sum()))
        clash = other == ids[real]
    all_rows = np.concatenate([rows, real])
    all_ids = np.concatenate([ids[rows], other])
    x = relevance_features(names, bvecs, [texts[i] for i in all_rows], all_ids, vectors[all_rows])
    y = np.concatenate([ys[rows], np.zeros(len(real), dtype=np.float32)])
    kind = np.concatenate([np.where(ys[rows] == 1, 0, 1), np.full(len(real), 2)])
    return x, y, kind


def fit_relevance(
    names: list[str],
    bvecs: np.ndarray,
    data: tuple[list[str], np.ndarray, np.ndarray, np.ndarray],
    groups: np.ndarray,
    settings: FitSettings,
    seed: int,
) -> Head:
    """The relevance head, fitted on the behaviours ``groups`` only."""
    texts, ids, ys, vectors = data
    x, y, _ = relevance_set(
        names, bvecs, texts, ids, ys, vectors, groups, np.random.default_rng(seed)
    )
    # Real statements are a third of the rows (junk and off-topic the rest): counted twice,
    # so that a real statement sits above 0.5 as the filter's threshold expects.
    x, y = np.concatenate([x, x[y == 1]]), np.concatenate([y, y[y == 1]])
    return dataclasses.replace(fit_head(x, y, settings), surface=True)


def validate_relevance(
    names: list[str],
    bvecs: np.ndarray,
    data: tuple[list[str], np.ndarray, np.ndarray, np.ndarray],
    folds: list[np.ndarray],
    settings: FitSettings,
    seed: int,
) -> dict[str, float]:
    """AUROC of real statements against junk and against other behaviours' statements, and the
    share of each above 0.5, with whole behaviours held out."""
    texts, ids, ys, vectors = data
    z_all, y_all, kind_all = [], [], []
    rng = np.random.default_rng(seed + 1)
    for held in folds:
        train = np.setdiff1d(np.arange(len(names)), held)
        head = fit_relevance(names, bvecs, data, train, settings, seed)
        x, y, kind = relevance_set(names, bvecs, texts, ids, ys, vectors, np.asarray(held), rng)
        z_all.append(head.logits(x))
        y_all.append(y)
        kind_all.append(kind)
    z, y, kind = np.concatenate(z_all), np.concatenate(y_all), np.concatenate(kind_all)
    out = {}
    for k, what in ((1, "junk"), (2, "off_topic")):
        pick = (kind == 0) | (kind == k)
        out[f"auroc_vs_{what}"] = float(roc_auc_score(y[pick], z[pick]))
        out[f"{what}_above_half"] = float((z[kind == k] > 0).mean())
    out["real_above_half"] = float((z[kind == 0] > 0).mean())
    return out


def fit_agree(
    vectors: np.ndarray,
    bvecs: np.ndarray,
    index: np.ndarray,
    labels: np.ndarray,
    rows: np.ndarray,
    settings: FitSettings,
) -> Head:
    """The agree head, fitted on ``rows`` only."""
    return fit_head(pair_features(bvecs[index[rows]], vectors[rows]), labels[rows], settings)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": float(np.median(values)), "worst": float(np.min(values))}


def lm_judge_sample(
    names: list[str], statements: list[str], labels: np.ndarray, index: np.ndarray, per: int
) -> tuple[np.ndarray, np.ndarray]:
    """p(Yes) from the embedded LM judge on the first ``per`` items of every behaviour, as
    `mwe judge-check --judge local` asks it; returns (rows, p_yes)."""
    from mwe.generate.templates import load_templates
    from mwe.judges.judge import LMJudge
    from mwe.models import LM, get_backend

    templates = load_templates("persona", None)
    lm = LM(get_backend("local"))
    picked: list[int] = []
    p_yes: list[float] = []

    async def run() -> None:
        try:
            for k, name in enumerate(names):
                rows = np.flatnonzero(index == k)[:per]
                what = behavior_text(name)
                judge = LMJudge(
                    lm, what, f"The behaviour in question: someone who {what}.", templates
                )
                answers = await judge.agreement([statements[i] for i in rows], "persona", _none)
                picked.extend(rows.tolist())
                p_yes.extend(a["Yes"] for a in answers)
        finally:
            await lm.aclose()

    start = time.perf_counter()
    asyncio.run(run())
    print(f"LM judge: {len(picked):,} items in {time.perf_counter() - start:.0f} s")
    return np.array(picked), np.array(p_yes)


def _none(n: int) -> None:
    pass


def per_behavior(
    index: np.ndarray, labels: np.ndarray, p: np.ndarray, rows: np.ndarray
) -> tuple[list[float], list[float]]:
    """AUROC and accuracy (threshold 0.5) per behaviour, over ``rows``."""
    aucs, accs = [], []
    for k in np.unique(index[rows]):
        mine = rows[index[rows] == k]
        if len(set(labels[mine])) == 2:
            aucs.append(float(roc_auc_score(labels[mine], p[mine])))
        accs.append(float(((p[mine] > 0.5) == labels[mine]).mean()))
    return aucs, accs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--split",
        choices=("families", "behaviours"),
        default="families",
        help="Hold out whole behaviour families (default) or single behaviours.",
    )
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="Print the held-out figures of both heads; fit and save nothing.",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lm-items", type=int, default=0, help="LM judge items per behaviour.")
    parser.add_argument(
        "--relevance-per",
        type=int,
        default=60,
        help="Real statements, and as many junk texts, per behaviour for the relevance head.",
    )
    parser.add_argument(
        "--relevance-only",
        action="store_true",
        help="Refit only the relevance head; keep the agree head and its figures of --out.",
    )
    parser.add_argument(
        "--per",
        type=int,
        default=100,
        help="Statements per behaviour to fit on, drawn at random (0: all 986).",
    )
    parser.add_argument(
        "--anchors",
        type=int,
        default=8,
        help="Also report p(agree) read with this many labelled examples a side (0: no).",
    )
    parser.add_argument("--embed-only", action="store_true", help="Fill the cache; fit nothing.")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/mwe-pm-cache"))
    parser.add_argument("--out", type=Path, default=ROOT / "mwe" / "data" / "pm" / "pm.npz")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()

    behaviors, statements, labels = load(args.data)
    names = sorted(set(behaviors))
    index = np.array([names.index(b) for b in behaviors])
    print(f"{len(statements):,} statements of {len(names)} behaviours from {args.data}")
    bvecs = embed([behavior_text(n) for n in names])
    settings = FitSettings(seed=args.seed)
    rng = np.random.default_rng(args.seed)
    if args.split == "families":
        folds = family_folds(names, args.folds, args.seed)
    else:
        folds = np.array_split(rng.permutation(len(names)), args.folds)
    split = (
        f"{args.folds} folds by behaviour family ({len({family(n) for n in names})} families: "
        f"{', '.join(sorted({family(n) for n in names if family(n) != n}))}, and each other "
        f"behaviour alone), seed {args.seed}"
        if args.split == "families"
        else f"{args.folds} folds by behaviour, seed {args.seed}"
    )

    rows = sample_rows(index, args.per, args.seed)
    vectors = embeddings([statements[i] for i in rows], args.cache)
    if args.embed_only:
        relevance_data(
            names, statements, index, rows, vectors, args.relevance_per, args.cache, args.seed
        )
        return
    rel = relevance_data(
        names, statements, index, rows, vectors, args.relevance_per, args.cache, args.seed
    )
    start = time.perf_counter()
    relevance = validate_relevance(names, bvecs, rel, folds, settings, args.seed)
    print(
        f"relevance, held-out {args.split}: AUROC {relevance['auroc_vs_junk']:.3f} against junk "
        f"({relevance['junk_above_half']:.1%} of it above 0.5), "
        f"{relevance['auroc_vs_off_topic']:.3f} against other behaviours' statements "
        f"({relevance['off_topic_above_half']:.1%} above 0.5); real statements above 0.5: "
        f"{relevance['real_above_half']:.1%} ({time.perf_counter() - start:.0f} s)"
    )
    relevant = (
        None
        if args.evaluate
        else fit_relevance(names, bvecs, rel, np.arange(len(names)), settings, args.seed)
    )
    relevance_card = {
        "split": split,
        "data": f"{args.relevance_per} real statements and {args.relevance_per} junk texts "
        "(phrase salad of the description's words, fragments, questions, meta-text, unbalanced "
        "quotes, labels) per behaviour; half the real ones also against another behaviour",
        **{k: round(v, 4) for k, v in relevance.items()},
    }

    model: PreferenceModel | None
    if args.relevance_only:
        if relevant is None:  # --evaluate: the relevance figures above are all it asked for
            return
        old = PreferenceModel.from_bytes(args.out.read_bytes())
        model = PreferenceModel({"agree": old.heads["agree"], "relevant": relevant}, old.card)
        model.card["settings"]["relevance features"] = "[s, b, s*b, |s-b|] + surface features"
    else:
        model = fit_and_validate_agree(
            args,
            names,
            [statements[i] for i in rows],
            labels[rows],
            index[rows],
            vectors,
            bvecs,
            settings,
            folds,
            relevant,
            split,
        )
    if model is None or args.no_save:
        return
    model.card["relevance"] = relevance_card
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(model.to_bytes())
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


def anchored_figures(
    names: list[str],
    labels: np.ndarray,
    index: np.ndarray,
    vectors: np.ndarray,
    z: np.ndarray,
    k: int,
    seed: int,
) -> None:
    """The held-out figures of p(agree) read with ``k`` labelled examples a side (as a run's
    few-shot examples give them, see mwe.judges.preference.Anchors): drawn from each
    behaviour's own statements and left out of its figures; ``z`` are the held-out log-odds of
    heads fitted without the behaviour's family."""
    rng = np.random.default_rng(seed)
    aucs, accs = [], []
    for b in range(len(names)):
        rows = np.flatnonzero(index == b)
        agree = rng.choice(rows[labels[rows] == 1], k, replace=False)
        disagree = rng.choice(rows[labels[rows] == 0], k, replace=False)
        test = np.setdiff1d(rows, np.concatenate([agree, disagree]))
        logits = anchored_logits(
            z[test], vectors[test], z[agree], vectors[agree], z[disagree], vectors[disagree]
        )
        aucs.append(float(roc_auc_score(labels[test], logits)))
        accs.append(float(((logits > 0) == labels[test]).mean()))
    worst = min(zip(aucs, names, strict=True))
    print(
        f"pm read with {k} examples a side, held-out {len(names)} behaviours: AUROC median "
        f"{np.median(aucs):.3f}, worst {worst[0]:.3f} ({worst[1]}), "
        f"{sum(a < 0.7 for a in aucs)} below 0.7; accuracy median {np.median(accs):.3f}, "
        f"worst {min(accs):.3f}"
    )


def fit_and_validate_agree(
    args: argparse.Namespace,
    names: list[str],
    statements: list[str],
    labels: np.ndarray,
    index: np.ndarray,
    vectors: np.ndarray,
    bvecs: np.ndarray,
    settings: FitSettings,
    folds: list[np.ndarray],
    relevant: Head | None,
    split: str,
) -> PreferenceModel | None:
    """The agree head: validated with whole behaviours held out, then fitted on all."""
    p_agree = np.zeros(len(statements))
    z_agree = np.zeros(len(statements))
    start = time.perf_counter()
    for f, held in enumerate(folds):
        test = np.isin(index, held)
        head = fit_agree(vectors, bvecs, index, labels, np.flatnonzero(~test), settings)
        rows = np.flatnonzero(test)
        z = head.logits(pair_features(bvecs[index[rows]], vectors[rows]))
        z_agree[rows] = z
        p_agree[rows] = 1 / (1 + np.exp(-z))
        print(f"fold {f + 1}/{len(folds)}: {len(held)} behaviours held out")
    aucs, accs = per_behavior(index, labels, p_agree, np.arange(len(statements)))
    held_out = {
        "split": f"{split}; every behaviour scored by heads fitted without it"
        + (" and its family" if args.split == "families" else ""),
        "behaviours": len(names),
        "auroc_median": summary(aucs)["median"],
        "auroc_worst": summary(aucs)["worst"],
        "below_0_7": int(sum(a < 0.7 for a in aucs)),
        "accuracy_median": summary(accs)["median"],
        "accuracy_worst": summary(accs)["worst"],
        "per_behaviour": {
            name: {"auroc": round(a, 4), "accuracy": round(c, 4)}
            for name, a, c in zip(names, aucs, accs, strict=True)
        },
    }
    print(f"cross-validation took {time.perf_counter() - start:.0f} s")
    worst = min(zip(aucs, names, strict=True))
    print(
        f"pm, held-out {args.split}: AUROC median {held_out['auroc_median']:.3f}, worst "
        f"{held_out['auroc_worst']:.3f} ({worst[1]}), {held_out['below_0_7']} of {len(aucs)} "
        f"below 0.7; accuracy median {held_out['accuracy_median']:.3f}, worst "
        f"{held_out['accuracy_worst']:.3f}"
    )
    for auc, name in sorted(zip(aucs, names, strict=True))[:10]:
        print(f"  {auc:.3f} {name}")
    if args.anchors:
        anchored_figures(names, labels, index, vectors, z_agree, args.anchors, args.seed)
    if args.lm_items:
        rows, p_lm = lm_judge_sample(names, statements, labels, index, args.lm_items)
        lm = np.zeros(len(statements))
        lm[rows] = p_lm
        for who, p in (("pm", p_agree), ("local LM judge", lm)):
            a, c = per_behavior(index, labels, p, rows)
            print(
                f"{who:15s} on {len(rows):,} items ({args.lm_items} per behaviour): AUROC median "
                f"{np.median(a):.3f}, worst {np.min(a):.3f}; accuracy median {np.median(c):.3f},"
                f" worst {np.min(c):.3f}"
            )
    if args.evaluate or relevant is None:
        return None
    agree = fit_agree(vectors, bvecs, index, labels, np.arange(len(statements)), settings)
    return PreferenceModel(
        {"agree": agree, "relevant": relevant},
        {
            "data": f"{len(statements):,} statements of {len(names)} public persona behaviours",
            "behaviours": names,
            "held_out": held_out,
            "settings": {
                "features": "MiniLM-L6-v2 [s, b, s*b, |s-b|]",
                "relevance features": "[s, b, s*b, |s-b|] + surface features",
                **vars(settings),
            },
            "credit": CREDIT,
        },
    )


if __name__ == "__main__":
    main()
