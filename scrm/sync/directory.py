"""The directory sync: WeCom's departments and members into the staff table, roles decided again for
everyone, and who left.

`Directory` is what the full sync and the change_contact callbacks (scrm.ingest.directory_changes)
share: WeCom, the role map, and `on_departure`, the one place a departure sets things off.
`DirectorySync` is the full pass: department/list, every page of user/list_id, user/get for each
member (a few at a time), then the members WeCom no longer lists become inactive. It runs in one
process at a time (the `directory.sync` lease, crm_core.leases) and records each run in its sync state
(crm_core.sync_states, kind "directory"); on a fresh install's first start without being asked,
nightly (config/schedule.toml) and by hand (`scrm sync directory`).

Faults: every WeCom call goes through the retry protocol (scrm.retries: 45009/45033 wait, a busy or
unreachable WeCom backs off); a page that still fails ends the run before anyone is deactivated, and
a member that cannot be read is reported by id while the others go on (and is not taken for gone).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from config.roles import RoleMap
from config.settings import Settings
from connectors.wecom.errors import WeComError
from connectors.wecom.client import WeComClient
from connectors.wecom.profiles import department_profile, staff_profile
from crm_core import sync_states
from crm_core.db import utcnow
from crm_core.directory import DirectoryService, MemberChange, MemberTag
from crm_core.leases import LeaseService
from crm_core.models import Staff
from crm_core.staff import StaffProfile
from crm_core.sync_states import DONE, FAILED, RUNNING
from scheduler.runner import JobContext, JobFunc
from scrm.ingest.departures import request_departure_notice
from scrm.retries import backoff, with_retries

log = logging.getLogger(__name__)

LEASE = "directory.sync"
KIND = "directory"  # its sync state
LEASE_TTL_SECONDS = 60.0  # renewed every third of this while a sync runs
MEMBER_BATCH = 100  # members read and saved per transaction
LIST_PAGE_SIZE = 10_000  # user/list_id's largest page

Progress = Callable[[str, int, int | None], None]  # stage ("departments", "listing", "members"), done, total


class DirectoryApi(Protocol):
    """The WeCom calls the directory makes (connectors.wecom.client.WeComClient)."""

    async def list_departments(self) -> list[dict[str, Any]]: ...
    async def list_member_ids(self, *, cursor: str | None = None, limit: int = LIST_PAGE_SIZE) -> dict[str, Any]: ...
    async def list_tags(self) -> list[dict[str, Any]]: ...
    async def get_tag(self, tag_id: int) -> dict[str, Any]: ...
    async def get_user(self, userid: str) -> dict[str, Any]: ...


def role_map(settings: Settings) -> RoleMap:
    """The deployment's role map (SCRM_ROLES_FILE), or the default: leaders are managers, everyone else sales."""
    return RoleMap.from_file(settings.roles_file) if settings.roles_file else RoleMap()


def directory_for(settings: Settings, wecom: WeComClient) -> Directory:
    """The deployment's directory: its role map, and the 通讯录同步 app for listing members when configured."""
    contacts = settings.wecom.contacts_secret
    return Directory(wecom, role_map(settings), lister=wecom.with_secret(contacts) if contacts else None)


@dataclass
class Directory:
    wecom: DirectoryApi
    roles: RoleMap
    lister: DirectoryApi | None = None  # lists member ids (user/list_id) when the app itself may not

    async def refresh_member(self, session: AsyncSession, userid: str) -> MemberChange | None:
        """Read one member from user/get and apply it (create_user, update_user)."""
        return await self.apply(session, staff_profile(await self.wecom.get_user(userid)))

    async def refresh_tags(self, session: AsyncSession) -> int:
        """tag/list, then tag/get for each, applied whole (update_tag, and every full sync): the number
        of members whose tags changed."""
        tags = []
        for listed in await self.wecom.list_tags():
            detail = await self.wecom.get_tag(int(listed["tagid"]))
            tags.append(MemberTag(name=str(detail.get("tagname") or listed.get("tagname") or listed["tagid"]),
                                  userids=frozenset(str(u["userid"]) for u in detail.get("userlist") or []),
                                  department_ids=frozenset(int(d) for d in detail.get("partylist") or [])))
        return await DirectoryService(session, self.roles).apply_tags(tags)

    async def apply(self, session: AsyncSession, profile: StaffProfile, *,
                    since: datetime | None = None) -> MemberChange | None:
        """Apply a member's profile; a departure it reveals goes through `on_departure`."""
        change = await DirectoryService(session, self.roles).apply_member(profile, since=since)
        if change is not None and change.departed:
            await self.on_departure(session, change.staff)
        return change

    async def member_left(self, session: AsyncSession, userid: str) -> None:
        """delete_user: the member is gone from the directory."""
        staff = await DirectoryService(session, self.roles).member_left(userid)
        if staff is not None:
            await self.on_departure(session, staff)

    async def refresh_departments(self, session: AsyncSession) -> tuple[int, int]:
        """department/list, applied whole: (departments listed, departments removed)."""
        departments = [department_profile(d) for d in await self.wecom.list_departments()]
        return len(departments), await DirectoryService(session, self.roles).apply_departments(departments)

    async def on_departure(self, session: AsyncSession, staff: Staff) -> None:
        """A member left the company or was disabled, seen by a full sync, update_user or delete_user;
        called once per departure, inside the transaction that made them inactive. Their access ends
        with `Staff.active` itself; their managers' notice of the customers WeCom holds for a new owner
        is queued here and follows through the outbox (scrm.ingest.departures), so no WeCom call holds
        this transaction open or fails it."""
        await request_departure_notice(session, staff)


