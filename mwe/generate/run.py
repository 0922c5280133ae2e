"""`generate_eval`: one line of description to a filtered, balanced, versioned eval set.

The stages run in order, each reading and writing candidates; every model call goes through the
cache, so the same command after a crash replays what was paid for from the store and carries
on. All input is checked before the store is touched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
)
from pydantic_core import PydanticCustomError

from mwe._version import __version__
from mwe.checkpoints import checkpoint
from mwe.errors import InputFileError, RecordError, UsageError
from mwe.formats import format_names, get_format
from mwe.generate.candidates import Candidate
from mwe.generate.dedupe import dedupe
from mwe.generate.generate import parse_replies, plan_calls, run_calls
from mwe.generate.quality import quality_metrics
from mwe.generate.select import select
from mwe.generate.spec import SPEC_MAX_TOKENS, Spec, build_spec, check_description
from mwe.generate.templates import TemplateSet, load_templates, load_topics
from mwe.item_records import check_format, decode_text, parse_records, read_source, to_record
from mwe.items import Item
from mwe.judges.judge import (
    Judge,
    LMJudge,
    PMJudge,
    check_pm_name,
    example_anchors,
    is_pm,
    judge_candidates,
    judged_yes_no,
    load_pm,
)
from mwe.judges.preference import ANCHOR_MIN, PreferenceModel
from mwe.models import (
    Backend,
    GenerateConfig,
    check_batch_model,
    get_backend,
    parse_model,
    plan_backend,
)
from mwe.models.lm import LM
from mwe.models.urls import BaseURL
from mwe.options import validated
from mwe.progress import ProgressCallback, Reporter
from mwe.runs import RunRecord
from mwe.secrets import redact_url
from mwe.store import EvalSetInfo, Store, check_name
from mwe.sync import run_sync

logger = logging.getLogger(__name__)
_FLAGS = {
    "n": "-n",
    "oversample": "--oversample",
    "format": "--format",
    "seed": "--seed",
    "per_call": "--per-call",
    "max_concurrency": "--max-concurrency",
    "max_tokens": "--max-tokens",
}


class GenerateOptions(BaseModel):
    """Everything a generation run depends on."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(description="One line describing the behaviour.")
    name: str | None = Field(default=None, description="Set name; from the description if unset.")
    format: str = Field(default="persona", description="Item format (mwe.formats).")
    n: int = Field(default=1000, ge=1, le=100_000, description="Items in the final set.")
    generator: str = Field(default="local", description="Model that writes candidates.")
    judge: str = Field(
        default="pm",
        description="What filters them: pm (the built-in preference model), pm:NAME (one "
        "fitted with `mwe judge train`) or a model string.",
    )
    generator_base_url: BaseURL | None = Field(
        default=None, description="OpenAI-compatible server."
    )
    judge_base_url: BaseURL | None = Field(default=None, description="OpenAI-compatible server.")
    oversample: float = Field(default=3.0, ge=1.0, le=50.0, description="Candidates per item.")
    per_call: int = Field(default=5, ge=1, le=50, description="Candidates asked for per call.")
    examples: Path | None = Field(default=None, description="Few-shot examples (JSONL).")
    questions: Path | None = Field(
        default=None,
        description="Formats that take them (sycophancy): the user's questions to write for, "
        "JSONL objects with 'question', 'option_a' and 'option_b'.",
    )
    templates: Path | None = Field(default=None, description="Template folder.")
    seed: int = Field(default=0, description="Seeds topics and few-shot sampling.")
    temperature: float = Field(default=1.0, ge=0.0, le=2.0, description="Generator temperature.")
    max_tokens: int = Field(default=400, ge=16, le=8192, description="Tokens per generation.")
    near_duplicate_threshold: float = Field(
        default=0.9, gt=0.0, le=1.0, description="Cosine at which items are duplicates."
    )
    min_relevance: float = Field(default=0.5, ge=0.0, le=1.0, description="Relevance required.")
    votes: int = Field(default=5, ge=1, le=50, description="Samples for judges without log-probs.")
    calibrate: bool = Field(default=False, description="Contextual calibration of the judge.")
    max_concurrency: int = Field(default=32, ge=1, le=1024, description="Requests in flight.")
    batch: bool = Field(
        default=False, description="Send the model calls through the providers' batch APIs."
    )

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        check_format(value)
        if not get_format(value).generated:
            writable = " or ".join(n for n in format_names() if get_format(n).generated)
            raise PydanticCustomError(
                "format",
                "the {name} format is import-only (mwe import FILE): generate {writable} items",
                {"name": value, "writable": writable},
            )
        return value

    @field_serializer("generator_base_url", "judge_base_url")
    def _without_credentials(self, url: str | None) -> str | None:
        # Options are dumped into runs.params and the provenance: never with a password.
        return redact_url(url)


