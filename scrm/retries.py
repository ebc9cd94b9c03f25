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

import asyncio
import errno
import logging
import random
import socket
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import redis.exceptions
import sqlalchemy.exc

from connectors.wecom.chat_archive import ArchiveError
from connectors.wecom.errors import WeComError

log = logging.getLogger(__name__)
T = TypeVar("T")

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


async def with_retries(call: Callable[[], Awaitable[T]], *, what: str, attempts: int = 5,
                       sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> T:
    """For work that waits for its own retries instead of a queue's (a sync fetching a page): call
    until it succeeds, waiting as `decide` says; the last error is raised once `decide` gives up or
    `attempts` attempts failed (an outage uses none)."""
    failures = used = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            failures += 1
            retry = decide(exc, failures)
            used += int(retry.uses_attempt)
            if retry.gives_up or used >= attempts:
                raise
            log.warning("%s failed (%s); trying again in %.1f s", what, exc, retry.after, exc_info=not retry.expected)
            await sleep(retry.after)


def backoff(failures: int, cap: float = MAX_BACKOFF_SECONDS) -> float:
    """1, 2, 4 … seconds after the 1st, 2nd, 3rd … failure, at most `cap`."""
    return min(cap, 2.0 ** max(0, failures - 1))


def with_jitter(seconds: float) -> float:
    """Spread retries, so work deferred together does not come back all at once."""
    return seconds * random.uniform(1.0, 1.25)


def is_outage(exc: BaseException) -> bool:
    """The database or Redis unreachable (a restart, a failover, connections terminated) is not the
    work's fault: retrying it must not use up attempts, or every message arriving during an outage
    would be parked instead of processed after.

    Looks through SQLAlchemy's wrapper (`orig`) and the driver's own cause (`__cause__`), since
    asyncpg's error arrives wrapped twice; stops at a WeCom error, whose network failures are
    WeCom's to answer (see `decide`)."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, WeComError):
            return False
        if _is_outage_error(error):
            return True
        error = getattr(error, "orig", None) or error.__cause__
    return False


# SQLSTATEs a dropped or failed-over PostgreSQL connection answers with (postgresql.org/docs/current/errcodes-appendix.html):
# class 08 connection exception; 57P01 admin_shutdown (pg_terminate_backend, a fast shutdown), 57P02 crash_shutdown,
# 57P03 cannot_connect_now (starting up, in recovery); 53300 too_many_connections (the reconnect storm after a
# failover); 25006 read_only_sql_transaction (still connected to the old primary, now a standby).
_PG_OUTAGE_STATES = frozenset({"57P01", "57P02", "57P03", "53300", "25006"})
# SQLite's primary result codes for a database file that cannot be used right now (sqlite.org/rescode.html):
# SQLITE_BUSY/LOCKED (another process holds the write lock past the timeout), SQLITE_IOERR, SQLITE_FULL,
# SQLITE_CANTOPEN (the file or its directory is unreachable).
_SQLITE_OUTAGE_CODES = frozenset({5, 6, 10, 13, 14})
_NETWORK_ERRNOS = frozenset({errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT,
                             errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTDOWN})


def _is_outage_error(error: BaseException) -> bool:
    """One link of the chain: Redis, the network, SQLAlchemy's connection handling, or a driver."""
    if isinstance(error, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                          redis.exceptions.ReadOnlyError, redis.exceptions.ClusterDownError)):
        return True  # ConnectionError includes BusyLoadingError (a replica still loading its data)
    if isinstance(error, (ConnectionError, TimeoutError, socket.gaierror)):
        return True  # refused, reset, broken pipe; a connect timeout; the database host's name not resolving
    if isinstance(error, OSError) and (error.errno in _NETWORK_ERRNOS or str(error).startswith("Multiple exceptions:")):
        return True  # asyncio's create_connection when every address of the host failed
    if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
        return True  # SQLAlchemy saw the connection die (dialect.is_disconnect) and dropped it
    if isinstance(error, sqlalchemy.exc.PendingRollbackError) and error.code == "8s2b":
        return True  # the same session used again after its connection died: "Can't reconnect until invalid transaction is rolled back"
    if isinstance(error, (sqlalchemy.exc.DisconnectionError, sqlalchemy.exc.TimeoutError)):
        return True  # pre-ping could not get a live connection; every pooled connection is stuck
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(state, str) and (state.startswith("08") or state in _PG_OUTAGE_STATES):
        return True
    if isinstance(error, asyncpg.exceptions.InterfaceError) and "connection is closed" in str(error):
        return True  # asyncpg used after the server closed the socket
    if isinstance(error, asyncpg.exceptions.InternalClientError) and "another operation" in str(error):
        return True  # a connection cut mid-operation left asyncpg's protocol state behind ("cannot switch to state")
    if isinstance(error, sqlite3.Error) and (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_OUTAGE_CODES:
        return True
    return False
