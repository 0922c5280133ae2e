"""The local scoring kernel: fast exact log-likelihoods of prompts' options with a local
transformers model, and the protocol of the backend it runs on.

It lives with the backend that runs it: :class:`mwe.models.hf.HFBackend` implements
:class:`ScoringBackend` and scores its answer log-probs (a judge's questions) with it, and
:mod:`mwe.scoring.local` puts items to it for ``mwe score``. This module imports neither.

Where the time goes, and what is saved:
- Prompts of one set share a long prefix (the chat template's system prompt, the question's
  preamble). Its KV cache is computed once and reused for every batch.
- When every option is one token, one pass over the question gives all of them; otherwise the
  question's KV cache is reused across the options, which only add their own tokens.
- The output projection (vocabulary-sized) runs only at the positions that are scored.
- Batches are packed by token budget, longest first; on CUDA out-of-memory the budget halves.

Every log-prob equals a full forward pass over context + continuation, split as
lm-evaluation-harness splits them (see :meth:`ScoringBackend.split_options`), to float
precision.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from mwe.errors import UsageError

logger = logging.getLogger(__name__)
Scores = dict[str, float]
#: A context text and the options (continuations) scored after it.
Prompt = tuple[str, Sequence[str]]


@dataclass(frozen=True)
class ScoreRequest:
    """Token ids of a context and of the continuation whose log-likelihood is wanted."""

    context: list[int]
    continuation: list[int]


class ScoringBackend(Protocol):
    """What the kernel needs of a backend: a loaded causal LM on a device, its tokenizer, and
    the split of a context and its options into token ids."""

    net: Any
    device: torch.device
    tokenizer: Any

    def split_options(self, context: str, continuations: Sequence[str]) -> list[ScoreRequest]:
        """Token ids of the context and of each continuation, split as lm-evaluation-harness
        splits them."""
        ...


def right_padded(seqs: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids padded on the right to one width, and the attention mask of the real tokens.

    Right padding keeps every real token at positions 0..n-1, exactly as in an unbatched pass.
    """
    width = max((len(seq) for seq in seqs), default=0)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        if seq:
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
    return ids, mask


@dataclass
class _Group:
    """A context and the continuations scored after it; ``slots`` say whose they are. The last
    ``scored`` tokens of the context are the start every continuation shares (the whitespace
    a chat template ends with, which the split moves onto the options): computed once with the
    context, and their log-prob added to every option's."""

    context: list[int]
    continuations: list[list[int]]
    slots: list[tuple[int, str]]  # (prompt index, option)
    scored: int = 0

    @property
    def unscored(self) -> list[int]:
        """The context without the shared start of the options."""
        return self.context[: len(self.context) - self.scored]


def build_groups(backend: ScoringBackend, prompts: Sequence[Prompt]) -> list[_Group]:
    """One group per prompt, or one per option where an option's split changes the context's
    last tokens (a tokeniser merging across the boundary)."""
    groups = []
    for i, (text, opts) in enumerate(prompts):
        splits = list(zip(opts, backend.split_options(text, opts), strict=True))
        for _, s in splits:
            if not s.continuation:
                raise UsageError("cannot score an empty continuation")
            if not s.context:
                raise UsageError("cannot score options after an empty context")
        if not splits:
            continue
        if all(s.context == splits[0][1].context for _, s in splits):
            conts = [s.continuation for _, s in splits]
            # The options' shared first tokens join the context, so that one-token answers after
            # them are still read from one pass; each option keeps at least one token.
            n = 0
            while n < min(len(c) for c in conts) - 1 and all(c[n] == conts[0][n] for c in conts):
                n += 1
            groups.append(
                _Group(
                    splits[0][1].context + conts[0][:n],
                    [c[n:] for c in conts],
                    [(i, opt) for opt, _ in splits],
                    scored=n,
                )
            )
        else:
            groups.extend(_Group(s.context, [s.continuation], [(i, opt)]) for opt, s in splits)
    return groups


def prefix_clusters(
    contexts: Sequence[Sequence[int]], overhead: int = 256
) -> list[tuple[list[int], list[int]]]:
    """The indices of ``contexts`` in clusters, each with the longest prefix its members share
    that leaves each at least one token of its own, split where that computes fewer tokens: a
    cluster's prefix is computed once, and a cluster costs ``overhead`` tokens more (passes of
    its own). One cluster of everything when no split pays.

    Prompts of two templates (a judge's agreement and relevance questions, asked together)
    make two clusters, each with its template's long prefix, instead of one whose shared
    prefix ends where the templates part."""
    if not contexts:
        return []
    return _clusters(contexts, list(range(len(contexts))), overhead, 0)[1]


