"""A per-staff command rate limit, shared by every worker process through Redis.

A person typing never comes near it; a script or a stuck client flooding the bot does. The first
message over the limit in a minute gets one friendly reply; the rest of that minute get none (they
are still archived), so a flood cannot turn into a flood of replies.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from redis.asyncio import Redis

WINDOW_SECONDS = 60


class Verdict(Enum):
    OK = "ok"
    WARN = "warn"  # the first one over the limit: say so once
    DROP = "drop"  # over the limit and already told


class CommandRateLimit:
    def __init__(self, redis: Redis, per_minute: int, prefix: str = "scrm:bot:rate:"):
        self.redis, self.per_minute, self.prefix = redis, per_minute, prefix

    async def check(self, userid: str, now: datetime) -> Verdict:
        key = f"{self.prefix}{userid}:{int(now.timestamp()) // WINDOW_SECONDS}"
        count = await self.redis.incr(key)
        if count == 1:
            await self.redis.expire(key, 2 * WINDOW_SECONDS)
        if count <= self.per_minute:
            return Verdict.OK
        return Verdict.WARN if count == self.per_minute + 1 else Verdict.DROP
