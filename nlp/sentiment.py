"""Sentiment: a linear model over words and character bigrams plus a chat-cue lexicon.

The model is trained on product reviews (see nlp.train) and is stored as a plain table of
feature weights, so scoring needs neither numpy nor scikit-learn: a message's score is the sum
of its features' weights. Words and bigrams after a negation word are separate features
(`!满意`, `!#满意`), which lets the model learn that 不满意 is not 满意. The lexicon
(config/nlp/sentiment.toml) adds what reviews do not teach: WeChat emoji codes, Unicode emoji
and chat slang.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp.text import is_clause_break, normalise

# How many following tokens a negation word reaches (不 很 满意 -> 满意 negated).
NEGATION_SCOPE = 3
# Weight of the lexicon score against the model's log-odds; chosen on the chat set (tests/data).
LEXICON_WEIGHT = 2.5
# Reviews without a cue are mostly complaints, chat lines without a cue mostly neutral
# (在吗, 发个报价单给我): keep only part of the prior the model learned from reviews.
PRIOR_WEIGHT = 0.5
# Reviews ask rhetorical questions (这也叫手机吗), customers real ones: not sentiment features.
QUESTION_PARTICLES = frozenset(["吗", "呢", "么", "嘛", "?"])
# |sentiment| below this is reported as neutral.
NEUTRAL_BAND = 0.12
# Negating a cue flips it and weakens it: 不太好 is mildly negative, not the opposite of 太好.
NEGATION_FACTOR = 0.7
# sentiment = tanh(score / SCALE): maps log-odds-like scores onto [-1, 1].
SCALE = 3.0


def clauses(tokens: list[str]) -> list[list[str]]:
    """Tokens grouped by clause, punctuation dropped: negation never reaches past a comma."""
    groups: list[list[str]] = [[]]
    for token in tokens:
        if is_clause_break(token):
            if groups[-1]:
                groups.append([])
        else:
            groups[-1].append(token)
    if not groups[-1]:
        groups.pop()
    return groups


def features(
    token_clauses: list[list[str]], negators: frozenset[str], topics: frozenset[str]
) -> set[str]:
    """Model features: words and character bigrams, marked `!` inside a negation's scope.

    Topic words (and bigrams inside them) are left out. Shared by training and scoring so both
    see exactly the same features.
    """
    feats: set[str] = set()
    for clause in token_clauses:
        scope = 0
        chars: list[str] = []  # characters of the clause, for bigrams
        negated: list[bool] = []  # whether each character is inside a negation's scope
        for token in clause:
            if token in QUESTION_PARTICLES or token.isdigit():
                continue  # numbers are prices and quantities of the reviewed products
            is_negator = token in negators
            if is_negator:
                feats.add(token)
            elif token not in topics:
                feats.add("!" + token if scope else token)
            if token.isascii():
                pieces = [""]  # bigrams are for Chinese; English words and codes are tokens
            elif is_negator or token in topics:
                # Only the word feature (none for a topic) speaks for the word itself: a blank
                # keeps the pairs inside it out of the bigrams; pairs with neighbours stay.
                pieces = [token[0], "", token[-1]] if len(token) > 1 else [token]
            else:
                pieces = list(token)
            chars.extend(pieces)
            negated.extend([scope > 0 and not is_negator] * len(pieces))
            scope = NEGATION_SCOPE if is_negator else max(scope - 1, 0)
        for i in range(len(chars) - 1):
            if chars[i] and chars[i + 1]:
                mark = "!#" if negated[i] or negated[i + 1] else "#"
                feats.add(mark + chars[i] + chars[i + 1])
    return feats


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Chat cues with polarity, negation, degree and topic words from sentiment.toml."""

    polarity: dict[str, float]
    negators: frozenset[str]
    degree: dict[str, float]
    topics: frozenset[str]

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> Lexicon:
        return cls(
            polarity={normalise(k): float(v) for k, v in data.get("lexicon", {}).items()},
            negators=frozenset(normalise(n) for n in data.get("negators", ())),
            degree={normalise(k): float(v) for k, v in data.get("degree", {}).items()},
            topics=frozenset(normalise(t) for t in data.get("neutral_topics", ())),
        )

    def score(self, token_clauses: list[list[str]]) -> float:
        """Sum of cue polarities adjusted for negation and degree."""
        total = 0.0
        for clause in token_clauses:
            for i, token in enumerate(clause):
                polarity = self.polarity.get(token)
                negated = False
                if polarity is None:
                    polarity = self._negated_cue(token)
                    if polarity is None:
                        continue
                    negated = True
                value = polarity
                for prev in clause[max(0, i - NEGATION_SCOPE) : i]:
                    if prev in self.negators:
                        negated = not negated
                    elif prev in self.degree:
                        value *= self.degree[prev]
                if negated:
                    value = -value * NEGATION_FACTOR
                total += value
        return total

    def _negated_cue(self, token: str) -> float | None:
        """Polarity of the cue inside a one-token negation: jieba keeps 不差, 不靠谱 whole."""
        for size in range(min(len(token) - 1, 4), 0, -1):
            if token[:size] in self.negators:
                return self.polarity.get(token[size:])
        return None


class SentimentModel:
    """Feature weights learned by nlp.train; missing features weigh nothing."""

    def __init__(self, weights: dict[str, float], bias: float, meta: dict[str, Any]) -> None:
        self.weights = weights
        self.bias = bias
        self.meta = meta

    def logit(self, feats: set[str]) -> float:
        get = self.weights.get
        return PRIOR_WEIGHT * self.bias + sum(get(f, 0.0) for f in feats)

    @classmethod
    def load(cls, path: Path) -> SentimentModel:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            meta = json.loads(fh.readline())
            weights = {}
            for line in fh:
                feature, _, weight = line.rstrip("\n").rpartition("\t")
                weights[feature] = float(weight)
        return cls(weights, float(meta["bias"]), meta)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # No name or mtime in the gzip header: retraining on the same data gives identical bytes.
        with open(path, "wb") as raw, gzip.GzipFile("", "wb", fileobj=raw, mtime=0) as gz:
            header = json.dumps({**self.meta, "bias": self.bias}, ensure_ascii=False)
            gz.write((header + "\n").encode())
            for feature in sorted(self.weights):
                gz.write(f"{feature}\t{self.weights[feature]:.4g}\n".encode())


def combine(model_logit: float, lexicon_score: float) -> float:
    """Overall sentiment in [-1, 1] from the model's log-odds and the lexicon score."""
    return math.tanh((model_logit + LEXICON_WEIGHT * lexicon_score) / SCALE)


def label_for(sentiment: float) -> str:
    if sentiment <= -NEUTRAL_BAND:
        return "negative"
    if sentiment >= NEUTRAL_BAND:
        return "positive"
    return "neutral"
