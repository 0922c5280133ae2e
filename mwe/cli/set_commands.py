"""The commands that read and write sets without calling a model: import, list, show, diff,
export and migrate."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from mwe.cli.app import open_store, out_folder_options
from mwe.cli.output import (
    balance_text,
    console,
    info_json,
    items_table,
    print_quality,
    result_line,
)
from mwe.errors import StoreError
from mwe.export.export import EXPORT_FORMATS, export_set
from mwe.export.importer import import_jsonl
from mwe.item_records import item_hash, to_record
from mwe.report.summary import provenance_lines, spec_lines
from mwe.review.reviews import MIN_AGREEMENT, MIN_REVIEWED, label_validation, review_summary
from mwe.scoring.results import results
from mwe.store import migrations
from mwe.terminal import shown


@click.command("import")
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
    """Import FILES as a new version of one set: anthropics/evals JSONL (persona, choice,
    sycophancy), or Inverse Scaling Prize tasks (classification, sequence_prob) as JSONL or
    CSV. Each record's format is recognised from its fields."""
    with open_store(ctx, read_only=False) as store:
        before = {s.id for s in store.list_sets()}
        info = import_jsonl(store, files, name=name, description=description, license=license_)
    if info.id in before:
        console.print(
            f"Unchanged: {info.ref} already holds exactly these {info.item_count:,} items"
        )
        return
    console.print(
        f"Imported {info.item_count:,} items from {len(files)} file(s) as "
        f"[bold]{shown(info.ref)}[/] (content hash {info.content_hash[:12]})"
    )


@click.command("migrate")
@click.pass_context
def migrate_cmd(ctx: click.Context) -> None:
    """Upgrade the store's schema to this version of mwe (write commands do it by themselves;
    read commands never change the file, so they ask for this)."""
    db = Path(ctx.obj["db"])
    if not db.exists():
        raise StoreError(f"no database at {db}: nothing to upgrade")
    with open_store(ctx, read_only=False) as store:
        done = len(migrations.MIGRATIONS)
        console.print(f"{shown(store.path)} is up to date ({done} schema migrations applied)")


@click.command("export")
@click.argument("ref")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    default="jsonl",
    show_default=True,
    help="jsonl: each item format's public schema (anthropics/evals; the Inverse Scaling Prize's "
    "for classification and sequence_prob); csv: the same records as CSV, as the prize wrote "
    "them; hf: a Hugging Face DatasetDict on disk; "
    "inspect: an Inspect task (task.py); lm-eval: an lm-evaluation-harness task folder.",
)
@out_folder_options("Folder to write [default: generated_evals/NAME-vN-FORMAT].")
@click.option("--push-to-hub", metavar="REPO", help="Also push to this Hub dataset repo (hf).")
@click.option(
    "--hub-id",
    metavar="REPO",
    help="The Hub dataset id the export will have (hf; default: --push-to-hub's): with it, "
    "eval_results/MODEL.yaml is written for each model with stored scores, to add to the "
    "model's repo as .eval_results/NAME.yaml.",
)
@click.option(
    "--require-validated",
    is_flag=True,
    help="Refuse a set whose labels people have not checked enough (`mwe review`): fewer than "
    "--min-reviewed items reviewed, or agreement with its labels under --min-agreement.",
)
@click.option(
    "--min-agreement",
    type=click.FloatRange(0, 1),
    default=MIN_AGREEMENT,
    show_default=True,
    help="The share of labels the reviewers must keep (with --require-validated).",
)
@click.option(
    "--min-reviewed",
    type=click.IntRange(min=1),
    default=MIN_REVIEWED,
    show_default=True,
    help="The items that must have been reviewed (with --require-validated).",
)
@click.pass_context
def export_cmd(
    ctx: click.Context,
    ref: str,
    fmt: str,
    out: str | None,
    force: bool,
    push_to_hub: str | None,
    hub_id: str | None,
    require_validated: bool,
    min_agreement: float,
    min_reviewed: int,
) -> None:
    """Export set REF (NAME or NAME@N) after checking its content hash."""
    with open_store(ctx, read_only=True) as store:
        result = export_set(
            store,
            ref,
            fmt,
            out=out,
            force=force,
            push_to_hub=push_to_hub,
            hub_id=hub_id,
            require_validated=require_validated,
            min_agreement=min_agreement,
            min_reviewed=min_reviewed,
        )
    console.print(
        f"Exported {result.items:,} items of [bold]{shown(result.ref)}[/] to {shown(result.path)}"
    )
    if result.eval_results:
        console.print(
            f"Eval results of {len(result.eval_results)} scored model(s) in "
            f"{shown(result.eval_results[0].parent)}: add each to its model's repo as "
            f".eval_results/{shown(result.ref.split('@')[0])}.yaml"
        )
    if push_to_hub:
        console.print(f"Pushed to https://huggingface.co/datasets/{shown(push_to_hub)}")