class SyncBusy(Exception):
    """Another process holds the directory sync's lease."""


@dataclass
class DirectoryReport:
    departments: int = 0
    departments_removed: int = 0
    members: int = 0
    role_changes: list[str] = field(default_factory=list)  # "userid: old -> new"
    departed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # userid -> why user/get did not answer
    newer: int = 0  # members a callback changed while the sync ran, kept as the callback left them
    tags_changed: int = 0  # members whose member tags (通讯录标签) changed
    tags_error: str = ""  # why the tags could not be read (they stay as they were)

    def summary(self) -> str:
        text = (f"{self.departments} department(s), {self.members} member(s), {len(self.departed)} departed, "
                f"{len(self.role_changes)} role change(s)")
        if self.failed:
            text += f"; could not read {', '.join(sorted(self.failed))}"
        return text


class DirectorySync:
    def __init__(self, directory: Directory, sessions: async_sessionmaker[AsyncSession], *,
                 page_size: int = LIST_PAGE_SIZE, concurrency: int = 4, attempts: int = 5,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                 lease_ttl: float = LEASE_TTL_SECONDS) -> None:
        self.directory, self.sessions = directory, sessions
        self.page_size, self.concurrency, self.attempts, self.sleep = page_size, concurrency, attempts, sleep
        self.lease_ttl = lease_ttl
        self.holder = uuid.uuid4().hex

    async def needed(self) -> bool:
        """True until a sync has finished once (a fresh install)."""
        async with self.sessions() as session:
            state = await sync_states.get(session, KIND)
        return state is None or state.completed_at is None

    async def run(self, progress: Progress | None = None) -> DirectoryReport:
        """One full sync; SyncBusy when another process is running one."""
        async with self.sessions() as session:
            taken = await LeaseService(session).acquire(LEASE, self.holder, ttl=self.lease_ttl)
            if taken:
                state = await sync_states.load(session, KIND)
                state.status, state.started_at, state.finished_at = RUNNING, utcnow(), None
            await session.commit()
        if not taken:
            raise SyncBusy("another process is syncing the directory")
        renewing = asyncio.create_task(self._keep_lease(), name="directory-sync lease")
        finished, report = False, DirectoryReport()
        try:
            await self._sync(report, progress or (lambda stage, done, total: None))
            finished = True
            return report
        finally:
            renewing.cancel()
            await self._end(report if finished else None)

    async def _end(self, report: DirectoryReport | None) -> None:
        """Record how the run ended, unless another process took the lease over meanwhile, and give the
        lease back; a run that failed (`report` None) leaves the last complete run's summary."""
        async with self.sessions() as session:
            leases = LeaseService(session)
            if await leases.renew(LEASE, self.holder, ttl=self.lease_ttl):
                state = await sync_states.load(session, KIND)
                state.status, state.finished_at = (DONE if report is not None else FAILED), utcnow()
                if report is not None:
                    state.completed_at, state.summary = state.finished_at, report.summary()[:2000]
                await leases.release(LEASE, self.holder)
            await session.commit()

    async def _sync(self, report: DirectoryReport, progress: Progress) -> None:
        started_at = utcnow()
        async with self.sessions() as session:
            report.departments, report.departments_removed = await with_retries(
                lambda: self.directory.refresh_departments(session), what="department/list",
                attempts=self.attempts, sleep=self.sleep)
            await session.commit()
        progress("departments", report.departments, report.departments)
        userids = await self._list_members(progress)
        for start in range(0, len(userids), MEMBER_BATCH):
            batch = userids[start:start + MEMBER_BATCH]
            profiles = await self._read_members(batch, report)
            async with self.sessions() as session:
                for profile in profiles:
                    change = await self.directory.apply(session, profile, since=started_at)
                    if change is None:
                        report.newer += 1
                        continue
                    report.members += 1
                    if change.departed:
                        report.departed.append(profile.userid)
                    if change.old_role and change.role_changed:
                        report.role_changes.append(f"{profile.userid}: {change.old_role} -> {change.staff.role}")
                await session.commit()
            progress("members", start + len(batch), len(userids))
        await self._sync_tags(report)
        async with self.sessions() as session:
            for staff in await DirectoryService(session, self.directory.roles).departed(set(userids), since=started_at):
                await self.directory.on_departure(session, staff)
                report.departed.append(staff.userid)
            await session.commit()

    async def _sync_tags(self, report: DirectoryReport) -> None:
        """Member tags after the members they name; tags WeCom will not give leave them as they were."""
        try:
            async with self.sessions() as session:
                report.tags_changed = await with_retries(lambda: self.directory.refresh_tags(session), what="tag/get",
                                                         attempts=self.attempts, sleep=self.sleep)
                await session.commit()
        except WeComError as exc:
            log.warning("directory sync could not read the member tags (%s); they stay as they were", exc)
            report.tags_error = str(exc)

    async def _list_members(self, progress: Progress) -> list[str]:
        """Every userid of user/list_id, in WeCom's order, each once (a member of two departments has two rows)."""
        userids: dict[str, None] = {}
        cursor: str | None = None
        seen: set[str] = set()
        pages = 0
        while True:
            lister = self.directory.lister or self.directory.wecom
            page = await with_retries(lambda: lister.list_member_ids(cursor=cursor, limit=self.page_size),
                                      what=f"user/list_id page {pages + 1}", attempts=self.attempts, sleep=self.sleep)
            pages += 1
            userids.update((str(row["userid"]), None) for row in page.get("dept_user") or [] if row.get("userid"))
            progress("listing", len(userids), None)
            cursor = page.get("next_cursor") or None
            if cursor is None:
                return list(userids)
            if cursor in seen:
                raise RuntimeError(f"user/list_id answered next_cursor {cursor!r} twice; the listing would never end")
            seen.add(cursor)

    async def _read_members(self, userids: list[str], report: DirectoryReport) -> list[StaffProfile]:
        """user/get for each, a few at once; a member that does not answer is reported, not dropped silently."""
        limit = asyncio.Semaphore(self.concurrency)

        async def read(userid: str) -> StaffProfile | None:
            async with limit:
                try:
                    user = await with_retries(lambda: self.directory.wecom.get_user(userid), what=f"user/get {userid}",
                                              attempts=self.attempts, sleep=self.sleep)
                    return staff_profile(user)
                except Exception as exc:
                    log.warning("directory sync could not read member %s: %s", userid, exc)
                    report.failed[userid] = str(exc)
                    return None

        return [p for p in await asyncio.gather(*(read(u) for u in userids)) if p is not None]

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            try:
                async with self.sessions() as session:
                    if not await LeaseService(session).renew(LEASE, self.holder, ttl=self.lease_ttl):
                        log.warning("the directory sync's lease was taken over by another process")
                    await session.commit()
            except Exception:
                log.warning("could not renew the directory sync's lease; retrying", exc_info=True)

    async def first_start(self, stopping: asyncio.Event) -> None:
        """A fresh install syncs the directory without being asked: until one sync has finished, try
        (another process may be at it: then wait for it), backing off while WeCom fails."""
        failures = 0
        while not stopping.is_set() and await self.needed():
            try:
                report = await self.run()
                log.info("first directory sync done: %s", report.summary())
                return
            except SyncBusy:
                wait = self.lease_ttl
            except Exception as exc:
                failures += 1
                wait = backoff(failures)
                log.warning("first directory sync failed (%s); trying again in %.0f s "
                            "(or run `scrm sync directory` to see why)", exc, wait)
            try:
                await asyncio.wait_for(stopping.wait(), timeout=wait)
            except TimeoutError:
                pass


def directory_sync_job(directory: Directory) -> JobFunc:
    """The nightly reconcile (config/schedule.toml `directory.sync`): catches what callbacks missed."""

    async def run(ctx: JobContext) -> str:
        try:
            return (await DirectorySync(directory, ctx.sessions).run()).summary()
        except SyncBusy:
            return "another process was syncing the directory; left to it"

    return run
