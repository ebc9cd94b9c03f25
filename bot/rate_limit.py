"""A per-staff command rate limit, shared by every worker and web process through Redis.

A command is a chat message to the bot or a quick action on the sidebar page (scrm/http/pages/sidebar.py):
both are counted here, in one count per member and minute.

A person typing never comes near it; a script or a stuck client flooding the bot does. The first
message over the limit in a minute gets one friendly reply; the rest of that minute get none (they
are still archived), so a flood cannot turn into a flood of replies.

Each message is counted once, by its id: a message processed again (its batch rolled back by another
row's failure or a database failover; Redis is not rolled back with it) keeps the place in the
minute it got the first time, and with it its verdict.
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

    async def check(self, userid: str, now: datetime, message_key: str) -> Verdict:
        """The verdict for one message (`message_key`: the same on every processing of it)."""
        key = f"{self.prefix}{userid}:{int(now.timestamp()) // WINDOW_SECONDS}"
        place = int(await self.redis.eval(_PLACE, 1, key, message_key, 2 * WINDOW_SECONDS))  # 0 for the first
        if place < self.per_minute:
            return Verdict.OK
        return Verdict.WARN if place == self.per_minute else Verdict.DROP


# The message's place among the minute's messages: given on first sight, the same ever after. One round trip.
_PLACE = """
local place = redis.call('ZSCORE', KEYS[1], ARGV[1])
if place then return tonumber(place) end
place = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], place, ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return place
"""
