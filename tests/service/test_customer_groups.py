"""客户群 through the real entry points: the nightly `groups.sync` job, `scrm sync groups`,
change_external_chat callbacks, the chat (`查 群 …`, the customer card) and the manager digest,
against the simulator's sample company (three groups: 张伟's 华东客户交流群 with 赵磊, 孙丽 and 钱先生,
who is not a contact; 李娜's 绿源采购对接群 with 吴敏; 刘洋's 启明教育项目群 with 罗燕 and 张伟)."""

from __future__ import annotations

import asyncio
from copy import deepcopy
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from connectors.wecom.simulator import groups as sim_groups
from crm_core.db import utcnow
from crm_core.group_models import CustomerGroup, CustomerGroupMember
from crm_core.models import OutboxItem, Staff
from scheduler.digests import send_daily_digests
from scheduler.runner import JobContext
from scrm import keys
from scrm.cli import main as cli
from scrm.app import service_jobs
from scrm.ingest.context import IngestContext
from scrm.sync.groups import LEASE, sync_groups
from tests.support.chat import Chat
from tests.support.service import external_id, use_service_env

EAST = "wrDemoEastChina00000000000000001"
LVYUAN = "wrDemoLvYuan000000000000000000002"
QIAN = "wmDemoQianSheng000000000000000009"


async def nightly_sync(chat: Chat) -> str:
    """The scheduler's groups.sync job, as `scrm serve` builds it."""
    app, tz = chat.service.app, chat.service.settings.tz
    job = service_jobs(app[keys.WECOM], chat.service.settings)["groups.sync"]
    return await job(JobContext(app[keys.SESSIONS], utcnow().astimezone(tz), tz))


async def direct_sync(chat: Chat, **options):
    app = chat.service.app
    staff = IngestContext(wecom=app[keys.WECOM], timezone=chat.service.settings.tz).staff
    return await sync_groups(app[keys.SESSIONS], options.pop("wecom", app[keys.WECOM]), staff,
                             sleep=options.pop("sleep", _no_sleep), **options)


async def _no_sleep(seconds: float) -> None:
    return None


async def members(chat: Chat, chat_id: str) -> dict[str, bool]:
    """member_id -> still in the group, as stored."""
    async with chat.service.sessions() as session:
        rows = (await session.execute(
            select(CustomerGroupMember.member_id, CustomerGroupMember.left_at)
            .join(CustomerGroup, CustomerGroup.id == CustomerGroupMember.group_id)
            .where(CustomerGroup.chat_id == chat_id))).all()
    return {member_id: left_at is None for member_id, left_at in rows}


async def group(chat: Chat, chat_id: str) -> CustomerGroup:
    async with chat.service.sessions() as session:
        return await session.scalar(select(CustomerGroup).where(CustomerGroup.chat_id == chat_id))


def card_groups(card: str) -> str:
    return next((line for line in card.splitlines() if line.startswith("> 客户群：")), "")


async def test_the_nightly_sync_stores_each_group_with_its_owner_and_members_and_the_card_shows_them(chat):
    await chat.onboard()
    summary = await nightly_sync(chat)
    assert summary == "3 group(s) synced: 5 customer(s) joined, 0 left, 0 group(s) gone"

    east = await group(chat, EAST)
    zhang = await chat.staff("zhangwei")
    assert (east.name, east.owner_id, east.notice) == ("华东客户交流群", zhang.id, "欢迎各位，报价与交期问题请直接在群里问")
    assert await members(chat, EAST) == {"zhangwei": True, external_id(chat.service.sim, "赵磊"): True,
                                         external_id(chat.service.sim, "孙丽"): True, QIAN: True}
    assert card_groups(await chat.ask("zhangwei", "查 赵磊")) == "> 客户群：华东客户交流群"
    assert card_groups(await chat.ask("liuyang", "查 罗燕")) == "> 客户群：启明教育项目群"
    assert card_groups(await chat.ask("zhangwei", "查 周杰")) == ""  # in no group

    # Run again: the same groups, nothing joined or left, nothing gone.
    assert await nightly_sync(chat) == "3 group(s) synced: 0 customer(s) joined, 0 left, 0 group(s) gone"
    async with chat.service.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(CustomerGroupMember)) == 9


