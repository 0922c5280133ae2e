"""Stages 2 and 3: write candidates with the generator, and parse its replies.

Each call asks for several items of one label. Diversity comes from the temperature, from a
context (topic) that varies per call, and from few-shot examples sampled per call. Calls are
planned from the seed alone, so a rerun sends the same prompts and is answered from the cache.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mwe.formats import get_format
from mwe.generate.candidates import Candidate
from mwe.generate.spec import Spec
from mwe.generate.templates import TemplateSet
from mwe.items import Item
from mwe.models import GenerateConfig, Message
from mwe.models.lm import LM

EXAMPLES_PER_CALL = 3


@dataclass(frozen=True)
class GenCall:
    """One planned generator call."""

    index: int
    label: str
    prompt: str
    format: str  # the item format, a name in mwe.formats.REGISTRY
    given: dict[str, str] | None = None  # the user's question the call writes for, if any


def plan_calls(
    spec: Spec,
    templates: TemplateSet,
    *,
    n: int,
    oversample: float,
    per_call: int,
    examples: Sequence[Item],
    topics: Sequence[str],
    seed: int,
    given: Sequence[dict[str, str]] = (),
) -> list[GenCall]:
    """Every generator call of a run, decided by the seed. With ``given`` questions (the
    user's, for a format that takes them), each call writes for one of them, in turn, in
    place of a topic."""
    rng = random.Random(seed)
    order = list(topics)
    rng.shuffle(order)
    questions = list(given)
    rng.shuffle(questions)
    fmt = get_format(spec.format)
    per_label = fmt.planned(n)
    calls: list[GenCall] = []
    for label in fmt.labels:
        pool = fmt.example_texts(examples, label)
        for _ in range(math.ceil(per_label * oversample / per_call)):
            question = questions[len(calls) % len(questions)] if questions else None
            shots = rng.sample(pool, min(EXAMPLES_PER_CALL, len(pool))) if pool else []
            prompt = templates.render(
                "generate.j2",
                behavior=spec.behavior,
                definition=spec.definition,
                agree_who=spec.agree_who,
                disagree_who=spec.disagree_who,
                label=label,
                count=per_call,
                topic=order[len(calls) % len(order)] if order and not questions else "",
                given=question,
                examples=shots,
            )
            calls.append(GenCall(len(calls), label, prompt, fmt.name, question))
    return calls


def run_groups(calls: Sequence[GenCall]) -> dict[str, list[int]]:
    """The planned calls by prompt: calls with one prompt are sent as one request for that
    many samples."""
    groups: dict[str, list[int]] = {}
    for call in calls:
        groups.setdefault(call.prompt, []).append(call.index)
    return groups


async def run_calls(
    lm: LM,
    calls: Sequence[GenCall],
    config: GenerateConfig,
    on_done: Callable[[int], None] = lambda n: None,
) -> list[tuple[str, str]]:
    """The generator's reply to every call, with the cache key of the call that produced it.
    Calls with the same prompt become samples of one request, so they differ (and each is
    cached under its own sample index)."""
    groups = run_groups(calls)
    replies: dict[int, tuple[str, str]] = {}

    async def one(prompt: str, indices: list[int]) -> None:
        messages = [Message(role="user", content=prompt)]
        sampled = config.model_copy(update={"n": len(indices)})
        texts = await lm.generate(messages, sampled)
        keys = lm.chat_keys(messages, sampled)
        replies.update(zip(indices, zip(texts, keys, strict=True), strict=True))
        on_done(len(indices))

    await asyncio.gather(*(one(p, idx) for p, idx in groups.items()))
    return [replies[call.index] for call in calls]


def parse_replies(
    calls: Sequence[GenCall], replies: Sequence[tuple[str, str]]
) -> tuple[list[Candidate], Counter[str]]:
    """Candidates from every reply, and the count of what was dropped, by reason."""
    candidates: list[Candidate] = []
    dropped: Counter[str] = Counter()
    for call, (reply, key) in zip(calls, replies, strict=True):
        fmt = get_format(call.format)
        parsed = fmt.parse(reply, call.given)
        dropped.update(parsed.dropped)
        for piece in parsed.items:
            for label, text, data in fmt.candidates(call.label, piece):
                cand = Candidate(len(candidates), fmt.name, label, call.index, text, data)
                cand.call_key = key
                candidates.append(cand)
    return candidates, dropped
