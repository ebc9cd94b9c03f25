"""WeCom's delivery limits, kept by every sending process together through Redis.

WeCom drops, without an error, app messages beyond 30 per minute from one app to one member
(每个成员每分钟最多接收 30 条). A digest, a morning nudge and a burst of bot replies can reach that for
a busy manager, so the sender counts per member and minute before each app message and, past the
limit, defers the row to the next minute instead of sending it into the void. A deferral is not a
failure: it costs the row no attempt (see crm_core.work_queue.defer).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Callable

from redis.asyncio import Redis

from crm_core.db import utcnow
from scrm.retries import NotYet

APP_MESSAGES_PER_MEMBER_PER_MINUTE = 30


class DeferredSend(NotYet):
    """The member's minute is full: the row waits for the next one without using an attempt."""


class MemberSendLimit:
    def __init__(self, redis: Redis, per_minute: int = APP_MESSAGES_PER_MEMBER_PER_MINUTE, *,
                 clock: Callable[[], datetime] = utcnow, prefix: str = "scrm:wecom:app_msg:"):
        self.redis, self.per_minute, self.clock, self.prefix = redis, per_minute, clock, prefix

    async def take(self, userids: list[str]) -> None:
        """Count one message to each member, or raise DeferredSend (counting none) if any is at the limit.

        A Lua script checks and increments all counters at once, so two processes cannot both take
        the last slot."""
        if not userids:
            return
        now = self.clock()
        minute = int(now.timestamp()) // 60
        keys = [f"{self.prefix}{userid}:{minute}" for userid in sorted(set(userids))]
        taken = await self.redis.eval(_TAKE, len(keys), *keys, self.per_minute, 120)
        if not taken:
            next_minute = datetime.fromtimestamp((minute + 1) * 60, now.tzinfo) - now
            # Spread the deferred rows over the next minute's first seconds rather than all at :00.
            raise DeferredSend(f"member limit of {self.per_minute} app messages a minute reached",
                               next_minute / timedelta(seconds=1) + random.uniform(0, 5))


_TAKE = """
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[1]) then return 0 end
end
for i, key in ipairs(KEYS) do
  redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[2])
end
return 1
"""
