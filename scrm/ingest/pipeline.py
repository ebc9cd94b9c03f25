"""What happens to an inbox row: the source it came from processes it.

Each inbox row names its source (`inbox_items.source`: a WeCom callback, a 微信客服 message, a
chat-archive record, a JSON webhook message). The app registers one `InboxSource` per source
(scrm/app.py `build_pipeline`); adding a channel is one new source module registered there, and
this module knows none of them by name.

Runs inside the queue worker's transaction for that row, or for a batch of rows that `batchable`
admits (see scrm.queue_worker). Anything raised rolls the work back and the row is retried; WeCom
calls happen before writes where possible so a slow API never holds a database write lock, which is
also why rows that call WeCom as a rule are processed on their own.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import utcnow
from crm_core.models import InboxItem
from scrm.ingest.context import IngestContext


class UnknownSourceError(Exception):
    retryable = False


class InboxSource(Protocol):
    name: str  # the inbox rows' `source`

    def batchable(self, item: InboxItem) -> bool:
        """May this row share a transaction with others? Not if it calls WeCom as a rule or commits itself."""

    async def process(self, session: AsyncSession, item: InboxItem) -> None:
        """Archive the row and react to it, in the caller's transaction."""


@runtime_checkable
class PreparesBatches(Protocol):
    async def prepare_batch(self, session: AsyncSession, items: list[InboxItem]) -> None:
        """Load what a batch of this source's rows share in one go (their senders, say)."""


@dataclass
class Pipeline:
    context: IngestContext
    sources: list[InboxSource]

    def __post_init__(self) -> None:
        self._by_name: dict[str, InboxSource] = {}
        for source in self.sources:
            if source.name in self._by_name:
                raise ValueError(f"inbox source {source.name!r} registered twice")
            self._by_name[source.name] = source

    def batchable(self, item: InboxItem) -> bool:
        source = self._by_name.get(item.source)
        return source is not None and source.batchable(item)

    async def prepare_batch(self, session: AsyncSession, items: list[InboxItem]) -> None:
        by_source: dict[str, list[InboxItem]] = defaultdict(list)
        for item in items:
            by_source[item.source].append(item)
        for name, rows in by_source.items():
            source = self._by_name.get(name)
            if isinstance(source, PreparesBatches):
                await source.prepare_batch(session, rows)

    async def __call__(self, session: AsyncSession, item: InboxItem) -> dict[str, Any]:
        source = self._by_name.get(item.source)
        if source is None:
            raise UnknownSourceError(f"no handler for inbox source {item.source!r}")
        await source.process(session, item)
        return {"status": "done", "processed_at": utcnow()}
