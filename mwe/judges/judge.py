"""Stage 5: the preference-model filter (Perez et al. 2022).

For each candidate the judge is asked whether a person with the behaviour would agree with the
statement (persona), or which answer such an AI would pick (choice); ``label_confidence`` is
the probability of the intended answer. A second question gives the relevance: is the item
about the behaviour at all.

Two kinds of judge answer both questions:

- :class:`PMJudge`, the preference model of :mod:`mwe.judges.preference` (``pm``, the offline
  default, or ``pm:NAME`` fitted with ``mwe judge train``): a head over sentence embeddings.
- :class:`LMJudge`, a language model asked through the judge templates: the probability is read
  from next-token log-probabilities normalised over the options, or, for a model without
  log-probs (Anthropic), from ``votes`` samples. Local models answer in batches through the
  scoring runner, so judging costs what scoring costs.
"""

from __future__ import annotations

import asyncio
import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mwe.answers import count_votes, normalised
from mwe.errors import InputFileError, RecordError, UsageError
from mwe.formats import get_format
from mwe.generate.candidates import Candidate
from mwe.generate.templates import TemplateSet
from mwe.item_records import parse_records, read_source
from mwe.items import Item
from mwe.judges.preference import ANCHOR_MIN, BUILTIN, Anchors, PreferenceModel, builtin
from mwe.models import GenerateConfig, Message
from mwe.models.lm import LM
from mwe.models.worker import torch_future
from mwe.progress import ProgressCallback, Reporter
from mwe.scoring.results import spearman
from mwe.store import EvalSetInfo, SetRef, Store, damaged_judge, slugify

YES_NO = ("Yes", "No")
CONTENT_FREE = "N/A"
A_B = ("A", "B")
PM_CHUNK = 256  # texts the preference model embeds between progress updates
Advance = Callable[[int], None]


class Judge(Protocol):
    """What the filter and judge-check need from a judge."""

    @property
    def name(self) -> str:
        """As given: "pm", "pm:mine@2", "local", "openai:gpt-4.1-mini", ..."""
        ...

    @property
    def method(self) -> str:
        """ "pm", "logprobs" or "votes"."""
        ...

    async def agreement(
        self, texts: Sequence[str], fmt: str, advance: Advance
    ) -> list[dict[str, float]]:
        """Per text, p(each answer) for a person with the behaviour: the answers of the
        format's judge, {"Yes", "No"} for persona statements, {"A", "B", ...} for questions."""
        ...

    async def relevance(self, texts: Sequence[str], advance: Advance) -> list[float]:
        """Per text, p(it is about the behaviour)."""
        ...


def judged_yes_no(fmt: str) -> bool:
    """Whether items of ``fmt`` are judged as one statement with a Yes/No answer (the others
    have lettered options, judged option by option)."""
    return get_format(fmt).judge_answers == YES_NO


def example_anchors(examples: Sequence[Item], fmt: str) -> Anchors | None:
    """The few-shot examples of a yes/no set as the preference model's anchors (its agree and
    disagree statements), or ``None`` when the format has lettered options or a side has too
    few distinct examples to read from."""
    if not judged_yes_no(fmt):
        return None
    anchors = _sides(examples)
    return anchors if anchors.usable else None


def _sides(examples: Sequence[Item]) -> Anchors:
    """The examples' statements by the answer that matches the behaviour, cleaned."""
    sides: dict[str, list[str]] = {"Yes": [], "No": []}
    for e in examples:
        answer = e.answer_matching_behavior.strip()
        if answer in sides and e.statement:
            sides[answer].append(e.statement)
    return Anchors.of(sides["Yes"], sides["No"])


def read_anchors(path: Path) -> Anchors:
    """The labelled persona examples of a JSONL file (as ``generate --examples`` reads them)
    as anchors; a one-line error when a side has too few."""
    anchors = _sides(parse_records(read_source(path), str(path)))
    if not anchors.usable:
        raise InputFileError(
            f"{path}: the pm reads the side from at least {ANCHOR_MIN} distinct statements of "
            f'each side; found {len(anchors.agree)} with answer_matching_behavior " Yes" and '
            f'{len(anchors.disagree)} with " No" (a statement on both sides counts for neither)'
        )
    return anchors


def is_pm(name: str) -> bool:
    """Whether a ``--judge`` value names a preference model: ``pm`` or ``pm:NAME[@N]``."""
    return name == BUILTIN or name.startswith(BUILTIN + ":")


