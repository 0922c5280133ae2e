"""The `mwe` command line: a thin layer over the library.

Library code raises :class:`mwe.errors.MweError`; this module alone turns one into a one-line
message on stderr and an exit code (2 for a usage or input error).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from mwe import __version__
from mwe.errors import MweError
from mwe.export import EXPORT_FORMATS, export_set
from mwe.importer import import_jsonl
from mwe.items import Item
from mwe.store import DEFAULT_DB, EvalSetInfo, Store

# soft_wrap: long lines (hashes, paths) stay whole when piped, instead of breaking at 80 columns.
# Piped output gets a wide fixed width, so result tables are not squeezed into 80 columns.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)


class _Group(click.Group):
    """A click group that prints mwe's errors as one line and exits with their code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MweError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except click.UsageError as exc:
            # One line, like mwe's own errors, instead of click's usage block.
            hint = f" (see mwe {exc.ctx.info_name} --help)" if exc.ctx and exc.ctx.parent else ""
            click.echo(f"Error: {exc.format_message()}{hint}", err=True)
            ctx.exit(2)


def _open(ctx: click.Context, *, read_only: bool) -> Store:
    return Store(ctx.obj["db"], read_only=read_only)


@click.group("mwe", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mwe")
@click.option(
    "--db",
    envvar="MWE_DB",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(path_type=Path),
    help="The DuckDB store file (env MWE_DB).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log what mwe does to stderr.")
@click.pass_context
def cli(ctx: click.Context, db: Path, verbose: bool) -> None:
    """Generate, store, export and score model-written evaluations.

    Sets are referred to as NAME (the latest version) or NAME@N (version N).
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_RedactKeys())
    ctx.obj = {"db": db}


class _RedactKeys(logging.Filter):
    """Masks API keys in every log line, whichever library wrote it."""

    def filter(self, record: logging.LogRecord) -> bool:
        from mwe.models.lm import redact

        record.msg = redact(record.getMessage())
        record.args = None
        return True


@cli.command("import")
@click.argument("files", nargs=-1, required=True)
@click.option("--name", help="Set name [default: from the first file's name].")
@click.option("--description", help="A description kept with the version.")
@click.option("--license", "license_", help="License of the data, e.g. cc-by-4.0 (for the card).")
@click.pass_context
def import_cmd(
    ctx: click.Context,
    files: tuple[str, ...],
    name: str | None,
    description: str | None,
    license_: str | None,
) -> None:
    """Import anthropics/evals JSONL FILES as a new version of one set."""
    with _open(ctx, read_only=False) as store:
        before = {s.id for s in store.list_sets()}
        info = import_jsonl(store, files, name=name, description=description, license=license_)
    if info.id in before:
        console.print(
            f"Unchanged: {info.ref} already holds exactly these {info.item_count:,} items"
        )
        return
    console.print(
        f"Imported {info.item_count:,} items from {len(files)} file(s) as [bold]{info.ref}[/] "
        f"(content hash {info.content_hash[:12]})"
    )


@cli.command("export")
@click.argument("ref")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    default="jsonl",
    show_default=True,
    help="jsonl: the anthropics/evals schema; hf: a Hugging Face DatasetDict on disk.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Folder to write [default: generated_evals/NAME-vN-FORMAT].",
)
@click.option("--force", is_flag=True, help="Replace the folder if it is not empty.")
@click.option("--push-to-hub", metavar="REPO", help="Also push to this Hub dataset repo (hf).")
@click.pass_context
def export_cmd(
    ctx: click.Context, ref: str, fmt: str, out: Path | None, force: bool, push_to_hub: str | None
) -> None:
    """Export set REF (NAME or NAME@N) after checking its content hash."""
    with _open(ctx, read_only=True) as store:
        result = export_set(store, ref, fmt, out=out, force=force, push_to_hub=push_to_hub)
    console.print(f"Exported {result.items:,} items of [bold]{result.ref}[/] to {result.path}")
    if push_to_hub:
        console.print(f"Pushed to https://huggingface.co/datasets/{push_to_hub}")


@cli.command("list")
@click.option(
    "--all", "all_versions", is_flag=True, help="Show every version, not just the latest."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, all_versions: bool, as_json: bool) -> None:
    """List the stored eval sets."""
    if not Path(ctx.obj["db"]).exists():
        console.print(f"No eval sets yet: {ctx.obj['db']} does not exist.")
        return
    with _open(ctx, read_only=True) as store:
        sets = store.list_sets()
    if not all_versions:
        latest: dict[str, EvalSetInfo] = {}
        for info in sets:
            latest[info.name] = info
        sets = list(latest.values())
    if as_json:
        click.echo(json.dumps([_info_json(info) for info in sets], indent=2))
        return
    if not sets:
        console.print("No eval sets yet: `mwe import` or `mwe generate` makes one.")
        return
    table = Table("set", "format", "items", "created", "content hash", box=None)
    for info in sets:
        table.add_row(
            info.ref,
            info.format,
            f"{info.item_count:,}",
            info.created_at.strftime("%Y-%m-%d %H:%M"),
            info.content_hash[:12],
        )
    console.print(table)


def _info_json(info: EvalSetInfo) -> dict[str, Any]:
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


@cli.command("show")
@click.argument("ref")
@click.option("-n", "--items", "n_items", default=5, show_default=True, help="Items to print.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show_cmd(ctx: click.Context, ref: str, n_items: int, as_json: bool) -> None:
    """Show a set: counts, label balance, provenance and a few items."""
    with _open(ctx, read_only=True) as store:
        info = store.resolve(ref)
        balance = store.label_counts(info)
        items = store.items(info, limit=n_items)
        parent = next((s.ref for s in store.list_sets(info.name) if s.id == info.parent_id), None)
    if as_json:
        data = _info_json(info) | {
            "parent": parent,
            "label_balance": balance,
            "sample": [item.to_record() for item in items],
        }
        click.echo(json.dumps(data, indent=2))
        return
    console.print(f"[bold]{info.ref}[/]  {info.format}  {info.item_count:,} items")
    if info.description:
        console.print(info.description)
    console.print(f"created {info.created_at:%Y-%m-%d %H:%M:%S}   parent {parent or '-'}")
    console.print(f"content hash {info.content_hash}")
    console.print("label balance (answer_matching_behavior): " + _balance_text(balance))
    _print_quality(info.stats)
    console.print("provenance:", json.dumps(info.provenance, indent=2))
    if items:
        console.print(_items_table(items, f"first {len(items)} items"))


def _balance_text(balance: dict[str, int]) -> str:
    total = sum(balance.values()) or 1
    return ", ".join(f"{label!r} {n:,} ({n / total:.1%})" for label, n in balance.items())


def _items_table(items: list[Item], title: str) -> Table:
    table = Table("question", "matching", "not matching", "conf.", title=title, show_lines=True)
    for item in items:
        confidence = "" if item.label_confidence is None else f"{item.label_confidence:.2f}"
        table.add_row(
            item.statement or item.question,
            repr(item.answer_matching_behavior),
            ", ".join(repr(a) for a in item.not_matching),
            confidence,
        )
    return table


@cli.command("diff")
@click.argument("old")
@click.argument("new")
@click.option("-n", "--limit", default=10, show_default=True, help="Items to print per side.")
@click.pass_context
def diff_cmd(ctx: click.Context, old: str, new: str, limit: int) -> None:
    """Show the items added and removed between versions OLD and NEW, by content."""
    with _open(ctx, read_only=True) as store:
        a, b = store.resolve(old), store.resolve(new)
        items_a, items_b = store.items(a), store.items(b)
    hashes_a = {item.content_hash() for item in items_a}
    hashes_b = {item.content_hash() for item in items_b}
    added = [item for item in items_b if item.content_hash() not in hashes_a]
    removed = [item for item in items_a if item.content_hash() not in hashes_b]
    console.print(
        f"{a.ref} -> {b.ref}: [green]+{len(added)} added[/], [red]-{len(removed)} removed[/], "
        f"{len(hashes_a & hashes_b)} unchanged"
    )
    for label, group in (("added", added), ("removed", removed)):
        if group and limit:
            console.print(_items_table(group[:limit], f"{label} ({len(group)})"))


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
            click.echo(f"{answer!r}\t{'missing' if logprob is None else f'{logprob:.6f}'}")
    else:
        for text in result:
            click.echo(text)
    stats = lm.stats
    cost = "unknown" if stats.cost_usd is None else f"${stats.cost_usd:.6f}"
    click.echo(
        f"[{lm.spec}: {stats.requests} request(s), {stats.cache_hits} cached, "
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
    help="Template folder [default: the built-in prompts/].",
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
    table = Table(title=f"{info.ref}" + (" (unchanged)" if result.unchanged else ""), box=None)
    table.add_column("", style="bold")
    table.add_column("")
    dropped = counts.get("dropped", {})
    table.add_row("generator calls", f"{counts['calls']:,}")
    table.add_row("replies dropped", json.dumps(counts.get("replies_dropped", {})))
    table.add_row("candidates parsed", f"{counts['parsed']:,}")
    for reason, shown in (
        ("duplicate", "duplicates"),
        ("near duplicate", "near duplicates"),
        ("few-shot copy", "few-shot copies"),
    ):
        table.add_row(f"  {shown}", f"{dropped.get(reason, 0):,}")
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
            f"{u['model']}: {u['requests']:,} requests, {u['cache_hits']:,} "
            f"cached, {u['input_tokens']:,}+{u['output_tokens']:,} tokens, {cost}",
        )
    table.add_row("time", f"{result.elapsed_s:.1f} s")
    console.print(table)
    _print_quality(quality)


def _print_quality(quality: dict[str, Any]) -> None:
    if not quality:
        return
    shortcut = quality.get("shortcut_accuracy")
    flag = (
        " [red]FLAG: the label is guessable from the words alone[/]"
        if quality.get("shortcut_flag")
        else ""
    )
    diversity = quality.get("diversity_mean_cosine")
    console.print(
        "quality: duplicate rate {:.1%}, near-duplicate rate {:.1%}, few-shot copies {}, "
        "diversity (mean pairwise cosine) {}, shortcut accuracy {}{}".format(
            quality.get("duplicate_rate", 0),
            quality.get("near_duplicate_rate", 0),
            quality.get("fewshot_copies", 0),
            "-" if diversity is None else f"{diversity:.3f}",
            "-" if shortcut is None else f"{shortcut:.2f}",
            flag,
        )
    )


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
        f"{result.ref}: judge {result.judge} ({result.method}) on {result.items:,} items, "
        f"behaviour {what!r}\nagreement {result.agreement:.3f}  AUROC {auroc}  "
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
            r.set,
            r.model,
            r.prompt_format,
            r.method,
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
        try:
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
        except KeyboardInterrupt:
            click.echo(
                "Interrupted: what was scored is stored; run the same command to carry on.",
                err=True,
            )
            ctx.exit(130)
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


def main() -> None:
    """Console-script entry point."""
    cli()