async def test_callbacks_keep_groups_and_members_right(chat):
    await chat.onboard()
    await nightly_sync(chat)
    sim, wecom = chat.service.sim, chat.service.wecom
    zhou, sun = external_id(sim, "周杰"), external_id(sim, "孙丽")

    sim_groups.add_members(sim, EAST, [sim_groups.member(zhou, sim_groups.EXTERNAL, join_time=int(sim.now()),
                                                         name="周杰", invitor="zhangwei")])
    await wecom.change_external_chat(EAST, "update", update_detail="add_member", members=[zhou],
                                     current_version=sim.group_chats[EAST]["member_version"])
    sim_groups.remove_members(sim, EAST, [sun])
    await wecom.change_external_chat(EAST, "update", update_detail="del_member", members=[sun], quit_scene=0,
                                     current_version=sim.group_chats[EAST]["member_version"])
    sim_groups.rename(sim, EAST, "华东客户交流群（新）")
    await wecom.change_external_chat(EAST, "update", update_detail="change_name")
    sim_groups.change_owner(sim, EAST, "liuyang")
    await wecom.change_external_chat(EAST, "update", update_detail="change_owner")
    sim_groups.dismiss(sim, LVYUAN)
    await wecom.change_external_chat(LVYUAN, "dismiss")
    sim_groups.create_group(sim, "wrDemoNewGroup00000000000000004", "周杰技术对接群", "zhangwei",
                            [sim_groups.member(zhou, sim_groups.EXTERNAL, join_time=int(sim.now()), name="周杰")])
    await wecom.change_external_chat("wrDemoNewGroup00000000000000004", "create")
    await chat.service.settle()

    east = await group(chat, EAST)
    assert (east.name, east.owner_id) == ("华东客户交流群（新）", (await chat.staff("liuyang")).id)
    assert (await members(chat, EAST))[zhou] is True and (await members(chat, EAST))[sun] is False
    assert (await group(chat, LVYUAN)).dismissed_at is not None
    assert card_groups(await chat.ask("zhangwei", "查 周杰")) == "> 客户群：华东客户交流群（新）、周杰技术对接群"
    assert card_groups(await chat.ask("zhangwei", "查 孙丽")) == ""
    assert card_groups(await chat.ask("lina", "查 吴敏")) == ""

    # WeCom resending an event changes nothing; an update for a group WeCom no longer knows marks it gone.
    await wecom.change_external_chat(EAST, "update", update_detail="change_name")
    sim_groups.dismiss(sim, "wrDemoNewGroup00000000000000004")
    await wecom.change_external_chat("wrDemoNewGroup00000000000000004", "update", update_detail="change_notice")
    await chat.service.settle()
    assert (await group(chat, "wrDemoNewGroup00000000000000004")).dismissed_at is not None
    assert card_groups(await chat.ask("zhangwei", "查 周杰")) == "> 客户群：华东客户交流群（新）"


async def test_a_customer_met_only_in_a_group_is_linked_when_they_become_a_contact(chat):
    await chat.onboard()
    await nightly_sync(chat)
    card = await chat.ask("zhangwei", "查 群 华东客户交流群")
    assert card.startswith("**【客户群】华东客户交流群**")
    assert "> 群主：张伟" in card and "> 成员：4 人（客户 3 · 同事 1）" in card
    assert "> 钱先生（尚未添加为客户）" in card and "> 赵磊（华东精密机械有限公司）" in card

    sim = chat.service.sim
    contact = deepcopy(sim.external_contacts[external_id(sim, "赵磊")])
    contact["external_contact"] |= {"external_userid": QIAN, "name": "钱先生", "corp_name": "钱氏五金",
                                    "corp_full_name": "钱氏五金"}
    contact["follow_user"][0]["remark"] = "钱总-五金"
    sim.external_contacts[QIAN] = contact
    await chat.service.wecom.change_external_contact("add_external_contact", "zhangwei", QIAN)
    await chat.service.settle()

    assert card_groups(await chat.ask("zhangwei", "查 钱先生")) == "> 客户群：华东客户交流群"
    card = await chat.ask("zhangwei", "查 群 华东客户交流群")
    assert "> 钱先生（" in card and "尚未添加为客户" not in card


