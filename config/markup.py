"""Keeping customer-controlled text from turning into live markup in the messages we send.

WeCom renders part of what an app sends (https://developer.work.weixin.qq.com/document/path/90236):
a text message's content turns `<a href>` into a link, a textcard's description takes `<div class>`
and markdown takes the subset listed in that page's appendix 「支持的markdown语法」 — `#` headings,
`**bold**`, `[text](url)` links, `` `code` ``, `>` quotes and `<font color>` (group robots add
`<@userid>` mentions). A nickname such as `[点我领奖](https://evil.example/p)` or a remark company
`<font color="warning">VIP</font>` must reach a rep as the characters it is made of.

There is one escaping function per message kind (`ESCAPERS`), and `config.templates.render` applies
the right one to every value it interpolates, so neither a template nor its caller can forget it.
Escaping swaps the one character that makes a construct live for its full-width twin
(＜ ［ ］ ＊ ＃ ＞ ｀ ＆): that reads naturally in Chinese, renders as itself under any parser, and needs
no backslash (WeCom documents no escape character). Ordinary names, numbers, phone masks
(138****5678) and emoji contain none of these constructs and come out unchanged; escaping twice
changes nothing more.

Not escaped: `$userName=…$` (the same page's 「id转译说明」), which WeCom only translates in a
request with `enable_id_trans: 1`, and no message here sets it; and bare URLs, which clients may
linkify but which then show the rep exactly where they lead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Literal

Kind = Literal["text", "textcard", "markdown"]

# `<a href>`, `<font>`, `</div>`, `<@userid>`, `<!--`, `<http://…>`: a `<` that opens a tag.
# A `<` before a digit, a space or Chinese ("价格<5000", "<渠道名>") is plain text to every parser.
_TAG_OPEN = re.compile(r"<(?=\s*[A-Za-z/!?@])")
# `&lt;a href…` would become a tag again wherever entities are decoded before rendering.
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")
# The end of an inline link or image: `](`. Without it `[…]` is just brackets.
_LINK = re.compile(r"\](?=\s*\()")
# `**bold**`; a run of stars inside a number is a phone or id mask (138****5678), left alone.
_STARS = re.compile(r"(?<!\*)\*{2,}(?!\*)")
# A heading or quote marker at the start of a line (a value may start a line, so its start counts).
_LINE_MARK = re.compile(r"^([ \t]*)([#>])", re.MULTILINE)

# Any character some construct above needs; a value without one is returned as it is, quickly.
_TRIGGERS = re.compile(r"[<&\]*#>`]")

_FULL_WIDTH = {"<": "＜", "&": "＆", "[": "［", "]": "］", "*": "＊", "#": "＃", ">": "＞", "`": "｀"}


def _full_width(match: re.Match[str]) -> str:
    return "".join(_FULL_WIDTH.get(ch, ch) for ch in match.group())


def _unless_mask(match: re.Match[str]) -> str:
    text, start, end = match.string, match.start(), match.end()
    if start > 0 and end < len(text) and text[start - 1].isdigit() and text[end].isdigit():
        return match.group()
    return _full_width(match)


def escape_text(value: str) -> str:
    """For text messages and textcards: no tag can open, so `<a href>` and `<div>` stay characters."""
    return _ENTITY.sub("＆", _TAG_OPEN.sub("＜", value))


def escape_markdown(value: str) -> str:
    """For markdown messages: no tag, link, bold, inline code, heading or quote can start in the value."""
    value = escape_text(value)
    if _LINK.search(value):
        value = value.replace("[", "［").replace("]", "］")
    value = _STARS.sub(_unless_mask, value).replace("`", "｀")
    return _LINE_MARK.sub(lambda m: m.group(1) + _FULL_WIDTH[m.group(2)], value)


ESCAPERS: dict[str, Callable[[str], str]] = {
    "text": escape_text,
    "textcard": escape_text,  # title and description: the description renders `<div class="gray">`
    "markdown": escape_markdown,
}

# What makes a template itself markdown: its own text uses the subset's syntax.
_MARKDOWN_SYNTAX = re.compile(r"\*\*|\]\(|`|<font\b|<@|^[ \t]*(?:#{1,6}[ \t]|>)", re.MULTILINE)


def uses_markdown(template: str) -> bool:
    """Whether a template's own text is WeCom markdown (so it must be rendered as kind "markdown")."""
    return bool(_MARKDOWN_SYNTAX.search(template))


class Markup(str):
    """Text already fit for one message kind: a rendered template, or escaped values joined.

    Interpolated into a template of the same kind it is kept as it is; into any other kind it is
    escaped again like any value (a text reply's output is not yet safe inside markdown)."""

    kind: str

    def __new__(cls, text: str, kind: str = "text") -> Markup:  # the default lets pickle and copy rebuild it
        markup = super().__new__(cls, text)
        markup.kind = kind
        return markup


def escape(value: object, kind: str) -> Markup:
    """`value` as it may appear in a message of `kind`; markup of that kind passes through."""
    return value if isinstance(value, Markup) and value.kind == kind else Markup(escaped(value, kind), kind)


def escaped(value: object, kind: str) -> str:
    """The text of `escape(value, kind)`, without wrapping it (render wraps the whole message once)."""
    if isinstance(value, Markup) and value.kind == kind:
        return value
    text = str(value)
    return ESCAPERS[kind](text) if _TRIGGERS.search(text) else text


def join(separator: str, parts: Iterable[object], kind: str) -> Markup:
    """`separator.join(parts)` that keeps rendered lines as markup and escapes everything else."""
    return Markup(str(escape(separator, kind)).join(escape(part, kind) for part in parts), kind)
