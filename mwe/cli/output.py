"""How the commands print: rich tables and lines, every piece of data shown as text."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import Any, Self

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from mwe.items import Item
from mwe.progress import ProgressEvent
from mwe.report.summary import balance_rows, quality_line
from mwe.store import EvalSetInfo
from mwe.terminal import plain, shown

# soft_wrap: long lines (hashes, paths) stay whole when piped, instead of breaking at 80 columns.
# Piped output gets a wide fixed width, so result tables are not squeezed into 80 columns.
# emoji=False: rich would turn ":a:" in a model name or a path into an emoji (function:A:b
# printed as "function🅰b"); escape() does not stop it.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200, emoji=False)


def info_json(info: EvalSetInfo) -> dict[str, Any]:
    return {
        "ref": info.ref,
        "name": info.name,
        "version": info.version,
        "format": info.format,
        "items": info.item_count,
        "content_hash": info.content_hash,
        "created_at": info.created_at.isoformat(),
        "description": info.description,
        "provenance": info.provenance,
        "stats": info.stats,
    }


def balance_text(balance: dict[str, int]) -> str:
    """The label balance on one line, bounded however many answers there are."""
    return ", ".join(f"{shown(label)} {n:,} ({share})" for label, n, share in balance_rows(balance))


def items_table(items: list[Item], title: str, compact: bool = False) -> Table:
    """Items with their answers; ``compact`` puts each on one line (its text cut at 80
    characters), for a summary that fits a screen."""
    table = Table(
        "question", "matching", "not matching", "conf.", title=title, show_lines=not compact
    )
    for item in items:
        confidence = "" if item.label_confidence is None else f"{item.label_confidence:.2f}"
        text = item.text
        if compact:
            text = " ".join(text.split())
            text = text if len(text) <= 80 else text[:79] + "…"
        table.add_row(
            shown(text),
            shown(repr(item.answer_matching_behavior)),
            shown(", ".join(repr(a) for a in item.not_matching)),
            confidence,
        )
    return table


def print_quality(quality: dict[str, Any]) -> None:
    if line := quality_line(quality):
        flag = " [red]FLAG: the label is guessable from the words alone[/]"
        console.print(shown(line) + (flag if quality.get("shortcut_flag") else ""))


def print_rollout_results(results: list[Any]) -> None:
    """One line per target: mean score and elicitation rate with their 95% intervals."""
    for r in results:
        if r.mean_score is None:
            console.print(f"{shown(r.target)}: none of {r.rollouts:,} rollouts was scored")
            continue
        low, high = r.mean_ci
        e_low, e_high = r.elicitation_ci
        console.print(
            f"{shown(r.target)}: mean score {r.mean_score:.2f} [{low:.2f}, {high:.2f}], "
            f"elicitation rate (>= {r.threshold}) {r.elicitation_rate:.3f} "
            f"[{e_low:.3f}, {e_high:.3f}] on {r.scored:,} of {r.rollouts:,} rollouts; "
            f"realism {_maybe(r.mean_realism)}, evaluation awareness {_maybe(r.mean_awareness)}"
        )


def _maybe(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def transcript_lines(row: Any, scenario: str) -> list[str]:
    """A stored rollout for the terminal: header, scenario, turns, the judge's scores."""
    scores = ", ".join(
        f"{name} {'-' if value is None else value}"
        for name, value in (("realism", row.realism), ("awareness", row.awareness))
    )
    score = "-" if row.score is None else row.score
    header = f"#{row.id} {shown(row.target)}, scenario {row.scenario}, rep {row.rep}"
    lines = ["", f"[bold]{header}: score {score}[/] ({scores})", f"[dim]{shown(scenario)}[/]"]
    lines += [f"[bold]{role}:[/] {shown(text)}" for role, text in row.turns]
    lines += [f"[italic]evidence:[/] {shown(quote)}" for quote in row.evidence]
    return lines


def result_line(r: Any) -> str:
    """One scored model of a set on one line: its matching rate and interval (its loss where
    the set has no rate: sequence_prob)."""
    if math.isnan(r.matching_rate):
        measure = f"loss {_num(r.loss)} [{_num(r.loss_ci_low)}, {_num(r.loss_ci_high)}]"
    else:
        measure = f"matching rate {r.matching_rate:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
    return f"{shown(r.model)} ({shown(r.prompt_format)}): {measure} on {r.items:,} items"


