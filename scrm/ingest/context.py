"""What every inbox source shares: who a WeCom userid is, and what happens when a customer writes.

Sources (scrm.ingest.pipeline.InboxSource) get one `IngestContext` from the app. They archive
what arrived and then hand a customer's own words to `customer_wrote`, which runs the app's
reactions in the order the app lists them (scrm/app.py: analysis first, because the reactions
after it read `message.analysis`). Reactions run inside the message's transaction: a ticket, an
opt-out or an alert commits with the archived message or not at all, so a retried row never
reacts twice and a rolled-back one never reacts at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from config.roles import RoleMap
from connectors.wecom.errors import InvalidUserError
from connectors.wecom.profiles import staff_profile
from crm_core.after_commit import after_commit
from crm_core.channels import Acquisition
from crm_core.models import Customer, Message, Staff
from crm_core.staff import StaffProfile, StaffService

log = logging.getLogger(__name__)


class WeComApi(Protocol):
    """The WeCom calls ingest makes (connectors.wecom.client.WeComClient; tests pass fakes)."""

    async def get_user(self, userid: str) -> dict: ...
    async def get_external_contact(self, external_userid: str) -> dict: ...
    async def kf_sync_msg(self, *, token: str | None, cursor: str | None, open_kfid: str | None = None,
                          limit: int = 1000) -> dict: ...


class CustomerMessageReaction(Protocol):
    """One thing the product does when a customer writes (analysis, opt-out, tickets, …)."""

    async def __call__(self, session: AsyncSession, customer: Customer, message: Message) -> None: ...


@dataclass
class IngestContext:
    wecom: WeComApi
    timezone: ZoneInfo
    roles: RoleMap = field(default_factory=RoleMap)
    reactions: list[CustomerMessageReaction] = field(default_factory=list)
    acquisition: Acquisition = field(default_factory=Acquisition)  # 渠道活码: attribution, welcome, assignment
    on_new_inbox_rows: Callable[[], None] = lambda: None
    on_new_outbox_rows: Callable[[], None] = lambda: None

    async def customer_wrote(self, session: AsyncSession, customer: Customer, message: Message) -> None:
        """Run every reaction to a customer's own words, whatever the channel; call it once per
        newly archived message."""
        for react in self.reactions:
            await react(session, customer, message)
        if self.reactions:
            self.outbox_changed(session)

    async def lead_arrived(self, session: AsyncSession, customer: Customer, message: Message) -> None:
        """A customer's first message from another path (JSON webhook) may name a channel: attribute and
        assign them by the channel's sales group, and tell the owner."""
        if await self.acquisition.lead_arrived(session, customer, message, self.staff) is not None:
            self.outbox_changed(session)

    def outbox_changed(self, session: AsyncSession) -> None:
        """Wake this process's senders once the new outbox rows are committed (and visible)."""
        after_commit(session, self.on_new_outbox_rows)

    async def staff(self, session: AsyncSession, userid: str) -> Staff:
        """The staff row for a WeCom userid, synced from user/get the first time we see them.

        Remembered for the rest of the session; `preload_staff` loads a whole batch's senders at once."""
        seen = _known_staff(session)
        if userid in seen:
            return seen[userid]
        service = StaffService(session)
        known = await service.get_by_userid(userid)
        if known is not None and known.synced_at is not None:
            seen[userid] = known
            return known
        try:
            profile = staff_profile(await self.wecom.get_user(userid))
        except InvalidUserError:
            log.warning("user/get does not know %s; keeping a bare staff record", userid)
            profile = StaffProfile(userid=userid, active=False)
        role = self.roles.role_for(profile.userid, profile.department_ids, is_leader=profile.is_leader)
        seen[userid] = await service.upsert(profile, role=role)
        return seen[userid]

    async def preload_staff(self, session: AsyncSession, userids: set[str]) -> None:
        """Load many senders with one query, not one per message (a batch of employee messages)."""
        seen = _known_staff(session)
        for staff in await StaffService(session).get_many_by_userid(userids - seen.keys()):
            if staff.synced_at is not None:
                seen[staff.userid] = staff

    def local(self, at: datetime) -> str:
        return at.astimezone(self.timezone).strftime("%Y-%m-%d %H:%M")


def _known_staff(session: AsyncSession) -> dict[str, Staff]:
    """userid -> synced staff row, for the rest of this session (one batch of messages)."""
    return session.info.setdefault("ingest_staff", {})

