"""Export a stored version: anthropics/evals JSONL, a Hugging Face dataset, an Inspect task or
an lm-evaluation-harness task folder (:mod:`mwe.export.harness`), each with a card.

Where an export may go, and how it is written beside its target and moved into place, is
:mod:`mwe.folders`' rule, which the report keeps too. The version's content hash is checked
before anything is written.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mwe.errors import UsageError
from mwe.export.harness import HarnessFiles
from mwe.export.hub_eval import EVAL_YAML, write_eval_results, write_eval_yaml
from mwe.folders import MARKER, staged_folder
from mwe.formats import format_names, get_format
from mwe.item_records import item_hash, write_csv, write_jsonl
from mwe.items import Item
from mwe.report.summary import provenance_lines
from mwe.review.reviews import (
    MIN_AGREEMENT,
    MIN_REVIEWED,
    PEREZ_AGREEMENT,
    LabelValidation,
    ReviewSummary,
    check_validated,
    label_validation,
    review_summary,
)
from mwe.scoring.results import results
from mwe.store import EvalSetInfo, Store

ExportFormat = Literal["jsonl", "csv", "hf", "inspect", "lm-eval"]
EXPORT_FORMATS: tuple[str, ...] = ("jsonl", "csv", "hf", "inspect", "lm-eval")
DEFAULT_EXPORT_ROOT = Path("generated_evals")
_HF_PARQUET = "data/test-00000-of-00001.parquet"
# Written into every export: `--force` replaces a folder only if it holds this file.
EXPORT_MARKER = MARKER


@dataclass(frozen=True)
class ExportResult:
    """Where an export went and what it holds."""

    path: Path
    ref: str
    items: int
    content_hash: str
    #: The per-model Hub eval results an ``hf`` export wrote (see :func:`export_set`).
    eval_results: list[Path] = field(default_factory=list)


def default_export_dir(info: EvalSetInfo, fmt: str) -> Path:
    """``generated_evals/<name>-v<N>-<format>``."""
    return DEFAULT_EXPORT_ROOT / f"{info.name}-v{info.version}-{fmt}"


def export_set(
    store: Store,
    ref: str,
    fmt: str,
    *,
    out: str | Path | None = None,
    force: bool = False,
    push_to_hub: str | None = None,
    hub_id: str | None = None,
    require_validated: bool = False,
    min_agreement: float = MIN_AGREEMENT,
    min_reviewed: int = MIN_REVIEWED,
) -> ExportResult:
    """Export version ``ref`` (``name`` or ``name@N``) as ``fmt`` into folder ``out``.

    ``out`` must not exist or be empty unless ``force``. With ``push_to_hub`` (``hf`` only) the
    dataset and its card are also pushed to that Hub repository with the user's token. An
    ``hf`` export whose Hub id is known (``hub_id``, else ``push_to_hub``) also holds
    ``eval_results/<model>.yaml`` for each model with stored scores of the version: the files
    to add to each model's repository as ``.eval_results/<name>.yaml``. With
    ``require_validated``, a version that fewer than ``min_reviewed`` items were reviewed of,
    or whose reviewers kept less than ``min_agreement`` of its labels, is refused
    (:class:`mwe.errors.UsageError`) before anything is written.
    """
    if fmt not in EXPORT_FORMATS:
        raise UsageError(
            f"unknown export format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}"
        )
    # `is not None`, not truth: an empty --hub-id or --push-to-hub is a bad id, not no id.
    if push_to_hub is not None and fmt != "hf":
        raise UsageError("--push-to-hub needs --format hf")
    if hub_id is not None and fmt != "hf":
        raise UsageError("--hub-id needs --format hf")
    for repo in (push_to_hub, hub_id):
        if repo is not None:
            check_hub_id(repo)
    dataset_id = hub_id if hub_id is not None else push_to_hub
    info = store.resolve(ref)
    validation = label_validation(store, info)
    if require_validated:
        check_validated(
            info.ref, validation, min_agreement=min_agreement, min_reviewed=min_reviewed
        )
    one_answer = info.format in format_names() and get_format(info.format).min_answers < 2
    if fmt in ("inspect", "lm-eval") and one_answer:
        raise UsageError(
            f"{info.ref} is a {info.format} set (one answer whose likelihood is measured), "
            f"not a choice between answers: export it as jsonl or csv"
        )
    out = out if out is not None else default_export_dir(info, fmt)
    marker: dict[str, object] = {"ref": info.ref, "format": fmt, "content_hash": info.content_hash}
    with staged_folder(
        out, force=force, db_path=store.path, what="export", marker=marker
    ) as staged:
        staging = staged.folder
        items = store.verified_items(info)
        usage = None
        results_paths: list[Path] = []
        if fmt in ("jsonl", "csv"):
            data_path = f"{info.name}.{fmt}"
            (write_jsonl if fmt == "jsonl" else write_csv)(items, staging / data_path)
        elif fmt == "hf":
            dataset = _write_hf(items, staging)
            data_path = _HF_PARQUET
            # The card's `configs` name this config and split: the benchmark file points there.
            description = info.description or _default_description(info)
            write_eval_yaml(info, description, staging, config="default", split="test")
            if dataset_id is not None:
                results_paths = write_eval_results(
                    info, results(store, info.ref), dataset_id, staging
                )
        else:
            harness = _write_harness(fmt, info, items, staging)
            data_path, usage = harness.data_path, harness.usage
        card = dataset_card(
            info,
            items,
            data_path,
            review_summary(store, info),
            usage=usage,
            validation=validation,
        )
        (staging / "README.md").write_text(card, encoding="utf-8")
    target = staged.target
    if push_to_hub:
        _push(dataset, target / "README.md", push_to_hub)
    moved = [target / p.relative_to(staging) for p in results_paths]
    return ExportResult(target, info.ref, len(items), info.content_hash, moved)


_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def check_hub_id(repo: str) -> str:
    """``repo`` if it is shaped like a Hub repository id (``ORG/NAME``), else a one-line error."""
    if not _HUB_ID.fullmatch(repo) or ".." in repo:
        # The example must be a valid id itself: the last part of ``repo``, folded.
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", repo.rsplit("/", 1)[-1]).strip("-.")[:96]
        example = f"my-org/{name.replace('..', '.') or 'my-eval'}"
        raise UsageError(f"{repo!r} is not a Hub dataset id: write ORG/NAME, e.g. {example}")
    return repo


def hf_features() -> Any:
    """The declared features of an ``hf`` export."""
    from datasets import Features, List, Value

    return Features(
        {
            "question": Value("string"),
            "statement": Value("string"),
            "answer_matching_behavior": Value("string"),
            # Always a list here, so one feature type fits every set; JSONL keeps the original.
            "answer_not_matching_behavior": List(Value("string")),
            "label_confidence": Value("float64"),
            "format": Value("string"),
            "item_hash": Value("string"),
            "metadata": Value("string"),  # JSON text: the fields outside the schema
        }
    )


def _hf_row(item: Item) -> dict[str, object]:
    return {
        "question": item.question,
        "statement": item.statement,
        "answer_matching_behavior": item.answer_matching_behavior,
        "answer_not_matching_behavior": item.not_matching,
        "label_confidence": item.label_confidence,
        "format": item.format,
        "item_hash": item_hash(item),
        "metadata": json.dumps(item.metadata),
    }


def _write_hf(items: list[Item], folder: Path) -> Any:
    from datasets import Dataset, DatasetDict, disable_progress_bars

    disable_progress_bars()  # the CLI prints its own one-line summary
    test = Dataset.from_list([_hf_row(item) for item in items], features=hf_features())
    dataset = DatasetDict({"test": test})
    dataset.save_to_disk(str(folder))
    # A Parquet copy makes the folder a Hub-style repository too (`load_dataset(folder)`), which
    # is what the card's `configs` points at.
    (folder / _HF_PARQUET).parent.mkdir(parents=True, exist_ok=True)
    test.to_parquet(str(folder / _HF_PARQUET))
    return dataset


def _write_harness(fmt: str, info: EvalSetInfo, items: list[Item], folder: Path) -> HarnessFiles:
    if fmt == "inspect":
        from mwe.export.inspect_task import write_inspect

        return write_inspect(info, items, folder)
    from mwe.export.lm_eval_task import write_lm_eval

    return write_lm_eval(info, items, folder)


def _push(dataset: Any, card_path: Path, repo: str) -> None:
    from huggingface_hub import DatasetCard

    dataset.push_to_hub(repo)
    # push_to_hub writes a card of its own; replace it with ours, which carries the provenance.
    DatasetCard(card_path.read_text(encoding="utf-8")).push_to_hub(repo)
    # The benchmark file, at the repository's root, where the Hub looks for it.
    from huggingface_hub import HfApi

    HfApi().upload_file(
        path_or_fileobj=str(card_path.parent / EVAL_YAML),
        path_in_repo=EVAL_YAML,
        repo_id=repo,
        repo_type="dataset",
    )


def _review_section(reviews: ReviewSummary | None) -> str:
    """The card's review figures, as a list; or a line saying there are none."""
    if reviews is None or not reviews.answers:
        return "Not reviewed by people yet (`mwe review` records their checks)."
    first = (
        f"- {reviews.items_reviewed} items reviewed by {len(reviews.reviewers)} reviewer(s), "
        f"{reviews.answers} answers ({reviews.verdicts['yes']} label right, "
        f"{reviews.verdicts['no']} wrong, {reviews.verdicts['unsure']} unsure)"
    )
    lines = [first]
    if reviews.label_agreement is not None:
        lines.append(
            f"- Label agreement: {reviews.label_agreement:.1%} (95% Wilson interval "
            f"{reviews.agreement_low:.1%} to {reviews.agreement_high:.1%})"
        )
    if reviews.mean_relevance is not None:
        lines.append(f"- Mean relevance: {reviews.mean_relevance:.2f} / 5")
    if reviews.kappa is not None:
        lines.append(
            f"- Inter-reviewer agreement: Fleiss' kappa {reviews.kappa:.2f} "
            f"on {reviews.kappa_items} items with two or more reviewers"
        )
    if reviews.judge_agreement is not None:
        auroc = "n/a" if reviews.judge_auroc is None else f"{reviews.judge_auroc:.3f}"
        lines.append(
            f"- Judge against reviewers ({reviews.judge_items} items): agreement "
            f"{reviews.judge_agreement:.1%}, AUROC of label confidence {auroc}"
        )
    return "\n".join(lines)


