"""The one retry protocol: what to do when work on a queue row (or a chat-archive pull) raised.

Every failure is sorted here, once, into one of three answers, and nowhere else:

    wait     not the work's fault: the database or Redis is unreachable (a restart, a failover), or
             our own limit said "not yet" (`NotYet`). Tried again soon; no attempt is used, so an
             outage parks nothing however long it lasts.
    retry    may work later: WeCom busy, throttling or unreachable (`WeComError.retryable`, after
             WeCom's `retry_after` when it names one), or an error nobody expected (logged with its
             traceback). Backs off 1, 2, 4 … s up to 5 min; an attempt is used.
    give up  retrying the same work cannot help: WeCom refused it for good (`retryable` false), or
             the row itself is unusable (`Permanent`). A queue row is parked at once with its error.

How an error says which: our own code raises `NotYet` or a `Permanent` subclass; WeCom's typed
errors (connectors.wecom.errors) carry WeCom's own answer in `retryable` and `retry_after`; the chat
archive's errors (a key that does not open a record) are permanent; outages are recognised by
`is_outage`. The work queue (scrm.queue_worker) and the chat-archive puller act on the `Retry` they
get back; neither looks at an exception itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import asyncpg
import redis.exceptions
import sqlalchemy.exc

from connectors.wecom.chat_archive import ArchiveError
from connectors.wecom.errors import WeComError

OUTAGE_RETRY_SECONDS = 5.0  # how soon work held up by an outage is tried again
MAX_BACKOFF_SECONDS = 300.0


class NotYet(Exception):
    """Not now, and not a failure: try again after `retry_after` seconds without using an attempt
    (a send limit reached, say)."""

    def __init__(self, reason: str, retry_after: float):
        super().__init__(reason)
        self.retry_after = retry_after


class Permanent(Exception):
    """The work itself is unusable (an unreadable row, a source nobody handles): park it now."""


@dataclass(frozen=True)
class Retry:
    """The answer for one failure."""

    after: float | None  # seconds until the work is due again; None: give up (park it)
    uses_attempt: bool = True  # False: not the work's fault, the attempt is given back
    expected: bool = True  # False: nobody foresaw this error; log it with its traceback

    @property
    def gives_up(self) -> bool:
        return self.after is None


def decide(exc: BaseException, failures: int) -> Retry:
    """What to do after the `failures`-th failed attempt (1 for the first) raised `exc`."""
    if isinstance(exc, NotYet):
        return Retry(exc.retry_after, uses_attempt=False)
    if is_outage(exc):
        return Retry(with_jitter(OUTAGE_RETRY_SECONDS), uses_attempt=False)
    if isinstance(exc, (Permanent, ArchiveError)):
        return Retry(None)
    if isinstance(exc, WeComError):
        if not exc.retryable:
            return Retry(None)
        asked = getattr(exc, "retry_after", None)  # throttling: WeCom's own interval, spread a little
        return Retry(with_jitter(asked) if asked is not None else backoff(failures))
    return Retry(backoff(failures), expected=False)


def backoff(failures: int, cap: float = MAX_BACKOFF_SECONDS) -> float:
    """1, 2, 4 … seconds after the 1st, 2nd, 3rd … failure, at most `cap`."""
    return min(cap, 2.0 ** max(0, failures - 1))


def with_jitter(seconds: float) -> float:
    """Spread retries, so work deferred together does not come back all at once."""
    return seconds * random.uniform(1.0, 1.25)


def is_outage(exc: BaseException) -> bool:
    """Redis or the database unreachable (a restart, a failover) is not the row's fault: retrying it
    must not use up its attempts, or every message arriving during an outage would be parked
    instead of processed after."""
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    cause = getattr(exc, "orig", None) or exc
    # 08xxx connection failures; 57P01-03: shut down by an administrator, crashed, still starting up
    return isinstance(cause, (asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
                              asyncpg.exceptions.ConnectionDoesNotExistError))
