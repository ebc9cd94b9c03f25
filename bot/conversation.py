"""Short-lived conversation state per staff member, in Redis (shared by every worker process).

It holds what a follow-up message refers to: the candidates of a numbered list (reply `2`), the
pages still to show (reply `更多`), or the field the bot just asked for. It expires on its own;
any new command replaces it.

A new state is written to Redis only once the reply that produced it has committed (a rolled-back
reply leaves the previous state in place, so a retried `2` still picks from the same list). Until
then it is kept on the session, where the next message of the same batch reads it.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.after_commit import after_commit

STATE_TTL_SECONDS = 600
_STAGED = "bot_conversation_states"


class Conversations:
    def __init__(self, redis: Redis, ttl: int = STATE_TTL_SECONDS, prefix: str = "scrm:bot:conversation:"):
        self.redis = redis
        self.ttl = ttl
        self.prefix = prefix

    async def get(self, session: AsyncSession, userid: str) -> dict[str, Any]:
        await self.load(session, {userid})
        return self._staged(session)[userid][1]

    async def load(self, session: AsyncSession, userids: set[str]) -> None:
        """Read several staff members' states with one MGET (a batch of their messages is coming)."""
        staged = self._staged(session)
        wanted = sorted(userids - staged.keys())
        if not wanted:
            return
        for userid, raw in zip(wanted, await self.redis.mget([self.prefix + u for u in wanted])):
            state = json.loads(raw) if raw else {}
            staged[userid] = (state, state)

    def set(self, session: AsyncSession, userid: str, state: dict[str, Any]) -> None:
        """Stage the new state; it reaches Redis once the session commits."""
        staged = self._staged(session)
        before = staged[userid][0] if userid in staged else None
        staged[userid] = (before, state)

    def _staged(self, session: AsyncSession) -> dict[str, tuple[dict[str, Any] | None, dict[str, Any]]]:
        """userid -> (state in Redis, or None if not read; state now) for this session."""
        staged = session.info.get(_STAGED)
        if staged is None:
            staged = session.info[_STAGED] = {}
            after_commit(session, lambda: self._write(staged))
        return staged

    async def _write(self, staged: dict[str, tuple[dict[str, Any] | None, dict[str, Any]]]) -> None:
        for userid, (before, state) in staged.items():
            if state == before:
                continue
            if state:
                await self.redis.set(self.prefix + userid, json.dumps(state, ensure_ascii=False), ex=self.ttl)
            else:
                await self.redis.delete(self.prefix + userid)
