"""Keyword/phrase rules from the company's config files (tags.toml, intents.toml).

All literal keywords are found by one trie-shaped regex instead of one search per keyword, so
hundreds of keywords cost a few microseconds per short message.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from nlp.text import normalise

# A negation word this close before a hit (in characters) denies it: 不想买, 不会投诉.
_GUARD_GAP = 1
_CLAUSE_END = frozenset("，。！？；,.!?;\n")
# What ends a sentence for `unless`: commas do not, so 我在开会，下午再打 is one sentence.
_SENTENCE_END = re.compile(r"[。！？!?;；\n]")
# `{name}` in a regex stands for the entry's part `name` (lowercase letters, digits, `_`), so a
# grammar is written once from named parts; regex quantifiers ({2}, {0,3}) are left alone.
_PART = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class RuleError(ValueError):
    """A rules file entry cannot be used; the message names the entry."""


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str  # "tag" or "intent"
    name: str
    weight: float
    keywords: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]
    guard: bool
    exceptions: tuple[str, ...]
    # A hit does not count when one of these is found in the sentence holding it.
    unless: tuple[re.Pattern[str], ...] = ()


def expand_parts(pattern: str, parts: dict[str, str], where: str) -> str:
    """Replace each `{name}` by its part, wrapped in a non-capturing group; parts may use
    parts defined in the same table."""
    def part(m: re.Match[str]) -> str:
        if m.group(1) not in parts:
            raise RuleError(f"{where}: unknown part {{{m.group(1)}}}")
        return f"(?:{parts[m.group(1)]})"

    for _ in range(10):
        expanded = _PART.sub(part, pattern)
        if expanded == pattern:
            return expanded
        pattern = expanded
    raise RuleError(f"{where}: parts nest too deep (a part that uses itself?)")


def parse_rule(entry: dict[str, Any], kind: str, name_key: str, where: str) -> Rule:
    name = entry.get(name_key)
    if not isinstance(name, str) or not name:
        raise RuleError(f"{where}: missing `{name_key}`")
    keywords = tuple(normalise(k) for k in entry.get("keywords", ()) if k.strip())
    parts = entry.get("parts", {})
    if not isinstance(parts, dict) or not all(isinstance(v, str) for v in parts.values()):
        raise RuleError(f"{where} ({name}): `parts` must be a table of regex strings")
    try:
        patterns = tuple(
            re.compile(normalise(expand_parts(p, parts, f"{where} ({name})"))) for p in entry.get("regex", ())
        )
        unless = tuple(
            re.compile(normalise(expand_parts(p, parts, f"{where} ({name})"))) for p in entry.get("unless", ())
        )
    except re.error as exc:
        raise RuleError(f"{where} ({name}): bad regex: {exc}") from exc
    if not keywords and not patterns:
        raise RuleError(f"{where} ({name}): needs `keywords` or `regex`")
    weight = float(entry.get("weight", 1.0))
    if not 0.0 < weight <= 1.0:
        raise RuleError(f"{where} ({name}): weight must be in (0, 1]")
    return Rule(
        kind=kind,
        name=name,
        weight=weight,
        keywords=keywords,
        patterns=patterns,
        guard=bool(entry.get("guard", False)),
        exceptions=tuple(normalise(e) for e in entry.get("except", ())),
        unless=unless,
    )


def _trie_pattern(words: list[str]) -> str:
    """A regex matching any of `words`, longest first, shaped as a trie so the regex engine
    tests each character once instead of trying every word in turn."""
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict) -> str:
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(trie)


class RuleSet:
    """Finds which rules a normalised text triggers."""

    def __init__(self, rules: list[Rule], negators: list[str]) -> None:
        self.rules = rules
        self._rules_by_keyword: dict[str, list[int]] = defaultdict(list)
        for index, rule in enumerate(rules):
            for keyword in rule.keywords:
                if index not in self._rules_by_keyword[keyword]:
                    self._rules_by_keyword[keyword].append(index)
        keywords = sorted(self._rules_by_keyword)
        # The regex reports the longest keyword starting at each position (a lookahead, so hits
        # may overlap); the shorter keywords starting there are its prefixes, listed here.
        self._prefixes = {
            k: [k[:n] for n in range(1, len(k) + 1) if k[:n] in self._rules_by_keyword]
            for k in keywords
        }
        self._keyword_re = re.compile(f"(?=({_trie_pattern(keywords)}))") if keywords else None
        self._with_patterns = [i for i, rule in enumerate(rules) if rule.patterns]
        self._negators = frozenset(normalise(n) for n in negators)
        self._negator_sizes = sorted({len(n) for n in self._negators})

    def matches(self, text: str) -> list[Rule]:
        """Rules hit by `text` (already normalised), in order of first hit, each once."""
        hit: dict[int, int] = {}
        rules = self.rules
        found = self._keyword_re.finditer(text) if self._keyword_re else ()
        for m in found:
            pos = m.start()
            for keyword in self._prefixes[m.group(1)]:
                for index in self._rules_by_keyword[keyword]:
                    if index not in hit and self._counts(
                        rules[index], text, pos, pos + len(keyword)
                    ):
                        hit[index] = pos
        for index in self._with_patterns:
            if index in hit:
                continue
            rule = self.rules[index]
            starts = (
                m.start()
                for pattern in rule.patterns
                for m in pattern.finditer(text)
                if self._counts(rule, text, m.start(), m.end())
            )
            first = next(starts, None)
            if first is not None:
                hit[index] = first
        return [self.rules[i] for i in sorted(hit, key=hit.__getitem__)]

    def _counts(self, rule: Rule, text: str, start: int, end: int) -> bool:
        if rule.guard and self.negated(text, start):
            return False
        for phrase in rule.exceptions:
            # Any occurrence of the phrase overlapping the hit cancels it.
            window = text[max(0, start - len(phrase) + 1) : end + len(phrase) - 1]
            if phrase in window:
                return False
        if rule.unless:
            sentence = _sentence(text, start, end)
            if any(p.search(sentence) for p in rule.unless):
                return False
        return True

    def negated(self, text: str, start: int) -> bool:
        """True when a negation word ends at most _GUARD_GAP characters before `start`."""
        for gap in range(_GUARD_GAP + 1):
            end = start - gap
            if end <= 0 or (gap and text[end] in _CLAUSE_END):
                return False
            for size in self._negator_sizes:
                if size <= end and text[end - size : end] in self._negators:
                    return True
        return False


def _sentence(text: str, start: int, end: int) -> str:
    """The sentence holding text[start:end]: from the last sentence end before it to the next."""
    before = 0
    for m in _SENTENCE_END.finditer(text, 0, start):
        before = m.end()
    after = _SENTENCE_END.search(text, end)
    return text[before : after.start() if after else len(text)]


def load_rules(entries: list[dict[str, Any]], kind: str, name_key: str, source: str) -> list[Rule]:
    return [parse_rule(e, kind, name_key, f"{source} entry {i + 1}") for i, e in enumerate(entries)]
