"""Scoring items with a local transformers model: each item put as a prompt (its context text
in a prompt format, and its options), scored by the kernel that lives with the backend
(:class:`mwe.models.hf_scorer.LocalScorer`; see there for what makes it fast), and the naive
reference it is checked against.

Every log-prob equals a full forward pass over context + continuation, split as
lm-evaluation-harness splits them (see :meth:`HFBackend.split`), to float precision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from mwe.items import Item
from mwe.models.hf import HFBackend
from mwe.models.hf_scorer import LocalScorer, Prompt, Scores, ScoringBackend, right_padded
from mwe.scoring.prompts import context_text, options


def item_prompts(
    backend: ScoringBackend, items: Sequence[Item], prompt_format: str
) -> list[Prompt]:
    """Each item as a prompt: its context text in ``prompt_format`` and its options."""
    return [(context_text(item, prompt_format, backend.tokenizer), options(item)) for item in items]


def score_items(
    scorer: LocalScorer,
    items: Sequence[Item],
    prompt_format: str,
    on_batch: Callable[[dict[int, Scores]], None] = lambda done: None,
) -> dict[int, Scores]:
    """Log-prob of every option of every item, by item index. ``on_batch`` receives the
    items completed by each batch (all of their options scored), for saving as we go."""
    return scorer.score_prompts(item_prompts(scorer.backend, items, prompt_format), on_batch)


def naive_scores(
    backend: HFBackend, items: Sequence[Item], prompt_format: str, batch_size: int = 16
) -> dict[int, Scores]:
    """The reference: one full forward pass per option over context + continuation (the
    lm-evaluation-harness definition), batched with right padding, logits at every position."""
    requests = []
    for i, item in enumerate(items):
        text = context_text(item, prompt_format, backend.tokenizer)
        for opt in options(item):
            requests.append(((i, opt), backend.split(text, opt)))
    results: dict[int, Scores] = {}
    with torch.inference_mode():
        for start in range(0, len(requests), batch_size):
            chunk = requests[start : start + batch_size]
            seqs = [r.context + r.continuation for _, r in chunk]
            ids, mask = right_padded(seqs, backend.tokenizer.pad_token_id or 0)
            logits = backend.net(
                input_ids=ids.to(backend.device), attention_mask=mask.to(backend.device)
            ).logits.float()
            logprobs = torch.log_softmax(logits, dim=-1)
            for row, ((i, opt), req) in enumerate(chunk):
                n = len(req.context)
                total = sum(
                    logprobs[row, n - 1 + j, tok].item() for j, tok in enumerate(req.continuation)
                )
                results.setdefault(i, {})[opt] = total
    return results
