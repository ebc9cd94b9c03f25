"""Numbers as reps type them in time phrases: 12, 十二, 二十三, 两, 廿五, 二〇二七, 一百二十.

Regex pieces here match both Arabic and Chinese numerals so every phrase family accepts both;
`cn_number` turns what they matched into an int.
"""

from __future__ import annotations

import re

_DIGITS = {"零": 0, "〇": 0, "○": 0, "一": 1, "二": 2, "两": 2, "俩": 2, "三": 3, "四": 4, "五": 5,
           "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000}
_TENS = {"廿": 20, "卅": 30}

CN_DIGIT = "零〇○一二两俩三四五六七八九"
CN_NUMERAL = CN_DIGIT + "十百千廿卅"
NUM = rf"(?:\d{{1,4}}|[{CN_NUMERAL}]{{1,6}})"  # an integer, Arabic or Chinese
DECIMAL = rf"(?:\d{{1,4}}(?:\.\d{{1,2}})?|[{CN_NUMERAL}]{{1,6}})"  # 1.5小时后

# Full-width forms a phone keyboard produces, mapped one character to one so spans stay valid.
_WIDTH = str.maketrans({**{chr(0xFF10 + i): str(i) for i in range(10)}, "：": ":", "／": "/", "．": ".",
                        "－": "-", "～": "~", "\u3000": " ", "　": " "})


def half_width(text: str) -> str:
    """Full-width digits and separators as ASCII, same length (so positions map back)."""
    return text.translate(_WIDTH)


def cn_number(text: str) -> int:
    """12 or 十二 → 12; 二十三 → 23; 两 → 2; 廿五 → 25; 二〇二七 → 2027; 一百零五 → 105."""
    if text.isdigit():
        return int(text)
    if not text or any(ch not in _DIGITS and ch not in _UNITS and ch not in _TENS for ch in text):
        raise ValueError(f"not a number: {text!r}")
    if not any(ch in _UNITS or ch in _TENS for ch in text):  # digit by digit: 二〇二七
        value = 0
        for ch in text:
            value = value * 10 + _DIGITS[ch]
        return value
    total, digit = 0, None
    for ch in text:
        if ch in _DIGITS:
            if digit is not None and _DIGITS[ch] != 0:
                raise ValueError(f"not a number: {text!r}")
            digit = _DIGITS[ch] or (digit if digit is not None else None)
        elif ch in _TENS:
            total += _TENS[ch]
            digit = None
        else:
            total += (1 if digit is None else digit) * _UNITS[ch]
            digit = None
    return total + (digit or 0)


def spoken_count(text: str) -> tuple[int, bool]:
    """A count as said, and whether it was a rough range: 两三 (two or three) → (2, True), 十一二 → (11, True).

    Chinese digits run together without 十 only name a range of neighbours; 二三 is never 23."""
    if _is_tens_range(text):
        return cn_number(text[:-1]), True
    if text.isdigit() or any(ch in _UNITS or ch in _TENS for ch in text):
        return cn_number(text), False
    if len(text) == 1:
        return cn_number(text), False
    if len(text) == 2 and _DIGITS.get(text[1], -1) == _DIGITS.get(text[0], -9) + 1:
        return _DIGITS[text[0]], True
    raise ValueError(f"not a count: {text!r}")


def _is_tens_range(text: str) -> bool:
    """十一二, 二十三四: tens with two neighbouring units."""
    head, ten, tail = text.rpartition("十")
    return (ten == "十" and len(tail) == 2 and head in ("", *_DIGITS) and all(ch in _DIGITS for ch in tail)
            and _DIGITS[tail[1]] == _DIGITS[tail[0]] + 1)


def number(text: str) -> float:
    """cn_number that also takes 1.5 (durations)."""
    return float(text) if re.fullmatch(r"\d+\.\d+", text) else cn_number(text)
