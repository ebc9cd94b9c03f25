"""Staff API tokens: a tool acting for one staff member (a WeCom sidebar, a rep's spreadsheet) gets
exactly that person's data scope, as in chat, and can be cut off alone.

The service token (SCRM_API_TOKEN) stays the integration key with every customer in view. A staff
token is random, shown once when issued, and stored only as its SHA-256, so a copy of the
database does not hand out working tokens. A token stops working when it is revoked or its
staff member is no longer active.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.audit import AuditService
from crm_core.db import utcnow
from crm_core.errors import NotFoundError
from crm_core.models import ApiToken, Staff

TOKEN_PREFIX = "scrm_"


class UnknownTokenError(NotFoundError):
    pass


@dataclass(frozen=True)
class IssuedToken:
    id: int
    token: str  # the only time it exists in clear
    staff: Staff


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class ApiTokenService:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def issue(self, staff: Staff, *, label: str = "", actor: str = "cli") -> IssuedToken:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = ApiToken(token_hash=token_hash(token), staff_id=staff.id, label=label[:64], created_at=utcnow())
        self.session.add(row)
        await self.session.flush()
        AuditService(self.session).record(actor=actor, action="api_token.issue", detail=f"token {row.id} for {staff.userid}")
        return IssuedToken(row.id, token, staff)

    async def staff_for(self, token: str) -> Staff | None:
        """The active staff member a live token acts for, or None. Marks the token as used."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        row = await self.session.scalar(
            select(ApiToken).where(ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None)))
        if row is None:
            return None
        staff = await self.session.get(Staff, row.staff_id)
        if staff is None or not staff.active:
            return None
        row.last_used_at = utcnow()
        return staff

    async def list(self, *, include_revoked: bool = False) -> list[tuple[ApiToken, Staff]]:
        stmt = select(ApiToken, Staff).join(Staff, Staff.id == ApiToken.staff_id).order_by(ApiToken.id)
        if not include_revoked:
            stmt = stmt.where(ApiToken.revoked_at.is_(None))
        return [(token, staff) for token, staff in (await self.session.execute(stmt)).all()]

    async def revoke(self, token_id: int, *, actor: str = "cli") -> None:
        result = await self.session.execute(
            update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None)).values(revoked_at=utcnow()))
        if result.rowcount != 1:
            raise UnknownTokenError(f"no live API token with id {token_id}; `scrm api-token list` shows them")
        AuditService(self.session).record(actor=actor, action="api_token.revoke", detail=f"token {token_id}")
