"""The `mwe` commands that call models: ask, generate, judge-check, score and results.

They register on the group defined in :mod:`mwe.cli`, which imports this module.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from mwe.cli import _balance_text, _open, _print_quality, cli, console
from mwe.terminal import plain, shown


@cli.command("ask")
@click.argument("model")
@click.argument("prompt")
@click.option("--system", help="A system message.")
@click.option(
    "--base-url", envvar="MWE_BASE_URL", help="An OpenAI-compatible server (env MWE_BASE_URL)."
)
@click.option("-n", "--samples", default=1, show_default=True, help="Samples to draw.")
@click.option("--temperature", default=1.0, show_default=True)
@click.option("--max-tokens", default=256, show_default=True)
@click.option("--answers", help="Comma-separated answers to score instead, e.g. ' Yes, No'.")
@click.option("--max-concurrency", envvar="MWE_MAX_CONCURRENCY", default=32, show_default=True)
@click.pass_context
def ask_cmd(
    ctx: click.Context,
    model: str,
    prompt: str,
    system: str | None,
    base_url: str | None,
    samples: int,
    temperature: float,
    max_tokens: int,
    answers: str | None,
    max_concurrency: int,
) -> None:
    """Send PROMPT to MODEL through the call cache; print the replies (or answer log-probs).

    A quick way to check that a backend works: a second identical call is answered from the
    cache. MODEL is e.g. openai:gpt-4.1-mini, anthropic:claude-sonnet-4-5, hf:PATH or local.
    """
    from mwe.models import LM, GenerateConfig, Message, get_backend

    messages = [Message(role="system", content=system)] if system else []
    messages.append(Message(role="user", content=prompt))
    # The backend first: a bad model string or a missing key must not create a store.
    backend = get_backend(model, **({"base_url": base_url} if base_url else {}))
    with _open(ctx, read_only=False) as store:
        lm = LM(backend, store, max_concurrency=max_concurrency)

        async def run() -> Any:
            try:
                if answers is not None:
                    return await lm.answer_logprobs(messages, answers.split(","))
                config = GenerateConfig(n=samples, temperature=temperature, max_tokens=max_tokens)
                return await lm.generate(messages, config)
            finally:
                await lm.aclose()

        result = asyncio.run(run())
    if answers is not None:
        for answer, logprob in result.logprobs.items():
            click.echo(
                f"{plain(repr(answer))}\t{'missing' if logprob is None else f'{logprob:.6f}'}"
            )
    else:
        for text in result:
            click.echo(plain(text))
    stats = lm.stats
    cost = "unknown" if stats.cost_usd is None else f"${stats.cost_usd:.6f}"
    click.echo(
        f"[{plain(lm.spec)}: {stats.requests} request(s), {stats.cache_hits} cached, "
        f"{stats.retries} retries, cost {cost}]",
        err=True,
    )


@cli.command("generate")
@click.argument("description")
@click.option("--name", help="Set name [default: from the description].")
@click.option(
    "--format",
    "fmt",
    default="persona",
    show_default=True,
    help="persona (statements, Yes/No) or choice (A/B questions).",
)
@click.option("-n", "n", default=1000, show_default=True, help="Items in the final set.")
@click.option(
    "--generator",
    envvar="MWE_GENERATOR",
    default="local",
    show_default=True,
    help="Model that writes candidates (env MWE_GENERATOR).",
)
@click.option(
    "--judge",
    envvar="MWE_JUDGE",
    default="local",
    show_default=True,
    help="Model that filters them (env MWE_JUDGE).",
)
@click.option(
    "--base-url",
    envvar="MWE_BASE_URL",
    help="OpenAI-compatible server for both models (env MWE_BASE_URL).",
)
@click.option("--oversample", default=3.0, show_default=True, help="Candidates per kept item.")
@click.option("--per-call", default=5, show_default=True, help="Candidates per generator call.")
@click.option(
    "--examples",
    type=click.Path(path_type=Path),
    help="Few-shot examples, anthropics/evals JSONL, sampled per call.",
)
@click.option(
    "--templates",
    type=click.Path(path_type=Path),
    help="Template folder [default: the built-in mwe/prompts/].",
)
@click.option("--seed", default=0, show_default=True, help="Seeds topics and example sampling.")
@click.option("--temperature", default=1.0, show_default=True, help="Generator temperature.")
@click.option(
    "--calibrate/--no-calibrate",
    default=False,
    show_default=True,
    help="Divide out the judge's bias towards one answer (helps small judges).",
)
@click.option("--max-concurrency", envvar="MWE_MAX_CONCURRENCY", default=32, show_default=True)
@click.pass_context
def generate_cmd(
    ctx: click.Context, description: str, fmt: str, base_url: str | None, **options: Any
) -> None:
    """Generate an eval set from a one-line DESCRIPTION of a behaviour.

    Runs spec, generate, parse, dedupe, judge (the preference-model filter) and select, then
    stores a new version. The same command after a crash resumes: every model call is cached.
    """
    from mwe.pipeline.run import generate_eval, prepare

    urls = {"generator_base_url": base_url, "judge_base_url": base_url}
    prepared = prepare(description=description, format=fmt, **urls, **options)
    with _open(ctx, read_only=False) as store:
        result = generate_eval(store, console=Console(stderr=True), prepared=prepared)
    _print_generation(result)


def _print_generation(result: Any) -> None:
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
    table.add_row("label balance", _balance_text(quality["balance"]))
    conf = quality.get("label_confidence") or {}
    table.add_row("mean label confidence", f"{conf.get('mean', 0):.3f} (estimated ceiling)")
    same = result.usage["generator"]["model"] == result.usage["judge"]["model"]
    for role in ("generator and judge",) if same else ("generator", "judge"):
        u = result.usage[role.split()[0]]
        cost = "unknown" if u["cost_usd"] is None else f"${u['cost_usd']:.4f}"
        table.add_row(
            role,
            f"{shown(u['model'])}: {u['requests']:,} requests, {u['cache_hits']:,} "
            f"cached, {u['input_tokens']:,}+{u['output_tokens']:,} tokens, {cost}",
        )
    table.add_row("time", f"{result.elapsed_s:.1f} s")
    console.print(table)
    _print_quality(quality)


@cli.command("judge-check")
@click.argument("ref")
@click.option("--judge", envvar="MWE_JUDGE", default="local", show_default=True)
@click.option("--base-url", envvar="MWE_BASE_URL", help="OpenAI-compatible server.")
@click.option("--behavior", help="The behaviour [default: the set's description or name].")
@click.option("--limit", type=click.IntRange(min=1), help="Check only the first N items.")
@click.option("--templates", type=click.Path(path_type=Path), help="Template folder.")
@click.option(
    "--calibrate/--no-calibrate",
    default=False,
    show_default=True,
    help="Divide out the judge's bias towards one answer.",
)
@click.pass_context
def judge_check_cmd(
    ctx: click.Context,
    ref: str,
    judge: str,
    base_url: str | None,
    behavior: str | None,
    limit: int | None,
    templates: Path | None,
    calibrate: bool,
) -> None:
    """Run a judge on labelled set REF and report its agreement with the labels and AUROC.

    Validate a judge on a set you trust (e.g. an imported public persona file) before letting
    it filter a generated one.
    """
    from mwe.models import LM, get_backend
    from mwe.pipeline.judge import judge_check
    from mwe.progress import lm_progress
    from mwe.templates import load_templates

    backend = get_backend(judge, **({"base_url": base_url} if base_url else {}))
    with _open(ctx, read_only=False) as store:
        info = store.resolve(ref)
        items = store.items(info, limit=limit)
        fmt = "choice" if info.format == "choice" else "persona"
        loaded = load_templates(fmt, templates)
        what = behavior or info.description or info.name.replace("-", " ")
        lm = LM(backend, store)

        async def run() -> Any:
            with lm_progress([lm], console=Console(stderr=True)) as progress:
                task = progress.add_task("judge-check", total=len(items))
                try:
                    return await judge_check(
                        lm,
                        items,
                        what,
                        loaded,
                        info.ref,
                        lambda k: progress.advance(task, k),
                        calibrate=calibrate,
                    )
                finally:
                    await lm.aclose()

        result = asyncio.run(run())
    auroc = "n/a (one label)" if result.auroc is None else f"{result.auroc:.3f}"
    console.print(
        f"{shown(result.ref)}: judge {shown(result.judge)} ({result.method}) on "
        f"{result.items:,} items, behaviour {shown(repr(what))}\nagreement {result.agreement:.3f}  AUROC {auroc}  "
        f"mean p(label) {result.mean_confidence:.3f}"
    )


def _results_table(rows: list[Any], title: str) -> Table:
    table = Table(
        "set",
        "model",
        "format",
        "method",
        "items",
        "matching rate",
        "95% CI",
        "argmax rate",
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
            f"{r.matching_rate:.3f}",
            f"[{r.ci_low:.3f}, {r.ci_high:.3f}]",
            f"{r.argmax_rate:.3f}",
        )
    return table


def _emit_results(rows: list[Any], output: str, title: str) -> None:
    if output == "json":
        click.echo(json.dumps([r.to_json() for r in rows], indent=2))
    elif output == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0].to_json()) if rows else [])
        writer.writeheader()
        for r in rows:
            writer.writerow(r.to_json())
    else:
        console.print(_results_table(rows, title))


_OUTPUT = click.option(
    "--output",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="How to print the results.",
)


@cli.command("score")
@click.argument("sets", nargs=-1, required=True)
@click.option(
    "--model",
    "models",
    multiple=True,
    required=True,
    help="Model to score (repeatable): local, hf:PATH, openai:..., anthropic:...",
)
@click.option(
    "--prompt-format",
    "prompt_formats",
    multiple=True,
    help="chat or raw (repeatable) [default: chat for chat models, raw otherwise].",
)
@click.option(
    "--batch-size",
    default="auto",
    show_default=True,
    help="Local models: questions per batch, or auto (packed by token budget).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Score only the first N items.")
@click.option("--base-url", envvar="MWE_BASE_URL", help="OpenAI-compatible server.")
@click.option(
    "--votes", default=5, show_default=True, help="Samples per item for APIs without log-probs."
)
@_OUTPUT
@click.pass_context
def score_cmd(
    ctx: click.Context,
    sets: tuple[str, ...],
    models: tuple[str, ...],
    prompt_formats: tuple[str, ...],
    batch_size: str,
    limit: int | None,
    base_url: str | None,
    votes: int,
    output: str,
) -> None:
    """Score models on SETS; rows already in the store are not scored again.

    Prints the matching-behaviour rate (mean normalised probability of the matching answer)
    with a 95% bootstrap interval, and the argmax rate. Ctrl-C keeps what was scored: run the
    same command again to carry on.
    """
    from mwe.scoring.run import score_sets

    rows_per_batch = None if batch_size == "auto" else _positive_int(batch_size, "--batch-size")
    with _open(ctx, read_only=False) as store:
        rows, counts = score_sets(
            store,
            sets,
            models,
            prompt_formats=prompt_formats or None,
            limit=limit,
            batch_size=rows_per_batch,
            base_url=base_url,
            votes=votes,
            console=Console(stderr=True),
        )
    title = f"{counts['new_rows']:,} items scored, {counts['skipped_rows']:,} already stored"
    _emit_results(rows, output, title)


def _positive_int(text: str, flag: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise click.UsageError(f"{flag} must be 'auto' or a positive number, not {text!r}")
    return int(text)


@cli.command("results")
@click.argument("set_ref", metavar="[SET]", required=False)
@click.option("--model", help="Only this model.")
@_OUTPUT
@click.pass_context
def results_cmd(ctx: click.Context, set_ref: str | None, model: str | None, output: str) -> None:
    """Print the scores stored for SET (or every set): matching rate, 95% CI, argmax rate."""
    from mwe.scoring.results import results

    with _open(ctx, read_only=True) as store:
        rows = results(store, set_ref, model)
    if not rows and output == "table":
        console.print("No scores yet: `mwe score SET --model MODEL` makes some.")
        return
    _emit_results(rows, output, "scores")