async def test_a_rep_sees_their_own_groups_a_manager_their_teams(chat):
    await chat.onboard()
    await nightly_sync(chat)
    assert await chat.ask("lina", "查 群 华东客户交流群") == \
        "没有找到名称包含「华东客户交流群」的客户群（或不在您的查看范围内）。"
    assert (await chat.ask("liuyang", "查 群 华东")).startswith("**【客户群】华东客户交流群**")
    assert await chat.ask("chenjing", "查 群 群") == \
        "找到多个名称包含「群」的客户群：华东客户交流群、启明教育项目群、绿源采购对接群。请输入完整的群名。"
    # `查 <customer>` keeps its meaning.
    assert (await chat.ask("zhangwei", "查 赵磊")).startswith("**【赵磊】")


async def test_the_manager_digest_counts_customers_who_joined_and_left_groups(chat):
    await chat.onboard()
    await nightly_sync(chat)  # the sample members joined in 2024: not this digest's news
    sim, wecom = chat.service.sim, chat.service.wecom
    zhou, sun = external_id(sim, "周杰"), external_id(sim, "孙丽")
    sim_groups.add_members(sim, EAST, [sim_groups.member(zhou, sim_groups.EXTERNAL, join_time=int(sim.now()),
                                                         name="周杰")])
    await wecom.change_external_chat(EAST, "update", update_detail="add_member", members=[zhou])
    sim_groups.remove_members(sim, EAST, [sun])
    await wecom.change_external_chat(EAST, "update", update_detail="del_member", members=[sun])
    await chat.service.settle()

    app, tz = chat.service.app, chat.service.settings.tz
    await send_daily_digests(JobContext(app[keys.SESSIONS], (utcnow() + timedelta(minutes=1)).astimezone(tz), tz))
    async with chat.service.sessions() as session:
        liuyang = await session.scalar(select(Staff).where(Staff.userid == "liuyang"))
        [digest] = (await session.scalars(select(OutboxItem).where(
            OutboxItem.staff_id == liuyang.id, OutboxItem.idempotency_key.like("digest:%")))).all()
    assert "**客户群**　入群 1 人次 · 退群 1 人次" in digest.payload["markdown"]["content"]


class Counting:
    """The service's WeCom client, counting the group calls."""

    def __init__(self, chat: Chat):
        self.wecom, self.list_cursors, self.reads = chat.service.app[keys.WECOM], [], []

    async def groupchat_list(self, **kw):
        self.list_cursors.append(kw.get("cursor"))
        return await self.wecom.groupchat_list(**kw)

    async def groupchat_get(self, chat_id, **kw):
        self.reads.append(chat_id)
        return await self.wecom.groupchat_get(chat_id, **kw)


async def stored_groups(chat: Chat) -> int:
    async with chat.service.sessions() as session:
        return await session.scalar(select(func.count()).select_from(CustomerGroup))


