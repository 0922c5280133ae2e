"""Stage 5: the preference-model filter (Perez et al. 2022).

For each candidate the judge is asked whether a person with the behaviour would agree with the
statement (persona), or which answer such an AI would pick (choice). ``label_confidence`` is the
probability of the intended answer, from next-token log-probabilities normalised over the
options; a judge without log-probs (Anthropic) is sampled ``votes`` times instead and the vote
fraction is used. A second question gives the relevance: is the item about the behaviour at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mwe.answers import count_votes, normalised
from mwe.items import Item
from mwe.models import GenerateConfig, Message
from mwe.models.lm import LM
from mwe.pipeline.candidates import AGREE, CHOICE, Candidate
from mwe.pipeline.spec import Spec
from mwe.progress import ProgressCallback, Reporter
from mwe.templates import TemplateSet

YES_NO = ("Yes", "No")
CONTENT_FREE = "N/A"
A_B = ("A", "B")


@dataclass
class Judge:
    """Asks one judge model about candidates; remembers whether it must vote."""

    lm: LM
    spec: Spec
    templates: TemplateSet
    votes: int = 5
    method: str = "logprobs"
    calibrate: bool = False
    _priors: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A backend without log-probabilities (Anthropic) votes by sampling instead.
        if not self.lm.backend.answers_logprobs:
            self.method = "votes"

    async def probabilities(
        self, template: str, text: str, options: Sequence[str]
    ) -> dict[str, float]:
        """p(option), normalised over the options. With ``calibrate``, divided by the judge's
        answer to a content-free input ("N/A") and renormalised (contextual calibration, Zhao
        et al. 2021), which removes a small judge's bias towards one answer."""
        raw = await self._ask(template, text, options)
        if not self.calibrate:
            return raw
        if template not in self._priors:
            self._priors[template] = await self._ask(template, CONTENT_FREE, options)
        prior = self._priors[template]
        weights = {o: raw[o] / max(prior[o], 1e-6) for o in options}
        total = sum(weights.values()) or 1.0
        return {o: w / total for o, w in weights.items()}

    async def _ask(self, template: str, text: str, options: Sequence[str]) -> dict[str, float]:
        prompt = self.templates.render(
            template, behavior=self.spec.behavior, definition=self.spec.definition, text=text
        )
        messages = [Message(role="user", content=prompt)]
        if self.method == "logprobs":
            result = await self.lm.answer_logprobs(messages, list(options))
            return normalised(result.logprobs, options)
        replies = await self.lm.generate(
            messages, GenerateConfig(n=self.votes, temperature=1.0, max_tokens=5)
        )
        votes = count_votes(replies, options)
        total = sum(votes.values())
        if not total:
            return {o: 1 / len(options) for o in options}
        return {o: n / total for o, n in votes.items()}

    async def label_confidence(self, cand: Candidate) -> float:
        """p(intended answer)."""
        if cand.label == CHOICE:
            p = await self.probabilities("judge.j2", cand.text, A_B)
            return p[cand.matching.strip(" ()")]
        p = await self.probabilities("judge.j2", cand.text, YES_NO)
        return p["Yes"] if cand.label == AGREE else p["No"]

    async def relevance(self, text: str) -> float:
        """p(the item is about the behaviour)."""
        return (await self.probabilities("relevance.j2", text, YES_NO))["Yes"]


async def judge_candidates(
    judge: Judge, candidates: Sequence[Candidate], on_done: Callable[[int], None] = lambda n: None
) -> None:
    """Fill in ``label_confidence`` and ``relevance`` of every surviving candidate."""

    async def one(cand: Candidate) -> None:
        cand.label_confidence, cand.relevance = await asyncio.gather(
            judge.label_confidence(cand), judge.relevance(cand.text)
        )
        cand.stage = "judge"
        on_done(1)

    await asyncio.gather(*(one(c) for c in candidates if c.alive))


@dataclass(frozen=True)
class JudgeCheck:
    """How well a judge agrees with the labels of an existing set."""

    ref: str
    judge: str
    method: str
    items: int
    agreement: float  # share of items where the judge's most likely answer is the label
    auroc: float | None  # of p(matching answer) against the labels; None with one label
    mean_confidence: float  # mean p(label)


async def judge_check(
    lm: LM,
    items: Sequence[Item],
    behavior: str,
    templates: TemplateSet,
    ref: str,
    *,
    progress: ProgressCallback | None = None,
    calibrate: bool = False,
) -> JudgeCheck:
    """Run the judge on labelled items and compare its answers with their labels."""
    report = Reporter(progress, [lm])
    report.start("judge-check", len(items))
    from sklearn.metrics import roc_auc_score

    spec = Spec(
        name="check",
        format=items[0].format,
        behavior=behavior,
        definition=f"The behaviour in question: someone who {behavior}.",
        agree_who="",
        disagree_who="",
    )
    judge = Judge(lm, spec, templates, calibrate=calibrate)

    async def one(item: Item) -> tuple[bool, float]:
        # Score "the first option / Yes matches the behaviour" so the AUROC has one direction.
        if item.format == "choice":
            p_first = (await judge.probabilities("judge.j2", item.question, A_B))["A"]
            positive = item.answer_matching_behavior.strip(" ()") == "A"
        else:
            text = item.text
            p_first = (await judge.probabilities("judge.j2", text, YES_NO))["Yes"]
            positive = item.answer_matching_behavior.strip() == "Yes"
        report.advance()
        return positive, p_first

    results = await asyncio.gather(*(one(item) for item in items))
    labels = [positive for positive, _ in results]
    scores = [p for _, p in results]
    confidence = [p if positive else 1 - p for positive, p in results]
    return JudgeCheck(
        ref=ref,
        judge=lm.spec,
        method=judge.method,
        items=len(items),
        agreement=sum(c > 0.5 for c in confidence) / len(items),
        auroc=float(roc_auc_score(labels, scores)) if len(set(labels)) == 2 else None,
        mean_confidence=sum(confidence) / len(items),
    )
