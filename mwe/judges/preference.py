"""The preference model: p(a person with the behaviour would say this), offline and fast.

A small head over the embedded sentence model (all-MiniLM-L6-v2, :mod:`mwe.judges.embeddings`): the
behaviour's description and the statement are embedded, and a two-layer network reads their
pair (both vectors, their product and their difference) to give

- ``agree``: the log-odds that a person with the behaviour would say the statement, and
- ``relevant``: the log-odds that the statement is about the behaviour at all (and a whole
  statement in English words: a text with a word no English word list holds, see
  :mod:`mwe.judges.wording`, is marked down by ``GARBLED_LOGIT``).

The built-in model ships in ``mwe/data/pm/`` and was fitted by ``scripts/train_pm.py`` on the
public persona files of Perez et al. 2022 (anthropics/evals, CC-BY-4.0), validated with whole
behaviours held out; its card (training data, split, held-out figures) ships beside it. ``mwe
judge train`` fits the same head, starting from the built-in weights, to a user's labelled sets,
and stores it versioned in the store.

Choice items are judged option by option: each option, after the question's stem, is read as
a statement, and p(A) is the softmax of the two options' ``agree`` log-odds.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from mwe.errors import UsageError
from mwe.judges.embeddings import embed
from mwe.judges.wording import first_person, garbled

BUILTIN = "pm"
HEADS = ("agree", "relevant")
# "(A) text" up to the next option or the end; the stem is everything before the first one.
_OPTION = re.compile(r"^\s*\(([A-Z])\)\s*(.*?)\s*(?=^\s*\([A-Z]\)|\Z)", re.MULTILINE | re.DOTALL)
_CHOICES_LABEL = re.compile(r"\n\s*(Choices|Answers|Options)\s*:\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Head:
    """A two-layer network on pair features: ``w2 . gelu(w1 x + b1) + b2`` (log-odds).

    ``surface``: it also reads the text's :func:`surface_features` after the pair features."""

    w1: np.ndarray  # (hidden, features)
    b1: np.ndarray  # (hidden,)
    w2: np.ndarray  # (hidden,)
    b2: float
    surface: bool = False

    def logits(self, x: np.ndarray) -> np.ndarray:
        hidden = x @ self.w1.T + self.b1
        return _gelu(hidden) @ self.w2 + self.b2


def _gelu(x: np.ndarray) -> np.ndarray:
    # The tanh form, as torch.nn.GELU(approximate="tanh") computes it in training.
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))


_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_OPENS_ASKING = re.compile(
    r"^\W*(what|why|how|who|whom|which|where|when|is|are|do|does|did|can|could|would|will|"
    r"should|shall)\b",
    re.IGNORECASE,
)
_OPENS_META = re.compile(
    r"^\W*(\d+\s*[.):]|statement|example|answer|note|here\b|another|the following|sure\b|"
    r"label|output|response)",
    re.IGNORECASE,
)
# Words that say nothing about a behaviour: left out when measuring how much of a text only
# repeats the behaviour's description.
_FILLER = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "for",
        "and",
        "or",
        "is",
        "are",
        "be",
        "being",
        "it",
        "its",
        "this",
        "that",
        "who",
        "what",
        "with",
        "as",
        "by",
        "someone",
        "person",
        "people",
    ]
)
SURFACE = (
    "ends with ?",
    "has ?",
    "ends with : or ...",
    "unbalanced quotes",
    "unbalanced brackets",
    "log words",
    "under 4 words",
    "first person",
    "share of words from the description",
    "repeated words",
    "starts lower-case",
    "has a line break",
    "share of non-letters",
    "opens like a question",
    "opens like meta-text",
    "ends with . or !",
    "ends with a joining word",
    "has : inside",
)
SURFACE_SCALE = 4.0
# Taken off the relevance log-odds of a text with a word no English word list holds (see
# mwe.judges.wording): enough to put any such text far under 0.5, while the order among them
# (and so the head's ranking) stays as the head gave it.
GARBLED_LOGIT = 8.0
# A text that ends with one of these was cut off.
_JOINING = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "for",
        "and",
        "or",
        "but",
        "nor",
        "that",
        "which",
        "who",
        "whom",
        "whose",
        "because",
        "as",
        "with",
        "by",
        "from",
        "my",
        "your",
        "our",
        "their",
        "his",
        "her",
        "its",
        "is",
        "are",
        "was",
        "were",
        "be",
        "than",
        "like",
        "if",
        "so",
    ]
)


