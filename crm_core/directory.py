"""The company's address book (WeCom 通讯录) as the CRM keeps it: departments, members, their roles,
and who left.

WeCom is the record: every member change arrives here as a profile (a full sync, or a change_contact
callback followed by user/get), and the member's role is decided again from it with the role map
(config/roles.py), so a demoted manager loses the manager's view with the change that demoted them.
A member who left or was disabled becomes inactive, which closes chat, API tokens and every view at
once (the dispatcher, crm_core.api_tokens and crm_core.scope all read `Staff.active`/`Staff.role`).

Only a complete answer from WeCom takes anyone away: `departed` needs the whole member list, and a
member changed by a callback while a full sync was under way keeps the callback's (newer) state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from config.roles import RoleMap
from crm_core.audit import AuditService
from crm_core.db import utcnow
from crm_core.models import Department, Staff
from crm_core.staff import StaffProfile, StaffService

ACTOR = "wecom"  # who the audit log names for changes the directory made


@dataclass(frozen=True)
class DepartmentProfile:
    """One department of department/list, free of the wire format."""

    id: int
    name: str
    parent_id: int | None = None


@dataclass(frozen=True)
class MemberTag:
    """One member tag (通讯录标签) of tag/get: the members it names and the departments it covers."""

    name: str
    userids: frozenset[str] = frozenset()
    department_ids: frozenset[int] = frozenset()

    def covers(self, staff: Staff) -> bool:
        return staff.userid in self.userids or bool(self.department_ids & set(staff.department_ids or []))


@dataclass(frozen=True)
class MemberChange:
    staff: Staff
    departed: bool  # was active before this change, is not now
    old_role: str

    @property
    def role_changed(self) -> bool:
        return self.staff.role != self.old_role


class DirectoryService:
    def __init__(self, session: AsyncSession, roles: RoleMap):
        self.session = session
        self.roles = roles

    async def apply_member(self, profile: StaffProfile, *, since: datetime | None = None) -> MemberChange | None:
        """Create or refresh a member with the role the directory gives them. With `since` (when a
        full sync started), a member written after it (by a callback) is left alone: None."""
        staff = await StaffService(self.session).get_by_userid(profile.userid)
        if staff is not None and since is not None and staff.synced_at is not None and staff.synced_at > since:
            return None
        was_active = staff is not None and staff.active
        old_role = staff.role if staff is not None else ""
        role = self.roles.role_for(profile.userid, profile.department_ids, is_leader=profile.is_leader)
        staff = await StaffService(self.session).upsert(profile, role=role)
        change = MemberChange(staff, departed=was_active and not staff.active, old_role=old_role)
        audit = AuditService(self.session)
        if old_role and change.role_changed:
            audit.record(actor=ACTOR, action="staff.role", detail=f"{staff.userid}: {old_role} -> {staff.role}")
        if change.departed:
            audit.record(actor=ACTOR, action="staff.departed", detail=f"{staff.userid}: disabled in WeCom")
        return change

    async def member_left(self, userid: str) -> Staff | None:
        """delete_user: the member is gone from the directory. The staff row stays (customers, notes and
        history name them) but is inactive; returns it when this made them inactive."""
        staff = await StaffService(self.session).get_by_userid(userid)
        if staff is None:
            return None
        staff.synced_at = utcnow()
        if not staff.active:
            return None
        staff.active = False
        AuditService(self.session).record(actor=ACTOR, action="staff.departed", detail=f"{userid}: left the directory")
        return staff

    async def rename(self, old_userid: str, new_userid: str) -> None:
        """update_user with NewUserID: the admin changed the member's userid; their history follows."""
        if old_userid == new_userid or await StaffService(self.session).get_by_userid(new_userid) is not None:
            return
        await self.session.execute(update(Staff).where(Staff.userid == old_userid).values(userid=new_userid))
        AuditService(self.session).record(actor=ACTOR, action="staff.renamed", detail=f"{old_userid} -> {new_userid}")

    async def departed(self, listed: set[str], *, since: datetime) -> list[Staff]:
        """After a complete member list: everyone active it did not name has left. Members a callback
        wrote after `since` are newer than the list and stay as they are."""
        if not listed:
            raise ValueError("an empty member list cannot tell who left; the app's visible range may be empty")
        rows = (await self.session.scalars(select(Staff).where(Staff.active.is_(True)).order_by(Staff.id))).all()
        gone = [s for s in rows if s.userid not in listed and (s.synced_at is None or s.synced_at <= since)]
        audit = AuditService(self.session)
        for staff in gone:
            staff.active = False
            staff.synced_at = utcnow()
            audit.record(actor=ACTOR, action="staff.departed", detail=f"{staff.userid}: no longer in the directory")
        return gone

    async def apply_tags(self, tags: list[MemberTag]) -> int:
        """Every tag WeCom lists, whole: each member's tags become exactly those that name them or one of
        their departments (ticket routing picks agents by tag); returns how many members' tags changed."""
        changed = 0
        for staff in (await self.session.scalars(select(Staff).order_by(Staff.id))).all():
            names = sorted({tag.name for tag in tags if tag.covers(staff)})
            if names != list(staff.tags or []):
                staff.tags = names
                changed += 1
        return changed

    async def apply_departments(self, departments: list[DepartmentProfile]) -> int:
        """department/list's complete answer: every department as listed, the ones it no longer lists
        removed; returns how many were removed."""
        now = utcnow()
        known = {d.id: d for d in (await self.session.scalars(select(Department))).all()}
        for profile in departments:
            row = known.get(profile.id)
            if row is None:
                row = Department(id=profile.id)
                self.session.add(row)
            row.name, row.parent_id, row.synced_at = profile.name or str(profile.id), profile.parent_id, now
        gone = set(known) - {d.id for d in departments}
        if gone:
            await self.session.execute(delete(Department).where(Department.id.in_(sorted(gone))))
        return len(gone)
