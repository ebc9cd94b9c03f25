"""Domain events: facts other features react to, published only after the work that produced
them has committed (a rolled-back complaint must not open a ticket).

Producers call `emit(session, name, **data)` inside their transaction; whoever commits that
session calls `bus.publish_committed(session)` afterwards. A session that rolls back is thrown
away with its pending events. Listeners are plain async callables
registered by name; one failing listener is logged and does not stop the others.

`after_commit(session, callback)` is the same promise for work that is not a domain fact: waking
the outbox sender, writing the bot's conversation state to Redis. Done before the commit, the
sender would look for rows it cannot see yet, and a rolled-back reply would leave its state behind.
"""

from __future__ import annotations

import inspect
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)

MESSAGE_COMPLAINT = "message.complaint"

_PENDING = "pending_domain_events"
_AFTER_COMMIT = "after_commit_callbacks"


@dataclass(frozen=True)
class DomainEvent:
    name: str
    data: dict[str, Any]


Listener = Callable[[DomainEvent], Awaitable[None]]
AfterCommit = Callable[[], Awaitable[None] | None]


def emit(session: AsyncSession, name: str, **data: Any) -> None:
    session.info.setdefault(_PENDING, []).append(DomainEvent(name, data))


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once the session's transaction has committed; the same callback registered
    twice in one transaction runs once (fifty replies in a batch wake the sender once)."""
    session.info.setdefault(_AFTER_COMMIT, {})[callback] = None


@dataclass
class EventBus:
    listeners: dict[str, list[Listener]] = field(default_factory=lambda: defaultdict(list))

    def subscribe(self, name: str, listener: Listener) -> None:
        self.listeners[name].append(listener)

    async def publish_committed(self, session: AsyncSession) -> None:
        for callback in session.info.pop(_AFTER_COMMIT, {}):
            try:
                result = callback()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("after-commit callback %r failed", callback)
        for event in session.info.pop(_PENDING, []):
            log.info("event %s %s", event.name, event.data)
            for listener in self.listeners.get(event.name, []):
                try:
                    await listener(event)
                except Exception:
                    log.exception("listener %r failed on %s", listener, event.name)