def _clusters(
    contexts: Sequence[Sequence[int]], members: list[int], overhead: int, shared: int
) -> tuple[int, list[tuple[list[int], list[int]]]]:
    """(tokens computed, clusters) of the cheaper of: ``members`` (whose first ``shared``
    tokens are known to agree) as one cluster, or split by the token after their shared
    prefix, each part clustered the same way."""
    first = contexts[members[0]]
    limit = min(len(contexts[i]) for i in members) - 1
    n = min(shared, limit)
    while n < limit and all(contexts[i][n] == first[n] for i in members):
        n += 1
    total = sum(len(contexts[i]) for i in members)
    whole = overhead + total - (len(members) - 1) * n
    one = (whole, [(list(first[:n]), members)])
    if len(members) < 2:
        return one
    parts: dict[int, list[int]] = {}
    for i in members:
        parts.setdefault(contexts[i][n], []).append(i)
    # Explored only where it could pay were each part to share all but the last token of its
    # shortest context (a heuristic, not a bound: clustering changes the speed, never a score).
    least = total + sum(
        overhead - (len(part) - 1) * (min(len(contexts[i]) for i in part) - 1)
        for part in parts.values()
    )
    if len(parts) == 1 or least >= whole:
        return one
    split = [_clusters(contexts, part, overhead, n + 1) for part in parts.values()]
    cost = sum(tokens for tokens, _ in split)
    return (cost, [c for _, clusters in split for c in clusters]) if cost < whole else one


