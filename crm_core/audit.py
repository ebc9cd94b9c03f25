"""Audit trail for personal data: every lookup and change of a customer's details is recorded."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import utcnow
from crm_core.models import AuditEntry


class AuditService:
    def __init__(self, session: AsyncSession):
        self.session = session

    def record(self, *, actor: str, action: str, customer_id: int | None = None, detail: str = "") -> None:
        """Add to the caller's transaction so the audit row commits with the work it describes."""
        self.session.add(AuditEntry(actor=actor, action=action, customer_id=customer_id, detail=detail, created_at=utcnow()))

