"""Which tokens may be a message's keywords: topics (things, services, domain terms), nothing else.

The digest's 客户热词 are counted from these, so a filter by part of speech, not a list of bad
words: a token is a topic when jieba's dictionary tags it as a noun (n, nz, nt, ns, vn, ng),
when it is one of the company's own domain words (config/nlp/userdict.txt and the keywords of
its tag rules, such as 发票 or 退款), or when jieba does not know it at all (a product name
or code). Time words (t: 上次, 下周), pronouns, numerals, measure words, adverbs, idioms and
greetings (l: 你好), adjectives (一般), verbs and directions (以后 is f) never are; nor are time
expressions jieba does not know (下个月, 3月, 两小时) or the stop words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

from nlp.text import is_emoji, normalise

TOPIC_TAGS = frozenset(["n", "nz", "nt", "ns", "vn", "ng"])
# Time words, numerals and measure words: never a topic, never a reason for a complaint.
QUANTITY_TAGS = frozenset(["t", "tg", "m", "mq", "q"])
# Numbers, ordinals and relative words followed by a unit of time: 下个月, 3月份, 两个小时, 周五.
_TIME_EXPRESSION = re.compile(
    r"^(?:[0-9零一二两三四五六七八九十百几上下这那本今明昨前后每当同半]+"
    r"(?:个)?(?:年|月|月份|日|号|天|周|星期|礼拜|小时|钟头|分钟|秒|点|点钟|季度|学期|年度)"
    r"|(?:周|星期|礼拜)[一二三四五六日天末]|[上下]午|[早晚]上|中午|半夜|凌晨|傍晚)$"
)


def read_tagged_words(dictionary: Path) -> tuple[frozenset[str], frozenset[str]]:
    """(nouns, time and quantity words) of a jieba dictionary file (`word freq tag` lines)."""
    topics: set[str] = set()
    quantities: set[str] = set()
    with open(dictionary, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) > 2:
                if parts[2] in TOPIC_TAGS:
                    topics.add(parts[0].lower())
                elif parts[2] in QUANTITY_TAGS:
                    quantities.add(parts[0].lower())
    return frozenset(topics), frozenset(quantities)


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
        topics, self._quantities = read_tagged_words(dictionary)
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
            return True
        # Unknown to jieba: a new product word, a name of a model, an English term; but not a
        # negated word jieba kept whole (不差, 没收到), which says how, not what.
        if self._known(token) or token.startswith(self._negators):
            return False
        return any(c.isalpha() for c in token)