def _num(value: float) -> str:
    """A metric to three places, or '-' where it is not defined (NaN)."""
    return "-" if math.isnan(value) else f"{value:.3f}"


def print_gaps(gaps: list[Any]) -> None:
    """One line per set scored with a control: the rate with and without, and the gap."""
    for g in gaps:
        console.print(
            f"{shown(g.set)} x {shown(g.model)} ({shown(g.prompt_format)}): matching rate "
            f"{g.rate:.3f} as asked, {g.control_rate:.3f} {shown(g.control)}; gap {g.gap:+.3f} "
            f"[{g.ci_low:+.3f}, {g.ci_high:+.3f}] on {g.items:,} and {g.control_items:,} items"
        )


def print_generation(result: Any) -> None:
    counts, quality, info = result.counts, result.quality, result.info
    table = Table(title=shown(info.ref) + (" (unchanged)" if result.unchanged else ""), box=None)
    table.add_column("", style="bold")
    table.add_column("")
    dropped = counts.get("dropped", {})
    table.add_row("generator calls", f"{counts['calls']:,}")
    table.add_row("replies dropped", json.dumps(counts.get("replies_dropped", {})))
    table.add_row("candidates parsed", f"{counts['parsed']:,}")
    for reason, label in (
        ("duplicate", "duplicates"),
        ("near duplicate", "near duplicates"),
        ("few-shot copy", "few-shot copies"),
    ):
        table.add_row(f"  {label}", f"{dropped.get(reason, 0):,}")
    table.add_row("judged", f"{counts['judged']:,}")
    for reason in ("judge disagrees", "off topic", "below the cut"):
        table.add_row(f"  {reason}", f"{dropped.get(reason, 0):,}")
    table.add_row("kept", f"{counts['kept']:,}")
    short = {k: v for k, v in counts["shortfall"].items() if v}
    table.add_row("shortfall", json.dumps(short) if short else "none")
    table.add_row("label balance", balance_text(quality["balance"]))
    conf = quality.get("label_confidence") or {}
    table.add_row("mean label confidence", f"{conf.get('mean', 0):.3f} (estimated ceiling)")
    for u in result.usage:
        cost = "unknown" if u.cost_usd is None else f"${u.cost_usd:.4f}"
        table.add_row(
            u.role,
            f"{shown(u.model)}: {u.requests:,} requests, {u.cache_hits:,} cached, "
            f"{u.input_tokens:,}+{u.output_tokens:,} tokens, {cost}",
        )
    table.add_row("time", f"{result.elapsed_s:.1f} s")
    console.print(table)
    print_quality(quality)


def results_table(rows: list[Any], title: str) -> Table:
    table = Table(
        "set",
        "model",
        "format",
        "method",
        "items",
        "matching rate",
        "95% CI",
        "argmax rate",
        "loss",
        title=title,
        box=None,
    )
    for r in rows:
        unscorable = f" ({r.unscorable} unscorable)" if r.unscorable else ""
        table.add_row(
            shown(r.set),
            shown(r.model),
            shown(r.prompt_format),
            shown(r.method),
            f"{r.items:,}{unscorable}",
            _num(r.matching_rate),
            "-" if math.isnan(r.ci_low) else f"[{r.ci_low:.3f}, {r.ci_high:.3f}]",
            _num(r.argmax_rate),
            _num(r.loss),
        )
    return table


def emit_results(rows: list[Any], output: str, title: str) -> None:
    """Print score results as a table with ``title``, or as CSV or JSON."""
    if output == "json":
        click.echo(json.dumps([r.to_json() for r in rows], indent=2))
    elif output == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0].to_json()) if rows else [])
        writer.writeheader()
        for r in rows:
            writer.writerow(r.to_json())
    else:
        console.print(results_table(rows, title))


class _StatusColumn(ProgressColumn):
    """The live state a progress event carries (models' concurrency and cost, or a rate)."""

    def render(self, task: Task) -> Text:
        status = task.fields.get("status")
        return Text(status() if status else "", style="dim")


