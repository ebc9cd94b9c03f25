"""Mainland China phone numbers as people write them: `139 1234 0002`, `+86 139-1234-0002`,
`(021) 6234-5678`. Normalised to one spelling so the same number is stored once and shown alike:
a mobile as its 11 digits, a landline as area code, dash, local number (`021-62345678`)."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-－—.()（）]+")
_MOBILE = re.compile(r"1[3-9]\d{9}")
# Area codes: 010 and 020-029 have three digits, every other one four (0xxx); local numbers are 7 or 8
# digits and never start with 0 or 1.
_LANDLINE = re.compile(r"(010|02\d|0[3-9]\d{2})([2-9]\d{6,7})")


def normalise_phone(text: str) -> str | None:
    """The number in its one spelling, or None when it is neither a mainland mobile nor a landline
    with its area code."""
    compact = _SEPARATORS.sub("", text or "")
    country = next((p for p in ("+86", "0086") if compact.startswith(p)), None)
    if country is None and compact.startswith("86") and len(compact) == 13:
        country = "86"  # 8613912340002
    national = compact[len(country):] if country else compact
    if not national.isdigit():
        return None
    if _MOBILE.fullmatch(national):
        return national
    if country and not national.startswith("0"):
        national = "0" + national  # +86 21 6234 5678: the area code loses its 0 after the country code
    landline = _LANDLINE.fullmatch(national)
    if landline:
        return f"{landline.group(1)}-{landline.group(2)}"
    return None
