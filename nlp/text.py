"""Normalisation and tokenisation of chat text.

jieba alone splits WeChat emoji codes (`[发怒]` -> `[`, `发怒`, `]`), Unicode emoji and product
codes (`X200-Pro` -> `X200`, `-`, `Pro`), so these are cut out first and kept as single tokens;
only the plain-text spans between them go through jieba.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from functools import lru_cache

import jieba

# One long pasted text must not hold a worker for long: analyse only its beginning.
MAX_CHARS = 20_000

_SPECIAL = re.compile(
    r"(\[[\u4e00-\u9fffA-Za-z]{1,5}\])"  # WeChat emoji code, e.g. [微笑]
    r"|([\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u3030\u303D])"  # Unicode emoji
    r"|((?:[a-z]+[-_]?\d|\d+[-_]?[a-z])[a-z0-9_-]*)"  # product code mixing letters and digits
)
_DROP = re.compile(r"[\ufe0f\u200d\u200b]")
_PUNCT_CLAUSE = frozenset("，。！？；：、,.!?;:~…\n\r\t ～")
_WORDISH = re.compile(r"[\w\u4e00-\u9fff]")


def normalise(text: str) -> str:
    """Fold full-width forms and case so rules and the model see one spelling."""
    return _DROP.sub("", unicodedata.normalize("NFKC", text[:MAX_CHARS])).lower()


@lru_cache(maxsize=65536)
def is_clause_break(token: str) -> bool:
    """Punctuation and other non-word tokens end a clause (and a negation's reach)."""
    return token in _PUNCT_CLAUSE or (not _WORDISH.search(token) and not is_emoji(token))


def is_emoji(token: str) -> bool:
    """A WeChat emoji code ([微笑]) or a single Unicode emoji."""
    return (token.startswith("[") and token.endswith("]") and len(token) > 2) or (
        len(token) == 1 and _SPECIAL.fullmatch(token) is not None
    )


class Tokenizer:
    """A private jieba instance with the domain user dictionary loaded.

    Private so that loading our dictionary does not change tokenisation for other code in the
    process that uses jieba's global functions.
    """

    def __init__(self, user_words: list[str], extra_words: list[str]) -> None:
        self._jieba = jieba.Tokenizer()
        jieba.setLogLevel(logging.WARNING)
        self._jieba.initialize()
        for line in user_words:
            parts = line.split()
            freq = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
            self._jieba.add_word(parts[0].lower(), freq)
        for word in extra_words:
            if word.lower() not in self._jieba.FREQ or not self._jieba.FREQ[word.lower()]:
                self._jieba.add_word(word.lower())
        self._total = self._jieba.total
        self._freq = self._jieba.FREQ
        self._oov_idf = math.log(self._total / 3.0)

    def tokenize(self, normalised: str) -> list[str]:
        """All tokens of normalised text, punctuation included (it marks clause ends)."""
        tokens: list[str] = []
        cut = self._jieba.cut
        pos = 0
        for m in _SPECIAL.finditer(normalised):
            if m.start() > pos:
                tokens.extend(t for t in cut(normalised[pos : m.start()]) if not t.isspace())
            tokens.append(m.group())
            pos = m.end()
        if pos < len(normalised):
            tokens.extend(t for t in cut(normalised[pos:]) if not t.isspace())
        return _join_a_not_a(tokens)

    def knows(self, token: str) -> bool:
        """Whether the dictionary has the word (jieba also stores prefixes, with frequency 0)."""
        return bool(self._freq.get(token))

    def idf(self, token: str) -> float:
        """Rarity of a word in jieba's corpus; unknown words count as rare."""
        freq = self._freq.get(token)
        return math.log(self._total / freq) if freq else self._oov_idf


def _join_a_not_a(tokens: list[str]) -> list[str]:
    """会 / 不会 -> 会不会, 有 / 没有 -> 有没有: jieba splits most A-not-A questions, and the halves
    would read as a negation (不会 as in 不会再买) instead of the yes/no question they are."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if i + 1 < len(tokens) and 0 < len(token) <= 2 and not token.isascii():
            following = tokens[i + 1]
            if following[:1] in "不没" and following[1:] == token:
                out.append(token + following)
                i += 2
                continue
            if (
                following in ("不", "没")
                and i + 2 < len(tokens)
                and tokens[i + 2] == token
            ):
                out.append(token + following + token)
                i += 3
                continue
        out.append(token)
        i += 1
    return out
