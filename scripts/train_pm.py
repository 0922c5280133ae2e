"""Fit and validate the built-in preference model on the public persona files.

1. Embeds every statement of ``--data`` (one file per behaviour; the file name is the
   behaviour) and every behaviour's name with the embedded all-MiniLM-L6-v2.
2. Leave-behaviours-out validation: the behaviours are split into ``--folds`` groups; each
   group is scored by heads fitted on the other groups only, so every behaviour is judged by a
   model that never saw it. Prints the median and worst AUROC and accuracy over behaviours of
   the ``agree`` head, and the AUROC of the ``relevant`` head (a statement against its own
   behaviour versus another held-out one).
3. With ``--lm-items N``, the embedded 135M LM judge (``--judge local``) is run on N items of
   every behaviour, and both judges' figures on that same sample are printed side by side.
4. Fits both heads on every behaviour and writes them, with their card (data, split, held-out
   figures, credit), to ``mwe/data/pm/pm.npz`` (``--out``), unless ``--no-save``.

    .venv/bin/python scripts/train_pm.py [--lm-items 20] [--no-save]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from mwe.embeddings import embed
from mwe.preference import FitSettings, PreferenceModel, fit_head, pair_features

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "anthropic-evals" / "persona"
RELEVANCE_ROWS = 200  # statements per behaviour the relevance head is fitted on
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


def relevance_pairs(
    index: np.ndarray, groups: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(statement rows, behaviour ids, labels): every row against its own behaviour (1) and
    against another behaviour drawn from ``groups`` (0)."""
    own = index
    other = rng.choice(groups, size=len(index))
    clash = other == own
    while clash.any():
        other[clash] = rng.choice(groups, size=int(clash.sum()))
        clash = other == own
    rows = np.arange(len(index))
    return (
        np.concatenate([rows, rows]),
        np.concatenate([own, other]),
        np.concatenate([np.ones(len(rows)), np.zeros(len(rows))]).astype(np.float32),
    )


def fit(
    vectors: np.ndarray,
    bvecs: np.ndarray,
    index: np.ndarray,
    labels: np.ndarray,
    rows: np.ndarray,
    settings: FitSettings,
    seed: int,
) -> PreferenceModel:
    """Both heads, fitted on ``rows`` only."""
    agree = fit_head(pair_features(bvecs[index[rows]], vectors[rows]), labels[rows], settings)
    rng = np.random.default_rng(seed)
    # Relevance is the easy question: a sample of each behaviour's rows is plenty.
    sample = np.concatenate(
        [rng.permutation(rows[index[rows] == k])[:RELEVANCE_ROWS] for k in np.unique(index[rows])]
    )
    r, b, y = relevance_pairs(index[sample], np.unique(index[sample]), rng)
    relevant = fit_head(pair_features(bvecs[b], vectors[sample][r]), y, settings)
    return PreferenceModel({"agree": agree, "relevant": relevant})


def summary(values: list[float]) -> dict[str, float]:
    return {"median": float(np.median(values)), "worst": float(np.min(values))}


def lm_judge_sample(
    names: list[str], statements: list[str], labels: np.ndarray, index: np.ndarray, per: int
) -> tuple[np.ndarray, np.ndarray]:
    """p(Yes) from the embedded LM judge on the first ``per`` items of every behaviour, as
    `mwe judge-check --judge local` asks it; returns (rows, p_yes)."""
    from mwe.models import LM, get_backend
    from mwe.pipeline.judge import LMJudge
    from mwe.templates import load_templates

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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lm-items", type=int, default=0, help="LM judge items per behaviour.")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "pm")
    parser.add_argument("--out", type=Path, default=ROOT / "mwe" / "data" / "pm" / "pm.npz")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()

    behaviors, statements, labels = load(args.data)
    names = sorted(set(behaviors))
    index = np.array([names.index(b) for b in behaviors])
    print(f"{len(statements):,} statements of {len(names)} behaviours from {args.data}")
    vectors = embeddings(statements, args.cache)
    bvecs = embed([behavior_text(n) for n in names])
    settings = FitSettings(seed=args.seed)

    rng = np.random.default_rng(args.seed)
    folds = np.array_split(rng.permutation(len(names)), args.folds)
    p_agree = np.zeros(len(statements))
    rel_auc: list[float] = []
    start = time.perf_counter()
    for f, held in enumerate(folds):
        test = np.isin(index, held)
        model = fit(vectors, bvecs, index, labels, np.flatnonzero(~test), settings, args.seed)
        rows = np.flatnonzero(test)
        p_agree[rows] = 1 / (
            1
            + np.exp(-model.heads["agree"].logits(pair_features(bvecs[index[rows]], vectors[rows])))
        )
        r, b, y = relevance_pairs(index[rows], np.asarray(held), rng)
        z = model.heads["relevant"].logits(pair_features(bvecs[b], vectors[rows][r]))
        for k in held:
            mine = index[rows][r] == k
            rel_auc.append(float(roc_auc_score(y[mine], z[mine])))
        print(f"fold {f + 1}/{len(folds)}: {len(held)} behaviours held out")
    aucs, accs = per_behavior(index, labels, p_agree, np.arange(len(statements)))
    held_out = {
        "split": f"{args.folds} folds by behaviour, seed {args.seed}; every behaviour scored "
        "by heads fitted without it",
        "behaviours": len(names),
        "auroc_median": summary(aucs)["median"],
        "auroc_worst": summary(aucs)["worst"],
        "accuracy_median": summary(accs)["median"],
        "accuracy_worst": summary(accs)["worst"],
        "relevance_auroc_median": summary(rel_auc)["median"],
        "relevance_auroc_worst": summary(rel_auc)["worst"],
        "per_behaviour": {
            name: {"auroc": round(a, 4), "accuracy": round(c, 4)}
            for name, a, c in zip(names, aucs, accs, strict=True)
        },
    }
    print(f"cross-validation took {time.perf_counter() - start:.0f} s")
    worst = min(zip(aucs, names, strict=True))
    print(
        f"pm, held-out behaviours: AUROC median {held_out['auroc_median']:.3f}, worst "
        f"{held_out['auroc_worst']:.3f} ({worst[1]}); accuracy median "
        f"{held_out['accuracy_median']:.3f}, worst {held_out['accuracy_worst']:.3f}; relevance "
        f"AUROC median {held_out['relevance_auroc_median']:.3f}, worst "
        f"{held_out['relevance_auroc_worst']:.3f}"
    )
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
    if args.no_save:
        return
    final = fit(vectors, bvecs, index, labels, np.arange(len(statements)), settings, args.seed)
    final.card = {
        "data": f"{len(statements):,} statements of {len(names)} public persona behaviours",
        "behaviours": names,
        "held_out": held_out,
        "settings": {"features": "MiniLM-L6-v2 [s, b, s*b, |s-b|]", **vars(settings)},
        "credit": CREDIT,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(final.to_bytes())
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