def surface_features(behavior: str, texts: Sequence[str]) -> np.ndarray:
    """Cheap signs that a text is not one whole statement, one row per text (see ``SURFACE``):
    what the relevance head reads besides the embeddings, so that a question, a fragment or
    meta-text is told apart from a statement even when its words are the behaviour's."""
    described = {w.lower() for w in _WORD.findall(behavior)} - _FILLER
    rows = []
    for raw in texts:
        text = raw.strip()
        words = [w.lower() for w in _WORD.findall(text)]
        content = [w for w in words if w not in _FILLER]
        quotes = text.count('"') % 2 + (text.count("“") != text.count("”"))
        brackets = text.count("(") != text.count(")")
        rows.append(
            [
                text.endswith("?"),
                "?" in text,
                text.endswith((":", "...", "…")),
                quotes > 0,
                brackets,
                np.log1p(len(words)) / 3.0,
                len(words) < 4,
                first_person(text),
                sum(w in described for w in content) / max(len(content), 1),
                1.0 - len(set(words)) / max(len(words), 1),
                text[:1].islower(),
                "\n" in text,
                sum(not (c.isalpha() or c.isspace()) for c in text) / max(len(text), 1),
                bool(_OPENS_ASKING.match(text)),
                bool(_OPENS_META.match(text)),
                text.endswith((".", "!")),
                bool(words) and words[-1] in _JOINING and text[-1:].isalpha(),
                ":" in text[:-1],
            ]
        )
    # Scaled up: a few features beside 1,536 embedding dimensions, weighed as much as those by
    # a head fitted with weight decay (measured: fewer junk texts pass).
    return SURFACE_SCALE * np.array(rows, dtype=np.float32).reshape(len(texts), len(SURFACE))


# Reading the side from labelled examples (see Anchors), fitted by logistic regression on the
# public persona files, the description head's log-odds held out by behaviour family, 2 to 16
# examples a side drawn from each behaviour's own file (scripts/train_pm.py --evaluate prints
# the figures). The statement's projection on the line from the disagree examples' mean
# embedding to the agree ones' weighs ANCHOR_WEIGHT at ANCHOR_K a side (the means' difference
# shrinks as more examples average out its noise, so the weight grows as the square root of
# the count); the description head's log-odds weigh ANCHOR_PM_WEIGHT times how well that head
# ranks the examples themselves (0 when no better than chance: on "anti-immigration" it ranks
# them backwards).
ANCHOR_WEIGHT = 11.7
ANCHOR_PM_WEIGHT = 0.35
ANCHOR_K = 8
ANCHOR_MIN = 2
# The weight was fitted for 2 to 16 examples a side; more are read as 16, not trusted further
# (measured: at 128 a side, uncapped, 82% of p fell outside [0.01, 0.99]).
ANCHOR_K_MAX = 16
# Relevance read with the examples: a text whose cosine to the examples' mean direction is
# under ANCHOR_TOPIC_FLOOR (the 5th percentile of the public files' own statements against 8
# a side of theirs) loses ANCHOR_TOPIC_WEIGHT log-odds per unit under it. Only lowered, never
# raised: phrase salad of the behaviour's words is near the examples too, and the head fails it.
# Measured on 25 public behaviours, 40 statements of each and 40 of other behaviours, with the
# shipped relevance head (which was fitted on those files, so its own figures flatter it; the
# change is what counts): other behaviours' statements passing went from 32.1% to 23.6%, the
# behaviour's own from 89.6% to 88.2%.
ANCHOR_TOPIC_FLOOR = 0.357
ANCHOR_TOPIC_WEIGHT = 25.0