async def test_a_sync_killed_halfway_resumes_at_its_page_and_a_busy_page_is_retried_not_skipped(chat):
    sim = chat.service.sim
    for i in range(7):
        sim_groups.create_group(sim, f"wrMore{i:026d}", f"项目群{i}", "lina", [])

    class KilledAfterOnePage(Counting):
        async def groupchat_list(self, **kw):
            if self.list_cursors:
                raise asyncio.CancelledError  # the process dies before the second page
            return await super().groupchat_list(**kw)

    killed = KilledAfterOnePage(chat)
    try:
        await direct_sync(chat, wecom=killed, page_size=4)
    except asyncio.CancelledError:
        pass
    assert await stored_groups(chat) == 4

    sim.fail_next("externalcontact/groupchat/list", errcode=45033)  # WeCom busy once
    waited, counting = [], Counting(chat)

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    report = await direct_sync(chat, wecom=counting, page_size=4, sleep=sleep)
    assert (report.resumed, report.groups, report.failed) == (True, 6, [])
    second_page = counting.list_cursors[0]
    assert second_page is not None and counting.list_cursors[:2] == [second_page, second_page]  # retried, same page
    assert len(waited) == 1 and len(counting.list_cursors) == 3
    assert await stored_groups(chat) == 10

    # The next run starts over from the first page.
    again = Counting(chat)
    assert (await direct_sync(chat, wecom=again, page_size=4)).resumed is False and again.list_cursors[0] is None


async def test_a_sync_paused_past_its_lease_leaves_the_work_to_the_run_that_took_over(chat):
    sim = chat.service.sim
    for i in range(7):
        sim_groups.create_group(sim, f"wrMore{i:026d}", f"项目群{i}", "lina", [])
    later = utcnow() + LEASE + timedelta(minutes=1)
    taken_over = []

    class PausedOnItsSecondPage(Counting):
        async def groupchat_list(self, **kw):
            page = await super().groupchat_list(**kw)
            if len(self.list_cursors) == 2:  # meanwhile its lease ran out and another run took the work
                taken_over.append(await direct_sync(chat, clock=lambda: later, page_size=4))
            return page

    paused = await direct_sync(chat, wecom=PausedOnItsSecondPage(chat), page_size=4)
    [other] = taken_over
    assert paused.busy and (other.busy, other.resumed, other.groups) == (False, True, 6)
    assert await stored_groups(chat) == 10
    # The paused run wrote nothing over the finished run's place: the next run starts over.
    again = Counting(chat)
    assert (await direct_sync(chat, wecom=again, page_size=4)).resumed is False and again.list_cursors[0] is None


async def test_a_group_that_cannot_be_read_is_reported_and_no_group_is_taken_for_gone(chat):
    await nightly_sync(chat)
    sim = chat.service.sim
    del sim.group_chats[LVYUAN]  # gone from WeCom without a callback reaching us
    sim.fail_next("externalcontact/groupchat/get", errcode=48002)  # the first group read is refused

    report = await direct_sync(chat)
    assert [chat_id for chat_id, _ in report.failed] == [EAST] and report.groups == 1
    assert report.summary().endswith(f"1 group(s) could not be read: {EAST}")
    assert (await group(chat, LVYUAN)).dismissed_at is None and (await group(chat, EAST)).dismissed_at is None

    report = await direct_sync(chat)  # a complete run: now the missing group is gone
    assert (report.groups, report.gone, report.failed) == (2, 1, [])
    assert (await group(chat, LVYUAN)).dismissed_at is not None


async def test_two_syncs_at_once_do_the_work_once(chat):
    first, second = Counting(chat), Counting(chat)
    reports = await asyncio.gather(direct_sync(chat, wecom=first), direct_sync(chat, wecom=second))
    assert sorted(r.busy for r in reports) == [False, True]
    assert sorted(first.reads + second.reads) == sorted(chat.service.sim.group_chats)
    assert "another group sync is running" in next(r for r in reports if r.busy).summary()


