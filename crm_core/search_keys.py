"""Normalised search keys stored next to a customer's name and phone, so lookups hit indexes.

A rep types `zhangsan`, `zs` or `5678` far more often than a full name in a moving car; these
keys let each of those be an indexed equality or prefix match instead of a table scan.
"""

from __future__ import annotations

import re

from pypinyin import Style, lazy_pinyin

_NON_DIGIT = re.compile(r"\D")
_NON_ALNUM = re.compile(r"[^0-9a-z]")

# Surnames whose everyday reading differs from the character's most common one (曾 zēng, not céng).
SURNAME_READINGS = {
    "曾": "zeng", "单": "shan", "仇": "qiu", "解": "xie", "区": "ou", "查": "zha", "朴": "piao", "乐": "yue",
    "覃": "qin", "缪": "miao", "翟": "zhai", "柏": "bai", "盖": "ge", "繁": "po", "员": "yun", "种": "chong",
    "秘": "bi", "尉": "yu", "长": "chang", "重": "chong", "华": "hua", "任": "ren", "纪": "ji", "沈": "shen",
}


def name_keys(name: str) -> tuple[str, str]:
    """(full pinyin, initials) of a name, lower case without separators: 张三 → (zhangsan, zs).

    Latin letters and digits pass through, so an English name is its own "pinyin".
    """
    name = (name or "").strip()
    syllables = lazy_pinyin(name, style=Style.NORMAL, errors=_split_latin)
    if name[:1] in SURNAME_READINGS and syllables:
        syllables[0] = SURNAME_READINGS[name[0]]
    syllables = [_NON_ALNUM.sub("", s.lower()) for s in syllables]
    syllables = [s for s in syllables if s]
    return "".join(syllables)[:256], "".join(s[0] for s in syllables)[:64]


def _split_latin(chars: str) -> list[str]:
    """pypinyin hands non-Chinese runs over whole; a Latin word counts as one syllable."""
    return chars.split()


def phone_digits(phone: str) -> str:
    return _NON_DIGIT.sub("", phone or "")


def phone_tail(phone: str) -> str:
    """The last four digits, what people remember of a number."""
    digits = phone_digits(phone)
    return digits[-4:] if len(digits) >= 4 else ""
