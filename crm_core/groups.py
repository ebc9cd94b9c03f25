"""Customer groups (客户群) as WeCom has them: kept current by the nightly sync and by
change_external_chat callbacks, both of which hand this service what groupchat/get answered.

WeCom's detail is the truth for who is in a group: applying it records new members as joined and
members no longer listed as left (their row stays, with `left_at`), so the result is the same
whichever of a callback and a sync comes first, and applying the same detail twice changes
nothing. A customer's groups are found through the customer's WeCom identity (external_userid)
or unionid, so someone met only in a group is linked the moment they become a contact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.care import CONTACT_CHANNEL
from crm_core.db import utcnow
from crm_core.group_models import EXTERNAL_MEMBER, STAFF_MEMBER, CustomerGroup, CustomerGroupMember
from crm_core.models import Customer, CustomerIdentity, Staff
from crm_core.scope import Scope
from crm_core.sql import insert_if_absent

FIND_LIMIT = 10


@dataclass(frozen=True)
class GroupMemberProfile:
    member_id: str  # staff userid or external_userid
    member_type: int  # 1 staff, 2 external contact
    joined_at: datetime | None = None
    unionid: str = ""
    name: str = ""
    group_nickname: str = ""
    join_scene: int = 0
    invitor: str = ""


@dataclass(frozen=True)
class GroupProfile:
    chat_id: str
    name: str
    owner_userid: str
    created_at: datetime | None = None
    notice: str = ""
    member_version: str = ""
    members: tuple[GroupMemberProfile, ...] = ()


@dataclass(frozen=True)
class Moves:
    """Customers (external members) who joined and who left groups."""

    joined: int = 0
    left: int = 0


@dataclass(frozen=True)
class MemberView:
    member: CustomerGroupMember
    customer: Customer | None  # the CRM customer this external member is, when they are one


@dataclass(frozen=True)
class GroupView:
    group: CustomerGroup
    staff: list[CustomerGroupMember] = field(default_factory=list)
    customers: list[MemberView] = field(default_factory=list)


class GroupService:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def apply(self, profile: GroupProfile, owner: Staff | None, *, at: datetime | None = None,
                    status: int | None = None) -> Moves:
        """Store the group as WeCom describes it; returns how many customers joined and left."""
        now = at or utcnow()
        await insert_if_absent(self.session, CustomerGroup, {"chat_id": profile.chat_id, "synced_at": now}, ["chat_id"])
        # Under the row lock, so a callback and the sync applying the same group take turns.
        group = await self.session.scalar(select(CustomerGroup).where(CustomerGroup.chat_id == profile.chat_id)
                                          .with_for_update(key_share=True, of=CustomerGroup))
        group.name, group.owner_userid, group.notice = profile.name, profile.owner_userid, profile.notice
        group.owner_id = owner.id if owner is not None else None
        group.created_at = profile.created_at or group.created_at
        group.member_version = profile.member_version
        group.status = group.status if status is None else status
        group.dismissed_at, group.synced_at = None, now
        rows = {m.member_id: m for m in (await self.session.scalars(
            select(CustomerGroupMember).where(CustomerGroupMember.group_id == group.id))).all()}
        joined = left = 0
        listed = {m.member_id: m for m in profile.members}
        for member_id, listed_member in listed.items():
            row = rows.get(member_id)
            if row is None:
                await insert_if_absent(self.session, CustomerGroupMember,
                                       {"group_id": group.id, "member_id": member_id,
                                        "member_type": listed_member.member_type}, ["group_id", "member_id"])
                row = await self.session.scalar(select(CustomerGroupMember).where(
                    CustomerGroupMember.group_id == group.id, CustomerGroupMember.member_id == member_id))
                joined += listed_member.member_type == EXTERNAL_MEMBER
            elif row.left_at is not None:
                joined += listed_member.member_type == EXTERNAL_MEMBER
            _copy(row, listed_member, joined_at=listed_member.joined_at or (now if row.left_at else row.joined_at))
        for member_id, row in rows.items():
            if member_id not in listed and row.left_at is None:
                row.left_at = now
                left += row.member_type == EXTERNAL_MEMBER
        await self.session.flush()
        return Moves(joined, left)

    async def dismiss(self, chat_id: str, *, at: datetime) -> bool:
        """The group is gone (dismissed, or no longer visible to the app); False when unknown or already gone."""
        result = await self.session.execute(
            update(CustomerGroup).where(CustomerGroup.chat_id == chat_id, CustomerGroup.dismissed_at.is_(None))
            .values(dismissed_at=at))
        return bool(result.rowcount)

    async def dismiss_unseen(self, since: datetime, *, at: datetime) -> int:
        """After a complete sync: the groups WeCom no longer lists (not synced since `since`) are gone."""
        result = await self.session.execute(
            update(CustomerGroup).where(CustomerGroup.synced_at < since, CustomerGroup.dismissed_at.is_(None))
            .values(dismissed_at=at))
        return result.rowcount or 0

    async def of_customer(self, customer: Customer) -> list[CustomerGroup]:
        """The groups the customer is in now, by name."""
        ids = select(CustomerIdentity.external_id).where(CustomerIdentity.customer_id == customer.id,
                                                         CustomerIdentity.channel == CONTACT_CHANNEL)
        member = CustomerGroupMember.member_id.in_(ids)
        if customer.unionid:
            member = or_(member, CustomerGroupMember.unionid == customer.unionid)
        in_group = select(CustomerGroupMember.group_id).where(
            member, CustomerGroupMember.member_type == EXTERNAL_MEMBER, CustomerGroupMember.left_at.is_(None))
        groups = (await self.session.scalars(
            select(CustomerGroup).where(CustomerGroup.id.in_(in_group), CustomerGroup.dismissed_at.is_(None)))).all()
        return sorted(groups, key=lambda g: (g.name, g.id))  # in Python: the two databases collate Chinese differently

    async def find(self, query: str, scope: Scope) -> list[CustomerGroup]:
        """Current groups whose name contains `query` and whose owner the scope covers; exact names first."""
        stmt = (select(CustomerGroup)
                .where(CustomerGroup.name.like(f"%{_escape_like(query)}%", escape="\\"),
                       CustomerGroup.dismissed_at.is_(None))
                .order_by((CustomerGroup.name != query), CustomerGroup.name, CustomerGroup.id).limit(FIND_LIMIT))
        if not scope.everyone:
            stmt = stmt.where(CustomerGroup.owner_id.in_(scope.owner_ids))
        return sorted((await self.session.scalars(stmt)).all(), key=lambda g: (g.name != query, g.name, g.id))

    async def view(self, group: CustomerGroup) -> GroupView:
        """The group's current members: staff, then customers (with their CRM record when linked)."""
        members = (await self.session.scalars(
            select(CustomerGroupMember).where(CustomerGroupMember.group_id == group.id,
                                              CustomerGroupMember.left_at.is_(None))
            .order_by(CustomerGroupMember.joined_at, CustomerGroupMember.id))).all()
        external = [m for m in members if m.member_type == EXTERNAL_MEMBER]
        by_identity = dict((await self.session.execute(
            select(CustomerIdentity.external_id, Customer)
            .join(Customer, Customer.id == CustomerIdentity.customer_id)
            .where(CustomerIdentity.channel == CONTACT_CHANNEL,
                   CustomerIdentity.external_id.in_([m.member_id for m in external])))).all())
        unionids = [m.unionid for m in external if m.unionid and m.member_id not in by_identity]
        by_unionid = {c.unionid: c for c in (await self.session.scalars(
            select(Customer).where(Customer.unionid.in_(unionids)).order_by(Customer.id))).all()} if unionids else {}
        return GroupView(
            group=group,
            staff=[m for m in members if m.member_type == STAFF_MEMBER],
            customers=[MemberView(m, by_identity.get(m.member_id) or by_unionid.get(m.unionid)) for m in external])

    async def moves(self, scope: Scope, start: datetime, end: datetime) -> Moves:
        """Customers who joined and left the groups of the scope's reps in [start, end)."""
        owned = [] if scope.everyone else [CustomerGroup.owner_id.in_(scope.owner_ids)]

        async def count(column) -> int:
            return await self.session.scalar(
                select(func.count()).select_from(CustomerGroupMember)
                .join(CustomerGroup, CustomerGroup.id == CustomerGroupMember.group_id)
                .where(CustomerGroupMember.member_type == EXTERNAL_MEMBER, column >= start, column < end, *owned)) or 0

        return Moves(await count(CustomerGroupMember.joined_at), await count(CustomerGroupMember.left_at))


def _copy(row: CustomerGroupMember, member: GroupMemberProfile, *, joined_at: datetime | None) -> None:
    row.member_type, row.unionid = member.member_type, member.unionid or row.unionid
    row.name, row.group_nickname = member.name or row.name, member.group_nickname
    row.join_scene, row.invitor = member.join_scene, member.invitor
    row.joined_at, row.left_at = joined_at, None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
