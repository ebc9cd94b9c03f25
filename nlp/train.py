"""Training of the message model (`scrm nlp train`).

Needs scikit-learn, numpy and scipy (the `train` extra); the saved model is a plain weight
table read by nlp.model. The corpora are described in nlp.corpora; every head learns from the
examples whose source labels its task, each source weighted by a fixed share of the head's
total (SOURCE_SHARES) so that 47,000 reviews do not drown 400 chat lines, and within the
reviews every (category, label) cell weighs the same, so big categories (fruit, shampoo) do not
teach category words instead of sentiment. Calibration (nlp.model.Calibration) is fitted on a
seeded 15 % of the examples that a first fit did not see; the shipped weights come from a
second fit on all of them. Retraining from the same files gives the same bytes.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nlp.analyzer import TextPipeline
from nlp.corpora import (
    SENTIMENTS,
    Example,
    kdconv_examples,
    read_reviews,
    review_examples,
    seed_examples,
    split_reviews,
)
from nlp.features import LEXICON_FEATURE, TOPIC_PREFIX
from nlp.model import COLUMNS, Calibration, MessageModel

C = 0.5
MIN_DF = 2
PRUNE_BELOW = 0.02
CALIBRATION_FRACTION = 0.15
CALIBRATION_SEED = 17
# Share of each head's total example weight given to each source.
SOURCE_SHARES = {
    "sentiment": {"reviews": 0.5, "kdconv": 0.25, "seed": 0.25},
    "complaint": {"reviews": 0.2, "kdconv": 0.2, "seed": 0.6},
    "buying": {"reviews": 0.2, "kdconv": 0.3, "seed": 0.5},
}

# The heads that may weigh topic-word features (nlp.features): for sentiment and complaints the
# reviews would teach that 发货 or 价格 is a complaint; for buying they are the main evidence.
TOPIC_HEADS = frozenset(["buying"])

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Featurized:
    feats: frozenset[str]
    lex: float


def build_examples(reviews_path: Path, *, sample: int | None = None) -> list[Example]:
    """The training part of the review split, the KdConv extract and the chat seed.

    `sample` keeps a seeded subsample of the reviews and KdConv (for tests); the seed is kept
    whole.
    """
    reviews, _ = split_reviews(read_reviews(reviews_path))
    kdconv = kdconv_examples()
    if sample is not None:
        rng = random.Random(CALIBRATION_SEED)
        reviews = rng.sample(reviews, min(sample, len(reviews)))
        kdconv = rng.sample(kdconv, min(sample // 2, len(kdconv)))
    return review_examples(reviews) + kdconv + seed_examples()


def featurize(
    pipeline: TextPipeline, examples: Sequence[Example], progress: Progress
) -> list[Featurized]:
    out = []
    started = time.monotonic()
    for i, example in enumerate(examples, 1):
        f = pipeline.featurize(example.text)
        out.append(Featurized(frozenset(f.feats), f.lex))
        if i % 10_000 == 0 or i == len(examples):
            rate = i / max(time.monotonic() - started, 1e-9)
            progress(f"  featurised {i:,}/{len(examples):,} texts ({rate:,.0f}/s)")
    return out


def _source(example: Example) -> str:
    return example.source.split(":", 1)[0]


def _weights(examples: Sequence[Example], head: str) -> list[float]:
    """Sample weights of a head's examples: each source its share, review cells equal."""
    shares = SOURCE_SHARES[head]
    label = [getattr(e, head) for e in examples]
    cells = Counter(
        (e.source, lab) if _source(e) == "reviews" else _source(e)
        for e, lab in zip(examples, label, strict=True)
    )
    per_source_cells = Counter(k[0].split(":", 1)[0] if isinstance(k, tuple) else k for k in cells)
    raw = []
    for e, lab in zip(examples, label, strict=True):
        src = _source(e)
        key = (e.source, lab) if src == "reviews" else src
        raw.append(shares[src] / (per_source_cells[src] * cells[key]))
    scale = len(raw) / sum(raw)
    return [w * scale for w in raw]


class _Design:
    """The sparse design matrix over a fixed vocabulary (the lexicon value is one column)."""

    def __init__(self, featurized: Sequence[Featurized], min_df: int) -> None:
        df = Counter(f for item in featurized for f in item.feats)
        self.names = [LEXICON_FEATURE] + sorted(f for f, n in df.items() if n >= min_df)
        self.index = {f: i for i, f in enumerate(self.names)}

    def matrix(self, featurized: Sequence[Featurized]):
        import numpy as np
        from scipy.sparse import csr_matrix

        rows, cols, vals = [], [], []
        for r, item in enumerate(featurized):
            if item.lex:
                rows.append(r)
                cols.append(0)
                vals.append(item.lex)
            for f in sorted(item.feats):  # fixed order: identical input, identical model file
                j = self.index.get(f)
                if j is not None:
                    rows.append(r)
                    cols.append(j)
                    vals.append(1.0)
        return csr_matrix(
            (np.asarray(vals), (rows, cols)), shape=(len(featurized), len(self.names))
        )


