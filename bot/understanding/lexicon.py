"""The everyday words around commands (config/understanding.toml) and the jieba that knows them.

The tokenizer is a private jieba instance (global jieba is nlp's business) with the domain user
dictionary, every declared command name and alias, and the lexicon's words loaded, so 跟进谁,
我的客户 or 查下 come out whole. It is built once per process per vocabulary: reading jieba's
dictionary takes most of a second, too long for a chat line.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Iterable

import jieba

from config.policies import PolicyError, shipped_policy

USER_DICTIONARY = Path(__file__).resolve().parents[2] / "config" / "nlp" / "userdict.txt"
JIEBA_DICTIONARY = Path(jieba.__file__).with_name("dict.txt")
COMMON_FREQ = 30
WORD_FREQ = 200_000  # high enough that jieba keeps a loaded word whole next to common characters


@dataclass(frozen=True)
class Lexicon:
    cues: dict[str, tuple[str, ...]]  # declared command name -> words pointing at it
    reads: frozenset[str]  # commands that only show something
    nouns: frozenset[str]  # command names that inside a sentence are just words
    lead: tuple[str, ...]  # filler that opens a part of a sentence (帮我, 给)
    after_command: tuple[str, ...]  # filler right after a command word (查下, 记一条)
    filler: frozenset[str]
    greetings: frozenset[str]
    add: tuple[str, ...]
    remove: tuple[str, ...]
    yes: frozenset[str]
    no: frozenset[str]  # cancels a pending write and says only that
    confirm_minutes: int
    bare: str  # the command a line that only names a customer runs

    @classmethod
    def from_toml(cls, data: dict[str, Any]) -> "Lexicon":
        filler, signs = data["filler"], data["signs"]
        return cls(
            cues={name: tuple(words) for name, words in data["cues"].items()},
            reads=frozenset(data["reads"]["commands"]),
            nouns=frozenset(data["nouns"]["commands"]),
            lead=tuple(sorted(filler["lead"], key=len, reverse=True)),
            after_command=tuple(sorted(filler["after_command"], key=len, reverse=True)),
            filler=frozenset(filler["words"]) | frozenset(filler["lead"]) | frozenset(filler["after_command"]),
            greetings=frozenset(w.casefold() for w in data["greetings"]["words"]),
            add=tuple(sorted(signs["add"], key=len, reverse=True)),
            remove=tuple(sorted(signs["remove"], key=len, reverse=True)),
            yes=frozenset(w.casefold() for w in data["confirm"]["yes"]),
            no=frozenset(w.casefold() for w in data["confirm"]["no"]),
            confirm_minutes=int(data["confirm"]["minutes"]),
            bare=data["bare"]["command"],
        )

    def check(self, command_names: Iterable[str]) -> None:
        """Every command the lexicon names is declared: a renamed command must not leave dead cues."""
        unknown = (set(self.cues) | self.reads | self.nouns | {self.bare}) - set(command_names)
        if unknown:
            raise PolicyError(f"understanding.toml names commands that are not declared: {', '.join(sorted(unknown))}")

    def words(self) -> set[str]:
        return {*(w for words in self.cues.values() for w in words), *self.lead, *self.after_command, *self.filler,
                *self.greetings, *self.add, *self.remove}


shipped_lexicon = shipped_policy("understanding.toml", Lexicon.from_toml)


class Tokenizer:
    """jieba over its common words only (frequency >= COMMON_FREQ, 67,000 of 349,000) plus ours.

    The full dictionary costs a worker about 75 MiB on top of nlp's own jieba; a chat line needs
    the common words (打电话 is not 电话, 记得 is not 记) and ours, which come to about 14 MiB."""

    def __init__(self, words: frozenset[str]):
        self._jieba = jieba.Tokenizer()
        jieba.setLogLevel(logging.WARNING)
        with open(JIEBA_DICTIONARY, "rb") as full:
            common = b"".join(line for line in full if int(line.split()[1]) >= COMMON_FREQ)
        self._jieba.FREQ, self._jieba.total = self._jieba.gen_pfdict(io.BytesIO(common))
        self._jieba.initialized = True  # what initialize() would do, without loading the full dictionary
        for line in USER_DICTIONARY.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                self._jieba.add_word(line.split()[0])
        for word in words:
            self._jieba.add_word(word, WORD_FREQ)

    def cut(self, text: str) -> list[str]:
        return [t for t in self._jieba.cut(text, HMM=False) if t]


@cache
def tokenizer(words: frozenset[str]) -> Tokenizer:
    return Tokenizer(words)