@click.command("list")
@click.option(
    "--all", "all_versions", is_flag=True, help="Show every version, not just the latest."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, all_versions: bool, as_json: bool) -> None:
    """List the stored eval sets."""
    if not Path(ctx.obj["db"]).exists():
        console.print(f"No eval sets yet: {shown(ctx.obj['db'])} does not exist.")
        return
    with open_store(ctx, read_only=True) as store:
        sets = store.list_sets() if all_versions else store.latest_sets()
    if as_json:
        click.echo(json.dumps([info_json(info) for info in sets], indent=2))
        return
    if not sets:
        console.print("No eval sets yet: `mwe import` or `mwe generate` makes one.")
        return
    table = Table("set", "format", "items", "created", "content hash", box=None)
    for info in sets:
        table.add_row(
            shown(info.ref),
            shown(info.format),
            f"{info.item_count:,}",
            info.created_at.strftime("%Y-%m-%d %H:%M"),
            info.content_hash[:12],
        )
    console.print(table)


@click.command("show")
@click.argument("ref")
@click.option(
    "-n",
    "--items",
    "n_items",
    default=5,
    show_default=True,
    type=click.IntRange(min=0),
    help="Items to print.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (the summary and the first -n items)."
)
@click.option(
    "--full", is_flag=True, help="Print each item's text whole (wrapped), not cut to one line."
)
@click.pass_context
def show_cmd(ctx: click.Context, ref: str, n_items: int, as_json: bool, full: bool) -> None:
    """Show a set: a summary (counts, balance, spec, quality, how it was made, the models that
    scored it) and its first few items (-n), each on one line unless ``--full``. ``--json``
    prints the same as JSON with the whole provenance and the first -n items as ``sample``;
    `mwe export` writes every item."""
    with open_store(ctx, read_only=True) as store:
        info = store.resolve(ref)
        balance = store.label_counts(info)
        spec = store.spec(info)
        items = store.items(info, limit=n_items)
        parent = next((s.ref for s in store.list_sets(info.name) if s.id == info.parent_id), None)
        scored = results(store, info.ref)
        reviewed = review_summary(store, info)
        validation = label_validation(store, info)
    if as_json:
        data = info_json(info) | {
            "parent": parent,
            "spec": spec,
            "label_balance": balance,
            "results": [r.model_dump() for r in scored],
            "reviews": reviewed.model_dump(),
            "validation": validation.model_dump(),
            "sample": [to_record(item) for item in items],
        }
        click.echo(json.dumps(data, indent=2))
        return
    console.print(f"[bold]{shown(info.ref)}[/]  {shown(info.format)}  {info.item_count:,} items")
    if info.description:
        console.print(shown(info.description))
    console.print(
        f"created {info.created_at:%Y-%m-%d %H:%M:%S}   parent {shown(parent or '-')}   "
        f"content hash {shown(info.content_hash[:16])}"
    )
    console.print("label balance (answer_matching_behavior): " + balance_text(balance))
    print_quality(info.stats)
    for line in provenance_lines(info.provenance) + spec_lines(spec):
        console.print(shown(line))
    for r in scored:
        console.print("scored: " + result_line(r))
    console.print(shown(reviewed.line()))
    console.print(shown(validation.line()), markup=False)
    if items:
        console.print(items_table(items, f"first {len(items)} items", compact=not full))
    console.print("[dim]whole provenance: mwe show REF --json[/]")


@click.command("diff")
@click.argument("old")
@click.argument("new")
@click.option(
    "-n",
    "--limit",
    default=10,
    show_default=True,
    type=click.IntRange(min=0),
    help="Items to print per side.",
)
@click.pass_context
def diff_cmd(ctx: click.Context, old: str, new: str, limit: int) -> None:
    """Show the items added and removed between versions OLD and NEW, by content."""
    with open_store(ctx, read_only=True) as store:
        a, b = store.resolve(old), store.resolve(new)
        items_a, items_b = store.items(a), store.items(b)
    hashes_a = {item_hash(item) for item in items_a}
    hashes_b = {item_hash(item) for item in items_b}
    added = [item for item in items_b if item_hash(item) not in hashes_a]
    removed = [item for item in items_a if item_hash(item) not in hashes_b]
    console.print(
        f"{shown(a.ref)} -> {shown(b.ref)}: [green]+{len(added)} added[/], [red]-{len(removed)} removed[/], "
        f"{len(hashes_a & hashes_b)} unchanged"
    )
    for label, group in (("added", added), ("removed", removed)):
        if group and limit:
            console.print(items_table(group[:limit], f"{label} ({len(group)})"))


COMMANDS = (import_cmd, list_cmd, show_cmd, diff_cmd, export_cmd, migrate_cmd)