def _fit(x, y, w, *, multiclass: bool, c: float):
    from sklearn.linear_model import LogisticRegression

    if multiclass:
        clf = LogisticRegression(C=c, solver="lbfgs", max_iter=2000)
    else:
        clf = LogisticRegression(C=c, solver="liblinear", max_iter=1000, random_state=0)
    clf.fit(x, y, sample_weight=w)
    return clf


def _temperature(logits, y, w) -> float:
    """The temperature minimising the weighted log loss of softmax(logits / T)."""
    import numpy as np

    def loss(t: float) -> float:
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-(w * logp[np.arange(len(y)), y]).sum())

    lo, hi = 0.2, 5.0  # golden-section search on a unimodal loss
    g = (math.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        if loss(a) < loss(b):
            hi = b
        else:
            lo = a
    return (lo + hi) / 2


def _platt(z, y, w) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=1e4, solver="lbfgs", max_iter=1000)
    clf.fit(z.reshape(-1, 1), y, sample_weight=w)
    return float(clf.coef_[0][0]), float(clf.intercept_[0])


def _head_data(examples, featurized, head):
    keep = [i for i, e in enumerate(examples) if getattr(e, head) is not None]
    labels = [getattr(examples[i], head) for i in keep]
    if head == "sentiment":
        labels = [SENTIMENTS.index(s) for s in labels]
    weights = _weights([examples[i] for i in keep], head)
    return keep, labels, weights


def fit(
    examples: Sequence[Example],
    featurized: Sequence[Featurized],
    *,
    c: float = C,
    min_df: int = MIN_DF,
    meta: dict | None = None,
    progress: Progress = print,
) -> MessageModel:
    """Fit every head, calibrate each on held-back examples, return the weight table."""
    import numpy as np

    design = _Design(featurized, min_df)
    x_all = design.matrix(featurized)
    coef = np.zeros((len(design.names), len(COLUMNS)))
    bias = [0.0] * len(COLUMNS)
    calibration: dict[str, object] = {}
    counts = {}
    from scipy.sparse import diags

    no_topics = diags(
        [0.0 if name.startswith(TOPIC_PREFIX) else 1.0 for name in design.names], format="csr"
    )
    for head in ("sentiment", "complaint", "buying"):
        keep, labels, weights = _head_data(examples, featurized, head)
        x = x_all[keep] if head in TOPIC_HEADS else x_all[keep] @ no_topics
        y, w = np.asarray(labels), np.asarray(weights)
        counts[head] = len(keep)
        multiclass = head == "sentiment"
        order = list(range(len(keep)))
        random.Random(CALIBRATION_SEED).shuffle(order)
        cut = int(len(order) * CALIBRATION_FRACTION)
        held, kept = np.asarray(sorted(order[:cut])), np.asarray(sorted(order[cut:]))
        progress(f"fitting {head} on {len(keep):,} examples (calibration on {cut:,} held back)")
        first = _fit(x[kept], y[kept], w[kept], multiclass=multiclass, c=c)
        z = first.decision_function(x[held])
        if multiclass:
            calibration["temperature"] = _temperature(z, y[held], w[held])
        else:
            calibration[head] = _platt(z, y[held], w[held])
        final = _fit(x, y, w, multiclass=multiclass, c=c)
        if multiclass:
            coef[:, 0:3] = final.coef_.T
            bias[0:3] = [float(b) for b in final.intercept_]
        else:
            column = COLUMNS.index(head)
            coef[:, column] = final.coef_[0]
            bias[column] = float(final.intercept_[0])
    weights = {
        name: tuple(float(v) for v in row)
        for name, row in zip(design.names, coef, strict=True)
        if np.abs(row).max() >= PRUNE_BELOW
    }
    info = {"c": c, "min_df": min_df, "features": len(weights), "examples": counts}
    return MessageModel(
        weights,
        tuple(bias),
        Calibration(
            float(calibration["temperature"]),
            tuple(calibration["complaint"]),
            tuple(calibration["buying"]),
        ),
        {**(meta or {}), **info},
    )


def train(
    reviews_path: Path,
    out: Path,
    pipeline: TextPipeline,
    *,
    sample: int | None = None,
    progress: Progress = print,
) -> MessageModel:
    """Train on the training corpora and save the model to `out` (see the module docstring)."""
    examples = build_examples(reviews_path, sample=sample)
    sources = Counter(_source(e) for e in examples)
    progress(
        "training examples: "
        + ", ".join(f"{n:,} {s}" for s, n in sorted(sources.items()))
        + f" (reviews from {reviews_path.name})"
    )
    featurized = featurize(pipeline, examples, progress)
    model = fit(
        examples,
        featurized,
        meta={"reviews": reviews_path.name, "sources": dict(sorted(sources.items()))},
        progress=progress,
    )
    model.save(out)
    progress(f"saved {model.meta['features']:,} features to {out}")
    return model
