"""The commands that call models: ask, generate, judge-check, score and results.

The model layer is imported inside each command, so `mwe --help` and the store commands load
no model library.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mwe import env
from mwe.cli.app import BASE_URL, MAX_CONCURRENCY, open_store
from mwe.cli.output import (
    RichProgress,
    console,
    emit_results,
    print_checks_summary,
    print_gaps,
    print_generation,
    print_judge_check,
    print_knowledge,
    print_plan,
    print_scaling,
)
from mwe.cli.report_commands import param_count_option
from mwe.formats import format_names, get_format
from mwe.terminal import plain, shown

_BATCH = click.option(
    "--batch",
    is_flag=True,
    default=env.default("MWE_BATCH", False),
    help="Send the model calls through the provider's batch API (openai:, anthropic:): half "
    "price, results within 24 hours; run the same command again after a stop and it polls the "
    "batches already submitted (env MWE_BATCH).",
)
_JUDGE_HELP = (
    "pm (the built-in preference model, offline), pm:NAME (fitted with `mwe judge train`), "
    "or a model: local, hf:PATH, openai:..., anthropic:... (env MWE_JUDGE)."
)


@click.command("ask")
@click.argument("model")
@click.argument("prompt")
@click.option("--system", help="A system message.")
@click.option(
    "--base-url",
    type=BASE_URL,
    default=env.base_url,
    help="An OpenAI-compatible server (env MWE_BASE_URL).",
)
@click.option("-n", "--samples", default=1, show_default=True, help="Samples to draw.")
@click.option("--temperature", default=1.0, show_default=True)
@click.option("--max-tokens", default=256, show_default=True)
@click.option("--answers", help="Comma-separated answers to score instead, e.g. ' Yes, No'.")
@MAX_CONCURRENCY
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
    from mwe.models import GenerateConfig, ask, get_backend

    # The backend first: a bad model string or a missing key must not create a store.
    backend = get_backend(model, **({"base_url": base_url} if base_url else {}))
    with open_store(ctx, read_only=False) as store:
        asked = ask(
            backend,
            prompt,
            store,
            system=system,
            answers=answers.split(",") if answers is not None else None,
            config=GenerateConfig(n=samples, temperature=temperature, max_tokens=max_tokens),
            max_concurrency=max_concurrency,
        )
    if asked.logprobs is not None:
        for answer, logprob in asked.logprobs.items():
            click.echo(
                f"{plain(repr(answer))}\t{'missing' if logprob is None else f'{logprob:.6f}'}"
            )
    else:
        for text in asked.replies:
            click.echo(plain(text))
    stats = asked.stats
    cost = "unknown" if stats.cost_usd is None else f"${stats.cost_usd:.6f}"
    click.echo(
        f"[{plain(asked.model)}: {stats.requests} request(s), {stats.cache_hits} cached, "
        f"{stats.retries} retries, cost {cost}]",
        err=True,
    )


@click.command("generate")
@click.argument("description")
@click.option("--name", help="Set name [default: from the description].")
@click.option(
    "--format",
    "fmt",
    default="persona",
    show_default=True,
    help=f"Item format: {', '.join(f for f in format_names() if get_format(f).generated)} "
    "(persona: statements, Yes/No; choice: A/B questions; sycophancy: a user's biography and a "
    "contested question; see mwe.formats).",
)
@click.option("-n", "--num", "n", default=1000, show_default=True, help="Items in the final set.")
@click.option(
    "--generator",
    default=env.default("MWE_GENERATOR", "local"),
    show_default="local",
    help="Model that writes candidates (env MWE_GENERATOR).",
)
@click.option(
    "--judge", default=env.default("MWE_JUDGE", "pm"), show_default="pm", help=_JUDGE_HELP
)
@click.option(
    "--base-url",
    type=BASE_URL,
    default=env.base_url,
    help="OpenAI-compatible server for both models (env MWE_BASE_URL).",
)
@click.option("--oversample", default=3.0, show_default=True, help="Candidates per kept item.")
@click.option("--per-call", default=5, show_default=True, help="Candidates per generator call.")
@click.option(
    "--examples",
    type=click.Path(path_type=Path),
    help="Few-shot examples, anthropics/evals JSONL, sampled per call; the pm judge also reads "
    "the behaviour's side from persona examples (2 or more of each answer).",
)
@click.option(
    "--questions",
    type=click.Path(path_type=Path),
    help="sycophancy: your contested questions, JSONL objects with question, option_a and "
    "option_b; the generator writes the users' biographies for them.",
)
@click.option(
    "--templates",
    type=click.Path(path_type=Path),
    help="Template folder [default: the built-in mwe/prompts/].",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    help="Seeds the topics, the few-shot examples and so the prompts; each sample is drawn "
    "from its prompt (the embedded model's are reproducible; see the README).",
)
@click.option("--temperature", default=1.0, show_default=True, help="Generator temperature.")
@click.option(
    "--max-tokens",
    type=click.IntRange(16, 8192),
    default=400,
    show_default=True,
    help="Tokens per generator reply (the spec's reply: at most 300).",
)
@click.option(
    "--min-relevance",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="The judge's p(about the behaviour) a kept item needs; raise it for a weak generator.",
)
@click.option(
    "--calibrate/--no-calibrate",
    default=False,
    show_default=True,
    help="LM judges: divide out the judge's bias towards one answer (helps small ones).",
)
@MAX_CONCURRENCY
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the requests, tokens and cost this would take (and with --batch), send none.",
)
@_BATCH
@click.pass_context
def generate_cmd(
    ctx: click.Context,
    description: str,
    fmt: str,
    base_url: str | None,
    dry_run: bool,
    **options: Any,
) -> None:
    """Generate an eval set from a one-line DESCRIPTION of a behaviour.

    Runs spec, generate, parse, dedupe, judge (the preference-model filter) and select, then
    stores a new version. The same command after a crash resumes: every model call is cached.
    """
    from mwe.estimate import estimate_generation
    from mwe.generate.run import generate_eval, prepare
    from mwe.models.pricing import FREE_BACKENDS

    prepared = prepare(
        description=description,
        format=fmt,
        generator_base_url=base_url,
        judge_base_url=base_url,
        plan_only=dry_run,  # a plan needs no API key and loads no weights
        **options,
    )
    local_default = prepared.generator.backend in FREE_BACKENDS and _defaulted(ctx, "n")
    plan = estimate_generation(prepared) if dry_run or local_default else []
    if local_default:
        # The default suits an API generator; on this machine it can take hours: say so.
        tokens = sum(p.output_tokens for p in plan if p.stage == "generate")
        click.echo(
            f"note: -n defaults to {options['n']:,} items: with {prepared.generator.spec} as "
            f"generator that plans about {tokens:,} output tokens on this machine; -n sets the "
            "size (e.g. -n 20 for a first look)",
            err=True,
        )
    if dry_run:  # no store is opened: a dry run leaves no file behind
        print_plan(plan)
        return
    with open_store(ctx, read_only=False) as store, RichProgress() as progress:
        result = generate_eval(store, prepared=prepared, progress=progress)
    print_generation(result)


@click.command("judge-check")
@click.argument("refs", nargs=-1, required=True, metavar="REF...")
@click.option(
    "--judge", default=env.default("MWE_JUDGE", "pm"), show_default="pm", help=_JUDGE_HELP
)
@click.option("--base-url", type=BASE_URL, default=env.base_url, help="OpenAI-compatible server.")
@click.option("--behavior", help="The behaviour [default: the set's description or name].")
@click.option("--limit", type=click.IntRange(min=1), help="Check only the first N items.")
@click.option("--templates", type=click.Path(path_type=Path), help="Template folder.")
@click.option(
    "--calibrate/--no-calibrate",
    default=False,
    show_default=True,
    help="LM judges: divide out the judge's bias towards one answer.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the requests, tokens and cost this would take (and with --batch), send none.",
)
@_BATCH
@click.pass_context
def judge_check_cmd(
    ctx: click.Context,
    refs: tuple[str, ...],
    judge: str,
    base_url: str | None,
    behavior: str | None,
    limit: int | None,
    templates: Path | None,
    calibrate: bool,
    dry_run: bool,
    batch: bool,
) -> None:
    """Run a judge on labelled set REF and report its agreement with the labels and AUROC
    (and Spearman's correlation with the set's own label_confidence, where it has one).

    Validate a judge on a set you trust (e.g. an imported public persona file) before letting
    it filter a generated one. With the built-in preference model, the figures it was
    validated with are printed too. Several sets (one behaviour each) are checked one by one,
    then summed up: the median and worst AUROC and how many sets fall below 0.7. REF may also
    name a rollout suite (`mwe rollout`): then the stored judge scores of its reviewed
    transcripts are compared with the reviewers' 1-10 scores (Spearman's correlation).
    """
    from mwe.judges.check import (
        plan_judge_checks,
        prepare_judge_check,
        run_judge_checks,
        summarize_checks,
    )

    if len(refs) == 1 and _print_transcript_agreement(ctx, refs[0], dry_run):
        return  # REF is a rollout suite, not a set
    if len(refs) > 1 and behavior is not None:
        raise click.UsageError(
            "--behavior names one behaviour: check one set with it, or drop it to read each "
            "set's own description"
        )
    # The judge first: a bad model string or a missing key must not create a store. A plan
    # needs no API key.
    options: dict[str, Any] = {"judge": judge, "base_url": base_url, "behavior": behavior}
    options |= {"limit": limit, "templates": templates, "calibrate": calibrate, "batch": batch}
    prepared = [prepare_judge_check(plan_only=dry_run, ref=ref, **options) for ref in refs]
    with open_store(ctx, read_only=dry_run) as store:
        if dry_run:
            print_plan(plan_judge_checks(store, prepared))
            return
        with RichProgress() as progress:
            reports = run_judge_checks(store, prepared, progress=progress)
    for i, report in enumerate(reports):
        last = i == len(reports) - 1
        print_judge_check(
            report.check, report.behavior, report.card if last else None, report.caveats
        )
    if len(reports) > 1:
        print_checks_summary(summarize_checks([r.check for r in reports]))


_OUTPUT = click.option(
    "--output",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="How to print the results.",
)


@click.command("score")
@click.argument("sets", nargs=-1)
@click.option(
    "--model",
    "models",
    multiple=True,
    help="Model to score (repeatable): local, hf:PATH, openai:..., anthropic:...",
)
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A TOML file of sets x models x formats to score instead (see mwe.scoring.batch).",
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
@click.option(
    "--base-url",
    "base_urls",
    type=BASE_URL,
    default=env.default("MWE_BASE_URL", ()),
    multiple=True,
    help="OpenAI-compatible server (vLLM, ...); repeat it for several servers of one model, "
    "which share the work.",
)
@click.option(
    "--votes",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="Samples per item for APIs without log-probs.",
)
@click.option(
    "--probe",
    type=click.Choice(["knowledge"]),
    help="knowledge: also ask the model, for each item, which answer shows the set's behaviour, "
    "and report knowing against doing (the four cells, behaviour rate among recognised items).",
)
@MAX_CONCURRENCY
@_OUTPUT
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the requests, tokens and cost this would take (and with --batch), send none.",
)
@_BATCH
@click.pass_context
def score_cmd(
    ctx: click.Context,
    sets: tuple[str, ...],
    models: tuple[str, ...],
    config: Path | None,
    prompt_formats: tuple[str, ...],
    batch_size: str,
    limit: int | None,
    base_urls: tuple[str, ...],
    votes: int,
    probe: str | None,
    max_concurrency: int,
    output: str,
    dry_run: bool,
    batch: bool,
) -> None:
    """Score models on SETS (or the sets x models of --config); rows already in the store are
    not scored again.

    Prints the matching-behaviour rate (mean normalised probability of the matching answer)
    with a 95% bootstrap interval, and the argmax rate. Ctrl-C keeps what was scored: run the
    same command again to carry on.
    """
    from mwe.scoring.batch import load_config
    from mwe.scoring.run import ScoreOptions, check_score_options, score

    if config is not None:
        if sets or models:
            raise click.UsageError("give SETS and --model, or --config, not both")
        loaded = load_config(config)  # a BatchConfig is ScoreOptions plus the store to use
        if loaded.db is not None:
            ctx.obj["db"] = loaded.db
        todo: ScoreOptions = loaded.model_copy(update={"batch": True}) if batch else loaded
    else:
        if not sets or not models:
            raise click.UsageError("give the SETS to score and at least one --model (or --config)")
        todo = ScoreOptions(
            sets=list(sets),
            models=list(models),
            prompt_formats=list(prompt_formats) or None,
            limit=limit,
            batch_size=None if batch_size == "auto" else _positive_int(batch_size, "--batch-size"),
            base_url=list(base_urls) or None,
            votes=votes,
            max_concurrency=max_concurrency,
            batch=batch,
            probe="knowledge" if probe else None,
        )
    check_score_options(todo)  # a bad prompt format or batch model: before any store is opened
    if dry_run:
        from mwe.estimate import estimate_scores

        with open_store(ctx, read_only=True) as store:
            print_plan(estimate_scores(store, todo))
        return
    with open_store(ctx, read_only=False) as store, RichProgress() as progress:
        report = score(store, todo, progress=progress)
    title = f"{report.new_rows:,} items scored, {report.skipped_rows:,} already stored"
    if output != "table":  # the data goes to stdout, to be piped; the counts to stderr
        click.echo(title, err=True)
    emit_results(report.results, output, title)
    if output == "table":
        print_gaps(report.gaps)
        print_knowledge(report.knowledge)


# judge-check's options that only a set's check uses.
_SET_ONLY = ("judge", "base_url", "behavior", "limit", "templates", "calibrate", "batch")


def _print_transcript_agreement(ctx: click.Context, ref: str, dry_run: bool) -> bool:
    """For a rollout suite REF (one no set shares the name of): print its judge's Spearman
    correlation with the reviewers' transcript scores and return True. The store is opened as
    judge-check opens it (read-write, so an older one is migrated; read-only for a dry run)."""
    from mwe.dynamic.rollouts import judge_agreement, suite_named

    if not Path(ctx.obj["db"]).exists():  # no store: the set path gives the errors
        return False
    with open_store(ctx, read_only=dry_run) as store:
        suite = suite_named(store, ref)
        if suite is None:
            return False
        # A suite's check reads the judge scores its rollouts stored: a judge, a server or a
        # limit given for it would be silently ignored (a bad --judge exited 0), so refuse.
        given = [f"--{name.replace('_', '-')}" for name in _SET_ONLY if not _defaulted(ctx, name)]
        if given:
            raise click.UsageError(
                f"{ref} is a rollout suite: judge-check compares the judge scores its rollouts "
                f"stored with the reviewers' scores, so {', '.join(given)} "
                f"{'does' if len(given) == 1 else 'do'} not apply: drop "
                f"{'it' if len(given) == 1 else 'them'}"
            )
        agreement = judge_agreement(store, suite)
    if agreement.spearman is None:
        console.print(
            f"{shown(suite.ref)}: {agreement.transcripts} reviewed transcript(s) with a judge "
            f"score; the Spearman correlation needs three or more with differing scores "
            f"(score them with `mwe review {shown(suite.ref)}`)"
        )
        return True
    console.print(
        f"{shown(suite.ref)}: judge against {agreement.reviewers} reviewer(s) on "
        f"{agreement.transcripts} transcripts: Spearman {agreement.spearman:.3f}, mean "
        f"|judge - human| {agreement.mean_abs_diff:.2f}"
    )
    return True


def _defaulted(ctx: click.Context, name: str) -> bool:
    """Whether option ``name`` was left at its default (not given, nor set by a variable)."""
    return ctx.get_parameter_source(name) is click.core.ParameterSource.DEFAULT


def _positive_int(text: str, flag: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise click.UsageError(f"{flag} must be 'auto' or a positive number, not {text!r}")
    return int(text)


@click.command("results")
@click.argument("set_ref", metavar="[SET]", required=False)
@click.option("--model", help="Only this model.")
@param_count_option("for the scaling fit")
@_OUTPUT
@click.pass_context
def results_cmd(
    ctx: click.Context,
    set_ref: str | None,
    model: str | None,
    param_counts: dict[str, int],
    output: str,
) -> None:
    """Print the scores stored for SET (or every set): matching rate, 95% CI, argmax rate;
    and, where two or more models of known size were scored, the scaling slope with its
    interval."""
    from mwe.scoring.summary import stored_results

    with open_store(ctx, read_only=True) as store:
        stored = stored_results(
            store, set_ref, model, param_counts=param_counts, details=output == "table"
        )
    rows = stored.rows
    if not rows and output == "table":
        console.print("No scores yet: `mwe score SET --model MODEL` makes some.")
        return
    emit_results(rows, output, "scores")
    print_knowledge(stored.knowledge)
    print_scaling([*stored.fits, *stored.knowledge_fits])


COMMANDS = (ask_cmd, generate_cmd, judge_check_cmd, score_cmd, results_cmd)