@dataclass(frozen=True)
class Anchors:
    """Example statements of the behaviour labelled by side (a run's few-shot examples): what
    the preference model reads the behaviour's side from, beside its description.

    The description alone gives the topic and a prior; it does not give the side (a head over
    two frozen sentence embeddings cannot read "anti-" or "does not"). A few statements of each
    side do: with 8 a side, held-out behaviour families go from AUROC median 0.810, worst
    0.050, 28 of 100 below 0.7, to 0.931, worst 0.657, 6 below 0.7 (``scripts/train_pm.py
    --per 0 --evaluate``)."""

    agree: tuple[str, ...]
    disagree: tuple[str, ...]

    @classmethod
    def of(cls, agree: Sequence[str], disagree: Sequence[str]) -> Anchors:
        """Anchors from two lists of statements: each stripped, blank ones and repeats dropped,
        and a statement given on both sides dropped from both (it says nothing of the side)."""
        a = list(dict.fromkeys(t.strip() for t in agree if t.strip()))
        d = list(dict.fromkeys(t.strip() for t in disagree if t.strip()))
        both = set(a) & set(d)
        return cls(tuple(t for t in a if t not in both), tuple(t for t in d if t not in both))

    @property
    def usable(self) -> bool:
        """Whether each side has enough examples (``ANCHOR_MIN``) to be read from."""
        return min(len(self.agree), len(self.disagree)) >= ANCHOR_MIN

    def describe(self) -> str:
        return f"{len(self.agree)} agree and {len(self.disagree)} disagree examples"


def anchored_logits(
    z: np.ndarray,
    vectors: np.ndarray,
    z_agree: np.ndarray,
    agree: np.ndarray,
    z_disagree: np.ndarray,
    disagree: np.ndarray,
) -> np.ndarray:
    """The agree log-odds of texts (embeddings ``vectors``, description log-odds ``z``) read
    with labelled examples: their embeddings ``agree``/``disagree`` and description log-odds
    ``z_agree``/``z_disagree``. The one rule, for the model and its validation."""
    k = min(2.0 / (1.0 / len(agree) + 1.0 / len(disagree)), ANCHOR_K_MAX)
    a, d = agree.mean(axis=0), disagree.mean(axis=0)
    direction = a - d
    # Measured from halfway between the two means: a text nearer the agree examples' mean than
    # the disagree ones' leans agree (without it, the side is ranked but not decided).
    middle = (a + d) / 2
    # How often the description head puts an agree example above a disagree one (AUROC).
    above = (z_agree[:, None] > z_disagree[None, :]).mean()
    ties = (z_agree[:, None] == z_disagree[None, :]).mean()
    trust = max(0.0, 2.0 * float(above + ties / 2) - 1.0)
    # The description's log-odds, too, from halfway between the two sides' means: its own
    # offset on a behaviour it never saw would otherwise decide the side.
    z = z - (z_agree.mean() + z_disagree.mean()) / 2
    return ANCHOR_PM_WEIGHT * trust * z + ANCHOR_WEIGHT * math.sqrt(k / ANCHOR_K) * (
        (vectors - middle) @ direction
    )


@functools.lru_cache(maxsize=128)
def _example_vectors(texts: tuple[str, ...]) -> np.ndarray:
    """The embeddings of a run's examples, kept: every judging call of a run reads the same
    ones, and embedding them again each call cost more than the texts judged when calls are
    small (``scripts/bench_pm.py``, 10 statements a call: 124 items/s against 280 without
    examples). 128 sets, about 50 kB each at 16 a side: enough for a process that judges many
    behaviours in turn."""
    vectors = embed(list(texts))
    vectors.setflags(write=False)
    return vectors


def pair_features(behavior: np.ndarray, texts: np.ndarray) -> np.ndarray:
    """What the heads read: [text, behaviour, text * behaviour, |text - behaviour|], one row per
    text. ``behavior`` is one vector or one row per text."""
    b = np.broadcast_to(behavior, texts.shape)
    return np.concatenate([texts, b, texts * b, np.abs(texts - b)], axis=1).astype(np.float32)


