"""What a run will cost before it runs (`--dry-run`): its requests, tokens and price.

The plan is the run's own: the generation prompts are rendered from the real templates and
planned with :func:`mwe.generate.generate.plan_calls` (with the description standing in for the
definition the generator would write), and scoring counts the items not scored yet. Nothing is
sent. Tokens are estimated at four characters a token, and the generator's reply at
``TOKENS_PER_ITEM`` tokens per item asked for; the judge is counted for every candidate asked for
(before dedupe drops some), so the estimate errs high. Prices are the listed ones and, with
``--batch``, the providers' batch price.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mwe.generate.generate import plan_calls, run_groups
from mwe.generate.spec import SPEC_MAX_TOKENS, Spec, default_name, parse_understanding
from mwe.generate.templates import TemplateSet, load_templates, load_topics
from mwe.items import Item
from mwe.models.base import Backend, Usage
from mwe.models.pricing import BATCH_PRICE, FREE_BACKENDS, cost_usd
from mwe.scoring.prompts import context_text, options
from mwe.store import Store

if TYPE_CHECKING:
    from mwe.dynamic.rollouts import RolloutOptions
    from mwe.generate.run import Prepared
    from mwe.scoring.run import ScoreOptions

CHARS_PER_TOKEN = 4
TOKENS_PER_ITEM = 30
JUDGE_QUESTIONS = {"label": "judge.j2", "relevance": "relevance.j2"}
SAMPLE_STATEMENT = "I would rather keep doing my work than let anyone change what I care about."


def approx_tokens(text: str) -> int:
    """A rough token count of English text: four characters a token."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


@dataclass(frozen=True)
class PlannedCalls:
    """The requests one stage will send to one model, and their price (``None``: unknown)."""

    stage: str
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    batch_cost_usd: float | None
    #: Replies asked for: one request may ask for several samples (the generator's calls
    #: with one prompt); ``None``: one per request.
    samples: int | None = None

    @property
    def generations(self) -> int:
        """The replies the stage asks for (``requests`` where each asks for one)."""
        return self.requests if self.samples is None else self.samples


def priced(
    stage: str, backend: Backend, requests: int, input_tokens: int, output_tokens: int
) -> PlannedCalls:
    """:class:`PlannedCalls` with the listed price and the batch price of ``backend``."""
    cost = cost_usd(
        backend.spec, backend.backend, backend.base_url, Usage(input_tokens, output_tokens)
    )
    return PlannedCalls(
        stage,
        backend.spec,
        requests,
        input_tokens,
        output_tokens,
        cost,
        None if cost is None else cost * BATCH_PRICE,
    )


def total_cost(plan: Sequence[PlannedCalls], batch: bool = False) -> float | None:
    """The plan's total, ``None`` if any price is unknown."""
    costs = [p.batch_cost_usd if batch else p.cost_usd for p in plan]
    return None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)


def estimate_generation(prepared: Prepared) -> list[PlannedCalls]:
    """The requests of `mwe generate` as :func:`mwe.generate.run.prepare` set it up (a
    preference-model judge runs here and sends none)."""
    o, templates, generator, judge = (
        prepared.options,
        prepared.templates,
        prepared.generator,
        prepared.judge,
    )
    description, fmt, n, per_call, max_tokens = (
        o.description,
        o.format,
        o.n,
        o.per_call,
        o.max_tokens,
    )
    behavior = " ".join(description.split())
    definition, agree, disagree = parse_understanding("", behavior)
    spec = Spec(default_name(behavior), fmt, behavior, definition, agree, disagree)
    understand = templates.render("understand.j2", behavior=behavior)
    plan = [priced("spec", generator, 1, approx_tokens(understand), SPEC_MAX_TOKENS)]

    calls = plan_calls(
        spec,
        templates,
        n=n,
        oversample=o.oversample,
        per_call=per_call,
        examples=prepared.examples,
        topics=load_topics(),
        seed=o.seed,
        given=prepared.questions,
    )
    groups = run_groups(calls)  # calls with one prompt are one request with several samples
    # The Anthropic API returns one sample per request: each sample is a request, and pays
    # for its prompt.
    per_sample = generator.backend == "anthropic"
    requests = sum(len(i) for i in groups.values()) if per_sample else len(groups)
    reply = min(max_tokens, per_call * TOKENS_PER_ITEM)
    generate = priced(
        "generate",
        generator,
        requests,
        sum(approx_tokens(p) * (len(i) if per_sample else 1) for p, i in groups.items()),
        reply * len(calls),
    )
    plan.append(dataclasses.replace(generate, samples=len(calls)))
    if judge is None:  # a preference model: runs here
        return plan + [PlannedCalls("judge", o.judge, 0, 0, 0, 0.0, 0.0)]
    candidates = len(calls) * per_call
    return plan + [
        judge_plan(
            f"judge ({question})",
            judge,
            templates,
            template,
            behavior,
            definition,
            candidates,
            o.votes,
            o.calibrate,
        )
        for question, template in JUDGE_QUESTIONS.items()
    ]


def judge_plan(
    stage: str,
    judge: Backend,
    templates: TemplateSet,
    template: str,
    behavior: str,
    definition: str,
    texts: int,
    votes: int,
    calibrate: bool,
) -> PlannedCalls:
    """The requests of an LM judge asking ``template`` about ``texts`` items: one answer
    log-prob request each, or ``votes`` sampled replies of a few tokens without log-probs."""
    prompt = approx_tokens(
        templates.render(template, behavior=behavior, definition=definition, text=SAMPLE_STATEMENT)
    )
    asked = texts + (1 if calibrate else 0)  # calibration asks one content-free question more
    if judge.answers_logprobs:
        return priced(stage, judge, asked, asked * prompt, asked)
    sampled = asked * votes
    return priced(stage, judge, sampled, sampled * prompt, sampled * 5)


