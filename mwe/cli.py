"""The `mwe` command line: a thin layer over the library.

Library code raises :class:`mwe.errors.MweError`; this module alone turns one into a one-line
message on stderr and an exit code (2 for a usage or input error).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

import click
import duckdb
from rich.console import Console
from rich.table import Table

from mwe import __version__, migrations
from mwe.errors import MweError, StoreError
from mwe.export import EXPORT_FORMATS, export_set
from mwe.importer import import_jsonl
from mwe.items import Item
from mwe.secrets import redact
from mwe.store import DEFAULT_DB, EvalSetInfo, Store, store_failure
from mwe.terminal import plain, shown

# soft_wrap: long lines (hashes, paths) stay whole when piped, instead of breaking at 80 columns.
# Piped output gets a wide fixed width, so result tables are not squeezed into 80 columns.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)


# What Ctrl-C leaves behind, per command: the same command carries on from there.
_RESUME_HINTS = {
    "generate": "every model call made so far is cached; run the same command to carry on",
    "score": "what was scored is stored; run the same command to carry on",
    "judge-check": "every judge call made so far is cached; run the same command to carry on",
    "ask": "run the same command again",
}


class _Group(click.Group):
    """A click group through which no traceback reaches the user: mwe's errors become one line
    and their exit code, Ctrl-C exits 130 with a resume hint, and anything unexpected is one
    line that points at ``-v`` for the details."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except MweError as exc:
            _fail(ctx, str(exc), exc.exit_code)
        except click.UsageError as exc:
            # One line, like mwe's own errors, instead of click's usage block.
            hint = f" (see mwe {exc.ctx.info_name} --help)" if exc.ctx and exc.ctx.parent else ""
            _fail(ctx, f"{exc.format_message()}{hint}", 2)
        except click.ClickException as exc:
            _fail(ctx, exc.format_message(), exc.exit_code)
        except KeyboardInterrupt:
            hint = _RESUME_HINTS.get(ctx.invoked_subcommand or "", "nothing half-written was kept")
            click.echo(f"Interrupted: {hint}.", err=True)
            ctx.exit(130)
        except duckdb.Error as exc:
            _fail(ctx, str(store_failure(Path((ctx.obj or {}).get("db", DEFAULT_DB)), exc)), 2)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(ctx, f"{where}{exc.strerror or exc}", 1)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: never a traceback
            if (ctx.obj or {}).get("verbose"):
                traceback.print_exc()
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            _fail(
                ctx,
                f"unexpected {detail} (a bug in mwe; run with -v for the details and report it)",
                1,
            )


def _fail(ctx: click.Context, message: str, code: int) -> None:
    """Print ``message`` as one line on stderr, never with a secret or a control character,
    and exit with ``code``."""
    click.echo(f"Error: {plain(redact(message), one_line=True)}", err=True)
    ctx.exit(code)


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
    ctx.obj = {"db": db, "verbose": verbose}


class _RedactKeys(logging.Filter):
    """Masks API keys in every log line, whichever library wrote it."""

    def filter(self, record: logging.LogRecord) -> bool:
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
        f"Imported {info.item_count:,} items from {len(files)} file(s) as "
        f"[bold]{shown(info.ref)}[/] (content hash {info.content_hash[:12]})"
    )


@cli.command("migrate")
@click.pass_context
def migrate_cmd(ctx: click.Context) -> None:
    """Upgrade the store's schema to this version of mwe (write commands do it by themselves;
    read commands never change the file, so they ask for this)."""
    db = Path(ctx.obj["db"])
    if not db.exists():
        raise StoreError(f"no database at {db}: nothing to upgrade")
    with _open(ctx, read_only=False) as store:
        done = len(migrations.MIGRATIONS)
        console.print(f"{shown(store.path)} is up to date ({done} schema migrations applied)")


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
    console.print(
        f"Exported {result.items:,} items of [bold]{shown(result.ref)}[/] to {shown(result.path)}"
    )
    if push_to_hub:
        console.print(f"Pushed to https://huggingface.co/datasets/{shown(push_to_hub)}")


@cli.command("list")
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
            shown(info.ref),
            shown(info.format),
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
@click.option(
    "-n",
    "--items",
    "n_items",
    default=5,
    show_default=True,
    type=click.IntRange(min=0),
    help="Items to print.",
)
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
    console.print(f"[bold]{shown(info.ref)}[/]  {shown(info.format)}  {info.item_count:,} items")
    if info.description:
        console.print(shown(info.description))
    console.print(f"created {info.created_at:%Y-%m-%d %H:%M:%S}   parent {shown(parent or '-')}")
    console.print(f"content hash {shown(info.content_hash)}")
    console.print("label balance (answer_matching_behavior): " + _balance_text(balance))
    _print_quality(info.stats)
    console.print("provenance:", shown(json.dumps(info.provenance, indent=2)))
    if items:
        console.print(_items_table(items, f"first {len(items)} items"))


def _balance_text(balance: dict[str, int]) -> str:
    total = sum(balance.values()) or 1
    return ", ".join(
        f"{shown(repr(label))} {n:,} ({n / total:.1%})" for label, n in balance.items()
    )


def _items_table(items: list[Item], title: str) -> Table:
    table = Table("question", "matching", "not matching", "conf.", title=title, show_lines=True)
    for item in items:
        confidence = "" if item.label_confidence is None else f"{item.label_confidence:.2f}"
        table.add_row(
            shown(item.statement or item.question),
            shown(repr(item.answer_matching_behavior)),
            shown(", ".join(repr(a) for a in item.not_matching)),
            confidence,
        )
    return table


@cli.command("diff")
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
    with _open(ctx, read_only=True) as store:
        a, b = store.resolve(old), store.resolve(new)
        items_a, items_b = store.items(a), store.items(b)
    hashes_a = {item.content_hash() for item in items_a}
    hashes_b = {item.content_hash() for item in items_b}
    added = [item for item in items_b if item.content_hash() not in hashes_a]
    removed = [item for item in items_a if item.content_hash() not in hashes_b]
    console.print(
        f"{shown(a.ref)} -> {shown(b.ref)}: [green]+{len(added)} added[/], [red]-{len(removed)} removed[/], "
        f"{len(hashes_a & hashes_b)} unchanged"
    )
    for label, group in (("added", added), ("removed", removed)):
        if group and limit:
            console.print(_items_table(group[:limit], f"{label} ({len(group)})"))


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


def main() -> None:
    """Console-script entry point."""
    cli()


# The commands that call models live in their own module; importing it registers them.
from mwe import cli_models  # noqa: F401