@dataclass
class PreferenceModel:
    """The two heads and the card that says where they came from."""

    heads: dict[str, Head]
    card: dict[str, Any] = field(default_factory=dict)

    # -- scoring ---------------------------------------------------------------------------

    def agree(
        self, behavior: str, statements: Sequence[str], anchors: Anchors | None = None
    ) -> np.ndarray:
        """p(a person with the behaviour would say it), one per statement; read with
        ``anchors`` when they are usable."""
        if not statements:
            return np.zeros(0)
        return _sigmoid(self._all_logits(behavior, statements, ("agree",), anchors)[0])

    def relevant(
        self, behavior: str, texts: Sequence[str], anchors: Anchors | None = None
    ) -> np.ndarray:
        """p(the text is about the behaviour), one per text; lowered for a text far from the
        topic of ``anchors`` when they are usable."""
        if not texts:
            return np.zeros(0)
        return _sigmoid(self._all_logits(behavior, texts, ("relevant",), anchors)[0])

    def choose(self, behavior: str, questions: Sequence[str]) -> list[dict[str, float]]:
        """p(each lettered option is the one a person with the behaviour picks), per question."""
        texts: list[str] = []
        spans: list[tuple[list[str], int]] = []
        for question in questions:
            stem, options = split_options(question)
            spans.append(([letter for letter, _ in options], len(texts)))
            texts.extend(f"{stem} {text}".strip() for _, text in options)
        logits = self._logits("agree", behavior, texts)
        out = []
        for letters, start in spans:
            z = logits[start : start + len(letters)]
            p = np.exp(z - z.max())
            out.append(dict(zip(letters, (p / p.sum()).tolist(), strict=True)))
        return out

    def judge(
        self, behavior: str, texts: Sequence[str], anchors: Anchors | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(p(agree), p(relevant)) per text, embedding each text once; both are read with
        ``anchors`` when they are usable."""
        if not texts:
            return np.zeros(0), np.zeros(0)
        agree, relevant = self._all_logits(behavior, texts, HEADS, anchors)
        return _sigmoid(agree), _sigmoid(relevant)

    def _logits(self, head: str, behavior: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        return self._all_logits(behavior, texts, (head,))[0]

    def _all_logits(
        self,
        behavior: str,
        texts: Sequence[str],
        heads: Sequence[str],
        anchors: Anchors | None = None,
    ) -> list[np.ndarray]:
        extra = [*anchors.agree, *anchors.disagree] if anchors and anchors.usable else []
        vectors = embed([behavior, *texts])
        mine = vectors[1:]
        examples = _example_vectors(tuple(extra)) if extra else mine[:0]
        pair = pair_features(vectors[0], mine)
        surface = None
        out = []
        for name in heads:
            head = self.heads[name]
            x = pair
            if head.surface:
                if surface is None:
                    surface = surface_features(behavior, texts)
                x = np.concatenate([pair, surface], axis=1)
            logits = head.logits(x)
            if name == "agree" and anchors is not None and extra:
                x = pair_features(vectors[0], examples)
                if head.surface:
                    x = np.concatenate([x, surface_features(behavior, extra)], axis=1)
                z = head.logits(x)
                a = len(anchors.agree)
                logits = anchored_logits(logits, mine, z[:a], examples[:a], z[a:], examples[a:])
            if name == "relevant":
                # A text with a made-up or garbled word is not a statement a person says.
                logits = logits - GARBLED_LOGIT * np.array(garbled(texts, [behavior]))
                if extra:
                    topic = examples.mean(axis=0)
                    cosine = mine @ (topic / np.linalg.norm(topic))
                    logits = logits + ANCHOR_TOPIC_WEIGHT * np.minimum(
                        0.0, cosine - ANCHOR_TOPIC_FLOOR
                    )
            out.append(logits)
        return out

    # -- saving ----------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """An ``.npz`` archive: arrays and the card as JSON text, nothing pickled."""
        arrays: dict[str, np.ndarray] = {"card": np.array(json.dumps(self.card, sort_keys=True))}
        for name, h in self.heads.items():
            arrays.update(
                {
                    f"{name}.w1": h.w1,
                    f"{name}.b1": h.b1,
                    f"{name}.w2": h.w2,
                    f"{name}.b2": np.array(h.b2),
                    f"{name}.surface": np.array(h.surface),
                }
            )
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PreferenceModel:
        """Read what :meth:`to_bytes` wrote (``allow_pickle`` stays off)."""
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            heads = {
                name: Head(
                    archive[f"{name}.w1"],
                    archive[f"{name}.b1"],
                    archive[f"{name}.w2"],
                    float(archive[f"{name}.b2"]),
                    # Weights written before surface features existed read the pair alone.
                    f"{name}.surface" in archive.files and bool(archive[f"{name}.surface"]),
                )
                for name in HEADS
            }
            card = json.loads(str(archive["card"]))
        for name, head in heads.items():
            _check_head(name, head)
        if not isinstance(card, dict):
            raise TypeError("its card is not a JSON object")
        return cls(heads, card)

    @property
    def sha256(self) -> str:
        """A hash of the weights, for provenance."""
        digest = hashlib.sha256()
        for name in HEADS:
            h = self.heads[name]
            for array in (h.w1, h.b1, h.w2, np.array(h.b2)):
                digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
        return digest.hexdigest()


def _check_head(name: str, head: Head) -> None:
    """A ``ValueError`` unless ``head``'s arrays fit together and are finite numbers, so that
    bad weights fail as they load, not halfway through judging."""
    hidden = head.b1.shape[0] if head.b1.ndim == 1 else -1
    if not (
        head.w1.ndim == 2
        and head.w1.shape[0] == hidden
        and head.w2.shape == (hidden,)
        and all(np.issubdtype(a.dtype, np.floating) for a in (head.w1, head.b1, head.w2))
        and all(np.isfinite(a).all() for a in (head.w1, head.b1, head.w2))
        and math.isfinite(head.b2)
    ):
        raise ValueError(f"the {name} head's arrays do not fit together")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def split_options(question: str) -> tuple[str, list[tuple[str, str]]]:
    """A choice question's stem and its ``(letter, text)`` options; a one-line usage error if it
    has fewer than two lettered options."""
    matches = list(_OPTION.finditer(question))
    if len(matches) < 2:
        raise UsageError(
            f"the preference model cannot find (A)/(B) options in {question[:60]!r}: judge "
            "choice items written with lettered options, or use an LM judge"
        )
    stem = _CHOICES_LABEL.sub("", question[: matches[0].start()].rstrip()).strip()
    return stem, [(m.group(1), " ".join(m.group(2).split())) for m in matches]


@functools.cache
def builtin() -> PreferenceModel:
    """The model that ships in the package (fitted by ``scripts/train_pm.py``)."""
    data = resources.files("mwe").joinpath("data", "pm", "pm.npz").read_bytes()
    model = PreferenceModel.from_bytes(data)
    return model


@dataclass(frozen=True)
class FitSettings:
    """How a head is fitted (part of a fitted judge's identity)."""

    hidden: int = 256
    epochs: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch: int = 256
    seed: int = 0


def fit_head(
    features: np.ndarray,
    labels: np.ndarray,
    settings: FitSettings = FitSettings(),
    start: Head | None = None,
) -> Head:
    """Fit a head to ``labels`` (0/1) by logistic loss, from ``start``'s weights if given.

    Deterministic for the same inputs: the seed fixes the initial weights and the batch order.
    """
    import torch

    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)  # dropout masks
    hidden = start.w1.shape[0] if start is not None else settings.hidden
    first, last = torch.nn.Linear(features.shape[1], hidden), torch.nn.Linear(hidden, 1)
    net = torch.nn.Sequential(first, torch.nn.GELU(approximate="tanh"), torch.nn.Dropout(0.2), last)
    if start is not None:
        with torch.no_grad():
            first.weight.copy_(torch.from_numpy(start.w1))
            first.bias.copy_(torch.from_numpy(start.b1))
            last.weight.copy_(torch.from_numpy(start.w2)[None, :])
            last.bias.fill_(start.b2)
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    y = torch.from_numpy(np.asarray(labels, dtype=np.float32))
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    net.train()
    for _ in range(settings.epochs):
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), settings.batch):
            rows = order[i : i + settings.batch]
            opt.zero_grad()
            logits = net(x[rows]).squeeze(1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y[rows])
            loss.backward()
            opt.step()
    return Head(
        first.weight.detach().numpy().copy(),
        first.bias.detach().numpy().copy(),
        last.weight.detach().numpy()[0].copy(),
        float(last.bias.item()),
    )