def check_options(**values: Any) -> GenerateOptions:
    """Validated options, or a one-line usage error naming the flag."""
    options = validated(GenerateOptions, values, _FLAGS)
    check_description(options.description)
    if options.name is not None:  # an empty --name is a mistake, not "choose one for me"
        check_name(options.name)
    parse_model(options.generator)
    if is_pm(options.judge):
        check_pm_name(options.judge)
    else:
        parse_model(options.judge)
    if options.batch:
        for model in (options.generator, options.judge):
            if not is_pm(model):
                check_batch_model(model)
    return options


class ModelUsage(BaseModel):
    """What one model of a run cost: requests, cache hits, retries, tokens and dollars."""

    role: str = Field(description="generator, judge, or both when one model is both.")
    model: str
    requests: int
    cache_hits: int
    retries: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None = Field(description="None when a price is unknown.")


class GenerationResult(BaseModel):
    """What a run produced."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    info: EvalSetInfo = Field(description="The stored version (or the identical one found).")
    spec: Spec = Field(description="The behaviour as the generator defined it.")
    counts: dict[str, Any] = Field(description="Candidates at each stage, and why they dropped.")
    quality: dict[str, Any] = Field(description="The quality metrics stored with the version.")
    usage: list[ModelUsage] = Field(description="One entry per model (one if gen = judge).")
    judge_method: str = Field(
        description="pm (or 'pm, read with N agree and M disagree examples'), logprobs or votes."
    )
    elapsed_s: float
    unchanged: bool = Field(description="True when identical content was already stored.")


@dataclass
class Prepared:
    """Checked options with everything loaded that can fail on bad input: templates, examples,
    model backends. Building it touches no store."""

    options: GenerateOptions
    templates: TemplateSet
    examples: list[Item]
    examples_info: dict[str, Any] | None
    questions: list[dict[str, str]]
    questions_info: dict[str, Any] | None
    generator: Backend
    judge: Backend | None  # None: a preference model, loaded with the store


def prepare(
    options: GenerateOptions | None = None, *, plan_only: bool = False, **values: Any
) -> Prepared:
    """Check every input and load what the run needs, or raise a one-line usage error.
    ``values`` are option fields, on top of ``options`` when given. With ``plan_only`` (a dry
    run) the models are planned (:func:`mwe.models.plan_backend`): no API key is needed and no
    weights are loaded, and they cannot run."""
    options = check_options(**(dict(options) if options is not None else {}), **values)
    templates = load_templates(options.format, options.templates)
    examples, examples_info = _load_examples(options.examples)
    questions, questions_info = _load_questions(options.questions, options.format)
    make = plan_backend if plan_only else get_backend
    generator = make(options.generator, **_url(options.generator_base_url))
    same = (options.judge, options.judge_base_url) == (
        options.generator,
        options.generator_base_url,
    )
    judge: Backend | None = None
    if not is_pm(options.judge):
        judge = generator if same else make(options.judge, **_url(options.judge_base_url))
    return Prepared(
        options, templates, examples, examples_info, questions, questions_info, generator, judge
    )


def _load_examples(path: Path | None) -> tuple[list[Item], dict[str, Any] | None]:
    if path is None:
        return [], None
    data = read_source(path)  # read once: what is hashed is what was parsed
    items = parse_records(data, str(path))
    if not items:
        raise InputFileError(f"{path}: no examples in the file")
    digest = hashlib.sha256(data).hexdigest()
    return items, {"path": str(path.resolve()), "sha256": digest, "count": len(items)}


def _load_questions(
    path: Path | None, fmt: str
) -> tuple[list[dict[str, str]], dict[str, Any] | None]:
    """The user's questions of ``--questions``: JSONL objects with the format's
    ``question_keys``, each a non-empty string; other fields are ignored."""
    if path is None:
        return [], None
    keys = get_format(fmt).question_keys
    if not keys:
        takers = " or ".join(n for n in format_names() if get_format(n).question_keys)
        raise UsageError(f"--questions is for --format {takers}, not {fmt}")
    data = read_source(path)
    text = decode_text(data, str(path))
    questions = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecordError(str(path), number, f"not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise RecordError(str(path), number, "expected a JSON object")
        for key in keys:
            value = record.get(key)
            if not isinstance(value, str) or not value.strip():
                raise RecordError(str(path), number, f"field '{key}': must be a non-empty string")
        questions.append({key: " ".join(record[key].split()) for key in keys})
    if not questions:
        raise InputFileError(f"{path}: no questions in the file")
    digest = hashlib.sha256(data).hexdigest()
    return questions, {"path": str(path.resolve()), "sha256": digest, "count": len(questions)}


class _Run:
    """One generation run against an open store."""

    def __init__(
        self,
        prepared: Prepared,
        store: Store,
        progress: ProgressCallback | None,
        pm: tuple[PreferenceModel, dict[str, Any]] | None,
    ) -> None:
        self.o, self.store = prepared.options, store
        self.templates, self.examples = prepared.templates, prepared.examples
        self.questions = prepared.questions
        limit, batch = self.o.max_concurrency, self.o.batch
        self.gen = LM(prepared.generator, store, max_concurrency=limit, batch=batch)
        self.pm = pm
        self.judge_lm: LM | None = None
        if prepared.judge is prepared.generator:
            self.judge_lm = self.gen
        elif prepared.judge is not None:
            self.judge_lm = LM(prepared.judge, store, max_concurrency=limit, batch=batch)
        self.lms = [self.gen] + ([self.judge_lm] if self.judge_lm not in (None, self.gen) else [])
        self.report = Reporter(progress, self.lms)
        self.counts: dict[str, Any] = {}
        self.vectors: dict[int, np.ndarray] = {}  # embeddings of the candidates dedupe kept
        self.stage = "spec"
        self.stage_calls = 0
        for lm in self.lms:
            lm.after_call = self._after_call

    def _after_call(self) -> None:
        self.stage_calls += 1
        checkpoint(self.stage, self.stage_calls, self._flush)

    def _enter(self, stage: str) -> None:
        self.stage, self.stage_calls = stage, 0

    async def run(self) -> tuple[Spec, list[Candidate], Any, Judge]:
        o = self.o
        self.report.start("spec", None, f"asking {self.gen.spec} to define the behaviour")
        # --max-tokens bounds the spec's reply too.
        spec = await build_spec(
            o.description,
            o.format,
            o.name,
            self.gen,
            self.templates,
            max_tokens=min(SPEC_MAX_TOKENS, o.max_tokens),
        )
        if warning := spec.warning(self.gen.spec):  # said, not hidden: the judge reads it
            if self.report.callback is None:  # a library caller with no progress shown
                logger.warning("spec: %s", warning)
            self.report.start("spec", None, warning)
        self._end_stage()

        self._enter("generate")
        calls = plan_calls(
            spec,
            self.templates,
            n=o.n,
            oversample=o.oversample,
            per_call=o.per_call,
            examples=self.examples,
            topics=load_topics(),
            seed=o.seed,
            given=self.questions,
        )
        config = GenerateConfig(temperature=o.temperature, max_tokens=o.max_tokens)
        self.report.start("generate", len(calls))
        replies = await run_calls(self.gen, calls, config, self.report.advance)
        await self.gen.cache.aflush()
        self._end_stage()

        self._enter("dedupe")
        candidates, dropped = parse_replies(calls, replies)
        self.counts.update(calls=len(calls), replies_dropped=dict(dropped), parsed=len(candidates))
        shots = [e.text for e in self.examples]
        dup_counts, self.vectors = dedupe(candidates, shots, threshold=o.near_duplicate_threshold)
        self.counts.update(dup_counts)
        self._end_stage()

        self._enter("judge")
        judge = self._judge(spec)
        if note := _unread_examples(judge, self.examples, o.format):
            if self.report.callback is None:
                logger.warning("judge: %s", note)
            self.report.start("judge", None, note)
        alive = [c for c in candidates if c.alive]
        self.report.start("judge", len(alive))
        await judge_candidates(judge, alive, self.report.advance)
        if self.judge_lm is not None:
            await self.judge_lm.cache.aflush()
        self.counts["judged"] = len(alive)
        self._end_stage()
        return spec, candidates, dup_counts, judge

    def _judge(self, spec: Spec) -> Judge:
        if self.judge_lm is None:
            assert self.pm is not None  # prepare() leaves no backend only for a preference model
            # The run's few-shot examples, when it has some, give the pm the behaviour's side.
            anchors = example_anchors(self.examples, self.o.format)
            return PMJudge(self.o.judge, self.pm[0], spec.behavior, anchors)
        o = self.o
        return LMJudge(
            self.judge_lm,
            spec.behavior,
            spec.definition,
            self.templates,
            votes=o.votes,
            calibrate=o.calibrate,
        )

    def judge_identity(self) -> dict[str, Any]:
        """The judge, for provenance."""
        if self.judge_lm is None:
            assert self.pm is not None
            return self.pm[1]
        return self.judge_lm.backend.identity()

    def _end_stage(self) -> None:
        # For logs and pipes, where the bars are drawn only at the end (shown with -v).
        logger.info("%s: done (%d model calls)", self.stage, self.stage_calls)
        checkpoint(self.stage, None, self._flush)

    def _flush(self) -> None:
        for lm in self.lms:
            lm.cache.flush()

    async def close(self) -> None:
        for lm in self.lms:
            await lm.aclose()


def _unread_examples(judge: Judge, examples: list[Item], fmt: str) -> str | None:
    """What to say when the pm was given persona examples it cannot read the side from."""
    if not (isinstance(judge, PMJudge) and examples and judge.anchors is None):
        return None
    if not judged_yes_no(fmt):
        return None  # lettered options are judged option by option, with no examples
    return (
        f"note: the pm reads the description alone: --examples has fewer than {ANCHOR_MIN} "
        "distinct statements of each answer to read the behaviour's side from"
    )


def _url(base_url: str | None) -> dict[str, Any]:
    return {"base_url": base_url} if base_url else {}


def _row(cand: Candidate, run_id: int) -> dict[str, Any]:
    """The ``candidates`` table row of a candidate, with the record of the item it becomes."""
    record = to_record(get_format(cand.format).item(cand)) if cand.text else None
    return cand.row(run_id, record)


def _usage(role: str, lm: LM) -> ModelUsage:
    s = lm.stats
    return ModelUsage(
        role=role,
        model=lm.spec,
        requests=s.requests,
        cache_hits=s.cache_hits,
        retries=s.retries,
        input_tokens=s.input_tokens,
        output_tokens=s.output_tokens,
        cost_usd=s.cost_usd,
    )


async def generate_eval_async(
    store: Store,
    options: GenerateOptions | None = None,
    *,
    prepared: Prepared | None = None,
    progress: ProgressCallback | None = None,
    **values: Any,
) -> GenerationResult:
    """Generate a new version of an eval set from a one-line description.

    Give the :class:`GenerateOptions`, or their fields as keyword arguments (``description``,
    ``n``, ``format``, ``generator``, ``judge``, ...), or what :func:`prepare` returned. Input
    is checked first; nothing is stored for bad input. ``progress`` receives a
    :class:`mwe.progress.ProgressEvent` as each stage moves on.
    """
    prepared = prepared or prepare(options, **values)
    options = prepared.options
    start = time.perf_counter()
    # A stored judge is looked up before anything is written: an unknown name stores nothing.
    if options.name is not None:  # before anything is paid for; create_version checks again
        store.check_set_name(options.name)
    pm = load_pm(options.judge, store) if prepared.judge is None else None
    run = _Run(prepared, store, progress, pm)
    models = {"generator": options.generator, "judge": options.judge}
    with RunRecord(store, "generate", options=options, models=models) as record:
        run_id = record.id
        for lm in run.lms:
            lm.run_id = run_id
        spec, candidates, dup_counts, judge = await _run_and_close(run)
        shortfall = select(
            candidates, options.format, options.n, min_relevance=options.min_relevance
        )
        kept = sorted((c for c in candidates if c.kept), key=lambda c: c.idx)
        reasons = Counter(c.drop_reason for c in candidates if c.drop_reason)
        run.counts.update(dropped=dict(reasons), kept=len(kept), shortfall=shortfall)
        if not kept:
            raise UsageError(
                f"no candidate passed the filter ({json.dumps(run.counts['dropped'])}): try "
                "more --oversample, a stronger --generator or --judge, or another description"
            )
        return _store_version(
            prepared, store, run, record, spec, candidates, kept, dup_counts, judge, start
        )


def _store_version(
    prepared: Prepared,
    store: Store,
    run: _Run,
    record: RunRecord,
    spec: Spec,
    candidates: list[Candidate],
    kept: list[Candidate],
    dup_counts: dict[str, int],
    judge: Judge,
    start: float,
) -> GenerationResult:
    """Store the kept items as a new version (or find the identical one) and close the run."""
    options, templates, run_id = prepared.options, prepared.templates, record.id
    items = [get_format(c.format).item(c) for c in kept]
    # Kept candidates all survived dedupe, which embedded them already.
    vectors = np.stack([run.vectors[c.idx] for c in kept])
    quality = quality_metrics(items, vectors, {**dup_counts, "parsed": run.counts["parsed"]})
    elapsed = time.perf_counter() - start
    # One model that both writes and judges is one entry, not the same figures twice.
    if run.judge_lm is run.gen:
        usage = [_usage("generator and judge", run.gen)]
    elif run.judge_lm is None:  # a preference model makes no model calls
        usage = [_usage("generator", run.gen)]
    else:
        usage = [_usage("generator", run.gen), _usage("judge", run.judge_lm)]
    provenance = {
        "kind": "generate",
        "description": spec.behavior,
        "format": options.format,
        "generator": run.gen.backend.identity(),
        "judge": run.judge_identity(),
        "judge_method": judge.method,
        "templates": {"folder": templates.origin, "hashes": templates.hashes},
        "parameters": options.model_dump(mode="json", exclude={"description", "name"}),
        "examples": prepared.examples_info,
        "questions": prepared.questions_info,
        "counts": run.counts,
        "usage": [u.model_dump() for u in usage],
        "elapsed_s": round(elapsed, 1),
        "run_id": run_id,
        "mwe_version": __version__,
    }
    before = {s.id for s in store.list_sets(spec.name)}
    info = store.create_version(
        spec.name,
        items,
        provenance=provenance,
        description=spec.behavior,
        spec=spec.to_json(),
        stats=quality,
        run_id=run_id,
        candidates=[_row(c, run_id) for c in candidates],
    )
    if info.id in before:  # identical content: nothing new was written
        record.succeed(set_id=info.id, **run.counts)
    else:
        record.stored(info.id)
    return GenerationResult(
        info=info,
        spec=spec,
        counts=run.counts,
        quality=quality,
        usage=usage,
        judge_method=judge.method,
        elapsed_s=elapsed,
        unchanged=info.id in before,
    )


def generate_eval(
    store: Store,
    options: GenerateOptions | None = None,
    *,
    prepared: Prepared | None = None,
    progress: ProgressCallback | None = None,
    **values: Any,
) -> GenerationResult:
    """:func:`generate_eval_async`, for code that is not async; it works inside a running
    event loop too (a notebook), where it runs on a thread of its own."""
    return run_sync(
        generate_eval_async(store, options, prepared=prepared, progress=progress, **values)
    )


async def _run_and_close(run: _Run) -> tuple[Spec, list[Candidate], Any, Judge]:
    try:
        return await run.run()
    finally:
        await run.close()
