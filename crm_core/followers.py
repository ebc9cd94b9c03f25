"""Which reps follow a customer in WeCom, each with what they recorded (remark, mobiles, corp tags).

WeCom keeps one relation per (rep, external contact); the CRM keeps them here so a contact two reps
share is one customer, a departed rep's contacts can be handed over, and tags can be written back to
the right rep's contact. Profiles come from the connector free of any wire format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from crm_core.db import utcnow
from crm_core.models import Customer, CustomerFollower, Staff
from crm_core.sql import insert_if_absent


@dataclass(frozen=True)
class FollowerProfile:
    """What one rep recorded about one contact (WeCom follow_user / follow_info)."""

    userid: str
    remark: str = ""
    description: str = ""
    remark_corp_name: str = ""
    remark_mobiles: list[str] = field(default_factory=list)
    tag_ids: list[str] = field(default_factory=list)
    added_at: datetime | None = None
    add_way: int = 0
    state: str = ""
    oper_userid: str = ""


def refresh(follower: CustomerFollower, profile: FollowerProfile, now: datetime) -> None:
    """What WeCom says now about the relation; the add time, way and state are kept when it omits them."""
    follower.remark = profile.remark
    follower.description = profile.description
    follower.remark_corp_name = profile.remark_corp_name
    follower.remark_mobiles = list(profile.remark_mobiles)
    follower.tag_ids = list(dict.fromkeys(profile.tag_ids))
    follower.added_at = profile.added_at or follower.added_at
    follower.add_way = profile.add_way or follower.add_way
    follower.state = profile.state or follower.state
    follower.oper_userid = profile.oper_userid or follower.oper_userid
    follower.removed_at = None
    follower.synced_at = now


def choose_owner(owner: tuple[str, bool] | None, following: Mapping[str, float]) -> str | None:
    """Who owns a customer, by userid: the owner ((userid, active) or None) while active and still
    following; otherwise the rep who added them first (`following`: userid -> add time; ties by
    userid). Decided from WeCom's follower list, not from which event was handled first, so two
    reps' add events processed at once, and the sync, agree. None when nobody follows."""
    if not following:
        return None
    if owner is not None and owner[1] and owner[0] in following:
        return owner[0]
    return min(following, key=lambda userid: (following[userid], userid))


class FollowerService:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def upsert(self, customer: Customer, staff: Staff, profile: FollowerProfile, *,
                     at: datetime | None = None) -> CustomerFollower:
        """Create or refresh the relation; a rep who added the contact back follows it again.
        Concurrent first sightings converge on one row (the unique constraint decides)."""
        now = at or utcnow()
        await insert_if_absent(self.session, CustomerFollower,
                               {"customer_id": customer.id, "staff_id": staff.id, "remark_mobiles": [],
                                "tag_ids": [], "synced_at": now}, ["customer_id", "staff_id"])
        follower = await self.get(customer.id, staff.id)
        assert follower is not None
        refresh(follower, profile, now)
        return follower

    async def get(self, customer_id: int, staff_id: int) -> CustomerFollower | None:
        return await self.session.scalar(select(CustomerFollower).where(
            CustomerFollower.customer_id == customer_id, CustomerFollower.staff_id == staff_id))

    async def remove(self, customer: Customer, staff: Staff, *, at: datetime) -> bool:
        """The rep and the contact are no longer connected (either side deleted the other).
        False when there was no current relation to end."""
        follower = await self.get(customer.id, staff.id)
        if follower is None or follower.removed_at is not None:
            return False
        follower.removed_at = at
        return True

    async def of_customer(self, customer_id: int) -> list[CustomerFollower]:
        """The customer's current followers (with their staff rows), earliest added first."""
        rows = await self.session.scalars(
            select(CustomerFollower).options(selectinload(CustomerFollower.staff))
            .where(CustomerFollower.customer_id == customer_id, CustomerFollower.removed_at.is_(None))
            .order_by(CustomerFollower.added_at.is_(None), CustomerFollower.added_at, CustomerFollower.id))
        return list(rows.all())
