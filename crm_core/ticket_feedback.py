"""What agents said about the complaint detection: every ticket it opened that an agent has
decided on, as a labelled example for the next retraining.

A ticket an agent dismissed with `工单 误判` is a false complaint; one resolved without that is a
confirmed one. Open tickets have no verdict yet and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Message
from crm_core.ticket_models import OPEN, Ticket, TicketEvent

NOT_COMPLAINT = "not_complaint"
COMPLAINT = "complaint"


@dataclass(frozen=True)
class DetectionVerdict:
    number: str
    opened_at: datetime
    score: float | None  # the complaint score that opened it (None: opened before scores were kept)
    signals: tuple[str, ...]  # the threats and words behind the score, as the agent saw them
    verdict: str  # NOT_COMPLAINT | COMPLAINT
    note: str  # what the agent wrote with 误判
    text: str  # the whole triggering message (the excerpt when the message was erased)


async def detection_verdicts(session: AsyncSession, since: datetime | None = None) -> list[DetectionVerdict]:
    """Decided tickets, oldest first."""
    stmt = (select(Ticket, Message.text)
            .outerjoin(Message, Message.id == Ticket.trigger_message_id)
            .where(or_(Ticket.dismissed_at.is_not(None), Ticket.status != OPEN))
            .order_by(Ticket.created_at, Ticket.id))
    if since is not None:
        stmt = stmt.where(Ticket.created_at >= since)
    rows = (await session.execute(stmt)).all()
    notes = dict((await session.execute(
        select(TicketEvent.ticket_id, TicketEvent.detail).where(
            TicketEvent.kind == "dismissed", TicketEvent.ticket_id.in_([t.id for t, _ in rows]))
        .order_by(TicketEvent.id))).all()) if rows else {}
    verdicts = []
    for ticket, text in rows:
        dismissed = ticket.dismissed_at is not None
        if not dismissed and ticket.resolved_at is None:
            continue  # closed without a resolution and not dismissed: no verdict either way
        verdicts.append(DetectionVerdict(
            number=ticket.number, opened_at=ticket.created_at, score=ticket.open_score,
            signals=tuple(ticket.open_signals or ()), verdict=NOT_COMPLAINT if dismissed else COMPLAINT,
            note=notes.get(ticket.id, "") if dismissed else "", text=text if text is not None else ticket.summary))
    return verdicts