async def test_scrm_sync_groups_runs_it_by_hand(chat, backend, monkeypatch, capsys):
    use_service_env(monkeypatch, chat.service)

    code = await asyncio.to_thread(cli.main, ["--log-level", "WARNING", "sync", "groups"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and out == ["客户群：已同步 3 个",
                                 "✅ 客户群同步完成：3 个群，入群客户 5 人次，退群 0 人次，已解散或不再可见的群 0 个。"]
    assert await stored_groups(chat) == 3


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # SQLite runs one inbox worker: callbacks take turns
async def test_two_changes_of_one_group_handled_at_once_keep_the_newest_read(chat, monkeypatch):
    """A rename read from WeCom before an owner change but committed after it must not bring the old
    owner back. The first worker's groupchat/get is held open after it read the group, while a second
    worker takes the owner change; the second waits for the first's turn instead of racing it."""
    await chat.onboard()
    await nightly_sync(chat)
    await chat.service.stop_background_workers()  # the test steps two workers itself
    sim, wecom, app = chat.service.sim, chat.service.wecom, chat.service.app
    read, release = hold_first_read_of(EAST, chat, monkeypatch)
    first, second = app[keys.INBOX_WORKERS][:2]
    sim_groups.rename(sim, EAST, "华东客户交流群（新）")
    await wecom.change_external_chat(EAST, "update", update_detail="change_name")
    renaming = asyncio.create_task(first.run_once())
    await asyncio.wait_for(read.wait(), 10)  # the rename has read the group with its old owner
    sim_groups.change_owner(sim, EAST, "liuyang")
    await wecom.change_external_chat(EAST, "update", update_detail="change_owner")
    owner_change = asyncio.create_task(second.run_once())
    await asyncio.wait_for(_waiting_for_a_turn(chat, owner_change), 10)
    release.set()
    assert await renaming == 1 and await owner_change == 1
    await chat.service.settle()

    east = await group(chat, EAST)
    assert (east.name, east.owner_id) == ("华东客户交流群（新）", (await chat.staff("liuyang")).id)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_callback_during_the_nightly_sync_is_not_undone_by_the_syncs_older_read(chat, monkeypatch):
    """The sync reads a group, an owner change arrives and its worker reads the group anew: stored
    after the callback, the sync's read would give the group back to its old owner. The sync's
    groupchat/get of 华东客户交流群 is held open after it read the group; the callback's worker waits
    for the sync's turn, then reads and stores the new owner."""
    await chat.onboard()
    await nightly_sync(chat)
    await chat.service.stop_background_workers()  # the test steps the worker itself
    sim, wecom, app = chat.service.sim, chat.service.wecom, chat.service.app
    read, release = hold_first_read_of(EAST, chat, monkeypatch)
    syncing = asyncio.create_task(nightly_sync(chat))
    await asyncio.wait_for(read.wait(), 10)  # the sync has read the group with its old owner
    sim_groups.change_owner(sim, EAST, "liuyang")
    await wecom.change_external_chat(EAST, "update", update_detail="change_owner")
    owner_change = asyncio.create_task(app[keys.INBOX_WORKERS][0].run_once())
    await asyncio.wait_for(_waiting_for_a_turn(chat, owner_change), 10)
    release.set()
    assert (await syncing).startswith("3 group(s) synced") and await owner_change == 1
    await chat.service.settle()

    assert (await group(chat, EAST)).owner_id == (await chat.staff("liuyang")).id


def hold_first_read_of(chat_id: str, chat: Chat, monkeypatch) -> tuple[asyncio.Event, asyncio.Event]:
    """The service's first groupchat/get of `chat_id` reads the group, sets `read`, then waits for `release`."""
    client = chat.service.app[keys.WECOM]
    real_get, read, release = client.groupchat_get, asyncio.Event(), asyncio.Event()

    async def held_read(wanted: str, **options):
        detail = await real_get(wanted, **options)
        if wanted == chat_id and not read.is_set():
            read.set()
            await release.wait()
        return detail

    monkeypatch.setattr(client, "groupchat_get", held_read)
    return read, release


async def _waiting_for_a_turn(chat: Chat, task: asyncio.Task) -> None:
    """Until a transaction waits for an advisory lock, or the task finished without waiting."""
    while not task.done():
        async with chat.service.sessions() as session:
            if await session.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")):
                return
        await asyncio.sleep(0.01)
