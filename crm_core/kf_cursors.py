"""Persisted 微信客服 sync cursors, so a restart resumes where the last commit stopped."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import utcnow
from crm_core.models import KfCursor


class KfCursorService:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def get(self, open_kfid: str) -> str:
        row = await self.session.get(KfCursor, open_kfid)
        return row.cursor if row else ""

    async def set(self, open_kfid: str, cursor: str) -> None:
        """Stage the new cursor in the caller's transaction, next to the rows it covers."""
        row = await self.session.get(KfCursor, open_kfid)
        if row is None:
            self.session.add(KfCursor(open_kfid=open_kfid, cursor=cursor, updated_at=utcnow()))
        else:
            row.cursor = cursor
