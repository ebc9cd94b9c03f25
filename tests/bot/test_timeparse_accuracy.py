"""How often the time parser is right, wrong, or refuses, on the phrase sets in tests/data (see its README).

A wrong time is worse than a refusal, so the bar is two numbers: at least 90 % right and at most 1 %
wrong, on the development split and on the held-out split alike. Run with `-s` to see the numbers.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.timeparse import TimeExpressionError, find_when, take_when

DATA = Path(__file__).resolve().parents[1] / "data"
TZ = ZoneInfo("Asia/Shanghai")
NO_TIME = ("REFUSE", "NONE")  # REFUSE: the phrase must be refused; NONE: find_when must find no phrase


@dataclass(frozen=True)
class Case:
    source: str
    mode: str
    now: datetime
    text: str
    expected: str
    deadline: str


def load(name: str) -> list[Case]:
    with open(DATA / name, encoding="utf-8") as handle:
        rows = csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t")
        return [Case(row["source"], row["mode"], datetime.strptime(row["now"], "%Y-%m-%d %H:%M").replace(tzinfo=TZ),
                     row["text"], row["expected"], row["deadline"]) for row in rows]


def outcome(case: Case) -> tuple[str, str]:
    """("right" | "wrong" | "refused", what the parser said)."""
    try:
        found = (take_when if case.mode == "take" else find_when)(case.text, case.now)
    except TimeExpressionError as exc:
        said = f"refused ({exc}; unread {exc.unread!r})"
        return ("right" if case.expected in NO_TIME else "refused"), said
    if found is None:
        return ("right" if case.expected in NO_TIME else "refused"), "no phrase found"
    said = found.when.strftime("%Y-%m-%d %H:%M")
    deadline = found.deadline.strftime("%Y-%m-%d %H:%M") if found.deadline else ""
    if case.expected in NO_TIME:
        return "wrong", said
    right = said == case.expected and (not case.deadline or deadline == case.deadline)
    return ("right" if right else "wrong"), f"{said} deadline {deadline or '-'}"


@pytest.mark.parametrize("name", ["time_expressions_dev.tsv", "time_expressions_heldout.tsv"])
def test_time_phrases_are_mostly_right_and_almost_never_wrong(name):
    cases = load(name)
    results = [(case, *outcome(case)) for case in cases]
    counts = {kind: sum(1 for _, got, _ in results if got == kind) for kind in ("right", "wrong", "refused")}
    total = len(cases)
    summary = (f"{name}: {total} cases, right {counts['right']} ({counts['right'] / total:.1%}), "
               f"wrong {counts['wrong']} ({counts['wrong'] / total:.1%}), refused {counts['refused']} "
               f"({counts['refused'] / total:.1%})")
    misses = "\n".join(f"  {got:7} {case.mode} {case.now:%Y-%m-%d %H:%M} {case.text!r}: expected {case.expected} "
                       f"{case.deadline}, got {said}" for case, got, said in results if got != "right")
    print(f"\n{summary}\n{misses}")
    assert counts["right"] / total >= 0.90 and counts["wrong"] / total <= 0.01, f"{summary}\n{misses}"
