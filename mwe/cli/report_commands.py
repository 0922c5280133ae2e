"""`mwe report`: the static HTML report of the store's sets."""

from __future__ import annotations

import math
import re
import webbrowser
from typing import Any

import click

from mwe.cli.app import open_store, out_folder_options
from mwe.cli.output import RichProgress, console
from mwe.terminal import shown

# Far above any model (the largest are near 2e12), and well inside the store's BIGINT.
MAX_PARAM_COUNT = 10**15
_SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "t": 10**12}
_COUNT_RE = re.compile(r"([0-9]*\.?[0-9]+(?:e[0-9]+)?)([kmbt]?)", re.IGNORECASE)


def parse_param_count(text: str) -> int:
    """A parameter count written as 135000000, 135M, 1.7B, 7e9 or 1_000 (K, M, B, T suffixes,
    any case); raises ``ValueError`` with what to write otherwise."""
    match = _COUNT_RE.fullmatch(text.strip().replace("_", "").replace(",", ""))
    if not match:
        raise ValueError(f"{text!r} is not a parameter count: write e.g. 135M, 1.7B, 7e9")
    value = float(match.group(1)) * _SUFFIXES[match.group(2).lower()]
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"{text!r} is not a parameter count: it must be at least 1")
    if value > MAX_PARAM_COUNT:  # checked here, not left to the store's 64-bit column
        raise ValueError(f"{text!r} is not a parameter count: it must be at most 1000T (1e15)")
    return round(value)


def _param_counts(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        model, sep, count = value.rpartition("=")
        model = model.strip()  # "MODEL = N": the spaces are no part of a model string
        if not sep or not model:
            raise click.BadParameter(
                f"{value!r}: write MODEL=N, e.g. hf:HuggingFaceTB/SmolLM2-1.7B=1.7B", ctx, param
            )
        try:
            parsed = parse_param_count(count)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None
        if counts.get(model, parsed) != parsed:  # the last one silently won
            raise click.BadParameter(
                f"{model!r} is given two counts ({counts[model]:,} and {parsed:,}): give one",
                ctx,
                param,
            )
        counts[model] = parsed
    return counts


def param_count_option(purpose: str) -> Any:
    """The ``--param-count MODEL=N`` option (repeatable) of a command that uses the counts
    for ``purpose``; it parses as `mwe report`'s does, into {model: count}."""
    return click.option(
        "--param-count",
        "param_counts",
        multiple=True,
        metavar="MODEL=N",
        callback=_param_counts,
        help=f"A scored model's parameter count {purpose}, e.g. openai:gpt-4.1-mini=8B "
        "(repeatable; over the counts the store recorded when local models were scored).",
    )


@click.command("report")
@click.argument("sets", nargs=-1)
@out_folder_options("Folder to write index.html and images/ into.", default="mwe-report")
@click.option("--open", "open_page", is_flag=True, help="Open the report in a web browser.")
@click.option(
    "--param-count",
    "param_counts",
    multiple=True,
    metavar="MODEL=N",
    callback=_param_counts,
    help="A scored model's parameter count for the model-size plot, e.g. "
    "openai:gpt-4.1-mini=8B (repeatable; kept in the store). Local models are counted when "
    "scored.",
)
@click.pass_context
def report_cmd(
    ctx: click.Context,
    sets: tuple[str, ...],
    out: str,
    force: bool,
    open_page: bool,
    param_counts: dict[str, int],
) -> None:
    """Write a static, self-contained HTML report of SETS (NAME or NAME@N; default: the latest
    version of every set): label balance and confidence, quality checks, reviews, matching
    rates with intervals across models, and behaviour against model size."""
    from mwe.report.report import build_report  # matplotlib loads only for this command

    # The store is written to only to keep the counts given here, once the report is written.
    with open_store(ctx, read_only=not param_counts) as store:
        with RichProgress() as progress:
            files = build_report(
                store, sets, out, force=force, param_counts=param_counts, progress=progress
            )
        store.keep_param_counts(param_counts)
    console.print(
        f"Wrote {shown(files.html)} with {len(files.images)} plot(s) "
        f"(also as PNG files in {shown(files.html.parent / 'images')})"
    )
    if open_page:
        webbrowser.open(files.html.resolve().as_uri())


COMMANDS = (report_cmd,)
