"""The chat archive (会话存档) puller (worker role): WeCom's archive into the inbox.

The puller reads the cursor (last seq staged), fetches a page from WeCom, decrypts it, and stages
one inbox row per message together with the new cursor in one commit, like the 微信客服 sync: a
crash resumes after the last committed page, and a page pulled twice is absorbed by the inbox's
unique dedup key (and, should the inbox rows be gone, by the archive's unique message id). A
failed pull (network, a key that does not open a record) commits nothing, so the cursor stays
put, and the pull is retried with backoff.

Each staged record is then processed by the chat-archive inbox source (scrm.ingest.chat_archive).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import LockError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from config.settings import ConfigError, Settings
from connectors.wecom.chat_archive import (
    ArchiveError,
    ArchiveKeys,
    ChatArchiveSource,
    EncryptedChat,
    NativeSdkSource,
    SimulatorSource,
    open_chat,
)
from connectors.wecom.client import WeComClient
from connectors.wecom.errors import WeComError
from crm_core.db import utcnow
from crm_core.inbox import InboundItem, InboxService
from crm_core.models import ChatArchiveCursor
from scrm.ingest.chat_archive import ARCHIVE_SOURCE

log = logging.getLogger(__name__)

PAGE_SIZE = 100
LOCK_SECONDS = 120.0


# -- the cursor --------------------------------------------------------------------------------

async def archive_seq(session: AsyncSession, corp_id: str) -> int:
    row = await session.get(ChatArchiveCursor, corp_id)
    return row.seq if row else 0


async def advance_archive_seq(session: AsyncSession, corp_id: str, seq: int) -> None:
    """Stage the new cursor in the caller's transaction; it only moves forward."""
    row = await session.get(ChatArchiveCursor, corp_id)
    if row is None:
        session.add(ChatArchiveCursor(corp_id=corp_id, seq=seq, updated_at=utcnow()))
    elif seq > row.seq:
        row.seq = seq


# -- the puller --------------------------------------------------------------------------------

class ChatArchivePuller:
    """Pulls the archive into the inbox page by page; one process at a time per corp (a Redis lock)."""

    def __init__(self, source: ChatArchiveSource, keys: ArchiveKeys, sessions: async_sessionmaker[AsyncSession],
                 redis: Redis, *, corp_id: str, on_new_rows: Callable[[], Any] = lambda: None,
                 page_size: int = PAGE_SIZE, idle_seconds: float = 60.0, max_backoff: float = 300.0) -> None:
        self.source, self.keys, self.sessions, self.redis = source, keys, sessions, redis
        self.corp_id, self.on_new_rows, self.page_size = corp_id, on_new_rows, page_size
        self.idle_seconds, self.max_backoff = idle_seconds, max_backoff
        self.failures = 0
        self.caught_up = asyncio.Event()  # set after each round that reached the end of the archive
        self.idle = asyncio.Event()  # set while waiting between rounds, whatever the last one did
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()

    async def pull_page(self) -> int:
        """Fetch, decrypt and stage the page after the cursor; how many records it held (0: caught up).

        Raises on any failure, with nothing committed."""
        async with self.sessions() as session:
            seq = await archive_seq(session, self.corp_id)
        chats = [c for c in await self.source.get_chat_data(seq, self.page_size) if c.seq > seq]
        if not chats:
            return 0
        messages = await asyncio.to_thread(self._open_all, chats)
        async with self.sessions() as session:
            await InboxService(session).stage_many([
                InboundItem(f"wecom:archive:{chat.msgid}", ARCHIVE_SOURCE, json.dumps(message, ensure_ascii=False, sort_keys=True))
                for chat, message in zip(chats, messages)
            ])
            await advance_archive_seq(session, self.corp_id, max(chat.seq for chat in chats))
            await session.commit()
        self.on_new_rows()
        return len(chats)

    def _open_all(self, chats: list[EncryptedChat]) -> list[dict[str, Any]]:
        return [open_chat(self.source, self.keys, chat) for chat in chats]

    async def drain(self) -> int:
        """Pull until the archive has nothing newer; returns how many records were pulled. Skips the
        round (returning 0) while another process holds the pull lock."""
        lock = self.redis.lock(f"scrm:chat_archive:{self.corp_id}:pull", timeout=LOCK_SECONDS, thread_local=False)
        if not await lock.acquire(blocking=False):
            return 0
        total = 0
        try:
            while True:
                count = await self.pull_page()
                total += count
                if count < self.page_size:
                    return total
                await lock.reacquire()
        finally:
            try:
                await lock.release()
            except LockError:
                log.warning("chat archive pull lock expired before release (a round took over %.0f s)", LOCK_SECONDS)

    def wake(self) -> None:
        """Start a round now; `idle` is set again once it is over."""
        self.idle.clear()
        self._wakeup.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()

    def close(self) -> None:
        self.source.close()

    async def run(self) -> None:
        """Drain, pause, repeat; after a failure wait 1, 2, 4 … seconds (at most `max_backoff`)."""
        while not self._stopping.is_set():
            self.caught_up.clear()
            self.idle.clear()
            try:
                pulled = await self.drain()
            except asyncio.CancelledError:
                raise
            except (ArchiveError, WeComError) as exc:
                delay = self._failed(exc)
            except Exception as exc:
                log.exception("chat archive pull failed unexpectedly")
                delay = self._failed(exc, logged=True)
            else:
                if self.failures:
                    log.info("chat archive pull recovered after %d failed attempt(s)", self.failures)
                self.failures, delay = 0, self.idle_seconds
                if pulled:
                    log.info("chat archive: pulled %d record(s)", pulled)
                self.caught_up.set()
            self._wakeup.clear()
            self.idle.set()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=delay)
            except TimeoutError:
                pass

    def _failed(self, exc: Exception, *, logged: bool = False) -> float:
        """Count the failure and pick the backoff; the message names the record, never key material."""
        self.failures += 1
        delay = min(self.max_backoff, 2.0 ** (self.failures - 1))
        if not logged:
            log.warning("chat archive pull failed (attempt %d), cursor unchanged, retrying in %.0f s: %s: %s",
                        self.failures, delay, type(exc).__name__, exc)
        return delay


def build_chat_archive_puller(settings: Settings, http: aiohttp.ClientSession, redis: Redis,
                              sessions: async_sessionmaker[AsyncSession], *,
                              on_new_rows: Callable[[], Any]) -> ChatArchivePuller:
    """WeCom's SDK when SCRM_ARCHIVE_SDK_LIB is set, otherwise the simulator's stand-in API."""
    archive, wecom = settings.archive, settings.wecom
    if archive.private_key_file is None:
        raise ConfigError(["SCRM_ARCHIVE_PRIVATE_KEY_FILE is needed to open the chat archive"])
    keys = ArchiveKeys.from_files(archive.private_key_file, dict(archive.private_keys))
    source: ChatArchiveSource
    if archive.sdk_lib is not None:
        source = NativeSdkSource(archive.sdk_lib, corp_id=wecom.corp_id, secret=archive.secret)
    else:
        source = SimulatorSource(WeComClient(http, api_base=wecom.api_base, corp_id=wecom.corp_id,
                                             secret=archive.secret, redis=redis))
    return ChatArchivePuller(source, keys, sessions, redis, corp_id=wecom.corp_id, on_new_rows=on_new_rows,
                             idle_seconds=archive.poll_seconds)
