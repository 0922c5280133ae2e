"""`mwe judge`: fit a preference model to your own labelled sets, and list the fitted ones."""

from __future__ import annotations

from pathlib import Path

import click

from mwe.cli.app import open_store
from mwe.cli.output import card_lines, console
from mwe.terminal import shown


@click.group("judge")
def judge_group() -> None:
    """Preference-model judges: the built-in one (pm) and those fitted to your sets."""


@judge_group.command("train")
@click.argument("refs", nargs=-1, required=True)
@click.option("--name", required=True, help="Name of the judge; use it as --judge pm:NAME.")
@click.option(
    "--behavior",
    help="The behaviour, for a single set [default: each set's description or name].",
)
@click.option(
    "--check",
    "checks",
    multiple=True,
    help="A labelled set it was not fitted on, to report its AUROC on (repeatable).",
)
@click.option(
    "--reviewed",
    is_flag=True,
    help="Fit the labels people gave in `mwe review` (reviewed items only) instead.",
)
@click.pass_context
def train_cmd(
    ctx: click.Context,
    refs: tuple[str, ...],
    name: str,
    behavior: str | None,
    checks: tuple[str, ...],
    reviewed: bool,
) -> None:
    """Fit a preference model to the labelled sets REFS (imported files, or generated sets
    whose labels you trust) and store it as a new version of NAME.

    It starts from the built-in model's weights, so a few hundred labelled items are enough.
    Fitting again on the same sets with the same settings makes no new version.
    """
    from mwe.training import train_judge

    with open_store(ctx, read_only=False) as store:
        trained = train_judge(
            store,
            list(refs),
            name,
            behavior=behavior,
            checks=list(checks),
            reviewed=reviewed,
            progress=console,
        )
    info = trained.info
    verb = "stored" if trained.new else "unchanged: the same data and settings are stored as"
    console.print(
        f"{verb} judge {shown(info.ref)}: fitted on {info.training['items']:,} items of "
        f"{shown(', '.join(info.training['sets']))}; use it as --judge pm:{shown(info.name)}"
    )
    for line in trained.lines():
        console.print(shown(line))


@judge_group.command("list")
@click.pass_context
def list_cmd(ctx: click.Context) -> None:
    """The built-in preference model and every fitted judge in the store."""
    from mwe.preference import builtin

    console.print("pm (built in)")
    for line in card_lines(builtin().card):
        console.print("  " + shown(line))
    if not Path(ctx.obj["db"]).exists():
        return
    with open_store(ctx, read_only=True) as store:
        judges = store.list_judges()
    for info in judges:
        console.print(
            f"pm:{shown(info.ref)}  fitted {info.created_at:%Y-%m-%d %H:%M} on "
            f"{info.training['items']:,} items of {shown(', '.join(info.training['sets']))}"
        )


COMMANDS = (judge_group,)
