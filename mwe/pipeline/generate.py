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

from mwe.items import Item
from mwe.models import GenerateConfig, Message
from mwe.models.lm import LM
from mwe.pipeline.candidates import AGREE, CHOICE, DISAGREE, Candidate, choice_question
from mwe.pipeline.parse import parse_choices, parse_statements
from mwe.pipeline.spec import Spec
from mwe.templates import TemplateSet

EXAMPLES_PER_CALL = 3


@dataclass(frozen=True)
class GenCall:
    """One planned generator call."""

    index: int
    label: str
    prompt: str


def example_texts(examples: Sequence[Item], label: str) -> list[str]:
    """The few-shot texts for one label: statements (persona) or whole questions (choice)."""
    if label == CHOICE:
        return [e.question for e in examples]
    wanted = " Yes" if label == AGREE else " No"
    same = [e.text for e in examples if e.answer_matching_behavior == wanted]
    return same or [e.text for e in examples]


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
) -> list[GenCall]:
    """Every generator call of a run, decided by the seed."""
    rng = random.Random(seed)
    order = list(topics)
    rng.shuffle(order)
    labels = [CHOICE] if spec.format == "choice" else [AGREE, DISAGREE]
    per_label = n if spec.format == "choice" else math.ceil(n / 2)
    calls: list[GenCall] = []
    for label in labels:
        pool = example_texts(examples, label)
        for _ in range(math.ceil(per_label * oversample / per_call)):
            shots = rng.sample(pool, min(EXAMPLES_PER_CALL, len(pool))) if pool else []
            prompt = templates.render(
                "generate.j2",
                behavior=spec.behavior,
                definition=spec.definition,
                agree_who=spec.agree_who,
                disagree_who=spec.disagree_who,
                label=label,
                count=per_call,
                topic=order[len(calls) % len(order)] if order else "",
                examples=shots,
            )
            calls.append(GenCall(len(calls), label, prompt))
    return calls


async def run_calls(
    lm: LM,
    calls: Sequence[GenCall],
    config: GenerateConfig,
    on_done: Callable[[int], None] = lambda n: None,
) -> list[tuple[str, str]]:
    """The generator's reply to every call, with the cache key of the call that produced it.
    Calls with the same prompt become samples of one request, so they differ (and each is
    cached under its own sample index)."""
    groups: dict[str, list[int]] = {}
    for call in calls:
        groups.setdefault(call.prompt, []).append(call.index)
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
        parsed = parse_choices(reply) if call.label == CHOICE else parse_statements(reply)
        dropped.update(parsed.dropped)
        for piece in parsed.items:
            if call.label == CHOICE:
                text = choice_question(piece.question, piece.option_a, piece.option_b)
                cand = Candidate(len(candidates), CHOICE, call.index, text, piece)
            else:
                cand = Candidate(len(candidates), call.label, call.index, piece)
            cand.call_key = key
            candidates.append(cand)
    return candidates, dropped