@dataclass
class PMJudge:
    """The preference model as a judge of one behaviour."""

    name: str
    model: PreferenceModel
    behavior: str
    #: Labelled statements of the behaviour (the run's few-shot examples) that p(agree) and
    #: p(relevant) are read with, beside the description (see
    #: :class:`mwe.judges.preference.Anchors`); ``None`` when unusable.
    anchors: Anchors | None = None
    method: str = "pm"

    def __post_init__(self) -> None:
        if self.anchors is not None and not self.anchors.usable:
            self.anchors = None
        if self.anchors is not None:
            self.method = f"pm, read with {self.anchors.describe()}"

    async def agreement(
        self, texts: Sequence[str], fmt: str, advance: Advance
    ) -> list[dict[str, float]]:
        if not judged_yes_no(fmt):  # lettered options
            return await self._chunks(
                lambda part: self.model.choose(self.behavior, part), texts, advance
            )
        p_yes = await self._chunks(
            lambda part: self.model.agree(self.behavior, part, self.anchors).tolist(),
            texts,
            advance,
        )
        return [{"Yes": p, "No": 1.0 - p} for p in p_yes]

    async def relevance(self, texts: Sequence[str], advance: Advance) -> list[float]:
        return await self._chunks(
            lambda part: self.model.relevant(self.behavior, part, self.anchors).tolist(),
            texts,
            advance,
        )

    async def _chunks(
        self, fn: Callable[[list[str]], list[Any]], texts: Sequence[str], advance: Advance
    ) -> list[Any]:
        # On the torch thread, so the event loop (and Ctrl-C) stays free while it embeds.
        out: list[Any] = []
        for start in range(0, len(texts), PM_CHUNK):
            part = list(texts[start : start + PM_CHUNK])
            out.extend(await torch_future(fn, part))
            advance(len(part))
        return out


@dataclass
class LMJudge:
    """A language model asked through the judge templates; remembers whether it must vote."""

    lm: LM
    behavior: str
    definition: str
    templates: TemplateSet
    votes: int = 5
    method: str = "logprobs"
    calibrate: bool = False
    _priors: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A backend without log-probabilities (Anthropic) votes by sampling instead.
        if not self.lm.backend.answers_logprobs:
            self.method = "votes"

    @property
    def name(self) -> str:
        return self.lm.spec

    async def agreement(
        self, texts: Sequence[str], fmt: str, advance: Advance
    ) -> list[dict[str, float]]:
        return await self._each("judge.j2", texts, get_format(fmt).judge_answers, advance)

    async def relevance(self, texts: Sequence[str], advance: Advance) -> list[float]:
        p = await self._each("relevance.j2", texts, YES_NO, advance)
        return [x["Yes"] for x in p]

    async def _each(
        self, template: str, texts: Sequence[str], options: Sequence[str], advance: Advance
    ) -> list[dict[str, float]]:
        async def one(text: str) -> dict[str, float]:
            p = await self.probabilities(template, text, options)
            advance(1)
            return p

        # All at once: a local model's micro-batcher packs them into runner batches.
        return list(await asyncio.gather(*(one(t) for t in texts)))

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
            template, behavior=self.behavior, definition=self.definition, text=text
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


def label_confidence(cand: Candidate, p: dict[str, float]) -> float:
    """p(the candidate's intended answer), from the judge's answer probabilities."""
    return get_format(cand.format).label_confidence(cand, p)


