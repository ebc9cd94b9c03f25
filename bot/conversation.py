"""Short-lived conversation state per staff member, in Redis (shared by every worker process).

It holds what a follow-up message refers to: the candidates of a numbered list (reply `2`), the
pages still to show (reply `更多`), or the field the bot just asked for. It expires on its own;
any new command replaces it.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

STATE_TTL_SECONDS = 600


class Conversations:
    def __init__(self, redis: Redis, ttl: int = STATE_TTL_SECONDS, prefix: str = "scrm:bot:conversation:"):
        self.redis = redis
        self.ttl = ttl
        self.prefix = prefix

    async def get(self, userid: str) -> dict[str, Any]:
        raw = await self.redis.get(self.prefix + userid)
        return json.loads(raw) if raw else {}

    async def set(self, userid: str, state: dict[str, Any]) -> None:
        if state:
            await self.redis.set(self.prefix + userid, json.dumps(state, ensure_ascii=False), ex=self.ttl)
        else:
            await self.redis.delete(self.prefix + userid)
