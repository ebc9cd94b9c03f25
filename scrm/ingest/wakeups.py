"""Waking the workers of other processes when new inbox rows commit.

Deployed as separate processes (docker-compose: 2 web, 2 worker), a web process cannot call the
workers' `notify()`: an idle worker would only find a rep's message on its next poll, up to
`idle_interval` (0.5 s) later, on every reply. So the web process publishes one Redis message per
committed batch of callbacks and every worker process listening wakes its inbox workers. The
message is a hint, never the work: the rows are in the database, a lost hint costs one poll,
and with the in-process Redis stand-in (one process) nothing is published at all. A process that
is web and worker at once wakes its own workers directly and skips its own announcements, which
would only send an idle worker to claim a row already taken.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.asyncio import Redis

log = logging.getLogger(__name__)

def channel(redis: Redis, corp_id: str) -> str:
    """One deployment's channel. Redis hands a publish to every subscriber on the server, whichever db
    they use: deployments (and test runs) sharing a server woke each other's workers."""
    return f"scrm:inbox:new-rows:{redis.connection_pool.connection_kwargs.get('db', 0)}:{corp_id}"


async def announce(redis: Redis, channel: str, sender: bytes) -> None:
    """Tell worker processes that inbox rows have committed; a failure only costs them a poll."""
    try:
        await redis.publish(channel, sender)
    except Exception as exc:
        log.debug("could not announce new inbox rows (%r); workers find them on their next poll", exc)


async def listen(redis: Redis, channel: str, wake: Callable[[], None], stopping: asyncio.Event, *, own: bytes) -> None:
    """Call `wake` for every announcement but `own` ones until `stopping` is set; resubscribes after Redis outages."""
    outage = False
    while not stopping.is_set():
        try:
            async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(channel)
                if outage:
                    log.info("listening for new inbox rows again")
                    outage = False
                while not stopping.is_set():
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message["data"] != own:
                        wake()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not outage:
                log.warning("lost the new-rows channel (%r); polling until Redis is back", exc)
                outage = True
            try:
                await asyncio.wait_for(stopping.wait(), timeout=1.0)
            except TimeoutError:
                pass