def estimate_scoring(
    items: Sequence[Item], backend: Backend, prompt_format: str, votes: int, stage: str
) -> PlannedCalls:
    """The requests of scoring ``items`` (those not stored yet) on ``backend``."""
    if backend.scores_continuations:  # a local model: runs here, sends nothing
        return priced(stage, backend, 0, 0, 0)
    if prompt_format == "raw":  # a server's prompt log-probs: one request per option
        texts = [context_text(item, "raw") + o for item in items for o in options(item)]
        return priced(stage, backend, len(texts), sum(map(approx_tokens, texts)), len(texts))
    inputs = sum(approx_tokens(item.question) for item in items)
    if backend.answers_logprobs:
        return priced(stage, backend, len(items), inputs, len(items))
    return priced(stage, backend, len(items) * votes, inputs * votes, len(items) * votes * 8)


def estimate_scores(store: Store, options: ScoreOptions) -> list[PlannedCalls]:
    """The requests of `mwe score` with ``options``: the items of each set x model x format
    that are not stored yet. Local models are listed at no cost and are not loaded."""
    from mwe.models import parse_model, plan_backend
    from mwe.scoring.run import servers

    infos = [store.resolve(ref) for ref in options.sets]
    plan = []
    for model in options.models:
        kind, _ = parse_model(model)
        backend = (
            None
            if kind in FREE_BACKENDS
            else plan_backend(model, **servers(model, options.base_url))
        )
        default = "raw" if backend is None else backend.default_prompt_format()
        for info in infos:
            items = store.items(info, limit=options.limit)
            for fmt in options.prompt_formats or [default]:
                stage = f"{info.ref} ({fmt})"
                if backend is None:
                    plan.append(PlannedCalls(stage, model, 0, 0, 0, 0.0, 0.0))
                    continue
                done = store.scored_indices(info, model, fmt)
                todo = [item for i, item in enumerate(items) if i not in done]
                plan.append(estimate_scoring(todo, backend, fmt, options.votes, stage))
                if options.probe:  # the probe's question of each item not probed yet
                    from mwe.scoring import knowledge

                    templates = knowledge.probe_templates()
                    behavior = knowledge.behavior_of(info)
                    probed = store.scored_indices(info, model, f"{fmt}/{knowledge.KNOWLEDGE}")
                    asked = [
                        knowledge.knowledge_item(item, behavior, templates)
                        for i, item in enumerate(items)
                        if i not in probed
                    ]
                    stage = f"{info.ref} ({fmt}/{knowledge.KNOWLEDGE})"
                    plan.append(estimate_scoring(asked, backend, fmt, options.votes, stage))
    return plan


def estimate_rollout(options: RolloutOptions) -> list[PlannedCalls]:
    """The requests of `mwe rollout` (every scenario ideated, every rollout played in full):
    each message counted at ``max_tokens`` (errs high), each turn resending the conversation
    so far. A set as the source needs no ideation; a rerun sends only what is not cached."""
    from mwe.dynamic.rollouts import _SAMPLES, FIRST_TURN, JUDGE_MIN_TOKENS, VARIABLES, max_tokens
    from mwe.models import parse_model

    o = options
    templates = load_templates("rollout", variables=VARIABLES, samples=_SAMPLES)
    behavior = o.source
    plan = []

    def planned(stage: str, model: str, requests: int, inp: int, out: int) -> PlannedCalls:
        kind = parse_model(model)[0]
        cost = cost_usd(model, kind, o.base_url, Usage(inp, out))
        return PlannedCalls(
            stage, model, requests, inp, out, cost, None if cost is None else cost * BATCH_PRICE
        )

    if any(c.isspace() for c in o.source):  # a description: the auditor ideates
        distinct = max(1, math.ceil(o.scenarios * o.diversity))
        calls = 1 + min(distinct, o.scenarios - distinct)
        prompt = templates.render("ideate.j2", behavior=behavior, count=distinct, base="")
        plan.append(
            planned("ideate", o.auditor, calls, calls * approx_tokens(prompt), 60 * o.scenarios)
        )
    system = templates.render(
        "auditor.j2", behavior=behavior, scenario="x" * 300, turns=o.turns, rep=1
    )
    first = approx_tokens(system) + approx_tokens(FIRST_TURN)
    rollouts = len(o.targets) * o.scenarios * o.reps
    said = max_tokens(o, o.auditor)
    # Each turn resends the conversation so far: the auditor's messages and the replies.
    replies = {target: max_tokens(o, target) for target in o.targets}
    reply = max(replies.values())
    auditor_in = sum(first + t * (said + reply) for t in range(o.turns))
    plan.append(
        planned(
            "auditor",
            o.auditor,
            rollouts * o.turns,
            rollouts * auditor_in,
            rollouts * o.turns * said,
        )
    )
    for target, msg in replies.items():
        n = o.scenarios * o.reps
        target_in = sum((t + 1) * said + t * msg for t in range(o.turns))
        plan.append(planned("target", target, n * o.turns, n * target_in, n * o.turns * msg))
    judge_prompt = templates.render(
        "judge.j2", behavior=behavior, scenario="x" * 300, transcript=""
    )
    judge_in = approx_tokens(judge_prompt) + o.turns * (said + reply)
    judged = max(max_tokens(o, o.judge), JUDGE_MIN_TOKENS)
    plan.append(planned("judge", o.judge, rollouts, rollouts * judge_in, rollouts * judged))
    return plan
