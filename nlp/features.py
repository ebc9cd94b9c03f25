"""What the message model sees of a text: words, character pairs, negation, question form, cues.

Shared by training and scoring, so both see exactly the same features:

- words and character bigrams, marked `!` inside a negation's scope, so the model can learn
  that 不满意 is not 满意 (words after a negation word are separate features);
- `?q` when the message is a question: a question mark, a sentence-final particle (吗 呢 么 嘛),
  an interrogative word or an A-not-A form (会不会, 好不好). Customers' questions are mostly
  neutral requests for information, while reviews' rhetorical questions come with complaint
  words; the model learns both from data;
- `@<intent>` for each intent rule of config/nlp/intents.toml the text triggers (`:h` for the
  strong rules), so the model decides how far a company's keyword list is to be trusted;
- the chat lexicon's score (config/nlp/sentiment.toml: WeChat emoji, chat slang) as one
  real-valued feature, `=lex`, which reviews alone would not teach.

Topic words (客服, 发货, 价格 …, also in sentiment.toml) are left out of the word and bigram
features: reviews mention them mostly to complain, which would make any question about them
read as negative. They come back as features of their own, `~<word>`, which only the buying
head weighs (nlp.train.TOPIC_HEADS): 报价, 下单, 合同, 多少 are what asking to buy is made of.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nlp.text import is_clause_break, normalise

# How many following tokens a negation word reaches (不 很 满意 -> 满意 negated).
NEGATION_SCOPE = 3
# Negating a cue flips it and weakens it: 不太好 is mildly negative, not the opposite of 太好.
NEGATION_FACTOR = 0.7
# Sentence-final particles that make a clause a question; they carry no sentiment themselves.
QUESTION_PARTICLES = frozenset(["吗", "呢", "么", "嘛", "?"])
# Interrogative words (a closed class of the language): 请问, 什么, 怎么, 多久 …
INTERROGATIVES = frozenset(
    [
        "请问", "什么", "啥", "怎么", "怎样", "怎么样", "如何", "多少", "多久", "多长", "多大",
        "几", "几个", "几天", "几点", "哪", "哪里", "哪儿", "哪个", "哪些", "哪家", "哪种",
        "为什么", "为啥", "是否", "能否", "可否", "有没有", "能不能", "可不可以", "是不是",
        "会不会", "要不要", "需不需要", "咋", "咋样",
    ]
)
LEXICON_FEATURE = "=lex"
QUESTION_FEATURE = "?q"
TOPIC_PREFIX = "~"
# The lexicon score is clipped so one message full of emoji cannot dominate.
LEXICON_CLIP = 3.0


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


def is_a_not_a(token: str) -> bool:
    """好不好, 有没有, 可以不可以: the yes/no question form (nlp.text joins its halves)."""
    half = (len(token) - 1) // 2
    return len(token) in (3, 5) and token[half] in "不没" and token[:half] == token[half + 1 :]


def is_question(tokens: list[str]) -> bool:
    """A question mark, a final particle, an interrogative word or an A-not-A form anywhere."""
    return any(t in QUESTION_PARTICLES or t in INTERROGATIVES or is_a_not_a(t) for t in tokens)


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


def word_features(
    token_clauses: list[list[str]], negators: frozenset[str], topics: frozenset[str]
) -> set[str]:
    """Words and character bigrams, marked `!` inside a negation's scope; topic words only as
    `~` features (no bigrams inside them)."""
    feats: set[str] = set()
    for clause in token_clauses:
        scope = 0
        chars: list[str] = []  # characters of the clause, for bigrams
        negated: list[bool] = []  # whether each character is inside a negation's scope
        for token in clause:
            if token in QUESTION_PARTICLES or token.isdigit():
                continue  # numbers are prices and quantities, not sentiment
            is_negator = token in negators
            if is_negator:
                feats.add(token)
            elif token in topics:
                feats.add(TOPIC_PREFIX + ("!" + token if scope else token))
            else:
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


def rule_feature(name: str, weight: float) -> str:
    return f"@{name}:h" if weight >= 0.8 else f"@{name}"


def message_features(
    tokens: list[str],
    token_clauses: list[list[str]],
    lexicon: Lexicon,
    intent_hits: list[tuple[str, float]],
) -> tuple[set[str], float]:
    """The binary features of a message and the value of its real-valued lexicon feature."""
    feats = word_features(token_clauses, lexicon.negators, lexicon.topics)
    if is_question(tokens):
        feats.add(QUESTION_FEATURE)
    for name, weight in intent_hits:
        feats.add(rule_feature(name, weight))
    lex = max(-LEXICON_CLIP, min(LEXICON_CLIP, lexicon.score(token_clauses)))
    return feats, lex