async def judge_candidates(
    judge: Judge, candidates: Sequence[Candidate], advance: Advance = lambda n: None
) -> None:
    """Fill in ``label_confidence`` and ``relevance`` of every surviving candidate; ``advance``
    counts candidates (each is asked two questions)."""
    alive = [c for c in candidates if c.alive]
    if not alive:
        return
    fmt = get_format(alive[0].format)
    texts = [fmt.judge_text(c) for c in alive]
    asked = [0]

    def half(n: int) -> None:
        # Two questions per candidate: report a candidate once both are answered.
        before = asked[0] // 2
        asked[0] += n
        advance(asked[0] // 2 - before)

    answers, relevance = await asyncio.gather(
        judge.agreement(texts, fmt.name, half), judge.relevance(texts, half)
    )
    for cand, p, rel in zip(alive, answers, relevance, strict=True):
        cand.label_confidence, cand.relevance = label_confidence(cand, p), rel
        cand.stage = "judge"


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
    # Spearman's rank correlation of the judge's p(label) with the items' own
    # label_confidence (the public files' preference-model confidence), over the items that
    # have one; None when fewer than three have one, or either side is constant.
    label_spearman: float | None = None
    label_confidence_items: int = 0


def check_judgeable(fmt: str, ref: str) -> None:
    """A one-line usage error unless a judge can label ``fmt`` items (a Yes/No or lettered
    answer): the Inverse Scaling Prize's formats have a right answer but no behaviour label."""
    if not get_format(fmt).judge_answers:
        raise UsageError(
            f"{ref} is a {fmt} set: its items are scored by likelihood, with no Yes/No or (A)/(B) "
            f"behaviour label, so there is no judge to check; score models on it instead "
            f"(mwe score {ref} --model MODEL)"
        )


def single_format(items: Sequence[Item], ref: str) -> str:
    """The one format of ``items``; a one-line usage error when they mix formats (a judge
    check compares answers of one kind)."""
    formats = {item.format for item in items}
    if len(formats) != 1:
        raise UsageError(
            f"{ref} mixes {' and '.join(sorted(formats))} items: check each format on its own"
        )
    return formats.pop()


async def judge_check(
    judge: Judge, items: Sequence[Item], ref: str, *, progress: ProgressCallback | None = None
) -> JudgeCheck:
    """Run the judge on labelled items and compare its answers with their labels."""
    from sklearn.metrics import roc_auc_score

    fmt = single_format(items, ref)
    check_judgeable(fmt, ref)
    lms = [judge.lm] if isinstance(judge, LMJudge) else []
    report = Reporter(progress, lms)
    report.start("judge-check", len(items))
    answers = await judge.agreement([item.text for item in items], fmt, report.advance)
    # Score "the first option / Yes matches the behaviour", so the AUROC has one direction.
    first = get_format(fmt).judge_answers[0]
    positive = [item.answer_matching_behavior.strip(" ()") == first for item in items]
    scores = [p[first] for p in answers]
    confidence = [
        p[item.answer_matching_behavior.strip(" ()")]
        for p, item in zip(answers, items, strict=True)
    ]
    theirs = [
        (c, item.label_confidence)
        for c, item in zip(confidence, items, strict=True)
        if item.label_confidence is not None
    ]
    return JudgeCheck(
        ref=ref,
        judge=judge.name,
        method=judge.method,
        items=len(items),
        agreement=sum(c > 0.5 for c in confidence) / len(items),
        auroc=float(roc_auc_score(positive, scores)) if len(set(positive)) == 2 else None,
        mean_confidence=sum(confidence) / len(items),
        label_spearman=spearman([c for c, _ in theirs], [t for _, t in theirs]),
        label_confidence_items=len(theirs),
    )


def judge_caveats(
    info: EvalSetInfo, judge: str, identity: dict[str, Any], store: Store | None = None
) -> list[str]:
    """Why a judge-check of ``judge`` (its provenance ``identity``) on set ``info`` may
    flatter the judge, one line each: the set's behaviour is in the preference model's
    training data (in-sample), or the set was selected by this same judge."""
    lines = []
    prov = info.provenance
    if is_pm(judge):
        model, _ = load_pm(judge, store)
        trained = set(_trained_behaviours(model.card))
        sets: list[str] = []
        if judge != BUILTIN and store is not None:  # a fitted pm starts from the built-in one
            training = store.resolve_judge(judge.removeprefix(BUILTIN + ":")).training
            trained |= set(_trained_behaviours(builtin().card))
            sets = list(training.get("sets") or [])
        names = {info.name, slugify(info.description or "")}
        names |= {Path(str(s.get("path", ""))).stem for s in prov.get("sources") or []}
        hit = sorted(n for n in names if n in trained) + [r for r in sets if r == info.ref]
        if hit:
            held = (builtin().card.get("held_out") or {}).get("per_behaviour", {}).get(hit[0])
            figure = f"; its held-out AUROC on {hit[0]} was {held['auroc']:.3f}" if held else ""
            lines.append(
                f"caveat: {hit[0]} is in the training data of {judge} (in-sample), so these "
                f"figures flatter it{figure}; check a judge on behaviours it was not fitted on"
            )
    chosen_by = prov.get("judge") if prov.get("kind") == "generate" else None
    if isinstance(chosen_by, dict) and _same_model(chosen_by, identity):
        lines.append(
            f"caveat: {info.ref} was selected by this same judge ({judge}, per its provenance): "
            "this is its agreement with its own choices, not a validation"
        )
    return lines


def _trained_behaviours(card: dict[str, Any]) -> list[str]:
    found = card.get("behaviours") or []
    return list(found) if isinstance(found, list) else []


def _same_model(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two provenance identities name one model (weights, where both record them)."""
    keys = ("backend", "model", "base_url", "sha256")
    return all(a.get(k) == b.get(k) for k in keys if k in a or k in b)


def load_pm(name: str, store: Store | None) -> tuple[PreferenceModel, dict[str, Any]]:
    """The preference model ``name`` names (``pm``, or ``pm:NAME[@N]`` from the store), and its
    identity for provenance."""
    if name == BUILTIN:
        model = builtin()
        return model, {"backend": BUILTIN, "model": BUILTIN, "sha256": model.sha256}
    ref = name.removeprefix(BUILTIN + ":")
    if store is None:
        raise UsageError(f"--judge {name}: a stored judge needs a store (--db)")
    info = store.resolve_judge(ref)
    try:
        model = PreferenceModel.from_bytes(store.judge_weights(info))
    except (ValueError, KeyError, TypeError, OSError, EOFError, zipfile.BadZipFile) as exc:
        # Bytes that are no .npz of the right arrays: the row was damaged or edited.
        raise damaged_judge(info.ref, f"its weights cannot be read: {exc}") from None
    return model, {"backend": BUILTIN, "model": info.ref, "sha256": model.sha256}


def check_pm_name(name: str) -> None:
    """A one-line usage error unless ``name`` is ``pm`` or ``pm:NAME[@N]``."""
    if name != BUILTIN:
        SetRef.parse(name.removeprefix(BUILTIN + ":"))


@dataclass(frozen=True)
class Judged:
    """A judge's two answers on one text (`mwe judge apply`)."""

    text: str
    agree: float  # p(a person with the behaviour would say it)
    relevant: float  # p(it is a statement about the behaviour at all)


async def apply_judge(
    judge: Judge, texts: Sequence[str], *, progress: ProgressCallback | None = None
) -> list[Judged]:
    """Ask ``judge`` both questions about each statement, in order."""
    lms = [judge.lm] if isinstance(judge, LMJudge) else []
    report = Reporter(progress, lms)
    report.start("judge", len(texts))
    asked = [0]

    def half(n: int) -> None:
        # Two questions per text: report a text once both are answered.
        before = asked[0] // 2
        asked[0] += n
        report.advance(asked[0] // 2 - before)

    if isinstance(judge, PMJudge):  # one embedding pass answers both questions
        p_yes, rel = [], []
        for start in range(0, len(texts), PM_CHUNK):
            part = list(texts[start : start + PM_CHUNK])
            agree, relevant = await torch_future(
                judge.model.judge, judge.behavior, part, judge.anchors
            )
            p_yes.extend(agree.tolist())
            rel.extend(relevant.tolist())
            report.advance(len(part))
    else:
        answers, rel = await asyncio.gather(
            judge.agreement(texts, "persona", half), judge.relevance(texts, half)
        )
        p_yes = [p["Yes"] for p in answers]
    return [Judged(t, a, r) for t, a, r in zip(texts, p_yes, rel, strict=True)]


def read_statements(path: Path) -> list[str]:
    """The statements of a file: JSON Lines (each a string, or an object with a ``statement``
    or ``text`` field, as persona items have) or plain text, one statement a line. Blank lines
    are skipped."""
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputFileError(
            f"{path} is not UTF-8 text: give JSON Lines or one statement a line"
        ) from None
    except OSError as err:
        raise InputFileError(f"cannot read {path}: {err.strerror or err}") from None
    lines = [(n, line.strip()) for n, line in enumerate(raw.splitlines(), 1) if line.strip()]
    if not lines:
        raise InputFileError(f"{path} holds no statements: give one a line")
    if not lines[0][1].startswith(("{", '"')):  # plain text
        return [line for _, line in lines]
    out = []
    for n, line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise RecordError(str(path), n, f"not valid JSON ({err.msg})") from None
        if isinstance(record, dict):
            record = record.get("statement", record.get("text"))
        if not isinstance(record, str) or not record.strip():
            raise RecordError(
                str(path), n, 'give a JSON string or an object with a "statement" or "text" field'
            )
        out.append(record.strip())
    return out
