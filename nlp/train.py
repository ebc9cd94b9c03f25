"""Training and evaluation of the sentiment model (`scrm nlp train`, `scrm nlp eval`).

Needs scikit-learn (a training dependency only); the saved model is a plain weight table.
Choices made for out-of-domain use, checked by leaving one product category out at a time
(see benchmarks/NLP.md): binary word/negated-word/bigram features, features seen in at least
MIN_DF reviews, every category weighted equally so that the big ones (fruit, shampoo) do not
teach category words instead of sentiment, and a fairly strong L2 penalty.
"""

from __future__ import annotations

import csv
import gzip
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from nlp.sentiment import Lexicon, SentimentModel, clauses, features
from nlp.text import Tokenizer, normalise

SPLIT_SEED = 20240601
HELD_OUT_FRACTION = 0.1
C = 0.5
MIN_DF = 3
PRUNE_BELOW = 0.01


@dataclass(frozen=True, slots=True)
class Review:
    category: str
    label: int  # 1 positive, 0 negative
    text: str


def read_reviews(path: Path) -> list[Review]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        return [
            Review(row["cat"], int(row["label"]), row["review"])
            for row in csv.DictReader(fh)
            if row["review"] and row["review"].strip()
        ]


def split(reviews: list[Review]) -> tuple[list[Review], list[Review]]:
    """The fixed, seeded train/held-out split that every eval reports on."""
    order = list(range(len(reviews)))
    random.Random(SPLIT_SEED).shuffle(order)
    cut = int(len(order) * HELD_OUT_FRACTION)
    held = sorted(order[:cut])
    kept = sorted(order[cut:])
    return [reviews[i] for i in kept], [reviews[i] for i in held]


def featurize(texts: Iterable[str], tokenizer: Tokenizer, lexicon: Lexicon) -> list[set[str]]:
    return [
        features(clauses(tokenizer.tokenize(normalise(t))), lexicon.negators, lexicon.topics)
        for t in texts
    ]


def fit(
    feature_sets: list[set[str]],
    labels: list[int],
    groups: list[str],
    *,
    c: float = C,
    min_df: int = MIN_DF,
    meta: dict | None = None,
) -> SentimentModel:
    """Logistic regression on binary features; returns a scikit-learn-free weight table."""
    import numpy as np
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    df = Counter(f for feats in feature_sets for f in feats)
    vocab = {f: i for i, f in enumerate(sorted(f for f, n in df.items() if n >= min_df))}
    rows, cols = [], []
    for r, feats in enumerate(feature_sets):
        for f in sorted(feats):  # fixed order: identical input, identical model file
            j = vocab.get(f)
            if j is not None:
                rows.append(r)
                cols.append(j)
    x = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(feature_sets), len(vocab)))
    y = np.asarray(labels)
    # Every (category, label) cell weighs the same in total.
    cells = Counter(zip(groups, labels, strict=True))
    weight = np.asarray(
        [len(labels) / (len(cells) * cells[cell]) for cell in zip(groups, labels, strict=True)]
    )
    clf = LogisticRegression(C=c, solver="liblinear", max_iter=1000, random_state=0)
    clf.fit(x, y, sample_weight=weight)
    coef = clf.coef_[0]
    names = sorted(vocab, key=vocab.__getitem__)
    weights = {f: float(w) for f, w in zip(names, coef, strict=True) if abs(w) >= PRUNE_BELOW}
    info = {"c": c, "min_df": min_df, "features": len(weights), "examples": len(labels)}
    return SentimentModel(weights, float(clf.intercept_[0]), {**(meta or {}), **info})


def train(
    data: Path,
    out: Path,
    tokenizer: Tokenizer,
    lexicon: Lexicon,
    *,
    sample: int | None = None,
    progress: Callable[[str], None] = print,
) -> SentimentModel:
    """Train on the training part of the fixed split and save the model to `out`.

    `sample` trains on a seeded subsample (for tests); the shipped model uses all of it.
    """
    train_part, _ = split(read_reviews(data))
    if sample is not None and sample < len(train_part):
        train_part = random.Random(SPLIT_SEED).sample(train_part, sample)
    progress(f"featurising {len(train_part)} reviews from {data.name}")
    feats = featurize((r.text for r in train_part), tokenizer, lexicon)
    progress("fitting logistic regression")
    model = fit(
        feats,
        [r.label for r in train_part],
        [r.category for r in train_part],
        meta={"data": data.name, "split_seed": SPLIT_SEED},
    )
    model.save(out)
    progress(f"saved {model.meta['features']} features to {out}")
    return model


@dataclass(frozen=True, slots=True)
class Scores:
    n: int
    accuracy: float
    macro_f1: float
    neg_precision: float
    neg_recall: float


def score(truth: list[int], predicted: list[int]) -> Scores:
    """Binary metrics with 0 = negative, 1 = positive."""
    pairs = list(zip(truth, predicted, strict=True))
    f1s = []
    precision = recall = 0.0
    for cls in (0, 1):
        tp = sum(1 for t, p in pairs if t == cls and p == cls)
        fp = sum(1 for t, p in pairs if t != cls and p == cls)
        fn = sum(1 for t, p in pairs if t == cls and p != cls)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
        if cls == 0:
            precision, recall = prec, rec
    accuracy = sum(1 for t, p in pairs if t == p) / len(pairs)
    return Scores(len(truth), accuracy, sum(f1s) / 2, precision, recall)


def read_chat_set(path: Path) -> list[tuple[str, str]]:
    """(label, text) rows of the short-message set; label is positive, neutral or negative."""
    with open(path, encoding="utf-8", newline="") as fh:
        return [(row["label"], row["text"]) for row in csv.DictReader(fh)]


def evaluate(
    sentiment: Callable[[str], float],
    reviews: list[Review],
    chat: list[tuple[str, str]],
    *,
    name: str,
) -> list[tuple[str, str, Scores, float]]:
    """Binary scores of one sentiment function (negative below 0) on both evaluation sets.

    Returns (set, system, scores, texts per second) rows; neutral chat lines are left out of the
    binary scores because the reference systems have no neutral class.
    """
    sets = {
        f"reviews held-out ({len(reviews)})": [(r.label, r.text) for r in reviews],
        "chat short messages": [
            (1 if lab == "positive" else 0, t) for lab, t in chat if lab != "neutral"
        ],
    }
    rows = []
    for set_name, items in sets.items():
        started = time.perf_counter()
        predicted = [1 if sentiment(text) >= 0 else 0 for _, text in items]
        rate = len(items) / (time.perf_counter() - started)
        rows.append((set_name, name, score([t for t, _ in items], predicted), rate))
    return rows
