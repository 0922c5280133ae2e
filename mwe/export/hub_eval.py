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
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mwe.export.harness import slug
from mwe.store import EvalSetInfo

EVAL_YAML = "eval.yaml"
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
