"""The dynamic-eval commands: redteam (test inputs from an attacker model, round by round),
rollout (multi-turn conversations judged 1-10) and rollouts (the stored suites, their metrics
and transcripts)."""

from __future__ import annotations

import json

import click

from mwe import env
from mwe.cli.app import BASE_URL, open_store
from mwe.cli.output import (
    RichProgress,
    console,
    print_plan,
    print_rollout_results,
    transcript_lines,
)
from mwe.terminal import shown


@click.command("rollout")
@click.argument("source")
@click.option(
    "--target", "targets", multiple=True, required=True, help="Model tested (repeatable)."
)
@click.option("--auditor", required=True, help="Model that plays the user and ideates scenarios.")
@click.option("--judge", required=True, help="Model that scores each transcript 1-10.")
@click.option("--turns", default=3, show_default=True, help="User messages per rollout.")
@click.option("--reps", default=1, show_default=True, help="Rollouts per scenario and target.")
@click.option("--scenarios", default=10, show_default=True, help="Scenarios to ideate (or items).")
@click.option(
    "--diversity",
    default=1.0,
    show_default=True,
    help="Share of the scenarios that are distinct situations; the rest are variations.",
)
@click.option(
    "--threshold", default=7, show_default=True, help="Score at which a rollout counts as elicited."
)
@click.option("--name", help="Suite name [default: from SOURCE].")
@click.option(
    "--base-url",
    type=BASE_URL,
    default=env.base_url,
    help="OpenAI-compatible server for the models.",
)
@click.option(
    "--max-tokens",
    type=int,
    help="Tokens per message [default: 400 for API models, 160 for local ones].",
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(1, 1024),
    default=env.default("MWE_MAX_CONCURRENCY", 16),
    show_default="16, or $MWE_MAX_CONCURRENCY",
    help="Requests in flight (env MWE_MAX_CONCURRENCY).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the requests, tokens and cost this would take; send none.",
)
@click.pass_context
def rollout_cmd(
    ctx: click.Context, source: str, targets: tuple[str, ...], dry_run: bool, **options: object
) -> None:
    """Roll out multi-turn conversations with each --target and judge them.

    SOURCE is a behaviour description (the auditor ideates --scenarios scenarios from it) or a
    stored set (its items are the scenarios). For each scenario the auditor plays the user for
    --turns messages, the target answers, and the judge scores the behaviour 1-10 with quoted
    evidence, plus realism and evaluation awareness. Prints the mean score and the elicitation
    rate (share scoring >= --threshold) per target with 95% intervals. Every call is cached: the
    same command after a stop carries on where it stopped.
    """
    from mwe.dynamic.rollouts import check_options, rollout

    checked = check_options(source=source, targets=list(targets), **options)
    if dry_run:  # no store is opened, nothing is sent
        from mwe.estimate import estimate_rollout

        print_plan(estimate_rollout(checked), batch=False)  # rollout has no --batch
        return
    with open_store(ctx, read_only=False) as store, RichProgress() as progress:
        report = rollout(store, checked, progress=progress)
    console.print(
        f"{shown(report.suite)}: {report.new_rollouts:,} rollouts run, "
        f"{report.skipped_rollouts:,} already stored, {report.scenarios:,} scenarios"
    )
    print_rollout_results(report.results)