class RichProgress:
    """Renders :class:`mwe.progress.ProgressEvent`\\ s as rich bars on stderr, one per stage.

    Use it as a context manager around the work, passing the instance as the progress
    callback.
    """

    def __init__(self, stderr: Console | None = None) -> None:
        self.console = stderr or Console(stderr=True, emoji=False)
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._stage: str | None = None

    def __call__(self, event: ProgressEvent) -> None:
        if event.total is None:  # one uncounted step: a line
            self._stop()
            # One line whatever the width: a warning must not break over lines (or greps).
            self.console.print(
                f"[bold]{shown(event.stage)}[/]: {shown(event.note)}", soft_wrap=True
            )
            return
        if event.stage != self._stage or self._bar is None:
            self._stop()
            self._bar = Progress(
                SpinnerColumn(),
                # No markup: rich reads markup and emoji codes (":a:") in it, and a stage
                # names a set and a model, anything a user typed.
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                _StatusColumn(),
                console=self.console,
            )
            self._bar.start()
            self._task = self._bar.add_task(
                plain(event.stage), total=event.total, status=event.status
            )
            self._stage = event.stage
        assert self._task is not None
        self._bar.update(self._task, completed=event.done)

    def _stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        self._bar, self._task, self._stage = None, None, None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()


def print_judge_check(
    result: Any, behavior: str, card: dict[str, Any] | None, caveats: Sequence[str] = ()
) -> None:
    """The figures of `mwe judge-check`, then why they may flatter the judge (in-sample, or a
    set the same judge selected); for a preference model, also the figures it was validated
    with (its card: the data it was fitted on and its held-out figures)."""
    auroc = "n/a (one label)" if result.auroc is None else f"{result.auroc:.3f}"
    console.print(
        f"{shown(result.ref)}: judge {shown(result.judge)} ({result.method}) on "
        f"{result.items:,} items, behaviour {shown(repr(behavior))}\n"
        f"agreement {result.agreement:.3f}  AUROC {auroc}  "
        f"mean p(label) {result.mean_confidence:.3f}"
    )
    if result.label_spearman is not None:
        console.print(
            f"Spearman with the set's own label_confidence {result.label_spearman:.3f} "
            f"({result.label_confidence_items:,} items)"
        )
    for line in caveats:
        console.print(f"[yellow]{shown(line)}[/]", soft_wrap=True)
    if card:
        for line in card_lines(card):
            console.print(shown(line))


def print_checks_summary(summary: Any) -> None:
    """The line after several sets' judge-checks: median and worst AUROC, how many below 0.7."""
    if summary is None:
        console.print("no set holds both labels: no AUROC to sum up")
        return
    sets = f"{summary.sets} set{'s' if summary.sets != 1 else ''}"
    if summary.one_label:
        sets += f" with both labels ({summary.one_label} more with one label: no AUROC)"
    console.print(
        f"over {sets}: AUROC median {summary.auroc_median:.3f}, worst "
        f"{summary.auroc_worst:.3f} ({shown(summary.worst_ref)}), {summary.below_0_7} below "
        f"0.7; agreement median {summary.agreement_median:.3f}"
    )


def card_lines(card: dict[str, Any]) -> list[str]:
    """A preference model's card in a few lines."""
    lines = []
    if data := card.get("data"):
        lines.append(f"fitted on {data}")
    if held := card.get("held_out"):
        below = f", {held['below_0_7']} below 0.7" if "below_0_7" in held else ""
        lines.append(
            f"held-out behaviours ({held['split']}): AUROC median {held['auroc_median']:.3f}, "
            f"worst {held['auroc_worst']:.3f}{below}; accuracy median "
            f"{held['accuracy_median']:.3f}, worst {held['accuracy_worst']:.3f}"
        )
    if rel := card.get("relevance"):
        lines.append(
            f"relevance, held-out behaviours: AUROC {rel['auroc_vs_junk']:.3f} against junk "
            f"(phrase salad, fragments, questions, meta-text), {rel['auroc_vs_off_topic']:.3f} "
            "against other behaviours' statements"
        )
    if credit := card.get("credit"):
        lines.append(credit)
    return lines


def _dollars(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.4f}"


