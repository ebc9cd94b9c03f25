"""The analysis of one message: tokens, keywords, tags, sentiment, intents."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp import resources
from nlp.rules import Rule, RuleSet, load_rules
from nlp.sentiment import (
    NEUTRAL_BAND,
    Lexicon,
    SentimentModel,
    clauses,
    combine,
    features,
    label_for,
)
from nlp.text import Tokenizer, is_emoji, normalise

MAX_KEYWORDS = 10
# Intents below this confidence are left out of Analysis.intents (complaint_score keeps its value).
INTENT_MIN_CONFIDENCE = 0.3
# complaint_score at or above this is a complaint worth a ticket.
COMPLAINT_THRESHOLD = 0.5


@dataclass(frozen=True, slots=True)
class Intent:
    name: str
    confidence: float


@dataclass(frozen=True, slots=True)
class Analysis:
    """What one message says; `to_dict()` is the form stored with the message."""

    tokens: tuple[str, ...]  # normalised (lower case, half-width), punctuation dropped
    keywords: tuple[str, ...]  # most telling first; stop words, filler and emoji dropped
    tags: tuple[str, ...]  # rule tags from tags.toml, in order of first appearance
    sentiment: float  # -1 .. 1, below 0 negative
    label: str  # positive / neutral / negative
    intents: tuple[Intent, ...]  # confidence >= INTENT_MIN_CONFIDENCE, strongest first
    complaint_score: float  # 0 .. 1; is_complaint from COMPLAINT_THRESHOLD on

    def intent(self, name: str) -> float:
        """Confidence of one intent, 0.0 when it was not detected."""
        return next((i.confidence for i in self.intents if i.name == name), 0.0)

    @property
    def is_complaint(self) -> bool:
        return self.complaint_score >= COMPLAINT_THRESHOLD

    def to_dict(self) -> dict[str, Any]:
        return {
            "tokens": list(self.tokens),
            "keywords": list(self.keywords),
            "tags": list(self.tags),
            "sentiment": self.sentiment,
            "label": self.label,
            "intents": {i.name: i.confidence for i in self.intents},
            "complaint_score": self.complaint_score,
        }


def text_pipeline(config_dir: Path) -> tuple[Tokenizer, Lexicon]:
    """Tokenizer and sentiment lexicon exactly as analysis uses them (training needs the same)."""
    lexicon = Lexicon.from_config(resources.read_toml("sentiment.toml", config_dir))
    # Lexicon cues and negation words must survive tokenisation whole to be found.
    tokenizer = Tokenizer(
        resources.read_word_list("userdict.txt", config_dir),
        [w for w in lexicon.polarity if not is_emoji(w)] + sorted(lexicon.negators),
    )
    return tokenizer, lexicon


class Analyzer:
    """Everything analysis needs, loaded once; immutable afterwards, so threads may share it."""

    def __init__(self, config_dir: Path, model_path: Path) -> None:
        self.tokenizer, self.lexicon = text_pipeline(config_dir)
        tags_cfg = resources.read_toml("tags.toml", config_dir)
        intents_cfg = resources.read_toml("intents.toml", config_dir)
        # Tag and intent rules share one scan of the text.
        self.rules = RuleSet(
            load_rules(tags_cfg.get("rule", []), "tag", "tag", "tags.toml")
            + load_rules(intents_cfg.get("intent", []), "intent", "name", "intents.toml"),
            sorted(self.lexicon.negators),
        )
        self.boosts: dict[str, dict[str, float]] = {
            name: {k: float(v) for k, v in b.items()}
            for name, b in intents_cfg.get("boost", {}).items()
        }
        self.stopwords = frozenset(
            normalise(w) for w in resources.read_word_list("stopwords.txt", config_dir)
        )
        self.model = SentimentModel.load(model_path)

    def sentiment_parts(self, text: str) -> tuple[float, float]:
        """The model's log-odds and the lexicon score behind a text's sentiment (for tuning)."""
        return self._sentiment_parts(clauses(self.tokenizer.tokenize(normalise(text))))

    def _sentiment_parts(self, token_clauses: list[list[str]]) -> tuple[float, float]:
        lexicon = self.lexicon
        feats = features(token_clauses, lexicon.negators, lexicon.topics)
        return self.model.logit(feats), lexicon.score(token_clauses)

    def analyze(self, text: str) -> Analysis:
        norm = normalise(text)
        token_clauses = clauses(self.tokenizer.tokenize(norm))
        tokens = tuple(t for clause in token_clauses for t in clause)
        model_logit, lexicon_score = self._sentiment_parts(token_clauses)
        sentiment = round(combine(model_logit, lexicon_score), 4)
        hits = self.rules.matches(norm)
        intents = self._intents(hits, sentiment)
        return Analysis(
            tokens=tokens,
            keywords=self._keywords(tokens),
            tags=tuple(dict.fromkeys(r.name for r in hits if r.kind == "tag")),
            sentiment=sentiment,
            label=label_for(sentiment),
            intents=tuple(Intent(n, c) for n, c in intents if c >= INTENT_MIN_CONFIDENCE),
            complaint_score=next((c for n, c in intents if n == "complaint"), 0.0),
        )

    def _intents(self, hits: list[Rule], sentiment: float) -> list[tuple[str, float]]:
        miss: dict[str, float] = {}
        for rule in hits:
            if rule.kind != "intent":
                continue
            miss[rule.name] = miss.get(rule.name, 1.0) * (1.0 - rule.weight)
        # Only sentiment beyond the neutral band counts: 在吗 must not look like a complaint.
        negative = max(0.0, -sentiment - NEUTRAL_BAND) / (1.0 - NEUTRAL_BAND)
        positive = max(0.0, sentiment - NEUTRAL_BAND) / (1.0 - NEUTRAL_BAND)
        for name, boost in self.boosts.items():
            strength = boost.get("negative", 0.0) * negative + boost.get("positive", 0.0) * positive
            if strength > 0:
                miss[name] = miss.get(name, 1.0) * (1.0 - min(strength, 1.0))
        scored = [(name, round(1.0 - m, 3)) for name, m in miss.items()]
        return sorted(scored, key=lambda nc: -nc[1])

    def _keywords(self, tokens: tuple[str, ...]) -> tuple[str, ...]:
        counts: dict[str, int] = {}
        for token in tokens:
            if token in counts:
                counts[token] += 1
            elif self._is_keyword(token):
                counts[token] = 1
        if not counts:
            return ()
        idf = self.tokenizer.idf
        return tuple(sorted(counts, key=lambda t: -counts[t] * idf(t))[:MAX_KEYWORDS])

    def _is_keyword(self, token: str) -> bool:
        if token in self.stopwords or token in self.lexicon.negators:
            return False
        if len(token) < 2 or is_emoji(token):
            return False
        return not (token.isdigit() and len(token) < 3)
