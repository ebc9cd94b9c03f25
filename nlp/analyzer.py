"""The analysis of one message: tokens, keywords, tags, sentiment, complaint, buying, opt-out."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jieba

from nlp import resources
from nlp.features import Lexicon, clauses, message_features
from nlp.keywords import TopicFilter
from nlp.model import SENTIMENT_LABELS, MessageModel, Prediction
from nlp.rules import Rule, RuleSet, load_rules
from nlp.text import Tokenizer, is_emoji, normalise

MAX_KEYWORDS = 10
MAX_SIGNALS = 4
# Rule intents below this confidence are left out of Analysis.intents.
INTENT_MIN_CONFIDENCE = 0.3
# complaint_score at or above this is a complaint worth a ticket: chosen on the labelled customer
# sets (benchmarks/NLP.md) so that at most 2 % of neutral messages pass it; tickets.toml repeats it.
COMPLAINT_THRESHOLD = 0.55
# buying at or above this is a buying signal worth telling the rep about: chosen on a seeded fifth
# of the chat seed held out of training (benchmarks/NLP.md); config/lifecycle.toml repeats it.
BUYING_THRESHOLD = 0.45
# opt_out at or above this stops care messages and campaigns.
OPT_OUT_THRESHOLD = 0.5
# Rule intents that are features of the model's complaint and buying heads (config/nlp/
# intents.toml): the heads report them, the rules alone are not reported.
_MODEL_INTENTS = ("complaint", "buying", "purchase_intent", "price_inquiry")


@dataclass(frozen=True, slots=True)
class Intent:
    name: str
    confidence: float


@dataclass(frozen=True, slots=True)
class Analysis:
    """What one message says; `to_dict()` is the form stored with the message."""

    tokens: tuple[str, ...]  # normalised (lower case, half-width), punctuation dropped
    keywords: tuple[str, ...]  # topics (nouns, domain terms), most telling first
    tags: tuple[str, ...]  # rule tags from tags.toml, in order of first appearance
    sentiment: float  # -1 .. 1: P(positive) - P(negative)
    label: str  # positive / neutral / negative, the most probable
    probabilities: tuple[float, float, float]  # calibrated P(negative, neutral, positive)
    intents: tuple[Intent, ...]  # confidence >= INTENT_MIN_CONFIDENCE, strongest first
    complaint_score: float  # 0 .. 1, calibrated; is_complaint from COMPLAINT_THRESHOLD on
    buying: float  # 0 .. 1, calibrated: purchase intent or a price inquiry
    opt_out: float  # 0 .. 1: asks to stop receiving messages
    signals: tuple[str, ...]  # words of the text behind complaint_score, most telling first

    def intent(self, name: str) -> float:
        """Confidence of one intent, 0.0 when it was not detected."""
        return next((i.confidence for i in self.intents if i.name == name), 0.0)

    @property
    def is_complaint(self) -> bool:
        return self.complaint_score >= COMPLAINT_THRESHOLD

    @property
    def is_buying(self) -> bool:
        return self.buying >= BUYING_THRESHOLD

    @property
    def is_opt_out(self) -> bool:
        return self.opt_out >= OPT_OUT_THRESHOLD

    def to_dict(self) -> dict[str, Any]:
        return {
            "tokens": list(self.tokens),
            "keywords": list(self.keywords),
            "tags": list(self.tags),
            "sentiment": self.sentiment,
            "label": self.label,
            "probabilities": dict(zip(SENTIMENT_LABELS, self.probabilities, strict=True)),
            "intents": {i.name: i.confidence for i in self.intents},
            "complaint_score": self.complaint_score,
            "buying": self.buying,
            "opt_out": self.opt_out,
            "signals": list(self.signals),
        }


@dataclass(frozen=True, slots=True)
class Featurized:
    """A text as the model sees it (nlp.features), with what analysis reports beside it."""

    norm: str
    tokens: list[str]
    feats: set[str]
    lex: float
    hits: list[Rule]
    rule_intents: list[tuple[str, float]]


class TextPipeline:
    """Normalisation, tokens, rules and features: everything but the model, so that training
    featurises its corpora exactly as analysis does."""

    def __init__(self, config_dir: Path) -> None:
        self.lexicon = Lexicon.from_config(resources.read_toml("sentiment.toml", config_dir))
        self.user_words = resources.read_word_list("userdict.txt", config_dir)
        # Lexicon cues and negation words must survive tokenisation whole to be found.
        self.tokenizer = Tokenizer(
            self.user_words,
            [w for w in self.lexicon.polarity if not is_emoji(w)] + sorted(self.lexicon.negators),
        )
        tags_cfg = resources.read_toml("tags.toml", config_dir)
        intents_cfg = resources.read_toml("intents.toml", config_dir)
        self.tag_rules = load_rules(tags_cfg.get("rule", []), "tag", "tag", "tags.toml")
        # Tag and intent rules share one scan of the text.
        self.rules = RuleSet(
            self.tag_rules
            + load_rules(intents_cfg.get("intent", []), "intent", "name", "intents.toml"),
            sorted(self.lexicon.negators),
        )

    def featurize(self, text: str) -> Featurized:
        norm = normalise(text)
        raw_tokens = self.tokenizer.tokenize(norm)
        token_clauses = clauses(raw_tokens)
        hits = self.rules.matches(norm)
        rule_intents = _rule_confidences(hits)
        feats, lex = message_features(raw_tokens, token_clauses, self.lexicon, rule_intents)
        tokens = [t for clause in token_clauses for t in clause]
        return Featurized(norm, tokens, feats, lex, hits, rule_intents)


def _rule_confidences(hits: list[Rule]) -> list[tuple[str, float]]:
    """Each intent's confidence from its rules: 1 - product(1 - weight) over the rules hit."""
    miss: dict[str, float] = {}
    for rule in hits:
        if rule.kind == "intent":
            miss[rule.name] = miss.get(rule.name, 1.0) * (1.0 - rule.weight)
    return sorted(((n, round(1.0 - m, 3)) for n, m in miss.items()), key=lambda nc: -nc[1])