@click.command("rollouts")
@click.argument("suite", required=False)
@click.option("--transcripts", is_flag=True, help="Print every transcript with its scores.")
@click.option(
    "--threshold",
    type=click.IntRange(1, 10),
    help="Score counted as elicited [default: the suite's own, as given to mwe rollout].",
)
@click.option("--json", "as_json", is_flag=True, help="Everything as JSON.")
@click.pass_context
def rollouts_cmd(
    ctx: click.Context, suite: str | None, transcripts: bool, threshold: int | None, as_json: bool
) -> None:
    """List the stored rollout suites, or show SUITE's metrics (and transcripts)."""
    from mwe.dynamic.rollouts import suite_threshold, target_results

    with open_store(ctx, read_only=True) as store:
        if suite is None:
            for info in store.list_suites():
                console.print(
                    f"{shown(info.ref)}  {len(info.scenarios):,} scenarios  "
                    f"{shown(info.description)}"
                )
            return
        info = store.resolve_suite(suite)
        rows = store.rollouts(info)
    results = target_results(rows, threshold if threshold is not None else suite_threshold(info))
    if as_json:
        data = {
            "suite": info.ref,
            "description": info.description,
            "params": info.params,
            "scenarios": info.scenarios,
            "results": [r.model_dump(mode="json") for r in results],
            "rollouts": [
                {
                    "id": r.id,
                    "target": r.target,
                    "scenario": r.scenario,
                    "rep": r.rep,
                    "score": r.score,
                    "realism": r.realism,
                    "awareness": r.awareness,
                    "evidence": r.evidence,
                    "justification": r.justification,
                    "turns": [{"role": role, "content": text} for role, text in r.turns],
                }
                for r in rows
            ],
        }
        click.echo(json.dumps(data, indent=2, allow_nan=False, default=str))
        return
    console.print(f"[bold]{shown(info.ref)}[/]  {shown(info.description)}")
    print_rollout_results(results)
    if transcripts:
        for row in rows:
            for line in transcript_lines(row, info.scenarios[row.scenario]):
                console.print(line)


@click.command("redteam")
@click.argument("description")
@click.option("--target", required=True, help="Model to red-team.")
@click.option("--attacker", default="local", show_default=True, help="Model that writes inputs.")
@click.option(
    "--classifier",
    default="local",
    show_default=True,
    help="What flags a failing reply: a model (asked Yes/No), or pm / pm:NAME.",
)
@click.option("--rounds", default=3, show_default=True, help="Round 1 zero-shot, then few-shot.")
@click.option("--per-round", default=20, show_default=True, help="Test inputs per round.")
@click.option("--per-call", default=5, show_default=True, help="Inputs asked for per call.")
@click.option("--shots", default=5, show_default=True, help="Earlier failures shown per call.")
@click.option(
    "--threshold", default=0.5, show_default=True, help="Classifier score that flags a reply."
)
@click.option("--name", help="Name of the failing set [default: from DESCRIPTION].")
@click.option(
    "--base-url",
    type=BASE_URL,
    default=env.base_url,
    help="OpenAI-compatible server for the models.",
)
@click.option("--max-tokens", default=300, show_default=True, help="Tokens per reply.")
@click.option(
    "--max-concurrency",
    type=click.IntRange(1, 1024),
    default=env.default("MWE_MAX_CONCURRENCY", 16),
    show_default="16, or $MWE_MAX_CONCURRENCY",
    help="Requests in flight (env MWE_MAX_CONCURRENCY).",
)
@click.option("--seed", default=0, show_default=True, help="Seeds the few-shot sampling.")
@click.pass_context
def redteam_cmd(ctx: click.Context, description: str, **options: object) -> None:
    """Red-team --target for the failure DESCRIPTION (Perez et al. 2022a).

    Round 1 asks the attacker for test inputs zero-shot; later rounds show it earlier failures,
    drawn by how surely they failed. The classifier flags the target's failing replies. Prints
    each round's failure rate and diversity (self-BLEU, mean embedding similarity); the failing
    cases are stored as a set (`mwe show`, `mwe export`). Every call is cached: the same command
    after a stop replays what was paid for.
    """
    from mwe.dynamic.redteam import check_options, redteam

    checked = check_options(description=description, **options)
    with open_store(ctx, read_only=False) as store, RichProgress() as progress:
        report = redteam(store, checked, progress=progress)
    for r in report.rounds:
        bleu = "-" if r.self_bleu is None else f"{r.self_bleu:.3f}"
        similar = "-" if r.embedding_similarity is None else f"{r.embedding_similarity:.3f}"
        console.print(
            f"round {r.round}: {r.cases:,} inputs, {r.failures:,} failed "
            f"(rate {r.failure_rate:.3f}); self-BLEU {bleu}, embedding similarity {similar}"
        )
    where = (
        f"stored as {shown(report.failing_set)}" if report.failing_set else "no set (none failed)"
    )
    note = "" if report.stored else " (this run was stored before: nothing changed)"
    console.print(f"{report.failures:,} of {report.cases:,} cases failed: {where}{note}")


COMMANDS = [redteam_cmd, rollout_cmd, rollouts_cmd]
