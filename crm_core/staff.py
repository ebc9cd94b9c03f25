"""Staff members as the CRM knows them; profiles are synced from the address book on first sight."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import utcnow
from crm_core.models import Staff
from crm_core.sql import insert_if_absent


@dataclass(frozen=True)
class StaffProfile:
    """What an address book tells us about an employee, free of any wire format."""

    userid: str
    name: str = ""
    department_ids: list[int] = field(default_factory=list)
    position: str = ""
    mobile: str = ""
    active: bool = True
    is_leader: bool = False


class StaffService:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def get_by_userid(self, userid: str) -> Staff | None:
        return await self.session.scalar(select(Staff).where(Staff.userid == userid))

    async def get_many_by_userid(self, userids: set[str]) -> list[Staff]:
        """The known staff among `userids`, in one query (a batch of messages from many reps)."""
        if not userids:
            return []
        return list((await self.session.scalars(select(Staff).where(Staff.userid.in_(sorted(userids))))).all())

    async def upsert(self, profile: StaffProfile, *, role: str | None = None) -> Staff:
        """Create or refresh a staff row; concurrent first sightings converge on one row."""
        await insert_if_absent(self.session, Staff, {"userid": profile.userid, "created_at": utcnow()}, ["userid"])
        staff = await self.session.scalar(select(Staff).where(Staff.userid == profile.userid))
        staff.name = profile.name or staff.name
        staff.department_ids = list(profile.department_ids)
        staff.position = profile.position
        staff.mobile = profile.mobile or staff.mobile  # apps created since 2022-06-20 are not told it
        staff.active = profile.active
        if role:
            staff.role = role
        staff.synced_at = utcnow()
        return staff

    async def list(self, *, after_id: int = 0, limit: int = 100) -> list[Staff]:
        stmt = select(Staff).where(Staff.id > after_id).order_by(Staff.id).limit(limit)
        return list((await self.session.scalars(stmt)).all())

    async def count(self) -> int:
        return await self.session.scalar(select(func.count()).select_from(Staff)) or 0


async def find_staff(session: AsyncSession, who: str) -> list[Staff]:
    """Staff by WeCom userid or display name (names can repeat, so a list)."""
    who = who.strip()
    if not who:
        return []
    by_userid = await session.scalar(select(Staff).where(Staff.userid == who))
    if by_userid is not None:
        return [by_userid]
    return list((await session.scalars(select(Staff).where(Staff.name == who).order_by(Staff.id).limit(10))).all())