def _jieba_dictionary() -> Path:
    return Path(os.path.dirname(jieba.__file__)) / "dict.txt"


class Analyzer:
    """Everything analysis needs, loaded once; immutable afterwards, so threads may share it."""

    def __init__(self, config_dir: Path, model_path: Path) -> None:
        self.pipeline = TextPipeline(config_dir)
        self.tokenizer = self.pipeline.tokenizer
        self.lexicon = self.pipeline.lexicon
        self.model = MessageModel.load(model_path)
        domain_words = [line.split()[0] for line in self.pipeline.user_words] + [
            k for rule in self.pipeline.tag_rules for k in rule.keywords
        ]
        self.topics = TopicFilter(
            _jieba_dictionary(),
            self.tokenizer.knows,
            domain_words,
            resources.read_word_list("stopwords.txt", config_dir),
            self.lexicon.negators,
        )

    def analyze(self, text: str) -> Analysis:
        f = self.pipeline.featurize(text)
        if not f.tokens:
            return _NOTHING_SAID
        prediction = self.model.predict(f.feats, f.lex)
        negative, _, positive = prediction.sentiment
        label = SENTIMENT_LABELS[max(range(3), key=prediction.sentiment.__getitem__)]
        complaint = round(prediction.complaint, 3)
        buying = round(prediction.buying, 3)
        rule_intents = dict(f.rule_intents)
        opt_out = rule_intents.pop("opt_out", 0.0)
        for name in _MODEL_INTENTS:
            rule_intents.pop(name, None)
        intents = [(n, c) for n, c in rule_intents.items()] + [
            ("complaint", complaint),
            ("buying", buying),
        ]
        if opt_out:
            intents.append(("opt_out", opt_out))
        intents.sort(key=lambda nc: -nc[1])
        return Analysis(
            tokens=tuple(f.tokens),
            keywords=self._keywords(f.tokens),
            tags=tuple(dict.fromkeys(r.name for r in f.hits if r.kind == "tag")),
            sentiment=round(positive - negative, 4),
            label=label,
            probabilities=tuple(round(p, 3) for p in prediction.sentiment),
            intents=tuple(Intent(n, c) for n, c in intents if c >= INTENT_MIN_CONFIDENCE),
            complaint_score=complaint,
            buying=buying,
            opt_out=opt_out,
            signals=self._signals(f, prediction),
        )

    def _signals(self, f: Featurized, prediction: Prediction) -> tuple[str, ...]:
        """The words of the text that pushed the complaint score up, when it is one: each token
        weighs what its word feature and the character pairs inside it add to the score."""
        if prediction.complaint < COMPLAINT_THRESHOLD:
            return ()
        pushes = dict((feat, w) for w, feat in self.model.contributions(f.feats, "complaint"))
        scored: dict[str, float] = {}
        for token in f.tokens:
            if token in scored or not self.topics.may_signal(token):
                continue
            weight = pushes.get(token, 0.0) + pushes.get("!" + token, 0.0)
            weight += sum(pushes.get(f"#{token[i:i + 2]}", 0.0) for i in range(len(token) - 1))
            if weight > 0:
                scored[token] = weight
        return tuple(sorted(scored, key=lambda t: -scored[t])[:MAX_SIGNALS])

    def _keywords(self, tokens: list[str]) -> tuple[str, ...]:
        counts: dict[str, int] = {}
        is_topic = self.topics.is_topic
        for token in tokens:
            if token in counts:
                counts[token] += 1
            elif is_topic(token):
                counts[token] = 1
        if not counts:
            return ()
        idf = self.tokenizer.idf
        return tuple(sorted(counts, key=lambda t: -counts[t] * idf(t))[:MAX_KEYWORDS])


# Punctuation, whitespace or nothing at all: no model behind it, nothing detected.
_NOTHING_SAID = Analysis(
    tokens=(), keywords=(), tags=(), sentiment=0.0, label="neutral",
    probabilities=(0.0, 1.0, 0.0), intents=(), complaint_score=0.0, buying=0.0, opt_out=0.0,
    signals=(),
)