def _validation_section(validation: LabelValidation | None) -> str:
    """The card's validation figures (agreement with the labels), or nothing."""
    if validation is None or validation.agreement is None:
        return ""
    return (
        f"\n\n### Validation\n\n"
        f"- Agreement with the labels (95% Wilson interval): {validation.agreement_text()} "
        f"over {validation.answers} answers on {validation.items_reviewed} reviewed items\n"
        f"- Cohen's kappa of the reviewers' labels against the set's (95% interval): "
        f"{validation.kappa_text()}\n"
        f"- For comparison, Perez et al. 2022 report {PEREZ_AGREEMENT:.1%} crowdworker "
        "agreement with their labels"
    )


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return label
    return "100K<n<1M" if n < 1_000_000 else "n>1M"


def _default_description(info: EvalSetInfo) -> str:
    if info.provenance.get("kind") == "import":
        names = ", ".join(Path(s["path"]).name for s in info.provenance.get("sources", []))
        return f"Imported with mwe from {names}."
    return "A model-written evaluation set made with mwe."


def dataset_card(
    info: EvalSetInfo,
    items: list[Item],
    data_path: str,
    reviews: ReviewSummary | None = None,
    usage: str | None = None,
    validation: LabelValidation | None = None,
) -> str:
    """The README.md of an export: YAML front matter, then provenance, content hash and what
    human reviewers found (`mwe review`); ``usage`` (Markdown) says how to run the export."""
    from huggingface_hub import DatasetCardData

    license_id = info.provenance.get("license", "unknown")
    data = DatasetCardData(
        pretty_name=info.ref,
        license=license_id,
        language=["en"],
        task_categories=["multiple-choice"],
        annotations_creators=["machine-generated"],
        size_categories=[_size_category(len(items))],
        tags=["model-written-evals", "ai-safety", info.format],
        configs=[{"config_name": "default", "data_files": [{"split": "test", "path": data_path}]}],
    )
    balance = Counter(item.answer_matching_behavior for item in items)
    balance_lines = "\n".join(
        f"| `{label!r}` | {count} |" for label, count in sorted(balance.items())
    )
    provenance = json.dumps(info.provenance, indent=2, sort_keys=True)
    review = _review_section(reviews) + _validation_section(validation)
    made = "\n".join(f"- {line}" for line in provenance_lines(info.provenance))
    running = f"\n## Running it\n\n{usage}\n" if usage else ""
    return f"""---
{data.to_yaml()}
---

# {info.ref}

{info.description or _default_description(info)}

- Version: `{info.ref}` (format `{info.format}`, {len(items)} items)
- Content hash (sha256 over the item hashes, in order): `{info.content_hash}`
- Created: {info.created_at.isoformat()}
{running}
## Label balance (`answer_matching_behavior`)

| answer | items |
|---|---|
{balance_lines}

## Fields

Records follow the schema of the public model-written evaluations (Perez et al. 2022):
`question`, `answer_matching_behavior`, `answer_not_matching_behavior`, and for persona items
`statement` and `label_confidence` (the judge's probability that the label is right).

## How it was made

{made}

The whole provenance is at the end of this card.

## Human review

{review}

## Provenance

```json
{provenance}
```

## Citation

The method: Perez et al. 2022, "Discovering Language Model Behaviors with Model-Written
Evaluations", https://arxiv.org/abs/2212.09251
"""
