"""The full customer-group sync: every group WeCom lists (externalcontact/groupchat/list, cursor
pages), each read with groupchat/get and stored through crm_core.groups.

Each group is stored as soon as it is read, in turn with the callbacks about it
(crm_core.sql.take_turns). Resumable: after each page the next page's cursor is committed, so a run
killed halfway continues at that page (its sync state, crm_core.sync_states kind "groups"). Two
syncs at once do the work once: the run's lease (crm_core.leases) lets one work and tells the other
it is already running. A page that fails is retried by the one retry protocol (scrm.retries) and
never skipped; a group that cannot be read is reported by its chat_id while the others continue,
and then no group is taken for gone on the strength of that run. Only a complete run marks the
groups WeCom no longer lists as gone.
https://developer.work.weixin.qq.com/document/path/92120 (groupchat/list),
https://developer.work.weixin.qq.com/document/path/92122 (groupchat/get)
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from connectors.wecom.errors import GroupChatGoneError
from connectors.wecom.profiles import group_profile
from crm_core.db import utcnow
from crm_core import sync_states
from crm_core.groups import GroupService
from crm_core.leases import LeaseService
from crm_core.models import Staff
from crm_core.sql import take_turns
from crm_core.sync_states import DONE, RUNNING
from scheduler.runner import JobContext, JobFunc
from scrm.retries import with_retries

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # groups a page (WeCom allows 1–1000): each page is one short transaction
MAX_ATTEMPTS = 5  # per WeCom call, then the run stops (a page) or reports the group (a detail)
KIND = "groups"  # its sync state
LEASE_NAME = "groups.sync"
LEASE = timedelta(minutes=10)  # renewed every page; a crashed run's lease runs out, the next run resumes

EnsureStaff = Callable[[AsyncSession, str], Awaitable[Staff]]


class GroupApi(Protocol):
    async def groupchat_list(self, *, cursor: str | None = None, limit: int = 1000, status_filter: int = 0,
                             owners: list[str] | None = None) -> dict[str, Any]: ...
    async def groupchat_get(self, chat_id: str, *, need_name: bool = True) -> dict[str, Any]: ...


@dataclass
class GroupSyncReport:
    groups: int = 0
    joined: int = 0
    left: int = 0
    gone: int = 0
    resumed: bool = False
    busy: bool = False  # another sync holds the run; this one did nothing
    failed: list[tuple[str, str]] = field(default_factory=list)  # (chat_id, error)

    def summary(self) -> str:
        if self.busy:
            return "another group sync is running; it will finish the work"
        text = (f"{self.groups} group(s) synced{' (resumed)' if self.resumed else ''}: "
                f"{self.joined} customer(s) joined, {self.left} left, {self.gone} group(s) gone")
        if self.failed:
            text += f"; {len(self.failed)} group(s) could not be read: " + ", ".join(c for c, _ in self.failed)
        return text


async def sync_groups(sessions: async_sessionmaker[AsyncSession], wecom: GroupApi, ensure_staff: EnsureStaff, *,
                      clock: Callable[[], datetime] = utcnow, page_size: int = PAGE_SIZE,
                      sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                      progress: Callable[[GroupSyncReport], None] | None = None) -> GroupSyncReport:
    """Bring every customer group up to date with WeCom, from where the last run stopped."""
    report, holder = GroupSyncReport(), uuid.uuid4().hex
    async with sessions() as session:
        at = clock()
        if not await LeaseService(session).acquire(LEASE_NAME, holder, ttl=LEASE.total_seconds(), now=at):
            report.busy = True
            return report
        run = await sync_states.load(session, KIND)
        if run.status != RUNNING:  # a run that finished starts over; one that did not resumes
            run.status, run.cursor, run.started_at, run.finished_at = RUNNING, "", at, None
        report.resumed, cursor, run_started_at = bool(run.cursor), run.cursor or None, run.started_at
        await session.commit()
    try:
        while True:
            page = await with_retries(lambda: wecom.groupchat_list(cursor=cursor, limit=page_size),
                                      what="groupchat/list", attempts=MAX_ATTEMPTS, sleep=sleep)
            for item in page.get("group_chat_list") or []:
                await _sync_one(sessions, wecom, ensure_staff, item, report, clock=clock, sleep=sleep)
            cursor = page.get("next_cursor") or None
            async with sessions() as session:
                groups, now = GroupService(session), clock()
                leases = LeaseService(session)
                if not await leases.renew(LEASE_NAME, holder, ttl=LEASE.total_seconds(), now=now):
                    raise _LeaseLost()
                run = await sync_states.load(session, KIND)
                run.cursor = cursor or ""
                if cursor is None:
                    if not report.failed:
                        report.gone += await groups.dismiss_unseen(run_started_at, at=now)
                    run.status, run.finished_at, run.completed_at, run.summary = DONE, now, now, report.summary()
                    await leases.release(LEASE_NAME, holder)
                await session.commit()
            if progress is not None:
                progress(report)
            if cursor is None:
                return report
    except _LeaseLost:
        log.warning("the group sync lost its lease to another run; leaving the work to it")
        report.busy = True
        return report
    except BaseException:
        async with sessions() as session:  # the cursor stays: the next run resumes at the failed page
            await LeaseService(session).release(LEASE_NAME, holder)
            await session.commit()
        raise


async def _sync_one(sessions: async_sessionmaker[AsyncSession], wecom: GroupApi, ensure_staff: EnsureStaff,
                    item: dict[str, Any], report: GroupSyncReport, *, clock: Callable[[], datetime],
                    sleep: Callable[[float], Awaitable[Any]]) -> None:
    """Read one group of groupchat/list's page and store it in its own transaction, in turn with the
    callbacks about it.

    A change_external_chat callback reads the group too (scrm.ingest.customer_groups); read before
    it and stored after it, the sync's older read would bring back the name or owner it had just
    changed. Taking the group's turn before the read makes the later commit the newer read."""
    chat_id = str(item.get("chat_id", ""))
    async with sessions() as session:
        await take_turns(session, f"wecom_group:{chat_id}")
        groups = GroupService(session)
        try:
            detail = await with_retries(lambda: wecom.groupchat_get(chat_id), what=f"groupchat/get {chat_id}",
                                        attempts=MAX_ATTEMPTS, sleep=sleep)
        except GroupChatGoneError:  # dismissed between the list and the read
            report.gone += await groups.dismiss(chat_id, at=clock())
        except Exception as exc:
            log.warning("group %s could not be read: %s", chat_id, exc)
            report.failed.append((chat_id, str(exc)))
            return
        else:
            profile = group_profile(detail["group_chat"])
            owner = await ensure_staff(session, profile.owner_userid) if profile.owner_userid else None
            moves = await groups.apply(profile, owner, at=clock(), status=int(item.get("status", 0) or 0))
            report.groups, report.joined, report.left = (report.groups + 1, report.joined + moves.joined,
                                                         report.left + moves.left)
        await session.commit()


class _LeaseLost(Exception):
    """Another run holds the group sync now (ours paused past its lease)."""


async def sync_groups_on_first_start(sessions: async_sessionmaker[AsyncSession], wecom: GroupApi,
                                     ensure_staff: EnsureStaff) -> GroupSyncReport | None:
    """For the first-start runner, after the customers: bring in the company's customer groups unless
    a group sync has already completed (then the nightly job keeps them current)."""
    async with sessions() as session:
        completed = (await sync_states.load(session, KIND)).completed_at
        await session.commit()
    if completed is not None:
        return None
    return await sync_groups(sessions, wecom, ensure_staff)


def make_group_sync_job(wecom: GroupApi, ensure_staff: Callable[[JobContext], EnsureStaff]) -> JobFunc:
    """The nightly `groups.sync` job; `ensure_staff` gives the job's way to know a group's owner."""

    async def sync_customer_groups(ctx: JobContext) -> str:
        return (await sync_groups(ctx.sessions, wecom, ensure_staff(ctx))).summary()

    return sync_customer_groups
