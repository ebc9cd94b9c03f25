"""Group commit for the inbox: callbacks that arrive together are stored in one transaction.

Each request still gets its answer only after the commit that holds its row, so "acked means
durable" is unchanged; what changes is that 50 concurrent callbacks cost one INSERT and one
commit instead of fifty. While one batch is being written, the next one gathers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.inbox import InboundItem, InboxService

log = logging.getLogger(__name__)

MAX_BATCH = 500


class GroupCommitInbox:
    def __init__(self, sessions: async_sessionmaker[AsyncSession],
                 on_new_rows: Callable[[], Awaitable[None]] | None = None):
        self.sessions = sessions
        self.on_new_rows = on_new_rows  # after a commit that stored new rows (the callers are answered first)
        self._waiting: list[tuple[InboundItem, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task | None = None

    async def accept(self, dedup_key: str, source: str, payload: str) -> bool:
        """Resolves once the row is committed: True if new, False if it was already stored."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((InboundItem(dedup_key, source, payload), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all())
        return await future

    async def _flush_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                async with self.sessions() as session:
                    created = await InboxService(session).stage_many([item for item, _ in batch])
                    await session.commit()
            except Exception as exc:  # every caller answers 503, so WeCom retries each of them
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            seen: set[str] = set()
            for item, future in batch:
                first = item.dedup_key not in seen
                seen.add(item.dedup_key)
                if not future.done():
                    future.set_result(first and item.dedup_key in created)
            if created and self.on_new_rows is not None:
                await self.on_new_rows()

    async def close(self) -> None:
        """Let the last batch finish before the database closes."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
