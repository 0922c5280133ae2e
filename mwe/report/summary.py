"""A set described in a few lines of text, shared by `mwe show`, the report and the dataset
card: how it was made, by which models, at what cost (the whole provenance is `mwe show --json`)."""

from __future__ import annotations

import json
from typing import Any


def model_name(identity: Any) -> str:
    """``backend:model`` of a stored model identity."""
    if not isinstance(identity, dict):
        return str(identity)
    return f"{identity.get('backend', '?')}:{identity.get('model', '?')}"


def provenance_lines(prov: dict[str, Any]) -> list[str]:
    """The provenance in a few lines: how the set was made, by which models, at what cost
    (the whole of it is ``mwe show --json``)."""
    version = prov.get("mwe_version", "?")
    if prov.get("kind") == "import":
        paths = ", ".join(str(src.get("path", "?")) for src in prov.get("sources", []))
        lines = [f"made by: import of {paths} (mwe {version})"]
        if prov.get("license"):
            lines.append(f"license: {prov['license']}")
        return lines
    if prov.get("kind") != "generate":
        return [f"made by: {prov.get('kind', 'unknown')} (mwe {version})"]
    judge = model_name(prov.get("judge"))
    generator = model_name(prov.get("generator"))
    made = f"made by: generate (mwe {version}), generator {generator}, judge {judge}"
    lines = [f"{made} ({prov.get('judge_method', '?')}), run {prov.get('run_id', '?')}"]
    counts = prov.get("counts") or {}
    if counts:
        dropped = counts.get("dropped") or {}
        why = ", ".join(f"{n:,} {reason}" for reason, n in dropped.items() if n)
        short = {k: v for k, v in (counts.get("shortfall") or {}).items() if v}
        lines.append(
            f"pipeline: {counts.get('calls', 0):,} generator calls, "
            f"{counts.get('parsed', 0):,} parsed, {counts.get('kept', 0):,} kept"
            + (f" (dropped: {why})" if why else "")
            + (f", shortfall {json.dumps(short)}" if short else "")
        )
    for u in prov.get("usage") or []:
        cost = "unknown" if u.get("cost_usd") is None else f"${u['cost_usd']:.4f}"
        lines.append(
            f"{u.get('role', '?')}: {u.get('model', '?')}, {u.get('requests', 0):,} requests "
            f"({u.get('cache_hits', 0):,} cached), {u.get('input_tokens', 0):,}+"
            f"{u.get('output_tokens', 0):,} tokens, {cost}"
        )
    if "elapsed_s" in prov:
        lines.append(f"time: {prov['elapsed_s']} s")
    return lines


#: Label-balance rows shown at most; a set with more distinct answers (sequence_prob: one
#: completion per item) is summarised.
BALANCE_ROWS = 8


def balance_rows(balance: dict[str, int], top: int = BALANCE_ROWS) -> list[tuple[str, int, str]]:
    """The label balance as (answer, items, share) rows, at most ``top`` + 1 of them: a set
    whose every item has an answer of its own is one row saying so, and one with many answers
    shows the ``top`` most common and one row for the rest."""
    total = sum(balance.values()) or 1

    def share(n: int) -> str:
        return f"{n / total:.1%}"

    if len(balance) > top and all(n == 1 for n in balance.values()):
        return [(f"one answer per item ({len(balance):,} distinct)", total, share(total))]
    ranked = (
        sorted(balance.items(), key=lambda kv: -kv[1]) if len(balance) > top else balance.items()
    )
    rows = [(repr(label), n, share(n)) for label, n in list(ranked)[:top]]
    if len(balance) > top:
        rest = sum(n for _, n in list(ranked)[top:])
        rows.append((f"{len(balance) - top:,} other answers", rest, share(rest)))
    return rows


def spec_lines(spec: dict[str, Any] | None) -> list[str]:
    """A stored spec (:meth:`mwe.generate.spec.Spec.to_json`) in a few lines, for `mwe show`."""
    if not spec:
        return []
    fallback = spec.get("fallback") or []
    mark = {part: " (fallback: the generator ignored the format)" for part in fallback}
    return [
        f"spec definition: {spec.get('definition', '?')}{mark.get('definition', '')}",
        f"spec agree: {spec.get('agree_who', '?')}{mark.get('agree', '')}",
        f"spec disagree: {spec.get('disagree_who', '?')}{mark.get('disagree', '')}",
    ]


def quality_rows(quality: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The quality metrics of a version (:func:`mwe.generate.quality.quality_metrics`) as (name, value,
    what it means) rows; none for a version that has no metrics (an import)."""
    if not quality:
        return []
    shortcut = quality.get("shortcut_accuracy")
    diversity = quality.get("diversity_mean_cosine")
    return [
        ("duplicate rate", f"{quality.get('duplicate_rate', 0):.1%}", "of parsed candidates"),
        (
            "near-duplicate rate",
            f"{quality.get('near_duplicate_rate', 0):.1%}",
            "of parsed candidates",
        ),
        ("few-shot copies", f"{quality.get('fewshot_copies', 0):,}", "dropped"),
        (
            "diversity (mean pairwise cosine)",
            "-" if diversity is None else f"{diversity:.3f}",
            "lower is more diverse",
        ),
        (
            "shortcut accuracy",
            "-" if shortcut is None else f"{shortcut:.2f}",
            "the label predicted from the words alone; 0.5 is chance"
            + ("; FLAG: the label is guessable" if quality.get("shortcut_flag") else ""),
        ),
    ]


def quality_line(quality: dict[str, Any]) -> str | None:
    """:func:`quality_rows` on one line; ``None`` for a version without metrics."""
    rows = quality_rows(quality)
    return "quality: " + ", ".join(f"{name} {value}" for name, value, _ in rows) if rows else None