def print_plan(plan: list[Any], batch: bool = True) -> None:
    """The requests a run would send (:mod:`mwe.estimate`), then that nothing was sent; the
    "with --batch" column only for a command that has --batch."""
    from mwe.estimate import CHARS_PER_TOKEN, total_cost

    columns = ["stage", "model", "requests", "generations", "input tokens", "output tokens"]
    columns += ["cost", "with --batch"] if batch else ["cost"]
    table = Table(*columns, title="Dry run: the requests this run would send")
    for p in plan:
        table.add_row(
            shown(p.stage),
            shown(p.model),
            f"{p.requests:,}",
            f"{p.generations:,}",
            f"{p.input_tokens:,}",
            f"{p.output_tokens:,}",
            _dollars(p.cost_usd),
            *([_dollars(p.batch_cost_usd)] if batch else []),
        )
    table.add_row(
        "total",
        "",
        f"{sum(p.requests for p in plan):,}",
        f"{sum(p.generations for p in plan):,}",
        f"{sum(p.input_tokens for p in plan):,}",
        f"{sum(p.output_tokens for p in plan):,}",
        _dollars(total_cost(plan)),
        *([_dollars(total_cost(plan, batch=True))] if batch else []),
    )
    console.print(table)
    console.print(
        f"Tokens are estimated ({CHARS_PER_TOKEN} characters a token); a price is unknown for a "
        "model mwe has no price for, or on a custom server. Nothing was sent, nothing stored."
    )


def _p_value(p: float) -> str:
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def comparison_table(comparison: Any) -> Table:
    """One row per (model pair, set): n, both rates, B - A with its paired 95% interval, the
    items only one gives the matching answer, and McNemar's exact p (Holm-corrected)."""
    table = Table(
        "model A",
        "model B",
        "set",
        "format",
        "n",
        "rate A",
        "rate B",
        "B - A [95% CI]",
        "A only / B only",
        "p (Holm)",
        title="paired comparison (matching rate; McNemar exact on the argmax answers)",
        box=None,
    )
    for r in comparison.pairs:
        table.add_row(
            shown(r.model_a),
            shown(r.model_b),
            shown(r.set),
            shown(r.prompt_format),
            f"{r.n:,}",
            f"{r.rate_a:.3f}",
            f"{r.rate_b:.3f}",
            f"{r.difference:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]",
            f"{r.only_a} / {r.only_b}",
            _p_value(r.p_holm),
        )
    return table


def print_comparison(comparison: Any) -> None:
    """The comparison table, the items on which each pair differs most, and the scaling fits."""
    console.print(comparison_table(comparison))
    pairs = list(dict.fromkeys((d.model_a, d.model_b) for d in comparison.differing))
    for a, b in pairs:
        console.print(f"\nItems where {shown(b)} and {shown(a)} differ most (p(matching) A -> B):")
        for d in comparison.differing:
            if (d.model_a, d.model_b) != (a, b):
                continue
            text = " ".join(d.text.split())
            text = text if len(text) <= 90 else text[:89] + "…"
            console.print(
                f"  {shown(d.set)} #{d.index}: {d.prob_a:.3f} -> {d.prob_b:.3f} "
                f"({d.difference:+.3f}; matching {shown(repr(d.matching))}) {shown(text)}",
                markup=False,
            )
    if comparison.scaling:
        console.print()
    print_scaling(comparison.scaling)


def print_scaling(fits: list[Any]) -> None:
    """One line per scaling fit (of a rate, or of knowing and doing): the slope, its 95%
    interval and the verdict."""
    for fit in fits:
        console.print(shown(fit.line()), markup=False)


def _share(value: float | None, low: float | None, high: float | None) -> str:
    if value is None or low is None or high is None:
        return "-"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def print_knowledge(rows: list[Any]) -> None:
    """The knowing-versus-doing table: the four cells (recognises the behaviour's answer or
    not, gives it or not) and the rates with their 95% intervals."""
    if not rows:
        return
    table = Table(
        "set",
        "model",
        "format",
        "items",
        "knows+gives",
        "knows, not",
        "gives, unknowing",
        "neither",
        "behaviour rate",
        "recognition",
        "behaviour when recognised",
        title="knowing vs doing (most likely answers; 95% Wilson intervals)",
        box=None,
    )
    for r in rows:
        table.add_row(
            shown(r.set),
            shown(r.model),
            shown(r.prompt_format),
            f"{r.items:,}",
            f"{r.recognised_given:,}",
            f"{r.recognised_not_given:,}",
            f"{r.unrecognised_given:,}",
            f"{r.unrecognised_not_given:,}",
            _share(r.behaviour_rate, r.behaviour_low, r.behaviour_high),
            _share(r.recognition, r.recognition_low, r.recognition_high),
            _share(r.behaviour_when_recognised, r.when_recognised_low, r.when_recognised_high),
        )
    console.print(table)
