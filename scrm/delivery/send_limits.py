"""WeCom's delivery limits, kept by every sending process together through Redis.

WeCom drops, without an error, app messages from one app to one member beyond 30 a minute and
1,000 an hour (每应用对同一个成员不可超过30次/分钟，1000次/小时，超过部分会被丢弃不下发:
https://developer.work.weixin.qq.com/document/path/90236). A digest, a morning nudge and a burst of
bot replies can reach the minute's limit for a busy manager, and a support lead told of every new
ticket the hour's. So the sender counts each member's messages before each app message and, past a
limit, defers the row until a slot frees instead of sending it into the void. A deferral is not a
failure: it costs the row no attempt (see crm_core.work_queue.defer).

The windows slide: at most 30 in any minute, 1,000 in any hour (each a little longer, SLACK_SECONDS).
The documents do not say whether WeCom counts by clock minute or by trailing minute; counting by
clock minute would let 60 through in the two seconds around :00, which a trailing count drops.
Sliding windows keep under both readings.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime
from typing import Callable

from redis.asyncio import Redis

from crm_core.db import utcnow
from scrm.retries import NotYet

APP_MESSAGES_PER_MEMBER_PER_MINUTE = 30
APP_MESSAGES_PER_MEMBER_PER_HOUR = 1000
# A message reaches WeCom a moment after it is counted here, and not always the same moment: each
# counts for two seconds longer than the window, so one delayed on its way never makes WeCom see 31.
SLACK_SECONDS = 2
MINUTE_WINDOW, HOUR_WINDOW = 60 + SLACK_SECONDS, 3600 + SLACK_SECONDS


class DeferredSend(NotYet):
    """A member's window is full: the row waits until a slot frees, without using an attempt."""


class MemberSendLimit:
    def __init__(self, redis: Redis, per_minute: int = APP_MESSAGES_PER_MEMBER_PER_MINUTE,
                 per_hour: int = APP_MESSAGES_PER_MEMBER_PER_HOUR, *,
                 clock: Callable[[], datetime] = utcnow, prefix: str = "scrm:wecom:app_msg:"):
        self.redis, self.per_minute, self.per_hour, self.clock, self.prefix = redis, per_minute, per_hour, clock, prefix

    async def take(self, userids: list[str]) -> None:
        """Count one message to each member, or raise DeferredSend (counting none) if any window is full.

        A Lua script checks and counts all members at once, so two processes cannot both take the
        last slot. Each member's sends of the last hour are a sorted set of their times."""
        if not userids:
            return
        now = self.clock().timestamp()
        keys = [f"{self.prefix}{userid}" for userid in sorted(set(userids))]
        waits = await self.redis.eval(_TAKE, len(keys), *keys, now, self.per_minute, self.per_hour, MINUTE_WINDOW,
                                      HOUR_WINDOW, uuid.uuid4().hex)
        wait_minute, wait_hour = (float(wait) for wait in waits)
        if wait_hour:
            limit = f"{self.per_hour} app messages an hour"
        elif wait_minute:
            limit = f"{self.per_minute} app messages a minute"
        else:
            return
        # Spread deferred rows over the seconds after the slot frees rather than all at once.
        raise DeferredSend(f"member limit of {limit} reached", max(wait_minute, wait_hour) + random.uniform(0, 5))


# KEYS: one sorted set per member (score: send time). ARGV: now, per minute, per hour, the minute's and
# the hour's length in seconds, this send's id.
# Returns {seconds until the minute has room, seconds until the hour has room}, both 0 when counted.
_TAKE = """
local now, per_minute, per_hour = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local minute, hour = tonumber(ARGV[4]), tonumber(ARGV[5])
local wait_minute, wait_hour = 0, 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - hour)
  local in_minute = redis.call('ZCOUNT', key, '(' .. (now - minute), '+inf')
  if in_minute >= per_minute then
    local oldest = redis.call('ZRANGEBYSCORE', key, '(' .. (now - minute), '+inf', 'WITHSCORES',
                              'LIMIT', in_minute - per_minute, 1)
    wait_minute = math.max(wait_minute, tonumber(oldest[2]) + minute - now)
  end
  local in_hour = redis.call('ZCARD', key)
  if in_hour >= per_hour then
    local oldest = redis.call('ZRANGE', key, in_hour - per_hour, in_hour - per_hour, 'WITHSCORES')
    wait_hour = math.max(wait_hour, tonumber(oldest[2]) + hour - now)
  end
end
if wait_minute > 0 or wait_hour > 0 then return {tostring(wait_minute), tostring(wait_hour)} end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[6])
  redis.call('EXPIRE', key, math.ceil(hour))
end
return {'0', '0'}
"""
