"""Which tokens may be a message's keywords: topics (things, services, domain terms), nothing else.

The digest's 客户热词 are counted from these, so a filter by part of speech, not a list of bad
words: a token is a topic when jieba's dictionary tags it as a noun (n, nz, nt, ns, vn, ng),
when it is one of the company's own domain words (config/nlp/userdict.txt and the keywords of
its tag rules, such as 发票 or 退款), or when jieba does not know it at all (a product name
or code). Time words (t: 上次, 下周), pronouns, numerals, measure words, adverbs, idioms and
greetings (l: 你好), adjectives (一般), verbs and directions (以后 is f) never are; nor are time
expressions jieba does not know (下个月, 3月, 两小时) or the stop words. A word jieba does not know
is its guess at joining characters: one holding a function character (an adverb, measure word,
particle, pronoun, preposition …: 先报, 个价, 发了) is a slip of that guess, not a product name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

from nlp.text import is_emoji, normalise

TOPIC_TAGS = frozenset(["n", "nz", "nt", "ns", "vn", "ng"])
# Time words, numerals and measure words: never a topic, never a reason for a complaint.
QUANTITY_TAGS = frozenset(["t", "tg", "m", "mq", "q"])
# A word jieba guessed (or took from its lexicon unseen, at the lowest frequency) that starts with
# an adverb, measure word, preposition, conjunction, pronoun, numeral or direction (先报, 个价, 批货),
# or ends with a particle (发了, 好的), is a slip of its segmentation, not a name.
LEADING_FUNCTION_TAGS = frozenset(["d", "q", "p", "c", "r", "m", "f"])
TRAILING_PARTICLE_TAGS = frozenset(["u", "ul", "uz", "ug", "uj", "uv", "ud", "y", "e"])
UNSEEN_FREQUENCY = 3
# Numbers, ordinals and relative words followed by a unit of time: 下个月, 3月份, 两个小时, 周五.
_TIME_EXPRESSION = re.compile(
    r"^(?:[0-9零一二两三四五六七八九十百几上下这那本今明昨前后每当同半]+"
    r"(?:个)?(?:年|月|月份|日|号|天|周|星期|礼拜|小时|钟头|分钟|秒|点|点钟|季度|学期|年度)"
    r"|(?:周|星期|礼拜)[一二三四五六日天末]|[上下]午|[早晚]上|中午|半夜|凌晨|傍晚)$"
)


def read_tagged_words(dictionary: Path) -> tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str],
                                                  frozenset[str]]:
    """From a jieba dictionary file (`word freq tag` lines): (nouns, nouns at the lowest frequency,
    time and quantity words, leading function characters, trailing particles); a character counts
    by its most frequent entry."""
    topics: set[str] = set()
    unseen: set[str] = set()
    quantities: set[str] = set()
    chars: dict[str, tuple[int, str]] = {}
    with open(dictionary, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) > 2:
                word, freq, tag = parts[0].lower(), int(parts[1]), parts[2]
                if tag in TOPIC_TAGS:
                    topics.add(word)
                    if freq <= UNSEEN_FREQUENCY:
                        unseen.add(word)
                elif tag in QUANTITY_TAGS:
                    quantities.add(word)
                if len(word) == 1 and freq > chars.get(word, (-1, ""))[0]:
                    chars[word] = (freq, tag)
    leading = frozenset(c for c, (_, tag) in chars.items() if tag in LEADING_FUNCTION_TAGS)
    trailing = frozenset(c for c, (_, tag) in chars.items() if tag in TRAILING_PARTICLE_TAGS)
    return frozenset(topics), frozenset(unseen), frozenset(quantities), leading, trailing


class TopicFilter:
    """Decides whether a token is a topic worth counting as a keyword."""

    def __init__(
        self,
        dictionary: Path,
        known: Callable[[str], bool],
        domain_words: Iterable[str],
        stopwords: Iterable[str],
        negators: Iterable[str] = (),
    ) -> None:
        self._domain = frozenset(normalise(w) for w in domain_words)
        topics, self._unseen, self._quantities, self._leading, self._trailing = read_tagged_words(dictionary)
        self._topics = topics | self._domain
        self._known = known
        self._stop = frozenset(normalise(w) for w in stopwords)
        self._negators = tuple(sorted({normalise(n) for n in negators if not n.isascii()}))

    def may_signal(self, token: str) -> bool:
        """Whether a token can stand for why a message reads as a complaint: any word but a
        stop word or a single character (emoji and WeChat emoji codes count)."""
        if is_emoji(token):
            return True
        if token in self._stop or len(token) < 2 or token.isdigit() or token in self._quantities:
            return False
        return _TIME_EXPRESSION.match(token) is None

    def is_topic(self, token: str) -> bool:
        if token in self._stop or len(token) < 2 or is_emoji(token):
            return False
        if token in self._domain:
            return True
        if token.isdigit() or _TIME_EXPRESSION.match(token):
            return False
        if token in self._topics:
            return token not in self._unseen or not self._segmentation_slip(token)
        # Unknown to jieba: a new product word, a name of a model, an English term; but not a
        # negated word jieba kept whole (不差, 没收到), which says how, not what.
        if self._known(token) or token.startswith(self._negators) or self._segmentation_slip(token):
            return False
        return any(c.isalpha() for c in token)

    def _segmentation_slip(self, token: str) -> bool:
        return token[0] in self._leading or token[-1] in self._trailing
