"""The customer sync: a company's existing WeCom external contacts become customers.

    get_corp_tag_list        the tag catalogue, so tag ids on contacts read as names
    get_follow_user_list     the reps with 客户联系
    batch/get_by_user        their contacts, ≤ 100 reps a call and ≤ 100 entries a page, by cursor

Resumable: each page is written together with the cursor that follows it, in one transaction, so
a run killed at any point continues from the last page it wrote and writes nothing twice. WeCom
throttling (45009, 45033) and outages are waited out by the one retry protocol (scrm.retries); a
page that keeps failing stops the run with its cursor kept, and the next run retries that page,
never skipping it. A contact that fails to load is reported with its id; the rest go on. Customers
are never deleted: a run that paged every rep to the end ends only the follower relations WeCom no
longer lists (deletions whose callbacks were missed). Two runs at once: the second finds the lease
taken (crm_core.leases) and does nothing; where a run stands is its sync state (crm_core.sync_states).

It runs on a fresh install's first start (`sync_on_first_start`), nightly (`make_customer_sync_job`)
and by hand (`scrm sync customers`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from config.roles import RoleMap
from connectors.wecom.client import BATCH_LIMIT_MAX, BATCH_USERIDS_MAX, WeComClient
from connectors.wecom.errors import InvalidUserError
from connectors.wecom.inbound import EXTERNAL_CHANNEL
from connectors.wecom.profiles import staff_profile, synced_contact, tag_groups
from crm_core import sync_states
from crm_core.corp_tags import CorpTagService
from crm_core.customer_sync import CustomerSync, PageOutcome, Rep, SyncedContact
from crm_core.db import utcnow
from crm_core.leases import LeaseService
from crm_core.models import Staff
from crm_core.staff import StaffProfile, StaffService
from crm_core.sync_states import DONE, FAILED, RUNNING, SyncState
from scheduler.runner import JobContext, JobFunc
from scrm.retries import decide, is_outage

log = logging.getLogger(__name__)
T = TypeVar("T")

KIND = "customers"
LEASE_NAME = "customers.sync"
LEASE = timedelta(minutes=2)  # renewed with every page; a dead run's lease runs out this long after its last page
MAX_ATTEMPTS = 8  # failed attempts at one WeCom call before the run stops (its cursor kept)
MAX_WAITS = 60  # outage waits at one call (they use no attempt) before the run stops all the same


@dataclass(frozen=True)
class Progress:
    """Where a run stands, after each page."""

    batch: int  # 1-based slice of ≤ 100 reps
    batches: int
    pages: int
    contacts: int  # follow entries written (a contact two reps share counts twice)
    created: int
    failed: int
    resumed: bool


@dataclass
class SyncReport:
    status: str  # done | failed | busy (another run holds the lease)
    contacts: int = 0
    created: int = 0
    pages: int = 0
    failed_count: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    ended: int = 0  # follower relations WeCom no longer lists
    resumed: bool = False
    error: str = ""

    def summary(self) -> str:
        if self.status == "busy":
            return "customer sync already running elsewhere; nothing done"
        text = (f"{self.contacts} contact(s) in {self.pages} page(s), {self.created} new customer(s), "
                f"{self.failed_count} failed, {self.ended} relation(s) ended")
        return f"{text}; stopped: {self.error}" if self.status == FAILED else text


class CustomerSyncRun:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], wecom: WeComClient, *,
                 on_progress: Callable[[Progress], None] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 lease: timedelta = LEASE, page_limit: int = BATCH_LIMIT_MAX,
                 clock: Callable[[], datetime] = utcnow, roles: RoleMap | None = None):
        self.sessions, self.wecom, self.roles = sessions, wecom, roles or RoleMap()
        self.on_progress, self.sleep, self.lease, self.page_limit, self.clock = on_progress, sleep, lease, page_limit, clock
        self.owner = uuid.uuid4().hex

    async def run(self) -> SyncReport:
        async with self.sessions() as session:
            taken = await LeaseService(session).acquire(LEASE_NAME, self.owner, ttl=self.lease.total_seconds(),
                                                        now=self.clock())
            state = await sync_states.load(session, KIND) if taken else None
            await session.commit()
        if state is None:
            return SyncReport("busy")
        resumed = state.status in (RUNNING, FAILED)
        try:
            tag_names = await self._refresh_tags()
            if not resumed:
                state = await self._start(await self._call(self.wecom.get_follow_user_list))
            reps = await self._reps(state.userids)
            state = await self._page_all(state, reps, tag_names, resumed)
            return await self._finish(state, reps, resumed)
        except _LeaseLost:
            log.warning("customer sync lost its lease to another run; stopping")
            return SyncReport("busy", resumed=resumed)
        except Exception as exc:
            log.warning("customer sync stopped (the next run resumes from the kept cursor): %s", exc)
            return await self._stopped(exc, resumed)

    # -- steps ------------------------------------------------------------------------------

    async def _refresh_tags(self) -> dict[str, str]:
        """The whole catalogue, every run: a tag renamed while no callback reached us reads right."""
        groups, _, _ = tag_groups(await self._call(self.wecom.get_corp_tag_list))
        async with self.sessions() as session:
            tags = CorpTagService(session)
            await tags.replace_all(groups, at=self.clock())
            names = await tags.names()
            await session.commit()
        return names

    async def _start(self, userids: list[str]) -> SyncState:
        """A fresh run over the reps WeCom lists now; their staff rows exist before any page."""
        await self._ensure_staff(userids)
        async with self.sessions() as session:
            state = await self._owned_state(session)
            state.status, state.run_id, state.userids = RUNNING, uuid.uuid4().hex, list(dict.fromkeys(userids))
            state.batch, state.cursor, state.pages, state.contacts, state.created = 0, "", 0, 0, 0
            state.failed_count, state.failed, state.error = 0, [], ""
            state.started_at, state.finished_at = self.clock(), None
            await session.commit()
        return state

    async def _ensure_staff(self, userids: list[str]) -> None:
        """Reps the directory sync has not brought in yet are read from WeCom (user/get) once, with
        the role the deployment's role map gives them (as when a rep is first seen in a callback)."""
        async with self.sessions() as session:
            known = {s.userid for s in await StaffService(session).get_many_by_userid(set(userids))
                     if s.synced_at is not None}
        for userid in (u for u in userids if u not in known):
            try:
                profile = staff_profile(await self._call(lambda: self.wecom.get_user(userid)))
            except InvalidUserError:
                log.warning("user/get does not know %s; keeping a bare staff record", userid)
                profile = StaffProfile(userid=userid, active=False)
            role = self.roles.role_for(profile.userid, profile.department_ids, is_leader=profile.is_leader)
            async with self.sessions() as session:
                await StaffService(session).upsert(profile, role=role)
                await session.commit()

    async def _reps(self, userids: list[str]) -> dict[str, Rep]:
        async with self.sessions() as session:
            rows = (await session.execute(select(Staff.id, Staff.userid, Staff.active)
                                          .where(Staff.userid.in_(list(userids))))).all()
        return {userid: Rep(id, userid, active) for id, userid, active in rows}

    async def _page_all(self, state: SyncState, reps: dict[str, Rep], tag_names: dict[str, str],
                        resumed: bool) -> SyncState:
        userids = [u for u in state.userids if u in reps]
        batches = max(1, -(-len(userids) // BATCH_USERIDS_MAX))
        while state.batch < batches and userids:
            chunk = userids[state.batch * BATCH_USERIDS_MAX:(state.batch + 1) * BATCH_USERIDS_MAX]
            cursor = state.cursor
            page = await self._call(lambda: self.wecom.batch_get_by_user(chunk, cursor=cursor, limit=self.page_limit))
            entries, unreadable = _entries(page)
            await self._learn_tags(entries, tag_names)
            next_cursor = str(page.get("next_cursor") or "")
            if next_cursor and next_cursor == cursor:
                raise RuntimeError(f"batch/get_by_user answered the cursor it was given ({cursor!r})")
            state = await self._write_page(entries, unreadable, reps, tag_names, next_cursor)
            if self.on_progress is not None:
                self.on_progress(Progress(min(state.batch + 1, batches), batches, state.pages, state.contacts,
                                          state.created, state.failed_count, resumed))
        return state

    async def _learn_tags(self, entries: list[SyncedContact], tag_names: dict[str, str]) -> None:
        """Tag ids the catalogue does not know yet (created since it was read) are asked for once."""
        unknown = sorted({t for e in entries for t in e.follower.tag_ids} - tag_names.keys())
        if not unknown:
            return
        groups, _, _ = tag_groups(await self._call(lambda: self.wecom.get_corp_tag_list(tag_ids=unknown)))
        async with self.sessions() as session:
            await CorpTagService(session).upsert(groups, at=self.clock())
            await session.commit()
        tag_names.update({t.tag_id: t.name for g in groups for t in g.tags})

    async def _write_page(self, entries: list[SyncedContact], unreadable: list[tuple[str, str]],
                          reps: dict[str, Rep], tag_names: dict[str, str], next_cursor: str) -> SyncState:
        """The page and the cursor after it, in one transaction. A page the database refuses as a
        whole is written again contact by contact, so only the contacts at fault are reported."""
        for isolated in (False, True):
            try:
                async with self.sessions() as session:
                    now = self.clock()
                    sync = CustomerSync(session, channel=EXTERNAL_CHANNEL, reps=reps, tag_names=tag_names)
                    outcome = await (sync.apply_isolated if isolated else sync.apply_page)(entries, at=now)
                    state = await self._owned_state(session)
                    self._advance(state, outcome, unreadable, next_cursor)
                    await session.commit()
                    return state
            except _LeaseLost:
                raise
            except Exception as exc:
                if isolated or is_outage(exc):
                    raise
                log.warning("customer sync page failed as a whole (%s); writing it contact by contact", exc)
        raise AssertionError("unreachable")

    def _advance(self, state: SyncState, outcome: PageOutcome, unreadable: list[tuple[str, str]],
                 next_cursor: str) -> None:
        state.pages += 1
        state.contacts += outcome.entries - len(outcome.failed)
        state.created += outcome.created
        sync_states.record_failures(state, [*unreadable, *outcome.failed])
        for external_userid, error in [*unreadable, *outcome.failed]:
            log.warning("customer sync: contact %s not loaded: %s", external_userid or "(no id)", error)
        if next_cursor:
            state.cursor = next_cursor
        else:
            state.batch, state.cursor = state.batch + 1, ""

    async def _finish(self, state: SyncState, reps: dict[str, Rep], resumed: bool) -> SyncReport:
        async with self.sessions() as session:
            state = await self._owned_state(session)
            ended = 0
            if state.failed_count <= len(state.failed) and state.started_at is not None:
                # Every page was read; what the run did not see is over in WeCom. Only when every failed
                # contact is known by id, so none of them is mistaken for a deletion.
                ended = await CustomerSync(session, channel=EXTERNAL_CHANNEL, reps=reps, tag_names={}) \
                    .end_unseen_relations([r.id for r in reps.values()], run_started_at=state.started_at, at=self.clock(),
                                          keep_external_ids=[f["id"] for f in state.failed if f.get("id")])
            report = SyncReport(DONE, state.contacts, state.created, state.pages, state.failed_count,
                                list(state.failed), ended, resumed)
            state.status, state.finished_at, state.completed_at = DONE, self.clock(), self.clock()
            state.summary, state.error = report.summary(), ""
            await LeaseService(session).release(LEASE_NAME, self.owner)
            await session.commit()
        log.info("customer sync done: %s", report.summary())
        return report

    async def _stopped(self, exc: Exception, resumed: bool) -> SyncReport:
        """The run cannot go on now: keep its cursor and say why; the next run retries that page."""
        async with self.sessions() as session:
            report = SyncReport(FAILED, resumed=resumed, error=str(exc)[:500])
            leases = LeaseService(session)
            if await leases.renew(LEASE_NAME, self.owner, ttl=self.lease.total_seconds(), now=self.clock()):
                state = await sync_states.load(session, KIND)
                if state.status == RUNNING:
                    state.status = FAILED
                state.error, state.finished_at = report.error, self.clock()
                report.contacts, report.created, report.pages = state.contacts, state.created, state.pages
                report.failed_count, report.failed = state.failed_count, list(state.failed)
                await leases.release(LEASE_NAME, self.owner)
            await session.commit()
        return report

    # -- plumbing ---------------------------------------------------------------------------

    async def _owned_state(self, session: AsyncSession) -> SyncState:
        """The state row, after renewing our lease in the same transaction; _LeaseLost when another run
        took it over."""
        if not await LeaseService(session).renew(LEASE_NAME, self.owner, ttl=self.lease.total_seconds(), now=self.clock()):
            raise _LeaseLost()
        return await session.get(SyncState, KIND, populate_existing=True)

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        """One WeCom call, retried as scrm.retries decides (45009/45033 after WeCom's interval)."""
        failures = waits = 0
        while True:
            try:
                return await call()
            except Exception as exc:
                retry = decide(exc, failures + 1)
                failures += int(retry.uses_attempt)
                waits += int(not retry.uses_attempt)
                if retry.gives_up or failures >= MAX_ATTEMPTS or waits >= MAX_WAITS:
                    raise
                log.info("customer sync: %s; trying again in %.0f s", exc, retry.after)
                await self.sleep(retry.after)


class _LeaseLost(Exception):
    """Another run holds the sync now (ours paused past its lease)."""


def _entries(page: dict[str, Any]) -> tuple[list[SyncedContact], list[tuple[str, str]]]:
    """The page's follow entries; one that cannot be read is reported with its id, the rest go on."""
    entries: list[SyncedContact] = []
    unreadable: list[tuple[str, str]] = []
    for raw in page.get("external_contact_list") or []:
        try:
            entries.append(synced_contact(raw))
        except (TypeError, ValueError, AttributeError) as exc:
            external = raw.get("external_contact") if isinstance(raw, dict) else None
            unreadable.append((str((external or {}).get("external_userid", "")) if isinstance(external, dict) else "",
                               f"unreadable follow entry: {exc}"))
    return entries, unreadable


async def sync_on_first_start(sessions: async_sessionmaker[AsyncSession], wecom: WeComClient,
                              **options: Any) -> SyncReport | None:
    """For the first-start runner, after the directory sync: bring in the company's existing
    customers unless a customer sync has already completed (then the nightly job keeps them current).
    A run killed during the first start is resumed by the next start."""
    async with sessions() as session:
        state = await sync_states.get(session, KIND)
    if state is not None and state.completed_at is not None:
        return None
    return await CustomerSyncRun(sessions, wecom, **options).run()


def make_customer_sync_job(wecom: WeComClient, roles: RoleMap | None = None) -> JobFunc:
    """The nightly reconcile: a full run that also finds contacts whose callbacks were missed."""

    async def customer_sync(ctx: JobContext) -> str:
        report = await CustomerSyncRun(ctx.sessions, wecom, roles=roles).run()
        if report.status == FAILED:
            raise RuntimeError(report.summary())
        return report.summary()

    return customer_sync
