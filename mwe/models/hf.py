"""Local transformers models (``hf:<path-or-id>``): generation and log-probabilities in batches.

Concurrent calls are gathered by a micro-batcher into one batch per ``generate`` call, or per
pass of the scoring kernel (:class:`mwe.models.hf_scorer.LocalScorer`) for answer log-probs, so the
pipeline can fire requests at a local model the way it does at an API, and judging costs what
scoring costs. CUDA with bf16 when a GPU is present, CPU with fp32 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from mwe.errors import UsageError
from mwe.models.base import AnswerLogprobs, Backend, GenerateConfig, Message, Samples, Usage
from mwe.models.hf_scorer import LocalScorer, ScoreRequest, right_padded
from mwe.models.worker import on_torch_worker, torch_future, torch_worker

logger = logging.getLogger(__name__)
In = TypeVar("In")
Out = TypeVar("Out")
#: Answer-log-prob requests per pass of the scoring runner. It packs them into forward passes
#: by token budget itself; a larger pass shares one prefix cache and sorts by length over more
#: requests, and its results come back batch by batch, not at the end.
LOGPROB_PASS = 1024


class Stopped(Exception):
    """Raised inside a forward pass of a local model whose work was stopped (Ctrl-C): the
    pass ends at its next layer and its result is thrown away, never cached or stored."""


class _StopCheck:
    """The stop event of the work now running on the torch thread, checked before every
    transformer block of every local model (see :func:`stopped_by`).

    A forward pass is the unit that cannot be interrupted from outside: the prefill of a
    batch of generations takes seconds on a CPU (16 prompts of 150 tokens, 6-8 s on two
    cores), so a check per generated token (a stopping criterion) or per batch leaves Ctrl-C
    waiting that long. Per block it waits for one block: a thirtieth of a pass."""

    event: threading.Event | None = None

    def __call__(self, module: torch.nn.Module, args: Any) -> None:
        if self.event is not None and self.event.is_set():
            raise Stopped


_stop_check = _StopCheck()


@contextlib.contextmanager
def stopped_by(event: threading.Event) -> Iterator[None]:
    """Within this block (on the torch thread), every forward pass of a local model raises
    :class:`Stopped` at its next transformer block once ``event`` is set."""
    previous, _stop_check.event = _stop_check.event, event
    try:
        yield
    finally:
        _stop_check.event = previous


def make_stoppable(net: torch.nn.Module) -> None:
    """Have ``net`` check the stop event before each of its transformer blocks (its longest
    ``ModuleList``; the whole model where it has none). Done once per model object."""
    if getattr(net, "_mwe_stoppable", False):
        return
    lists = [m for m in net.modules() if isinstance(m, torch.nn.ModuleList)]
    for block in max(lists, key=len) if lists else [net]:
        block.register_forward_pre_hook(_stop_check)
    net._mwe_stoppable = True  # type: ignore[assignment]


class MicroBatcher(Generic[In, Out]):
    """Collects concurrent submissions and runs them through ``fn`` a batch at a time, on
    ``executor`` (the event loop's default one if not given) so the event loop stays free.

    ``fn`` yields (index in the batch, result) as results are ready, in any order, so a caller
    is answered as soon as its own result is, not when the whole batch is done. It is given
    the batch's own stop event, set when the batch's callers are cancelled (Ctrl-C): one per
    batch, so a stop meant for one batch is never cleared by, or lost to, the next; ``fn``
    may end early by raising :class:`Stopped`."""

    def __init__(
        self,
        fn: Callable[[list[In], threading.Event], Iterable[tuple[int, Out]]],
        max_batch: int,
        executor: Executor | None = None,
    ) -> None:
        self.fn = fn
        self.max_batch = max_batch
        self.executor = executor
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: In) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let callers scheduled in the same tick join the first batch
        loop = asyncio.get_running_loop()
        while self._pending:
            batch = [(i, f) for i, f in self._pending[: self.max_batch] if not f.done()]
            del self._pending[: self.max_batch]
            if not batch:  # every caller of these went away (cancelled)
                continue
            futures = [future for _, future in batch]
            stop = threading.Event()
            try:
                await loop.run_in_executor(self.executor, self._run, loop, batch, stop)
            except asyncio.CancelledError:
                stop.set()  # the running batch ends at its next transformer block
                raise
            except Exception as exc:  # noqa: BLE001 - handed to every caller not yet answered
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for future in futures:
                if not future.done():
                    future.set_exception(RuntimeError("the batch gave this request no result"))

    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[In, asyncio.Future[Out]]],
        stop: threading.Event,
    ) -> None:
        """On the worker thread: answer each caller as soon as its result is ready. The answers
        are scheduled before the thread's own completion, so all are given by the time
        :meth:`_drain` resumes."""
        results = iter(self.fn([item for item, _ in batch], stop))
        try:
            for k, result in results:
                try:
                    loop.call_soon_threadsafe(_answer, batch[k][1], result)
                except RuntimeError:  # the event loop is closed: nobody waits for the rest
                    return
        except Stopped:  # its callers were cancelled: nobody waits for the rest
            return
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()


def _answer(future: asyncio.Future[Out], result: Out) -> None:
    if not future.done():  # its caller may have gone away
        future.set_result(result)


def pick_device(device: str | None = None) -> tuple[torch.device, torch.dtype]:
    """CUDA with bf16 when available (or asked for), else CPU with fp32."""
    name = device or ("cuda" if torch.cuda.is_available() else "cpu")
    chosen = torch.device(name)
    return chosen, torch.bfloat16 if chosen.type == "cuda" else torch.float32


def quiet_transformers() -> None:
    """Silence transformers' per-load progress bars: mwe shows its own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def load_options(device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """``from_pretrained`` options for a device. On CPU, eager attention: SDPA picks a different
    kernel for padded and unpadded inputs, so a batched score would differ from an unbatched
    one by ~1e-5; eager attention makes them bit-identical."""
    return {"dtype": dtype, "attn_implementation": "eager" if device.type == "cpu" else "sdpa"}


class HFBackend(Backend):
    """A transformers causal LM, from a local folder or (with network) a Hub id. It is a
    :class:`~mwe.models.hf_scorer.ScoringBackend`: the scoring kernel runs on it."""

    backend = "hf"
    # Concurrency here only feeds the micro-batchers; batches are bounded by batch_size (generate)
    # and LOGPROB_PASS (answer log-probs). A judge fires all of its questions at once.
    max_concurrency = 1024
    answers_logprobs = True
    scores_continuations = True

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        device: str | None = None,
        batch_size: int = 16,
        tokenizer: Any = None,
        model_obj: Any = None,
    ) -> None:
        super().__init__(model, base_url=base_url)
        self.device, self.dtype = pick_device(device)
        if model_obj is None or tokenizer is None:
            tokenizer, model_obj = on_torch_worker(self._load, model)
        self.tokenizer = tokenizer
        self.net = on_torch_worker(lambda: model_obj.to(self.device, self.dtype).eval())
        make_stoppable(self.net)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size
        self._gen: MicroBatcher[tuple[str, GenerateConfig], Samples] = MicroBatcher(
            lambda requests, stop: enumerate(self._generate_batch(requests, stop)),
            batch_size,
            executor=torch_worker(),
        )
        self._lp = MicroBatcher(self._answer_logprobs_batch, LOGPROB_PASS, executor=torch_worker())
        self._scorer: LocalScorer | None = None

    def param_count(self) -> int:
        """Counted from the loaded weights (tied ones once)."""
        return int(self.net.num_parameters())

    def default_prompt_format(self) -> str:
        """``chat`` for a model with a chat template, ``raw`` for a base model."""
        return "chat" if getattr(self.tokenizer, "chat_template", None) else "raw"

    def _load(self, model: str) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        quiet_transformers()
        try:
            tokenizer = AutoTokenizer.from_pretrained(model)
            net = AutoModelForCausalLM.from_pretrained(
                model, **load_options(self.device, self.dtype)
            )
        except OSError as exc:
            raise UsageError(
                f"cannot load hf:{model}: {str(exc).splitlines()[0]} (give a local folder, or a "
                "Hub id on a machine with network access)"
            ) from None
        return tokenizer, net

    # -- prompts and tokens ----------------------------------------------------------------

    def chat_text(self, messages: Sequence[Message]) -> str:
        """The prompt text of ``messages`` under the model's chat template."""
        dicts = [m.model_dump() for m in messages]
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(
                dicts, add_generation_prompt=True, tokenize=False
            )
        # A base model: the paper's raw Human/Assistant format.
        body = "".join(
            f"\n\n{'Human' if m['role'] != 'assistant' else 'Assistant'}: {m['content']}"
            for m in dicts
        )
        return body + "\n\nAssistant:"

    def encode(self, text: str) -> list[int]:
        # Templates already carry their special tokens, so none are added here.
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def split(self, context: str, continuation: str) -> ScoreRequest:
        """lm-evaluation-harness's split: trailing whitespace of the context (a chat template's
        closing newline too) moves onto the continuation, both are tokenised together, and the
        tokens are split at the context's length."""
        return self.split_options(context, [continuation])[0]

    def split_options(self, context: str, continuations: Sequence[str]) -> list[ScoreRequest]:
        """:meth:`split` of each continuation after one context (tokenised once)."""
        head = context.rstrip()
        tail = context[len(head) :]
        n_context = len(self.encode(head))
        out = []
        for continuation in continuations:
            whole = self.encode(head + tail + continuation)
            out.append(ScoreRequest(whole[:n_context], whole[n_context:]))
        return out

    # -- the Backend interface -------------------------------------------------------------

    async def generate(self, messages: list[Message], config: GenerateConfig) -> Samples:
        return await self._gen.submit((self.chat_text(messages), config))

    async def answer_logprobs(self, messages: list[Message], answers: list[str]) -> AnswerLogprobs:
        return await self._lp.submit((self.chat_text(messages), tuple(answers)))

    async def continuation_logprob(self, context: str, continuation: str) -> float:
        return (await torch_future(self.score, [self.split(context, continuation)]))[0]

    # -- batched work, on the torch worker thread -------------------------------------------

    @torch.inference_mode()
    def _generate_batch(
        self, requests: list[tuple[str, GenerateConfig]], stop: threading.Event
    ) -> list[Samples]:
        """Every request's samples; raises :class:`Stopped` soon after ``stop`` is set."""
        results: dict[int, Samples] = {}
        by_config: dict[GenerateConfig, list[int]] = {}
        for i, (_, config) in enumerate(requests):
            # Requests that differ only in their samples' seeds share a batch.
            by_config.setdefault(config.model_copy(update={"seeds": ()}), []).append(i)
        with stopped_by(stop):
            for config, indices in by_config.items():
                seeds = [seed for i in indices for seed in requests[i][1].seeds]
                outputs = self._generate_group([requests[i][0] for i in indices], config, seeds)
                results.update(zip(indices, outputs, strict=True))
        return [results[i] for i in range(len(requests))]

    def _generate_group(
        self, prompts: list[str], config: GenerateConfig, seeds: Sequence[int] = ()
    ) -> list[Samples]:
        """Generate ``config.n`` samples of each prompt; with a seed per sample (one per row
        of the output, prompt by prompt), each row is drawn from its own generator."""
        tok = self.tokenizer
        tok.padding_side = "left"  # generation continues from the right edge of every row
        n = config.n
        seeded = config.temperature > 0 and len(seeds) == len(prompts) * n
        # Seeded, each sample is a row of its own (greedy decoding returns one per row).
        rows = [p for p in prompts for _ in range(n)] if seeded else prompts
        batch = tok(rows, return_tensors="pt", padding=True, add_special_tokens=False)
        batch = batch.to(self.device)
        kwargs: dict[str, Any] = {
            "max_new_tokens": config.max_tokens,
            "num_return_sequences": 1 if seeded else n,
            "pad_token_id": tok.pad_token_id,
        }
        if seeded:
            # Greedy decoding over logits where only the row's own draw survives: the draw
            # depends on the row's seed and logits alone, not on its neighbours in the batch.
            top_k = getattr(self.net.generation_config, "top_k", None)
            draw = _SeededDraw(seeds, config.temperature, config.top_p, top_k, self.device)
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            kwargs["logits_processor"] = LogitsProcessorList([draw])
        elif config.temperature > 0:
            kwargs.update(do_sample=True, temperature=config.temperature, top_p=config.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if config.stop:
            kwargs.update(stop_strings=list(config.stop), tokenizer=tok)
        out = self.net.generate(**batch, **kwargs)
        new = out[:, batch["input_ids"].shape[1] :]
        texts = [
            _cut_at_stop(t, config.stop) for t in tok.batch_decode(new, skip_special_tokens=True)
        ]
        produced = (new != tok.pad_token_id).sum(dim=1).tolist()
        prompt_tokens = batch["attention_mask"].sum(dim=1).tolist()[:: n if seeded else 1]
        return [
            Samples(
                texts[i * n : (i + 1) * n],
                Usage(prompt_tokens[i], sum(produced[i * n : (i + 1) * n])),
            )
            for i in range(len(prompts))
        ]

    def _answer_logprobs_batch(
        self, requests: list[tuple[str, tuple[str, ...]]], stop: threading.Event
    ) -> Iterator[tuple[int, AnswerLogprobs]]:
        """Every request's answers scored by the scoring runner, yielded batch by batch; raises
        :class:`Stopped` soon after ``stop`` is set (its callers were cancelled: Ctrl-C)."""
        if self._scorer is None:
            self._scorer = LocalScorer(self)
        with stopped_by(stop):
            for finished in self._scorer.iter_prompts(requests):
                for i, scores in finished.items():
                    prompt, answers = requests[i]
                    logprobs: dict[str, float | None] = {a: scores[a] for a in answers}
                    usage = Usage(len(self.encode(prompt)), 0)
                    yield i, AnswerLogprobs(logprobs, "logprobs", usage)

    @torch.inference_mode()
    def score(self, requests: list[ScoreRequest]) -> list[float]:
        """Summed log-probability of each continuation given its context, batched.

        Requests whose context is shared and whose continuations are one token each are scored
        from a single sequence (one forward pass gives every option)."""
        results: list[float | None] = [None] * len(requests)
        by_context: dict[tuple[int, ...], list[int]] = {}
        for i, req in enumerate(requests):
            if len(req.continuation) == 1:
                by_context.setdefault(tuple(req.context), []).append(i)
        singles = [(list(ctx), idxs) for ctx, idxs in by_context.items()]
        multi = [i for i, req in enumerate(requests) if len(req.continuation) != 1]
        # One row per shared context for one-token options; one row per request otherwise.
        rows: list[tuple[list[int], list[tuple[int, int, int]]]] = []
        for ctx, idxs in singles:
            rows.append((ctx, [(i, len(ctx) - 1, requests[i].continuation[0]) for i in idxs]))
        for i in multi:
            req = requests[i]
            if not req.continuation:
                raise UsageError("cannot score an empty continuation")
            seq = req.context + req.continuation
            targets = [(i, len(req.context) - 1 + k, tok) for k, tok in enumerate(req.continuation)]
            rows.append((seq[:-1], targets))
        for start in range(0, len(rows), self.batch_size):
            for i, value in self._score_rows(rows[start : start + self.batch_size]):
                results[i] = (results[i] or 0.0) + value
        return [float(r) for r in results]  # type: ignore[arg-type]

    def _score_rows(
        self, rows: list[tuple[list[int], list[tuple[int, int, int]]]]
    ) -> list[tuple[int, float]]:
        ids, mask = right_padded([seq for seq, _ in rows], self.tokenizer.pad_token_id)
        logits = self.net(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
        out: list[tuple[int, float]] = []
        for r, (_, targets) in enumerate(rows):
            positions = torch.tensor([p for _, p, _ in targets], device=self.device)
            tokens = torch.tensor([t for _, _, t in targets], device=self.device)
            logprobs = torch.log_softmax(logits[r, positions].float(), dim=-1)
            values = logprobs.gather(1, tokens[:, None]).squeeze(1).tolist()
            out.extend((i, v) for (i, _, _), v in zip(targets, values, strict=True))
        return out


class _SeededDraw(LogitsProcessor):
    """Samples each row's next token from its own seeded generator (temperature, then the
    model's top-k and top-p, as transformers' sampling does) and leaves that token alone as
    possible, so greedy decoding takes it. A batch's rows thus draw independently of one
    another: the same prompt and seed give the same text in any batch."""

    def __init__(
        self,
        seeds: Sequence[int],
        temperature: float,
        top_p: float,
        top_k: int | None,
        device: torch.device,
    ) -> None:
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
        self.temperature, self.top_p, self.top_k = temperature, top_p, top_k

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        logits = scores.float() / self.temperature
        if self.top_k:
            kth = torch.topk(logits, min(self.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if self.top_p < 1.0:
            ordered, order = torch.sort(probs, descending=True, dim=-1)
            # Keep the smallest prefix whose mass reaches top_p (the first token always).
            drop = ordered.cumsum(dim=-1) - ordered > self.top_p
            probs = probs.scatter(-1, order, ordered.masked_fill(drop, 0.0))
        chosen = torch.stack(
            [
                torch.multinomial(row, 1, generator=gen)[0]
                for row, gen in zip(probs, self.generators, strict=True)
            ]
        )
        out = torch.full_like(scores, float("-inf"))
        return out.scatter(-1, chosen[:, None], 0.0)


def _cut_at_stop(text: str, stops: Sequence[str]) -> str:
    cut = min((text.find(s) for s in stops if s in text), default=-1)
    return text[:cut] if cut >= 0 else text
