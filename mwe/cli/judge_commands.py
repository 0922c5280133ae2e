"""`mwe judge`: fit a preference model to your own labelled sets, and list the fitted ones."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import click
from rich.table import Table

from mwe.cli.app import open_store
from mwe.cli.output import RichProgress, card_lines, console
from mwe.errors import UsageError
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
    from mwe.judges.training import train_judge

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
    from mwe.judges.preference import builtin

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


@judge_group.command("apply")
@click.argument("source")
@click.option(
    "--behavior",
    help="The behaviour the statements are about [default for a set: its description or name; "
    "required for a file].",
)
@click.option(
    "--judge",
    default="pm",
    show_default=True,
    help="pm (the built-in preference model) or pm:NAME (fitted with `mwe judge train`).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Judge only the first N statements.")
@click.option(
    "--examples",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Labelled persona examples (JSONL, as generate --examples takes): p(agree) reads the "
    "behaviour's side from them, beside the description.",
)
@click.option(
    "--output",
    type=click.Choice(["table", "jsonl"]),
    default="table",
    show_default=True,
    help="A table, or one JSON object a line (text, agree, relevant).",
)
@click.pass_context
def apply_cmd(
    ctx: click.Context,
    source: str,
    behavior: str | None,
    judge: str,
    limit: int | None,
    examples: Path | None,
    output: str,
) -> None:
    """Judge the statements of SOURCE and print, per statement, p(agree) (a person with the
    behaviour would say it) and p(relevant) (it is a statement about the behaviour at all).

    SOURCE is a stored persona set (NAME or NAME@N) or a file: JSON Lines (strings, or objects
    with a "statement" or "text" field) or plain text, one statement a line. The generation
    filter keeps what is relevant at 0.5 or more (--min-relevance).
    """
    from mwe.judges.judge import (
        PMJudge,
        apply_judge,
        check_pm_name,
        is_pm,
        judged_yes_no,
        load_pm,
        read_anchors,
        read_statements,
    )
    from mwe.judges.training import behavior_of
    from mwe.sync import run_sync

    if not is_pm(judge):
        raise UsageError(
            f"--judge {judge}: `mwe judge apply` runs preference models (pm, pm:NAME); "
            "check an LM judge with `mwe judge-check`"
        )
    check_pm_name(judge)
    path = Path(source)
    db = Path(ctx.obj["db"])
    if path.is_file():
        if not behavior:
            raise UsageError(
                f"{source} is a file: say which behaviour its statements are about with "
                "--behavior TEXT"
            )
        texts = read_statements(path)
    elif not db.exists():
        raise UsageError(f"{source} is neither a file nor an eval set (no store at {db})")
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(open_store(ctx, read_only=True)) if db.exists() else None
        if not path.is_file():
            assert store is not None
            info = store.resolve(source)
            if not judged_yes_no(info.format):
                raise UsageError(
                    f"{info.ref} is a {info.format} set: `mwe judge apply` reads statements "
                    "(persona sets or files)"
                )
            behavior = behavior_of(info, behavior)
            texts = [item.text for item in store.items(info, limit=limit)]
        model, _ = load_pm(judge, store)
    assert behavior is not None
    texts = texts[:limit] if limit else texts
    with RichProgress() as progress:
        pm = PMJudge(judge, model, behavior, read_anchors(examples) if examples else None)
        judged = run_sync(apply_judge(pm, texts, progress=progress))
    if output == "jsonl":
        for j in judged:
            click.echo(json.dumps({"text": j.text, "agree": j.agree, "relevant": j.relevant}))
        return
    table = Table("agree", "relevant", "statement", box=None, title=f"behaviour: {shown(behavior)}")
    for j in judged:
        table.add_row(f"{j.agree:.3f}", f"{j.relevant:.3f}", shown(j.text, one_line=True))
    console.print(table)
    kept = sum(j.relevant >= 0.5 for j in judged)
    console.print(
        f"{kept:,} of {len(judged):,} relevant at 0.5 or more (judge {shown(judge)}, "
        f"{shown(pm.method)})"
    )


COMMANDS = (judge_group,)
