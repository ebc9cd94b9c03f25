"""Reading a free chat line as the declared command it stands for.

A line is cut into tokens: the customer and colleague names it mentions (looked up, see names),
phones and 尾号 tails, and jieba words for the rest. Then, in order:

- led by a command word (查张三, 查一下张三, 帮我查下张三的资料, 跟进张三 后天 发报价, 记一下：张三 …):
  the spaces the rep left out are put back and the line runs like the typed command;
- led by a word that sounds like a command word (跟近, 差): the corrected line is offered;
- carrying a command word or a lexicon cue somewhere (明天下午提醒我给张三打电话, 下周一回访李四,
  张三已经签了, 给张三加个VIP标签): each such command's declared arguments are filled from what
  the sentence holds (the customer, the time phrase, the rest of the text), giving a `Reading`
  per command that fits; the caller runs a single read, confirms a single write and asks when
  there are several;
- only a customer name or a phone: the lexicon's bare command (查).

Every reading is a command line as the rep could have typed it, so the declared parser reads it
again: the understanding never fills handler arguments itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from pypinyin import lazy_pinyin

from bot.replies import Refusal
from bot.router import Command, UsageError
from bot.timeparse import TimeExpressionError, When, find_when
from bot.understanding.lexicon import Lexicon, tokenizer
from bot.understanding.names import Names

PUNCTUATION = frozenset(" ：:，,。.！!？?、；;~～…")
_PHONE = re.compile(r"\+?\d[\d-]{6,19}")
_TAIL = re.compile(r"尾号\s*(\d{4})")
_HAN = re.compile(r"[\u4e00-\u9fff]+")
CUSTOMER, COLLEAGUE, PHONE, WORD = "customer", "colleague", "phone", "word"


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int
    kind: str = WORD
    query: str = ""  # for a customer or phone: what the command's customer argument gets

    @property
    def blank(self) -> bool:
        return all(ch in PUNCTUATION for ch in self.text)


@dataclass(frozen=True)
class Sentence:
    line: str
    tokens: list[Token]
    names: Names
    when: When | None
    time_error: TimeExpressionError | None
    now: datetime

    def customers(self) -> list[Token]:
        return list({t.query: t for t in self.tokens if t.kind in (CUSTOMER, PHONE)}.values())

    def colleagues(self) -> list[Token]:
        return [t for t in self.tokens if t.kind == COLLEAGUE]


@dataclass(frozen=True)
class Reading:
    line: str  # the command line it stands for, as the rep could have typed it
    command: Command
    customer: Token | None = None
    when: When | None = None  # the time phrase it used, for the confirmation to spell out


class Reader:
    def __init__(self, commands: list[Command], lexicon: Lexicon):
        self.commands = commands
        self.lexicon = lexicon
        self.by_word = {name.casefold(): command for command in commands for name in command.names}
        self.by_cue = {word: command for command in commands for word in lexicon.cues.get(command.name, ())}
        self.bare = next((c for c in commands if c.name == lexicon.bare), None)
        self._sounds_longest_first = sorted(((name, _sound(name)) for name in self.by_word if _HAN.fullmatch(name)),
                                            key=lambda item: -len(item[0]))
        self._longest_sound = max((len(name) for name, _ in self._sounds_longest_first), default=0)
        self._vocabulary = frozenset(self.by_word) | frozenset(lexicon.words())

    def load(self) -> None:
        """Build the tokenizer now (most of a second), not on the first free sentence."""
        tokenizer(self._vocabulary)

    def sentence(self, line: str, names: Names, now: datetime) -> Sentence:
        try:
            when, error = find_when(line, now), None
        except TimeExpressionError as exc:
            when, error = None, exc
        return Sentence(line, self._tokens(line, names), names, when, error, now)

    def _tokens(self, line: str, names: Names) -> list[Token]:
        """Names, phones and 尾号 tails as whole tokens, jieba words between them."""
        known = sorted(names.all(), key=len, reverse=True)
        tokens: list[Token] = []
        cut_from = index = 0
        while index < len(line):
            special = self._special_at(line, index, known, names)
            if special is None:
                index += 1
                continue
            tokens += self._words(line, cut_from, index)
            tokens.append(special)
            cut_from = index = special.end
        return tokens + self._words(line, cut_from, len(line))

    def _special_at(self, line: str, index: int, known: list[str], names: Names) -> Token | None:
        if tail := _TAIL.match(line, index):
            return Token(tail.group(), index, tail.end(), PHONE, tail.group(1))
        if (index == 0 or not line[index - 1].isdigit()) and (phone := _PHONE.match(line, index)):
            digits = re.sub(r"\D", "", phone.group())
            if 7 <= len(digits) <= 15 and not line[phone.end():phone.end() + 1].isdigit():
                return Token(phone.group(), index, phone.end(), PHONE, phone.group())
        for name in known:
            if line.startswith(name, index) and not (name.isascii() and _inside_word(line, index, index + len(name))):
                kind = CUSTOMER if name in names.customers else COLLEAGUE
                return Token(name, index, index + len(name), kind, name)
        return None

    def _words(self, line: str, start: int, end: int) -> list[Token]:
        tokens, at = [], start
        for word in tokenizer(self._vocabulary).cut(line[start:end]):
            tokens.append(Token(word, at, at + len(word)))
            at += len(word)
        return tokens

    # -- what kind of line it is ------------------------------------------------------------

    def greeting(self, sentence: Sentence) -> bool:
        words = [t.text.casefold() for t in sentence.tokens if not t.blank]
        return bool(words) and any(w in self.lexicon.greetings for w in words) and all(
            w in self.lexicon.greetings or w in self.lexicon.filler for w in words)

    def leading(self, sentence: Sentence) -> Reading | None:
        """The line starts with a command word (after 帮我 / 请): put the spaces back."""
        tokens = self._after_lead(sentence.tokens)
        if not tokens or tokens[0].kind != WORD:
            return None
        command, rest = self._command_word(tokens)
        if command is None:
            return None
        return self._spaced(sentence, command, rest)

    def starts_with_command(self, line: str) -> bool:
        """查张三 while the bot waits for an answer is a new command, not the answer (no names needed)."""
        tokens = self._after_lead(self._words(line, 0, len(line)))
        return bool(tokens) and self._command_word(tokens)[0] is not None

    def did_you_mean(self, sentence: Sentence) -> tuple[str, Command, str] | None:
        """(what was typed, the command it sounds like, the corrected line) for 跟近 / 差 张三: the
        line's first characters, up to the first name or space, sound like a command word."""
        tokens = self._after_lead(sentence.tokens)
        if not tokens or tokens[0].kind != WORD or tokens[0].text.casefold() in self.by_word:
            return None
        start = tokens[0].start
        end = next((t.start for t in tokens if t.kind != WORD or t.blank), len(sentence.line))
        head = sentence.line[start:min(end, start + self._longest_sound)]
        if not _HAN.fullmatch(head[:1] or "a"):
            return None
        syllables = _sound(head)  # one pinyin call per line: it is the costly part
        for name, name_sound in self._sounds_longest_first:
            typed = sentence.line[start:start + len(name)]
            if (start + len(name) <= end and typed != name and len(syllables) >= len(name)
                    and _HAN.fullmatch(typed) and syllables[:len(name)] == name_sound):
                command = self.by_word[name]
                rest = sentence.line[start + len(name):].strip().lstrip("".join(PUNCTUATION)).strip()
                return typed, command, f"{command.name} {rest}".strip()
        return None

    def free(self, sentence: Sentence) -> list[Reading]:
        """Every command a sentence fits, through a command word or a cue anywhere in it.

        Raises TimeExpressionError when such a command takes a time and the sentence's time
        phrase could not be read: better to say so than to drop the time."""
        readings: dict[str, Reading] = {}
        for token in sentence.tokens:
            if token.kind != WORD:
                continue
            word = token.text.casefold()
            command, cue = (self.by_word.get(word), False) if word in self.by_word else (self.by_cue.get(token.text), True)
            if command is None or (not cue and command.name in self.lexicon.nouns):
                continue
            if sentence.time_error is not None and any(a.when for a in command.args):
                raise sentence.time_error
            reading = self.fill(sentence, command, trigger=token, cue=cue)
            if reading is not None:
                readings.setdefault(reading.line, reading)
        if not readings and self.bare is not None and self._only_names(sentence):
            reading = self.fill(sentence, self.bare)
            if reading is not None:
                readings[reading.line] = reading
        return list(readings.values())

    def fitting(self, sentence: Sentence, commands: list[Command]) -> list[Reading]:
        """Commands (in order) whose arguments the sentence fills without any command word:
        what a line that named no command could have meant."""
        if not sentence.customers():
            return []
        readings = [r for c in commands if any(a.customer for a in c.args) if (r := self.fill(sentence, c)) is not None]
        return sorted(readings, key=lambda r: r.when is None)  # the ones that used the time first

    # -- filling a command's declared arguments ---------------------------------------------

    def fill(self, sentence: Sentence, command: Command, *, trigger: Token | None = None, cue: bool = False) -> Reading | None:
        """The command line `command` would be, its arguments taken from the sentence; None when
        a required argument is not there, or the sentence says more than a write can keep."""
        customers = sentence.customers()
        customer = customers[0] if len(customers) == 1 else None
        takes_time = any(a.when for a in command.args)
        when = sentence.when if takes_time else None
        reads = command.name in self.lexicon.reads
        about_customer = any(a.customer for a in command.args)
        spans = [t for t in (trigger, customer if about_customer else None) if t is not None]
        if sentence.when is not None and (takes_time or reads):  # a note keeps its 明天 in the text
            spans.append(Token(sentence.when.text, *sentence.when.span))
        parts: list[str] = []
        used_text = skipped = guessed_word = False
        for arg in command.args:
            if arg.customer:
                value = customer.query if customer is not None else None
            elif arg.when:
                value = None if when is None else when.text if when.deadline else when.when.strftime("%Y-%m-%d %H:%M")
            elif arg.rest and arg.convert is not None and trigger is None:
                value = None  # 标签 +…, 生日 …: read only when the sentence names the command
            elif arg.rest:
                value = self._content(sentence, spans, signs=arg.convert is not None)
                if not value and cue and trigger is not None and arg.convert is None:
                    value = trigger.text  # 下周一回访李四: the item is 回访
            elif arg.optional:
                value = None  # an optional word (我的客户 [热度]) is never guessed
            else:  # one plain word (阶段 张三 报价谈判), only where the sentence named the command, and only once
                words = self._content(sentence, spans, signs=False).split()
                value = words[0] if len(words) == 1 and trigger is not None and not guessed_word else None
                guessed_word = True
            if not value:
                if not arg.optional:
                    return None
                skipped = True
                continue
            if skipped:
                return None  # filled after one left out: the parser would read it in the wrong place
            parts.append(value)
            used_text = used_text or not (arg.customer or arg.when)
        if not used_text and (not reads or not about_customer) and self._content(sentence, spans, signs=False):
            return None  # 张三已经签了合同的一半: more than 赢单 could keep; 我的电话是多少 is no 我的客户
        if not self._parses(command, " ".join(parts), sentence):
            return None
        return Reading(" ".join([command.name, *parts]), command, customer if about_customer else None, when)

    def _content(self, sentence: Sentence, spans: list[Token], *, signs: bool) -> str:
        """The sentence's text outside `spans`, without the filler at the start of each piece."""
        pieces: list[list[Token]] = [[]]
        for token in sentence.tokens:
            if any(s.start <= token.start < s.end or token.start <= s.start < token.end for s in spans):
                pieces.append([])
            else:
                pieces[-1].append(token)
        texts = []
        for piece in pieces:
            while piece and (piece[0].blank or piece[0].text in self.lexicon.filler
                             or piece[0].text.casefold() in self.lexicon.greetings):
                piece = piece[1:]
            while piece and piece[-1].blank:
                piece = piece[:-1]
            if not piece:
                continue
            signed = signs and any(t.text in self.lexicon.add or t.text in self.lexicon.remove for t in piece)
            texts.append(self._signed(piece) if signed else sentence.line[piece[0].start:piece[-1].end])
        return " ".join(texts)

    def _signed(self, piece: list[Token]) -> str:
        """加个VIP → +VIP, 去掉价格敏感 → -价格敏感: the words a tag change is typed with."""
        words, sign = [], "+"
        for token in piece:
            if token.text in self.lexicon.add or token.text in self.lexicon.remove:
                sign = "+" if token.text in self.lexicon.add else "-"
            elif not token.blank and token.text not in self.lexicon.filler:
                words.append(sign + token.text)
        return " ".join(words)

    # -- helpers ------------------------------------------------------------------------------

    def _after_lead(self, tokens: list[Token]) -> list[Token]:
        index = 0
        while index < len(tokens) and (tokens[index].blank or tokens[index].text in self.lexicon.lead
                                       or tokens[index].text.casefold() in self.lexicon.greetings):
            index += 1
        return tokens[index:]

    def _command_word(self, tokens: list[Token]) -> tuple[Command | None, list[Token]]:
        """The command the first token names (查, 查下, 我的客户) and the tokens after it and its filler."""
        word = tokens[0].text.casefold()
        command = self.by_word.get(word)
        if command is None:
            for suffix in self.lexicon.after_command:
                if word.endswith(suffix) and (command := self.by_word.get(word.removesuffix(suffix))) is not None:
                    break
            else:
                return None, []
        rest = tokens[1:]
        while rest and (rest[0].blank or rest[0].text in self.lexicon.after_command):
            rest = rest[1:]
        return command, rest

    def _spaced(self, sentence: Sentence, command: Command, rest: list[Token]) -> Reading | None:
        """`查张三的资料` → `查 张三`; None when the words after the command word cannot be told apart."""
        text = sentence.line[rest[0].start:].strip() if rest else ""
        if not command.args or not text:
            return Reading(f"{command.name} {'' if self._filler_only(rest, command) else text}".strip(), command)
        first = command.args[0]
        if not first.customer:  # 我的客户有哪些; but 我的电话是多少 is no 我的客户 [热度]
            args = "" if self._filler_only(rest, command) else text
            return Reading(f"{command.name} {args}".strip(), command) if self._parses(command, args, sentence) else None
        head = rest[0]
        after = sentence.line[head.end:].strip().lstrip("".join(PUNCTUATION)).strip()
        if head.kind in (CUSTOMER, PHONE):
            if first.rest and self._filler_only(rest[1:], command):
                after = ""
            return Reading(f"{command.name} {head.query} {after}".strip(), command, head)
        if first.rest:  # 查王五: the search says whether there is one
            return Reading(f"{command.name} {text}", command)
        if " " in text and head.text.isascii():  # 跟进zs 明天: pinyin or initials, ended by the rep's space
            return Reading(f"{command.name} {text}", command)
        return None

    @staticmethod
    def _parses(command: Command, args: str, sentence: Sentence) -> bool:
        """The declared parser has the last word: 合同 张三 下午 is no date, 关怀 张三 好 no switch."""
        try:
            command.parse(args, sentence.now)
        except (UsageError, Refusal):
            return False
        return True

    def _filler_only(self, tokens: list[Token], command: Command) -> bool:
        cues = set(self.lexicon.cues.get(command.name, ()))
        return all(t.blank or t.text in self.lexicon.filler or t.text in cues for t in tokens)

    def _only_names(self, sentence: Sentence) -> bool:
        """张三, 13800131001, 尾号8000的客户: a customer mention and nothing that says what to do."""
        customers = sentence.customers()
        if len(customers) != 1:
            return False
        cues = set(self.lexicon.cues.get(self.lexicon.bare, ()))
        return all(t.kind in (CUSTOMER, PHONE) or t.blank or t.text in self.lexicon.filler or t.text in cues
                   for t in sentence.tokens)


def _sound(word: str) -> tuple[str, ...]:
    return tuple(lazy_pinyin(word))


def _inside_word(line: str, start: int, end: int) -> bool:
    """A Latin name matched inside a longer word (Li in Lily) is not that name."""
    return (start > 0 and line[start - 1].isascii() and line[start - 1].isalpha()) or (
        end < len(line) and line[end].isascii() and line[end].isalpha())
