"""What handlers answer, and keeping it within what WeCom accepts.

A handler returns text, a `Reply` (e.g. a markdown card) or a `Listing` (numbered or long
lists, paginated by the dispatcher with 更多). Three exceptions end a command early with a
friendly answer: `Refusal` (a business "no", from a template), `NeedsPick` (several customers
match: list them and let the rep reply with a number) and `NeedsAnswer` (a field is missing:
ask for it and finish the command with the rep's next message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config.templates import render

TEXT_LIMIT_BYTES = 2048
PAGE_BUDGET_BYTES = 1900  # leaves room for the page footer ("（第 1/2 页，回复「更多」…）", 55 bytes) within 2048


@dataclass(frozen=True)
class Reply:
    text: str
    markdown: bool = False


@dataclass(frozen=True)
class Listing:
    header: str
    lines: list[str]
    footer: str = ""


class Refusal(Exception):
    """A business refusal rendered from a template (`bot.lookup_none`, ...).

    `audit` = (action, customer_id, detail) is recorded even though the command's work rolls back."""

    def __init__(self, key: str, *, audit: tuple[str, int | None, str] | None = None, **values: Any):
        super().__init__(key)
        self.key = key
        self.audit = audit
        self.values = values

    def text(self) -> str:
        return render(self.key, **self.values)


class NeedsPick(Exception):
    """`customers`: what the list shows, Customers or search Matches (a line and an id each); `line` is
    the command a picked number runs (default: the one that raised); `header` replaces the list's title."""

    def __init__(self, query: str, customers: list, total: int, *, more: bool = False, line: str | None = None,
                 header: str | None = None):
        super().__init__(query)
        self.query = query
        self.customers = customers
        self.total = total
        self.more = more  # more matches than listed
        self.line = line
        self.header = header


class NeedsAnswer(Exception):
    def __init__(self, field_name: str, prompt: str):
        super().__init__(field_name)
        self.field_name = field_name
        self.prompt = prompt


def paginate(listing: Listing, budget: int = PAGE_BUDGET_BYTES) -> list[str]:
    """Split a listing into pages that each fit one WeCom text message, footers included."""
    chunks: list[list[str]] = [[]]
    used = len(listing.header.encode()) + len(listing.footer.encode())
    for line in listing.lines:
        size = len(line.encode()) + 1
        if chunks[-1] and used + size > budget:
            chunks.append([])
            used = len(listing.header.encode())
        chunks[-1].append(fit_text(line, budget // 2))
        used += size
    pages = []
    for number, chunk in enumerate(chunks, start=1):
        parts = [listing.header, *chunk] if number == 1 else chunk
        if number < len(chunks):
            parts.append(render("bot.more_footer", page=number, pages=len(chunks)))
        elif listing.footer:
            parts.append(listing.footer)
        pages.append("\n".join(p for p in parts if p))
    return pages


def fit_text(text: str, limit: int = TEXT_LIMIT_BYTES) -> str:
    """Cut at a character boundary so the UTF-8 text fits WeCom's 2048-byte text message limit."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    ellipsis = "…"
    budget = limit - len(ellipsis.encode("utf-8"))
    return encoded[:budget].decode("utf-8", errors="ignore") + ellipsis