class LocalScorer:
    """Scores prompts' options with a local model; see the module docstring."""

    def __init__(
        self, backend: ScoringBackend, *, token_budget: int | None = None, max_rows: int = 64
    ) -> None:
        self.backend = backend
        self.net = backend.net
        self.device = backend.device
        on_gpu = self.device.type == "cuda"
        self.token_budget = token_budget or (65_536 if on_gpu else 4_096)
        self.max_rows = max_rows
        self.body = self.net.get_decoder() if hasattr(self.net, "get_decoder") else None
        self.head = self.net.get_output_embeddings()
        self.softcap = getattr(self.net.config, "final_logit_softcapping", None)
        self.pad = backend.tokenizer.pad_token_id or 0
        # transformers 5 renamed the cache argument; use whichever this version takes.
        params = inspect.signature(self.body.forward).parameters if self.body else {}
        self.cache_arg = "cache" if "cache" in params else "past_key_values"

    # -- public ----------------------------------------------------------------------------

    def score_prompts(
        self,
        prompts: Sequence[Prompt],
        on_batch: Callable[[dict[int, Scores]], None] = lambda done: None,
    ) -> dict[int, Scores]:
        """Log-prob of every option of every prompt (context text, options), by prompt index.
        ``on_batch`` receives the prompts completed by each batch (all of their options
        scored), for saving as we go."""
        results: dict[int, Scores] = {}
        for finished in self.iter_prompts(prompts):
            results.update(finished)
            on_batch(finished)
        return results

    def iter_prompts(self, prompts: Sequence[Prompt]) -> Iterator[dict[int, Scores]]:
        """Per batch, the prompts it completed (all of their options scored), by index; a
        prompt with no options comes first, with no scores."""
        groups = build_groups(self.backend, prompts)
        results: dict[int, Scores] = {}
        pending = {i: len(opts) for i, (_, opts) in enumerate(prompts)}
        empty: dict[int, Scores] = {i: {} for i, n in pending.items() if n == 0}
        if empty:
            yield empty
        for batch_scores in self.iter_scores(groups):
            finished = {}
            for (i, opt), value in batch_scores:
                results.setdefault(i, {})[opt] = value
                pending[i] -= 1
                if pending[i] == 0:
                    finished[i] = results.pop(i)
            if finished:
                yield finished

    @torch.inference_mode()
    def iter_scores(self, groups: list[_Group]) -> Iterator[list[tuple[tuple[int, str], float]]]:
        """Scores per batch: cluster by cluster of contexts that share a prefix (see
        :func:`prefix_clusters`), longest contexts first within each."""
        # A pass of its own costs about what a sixteenth of a full batch does.
        # Clustered without the scored tokens, so a shared prefix never covers one of them.
        clusters = prefix_clusters([g.unscored for g in groups], self.token_budget // 16)
        for prefix, members in clusters:
            prefix_cache = self._prefix_cache(prefix)
            order = sorted(members, key=lambda g: -len(groups[g].context))
            start = 0
            while start < len(order):
                batch = self._next_batch(groups, order, start, len(prefix))
                try:
                    yield self._score_batch([groups[g] for g in batch], prefix, prefix_cache)
                except torch.OutOfMemoryError:
                    if self.token_budget <= 256:
                        raise
                    self.token_budget //= 2
                    logger.warning("out of memory: token budget halved to %d", self.token_budget)
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                    continue
                start += len(batch)

    # -- internals -------------------------------------------------------------------------

    def _next_batch(
        self, groups: list[_Group], order: list[int], start: int, skip: int
    ) -> list[int]:
        batch: list[int] = []
        width = 0
        for g in order[start:]:
            group = groups[g]
            need = len(group.context) - skip + max(len(c) for c in group.continuations)
            width = max(width, need)
            if batch and (
                (len(batch) + 1) * width > self.token_budget or len(batch) >= self.max_rows
            ):
                break
            batch.append(g)
        return batch

    def _prefix_cache(self, prefix: list[int]):
        if not prefix:
            return None
        ids = torch.tensor([prefix], device=self.device)
        out = self.net(input_ids=ids, use_cache=True)
        # transformers 5 names it `cache` (reading `past_key_values` warns); older: the latter.
        cache = getattr(out, "cache", None)
        return cache if cache is not None else out.past_key_values

    def _hidden(
        self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache
    ) -> torch.Tensor:
        if self.body is not None:
            extra = {self.cache_arg: cache} if cache is not None else {}
            out = self.body(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=cache is not None,
                **extra,
            )
            return out.last_hidden_state
        raise NotImplementedError("model without a separable decoder")

    def _logprobs(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.head(hidden).float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return torch.log_softmax(logits, dim=-1)

    def _score_batch(
        self, groups: list[_Group], prefix: list[int], prefix_cache
    ) -> list[tuple[tuple[int, str], float]]:
        rows, skip = len(groups), len(prefix)
        suffixes = [g.context[skip:] for g in groups]
        ids, suffix_mask = right_padded(suffixes, self.pad)
        width = ids.shape[1]
        mask = torch.cat([torch.ones((rows, skip), dtype=torch.long), suffix_mask], dim=1)
        several = any(len(c) > 1 for g in groups for c in g.continuations)
        cache = None
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(rows)
        elif several:  # no shared prefix, but the options' tokens need the questions' cache
            cache = _empty_cache(self.net.config)
        positions = (skip + torch.arange(width)).expand(rows, width)
        hidden = self._hidden(
            ids.to(self.device), mask.to(self.device), positions.to(self.device), cache
        )
        lengths = torch.tensor([len(s) for s in suffixes])
        last = self._logprobs(hidden[torch.arange(rows), lengths - 1])
        scores: list[list[float]] = [
            [last[r, cont[0]].item() for cont in g.continuations] for r, g in enumerate(groups)
        ]
        for r, g in enumerate(groups):
            if g.scored:  # the options' shared start, read from the context's own pass
                at = len(g.context) - g.scored - 1 - skip
                targets = torch.tensor(g.context[-g.scored :], device=self.device)
                shared = self._logprobs(hidden[r, at : at + g.scored])
                extra = shared.gather(1, targets[:, None]).sum().item()
                scores[r] = [s + extra for s in scores[r]]
        most = max(len(g.continuations) for g in groups)
        if several:
            for k in range(most):
                self._extend_option(groups, k, cache, mask, skip + width, lengths + skip, scores)
        out: list[tuple[tuple[int, str], float]] = []
        for g, row in zip(groups, scores, strict=True):
            out.extend(zip(g.slots, row, strict=True))
        return out

    def _extend_option(
        self,
        groups: list[_Group],
        k: int,
        cache,
        mask: torch.Tensor,
        cached_len: int,
        context_lens: torch.Tensor,
        scores: list[list[float]],
    ) -> None:
        """Add option k's tokens after each row's context, reusing the question's KV cache."""
        feeds = [g.continuations[k][:-1] if k < len(g.continuations) else [] for g in groups]
        ids, extra = right_padded(feeds, self.pad)
        width = ids.shape[1]
        if width == 0:
            return
        full_mask = torch.cat([mask, extra], dim=1)
        positions = context_lens[:, None] + torch.arange(width)[None, :]
        hidden = self._hidden(
            ids.to(self.device), full_mask.to(self.device), positions.to(self.device), cache
        )
        for r, feed in enumerate(feeds):
            if feed:
                targets = torch.tensor(groups[r].continuations[k][1:], device=self.device)
                logprobs = self._logprobs(hidden[r, : len(feed)])
                scores[r][k] += logprobs.gather(1, targets[:, None]).sum().item()
        if cache is not None:
            _crop(cache, cached_len)


def _empty_cache(config):
    """A KV cache to fill (transformers 5 builds it from the config; older versions take no
    argument)."""
    from transformers import DynamicCache

    try:
        return DynamicCache(config=config)
    except TypeError:
        return DynamicCache()


def _crop(cache, length: int) -> None:
    """Cut the cache back to ``length`` positions (transformers 5 takes the number to remove,
    as a negative count; older versions took the length to keep)."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        try:
            cache.crop(-extra)
        except ValueError:
            cache.crop(length)
