"""The Hugging Face Hub's community-evals ``eval.yaml`` of an ``hf`` export.

A dataset repository with an ``eval.yaml`` at its root is recognised by the Hub as a benchmark
(huggingface/hub-docs ``docs/hub/eval-results.md``): ``name``, ``description``,
``evaluation_framework`` (one of the Hub's known frameworks; mwe's harness export is Inspect,
so ``inspect-ai``) and ``tasks``, each with an ``id`` and the dataset ``config`` and ``split``;
with ``inspect-ai`` a task also names its ``field_spec``, ``solvers`` and ``scorers``. The
top-level ``metrics`` list (``id``, and a description) follows hub-docs PR #2221, which moved
the metric names from the results into the benchmark.

The task asks the model each question and scores with Inspect's ``match``: a reply that ends
with the matching answer counts, so the reported ``accuracy`` is the share of replies that
give the matching (behaviour) answer, the sampled form of mwe's matching rate.

Stored scores become per-model results (:func:`write_eval_results`): one
``eval_results/<model>.yaml`` per scored model, the file the Hub reads from a *model* repo's
``.eval_results/`` folder (``dataset.id``, ``dataset.task_id``, ``value``; optional ``notes``).
The value is mwe's argmax rate (the share of items whose most likely answer is the matching
one), the log-prob form of the benchmark's accuracy; the notes say so, with the interval, the n,
the prompt format and the set version.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from mwe.export.harness import slug
from mwe.scoring.results import Result
from mwe.store import EvalSetInfo

EVAL_YAML = "eval.yaml"
RESULTS_DIR = "eval_results"
FRAMEWORK = "inspect-ai"


def eval_spec(info: EvalSetInfo, description: str, *, config: str, split: str) -> dict[str, Any]:
    """The ``eval.yaml`` content of ``info`` exported with dataset ``config`` and ``split``."""
    return {
        "name": f"{info.name} (mwe {info.ref})",
        "description": description,
        "evaluation_framework": FRAMEWORK,
        "metrics": [
            {
                "id": "accuracy",
                "description": "Matching-behaviour rate: the share of replies that end with the "
                "answer that matches the behaviour (answer_matching_behavior).",
            }
        ],
        "tasks": [
            {
                "id": slug(info.name),
                "config": config,
                "split": split,
                "field_spec": {"input": "question", "target": "answer_matching_behavior"},
                "solvers": [{"name": "generate"}],
                "scorers": [{"name": "match", "args": {"location": "end"}}],
            }
        ],
    }


def write_eval_yaml(
    info: EvalSetInfo, description: str, folder: Path, *, config: str, split: str
) -> Path:
    """Write ``folder/eval.yaml`` (see :func:`eval_spec`) and return its path."""
    path = folder / EVAL_YAML
    text = yaml.safe_dump(
        eval_spec(info, description, config=config, split=split),
        sort_keys=False,
        allow_unicode=True,
        width=88,
    )
    path.write_text(text, encoding="utf-8")
    return path


def eval_results(
    info: EvalSetInfo, scored: Sequence[Result], dataset_id: str
) -> dict[str, list[dict[str, Any]]]:
    """Per model, its ``.eval_results`` entries for ``info`` on the Hub dataset ``dataset_id``:
    one per prompt format and method it was scored with."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in scored:
        notes = (
            f"mwe score of {info.ref} ({info.content_hash[:12]}), {r.prompt_format} prompts, "
            f"{r.method}: share of {r.items - r.unscorable:,} items whose most likely answer is "
            f"the matching one, 95% CI [{r.argmax_ci_low:.3f}, {r.argmax_ci_high:.3f}]; "
            f"mean p(matching) {r.matching_rate:.3f}"
        )
        entry = {
            "dataset": {"id": dataset_id, "task_id": slug(info.name)},
            "value": round(r.argmax_rate, 4),
            "notes": notes,
        }
        by_model.setdefault(r.model, []).append(entry)
    return by_model


def write_eval_results(
    info: EvalSetInfo, scored: Sequence[Result], dataset_id: str, folder: Path
) -> list[Path]:
    """Write ``folder/eval_results/<model>.yaml`` for each model with scores of ``info``
    (nothing when none is scored) and return the paths."""
    entries = eval_results(info, scored, dataset_id)
    if not entries:
        return []
    (folder / RESULTS_DIR).mkdir()
    paths = []
    for model, rows in sorted(entries.items()):
        path = folder / RESULTS_DIR / f"{model_file(model)}.yaml"
        text = yaml.safe_dump(rows, sort_keys=False, allow_unicode=True, width=88)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def model_file(model: str) -> str:
    """A model string as a file name: ``hf:/models/pythia-1b`` -> ``hf-models-pythia-1b``; a
    digest keeps two models whose names fold together apart."""
    folded = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-.")[:80] or "model"
    if folded == model:
        return folded
    return f"{folded}-{hashlib.sha256(model.encode()).hexdigest()[:8]}"
