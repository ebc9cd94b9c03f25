"""Work that must wait until a transaction has committed: waking the outbox sender, writing the
bot's conversation state to Redis.

Done before the commit, the sender would look for rows it cannot see yet, and a rolled-back reply
would leave its state behind. Whoever commits a session calls `run_after_commit(session)`
afterwards (the queue workers do); a session that rolls back is thrown away with its callbacks.

What the product does when a message arrives is not wired here: those reactions run inside the
message's transaction, in the order scrm/app.py lists them (scrm.ingest.context), so a ticket
commits with the message that opened it or not at all.
"""

from __future__ import annotations

import inspect
import logging
from typing import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

_AFTER_COMMIT = "after_commit_callbacks"

AfterCommit = Callable[[], Awaitable[None] | None]


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once the session's transaction has committed; the same callback registered
    twice in one transaction runs once (fifty replies in a batch wake the sender once)."""
    session.info.setdefault(_AFTER_COMMIT, {})[callback] = None


async def run_after_commit(session: AsyncSession) -> None:
    """Run (and forget) what the committed transaction registered; one failing callback is logged
    and does not stop the others."""
    for callback in session.info.pop(_AFTER_COMMIT, {}):
        try:
            result = callback()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("after-commit callback %r failed", callback)
