"""The customer sync through its real entry points (first start, the nightly job, the CLI, callbacks)
against the simulator, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from connectors.wecom.simulator.contacts import GeneratedContacts
from crm_core.corp_tags import CorpTag, CorpTagService
from crm_core.db import utcnow
from crm_core.models import Customer, CustomerFollower, CustomerIdentity, Staff
from crm_core.sync_states import SyncState
from scheduler.runner import JobContext
from scrm import keys
from scrm.cli import main as cli
from scrm.sync.customers import KIND, CustomerSyncRun, make_customer_sync_job, sync_on_first_start
from tests.support.service import external_id, use_service_env

TZ = ZoneInfo("Asia/Shanghai")
BATCH = "externalcontact/batch/get_by_user"


class Sleeps:
    """Stands in for asyncio.sleep: records each back-off, waits for nothing."""

    def __init__(self):
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def run(service, **options) -> CustomerSyncRun:
    options.setdefault("sleep", Sleeps())
    return CustomerSyncRun(service.app[keys.SESSIONS], service.app[keys.WECOM], **options)


async def counts(service) -> tuple[int, int, int]:
    async with service.sessions() as session:
        customers = await session.scalar(select(func.count()).select_from(Customer))
        followers = await session.scalar(select(func.count()).select_from(CustomerFollower))
        identities = await session.scalar(select(func.count()).select_from(CustomerIdentity))
    return customers, followers, identities


async def customer(service, external_userid: str) -> Customer:
    async with service.sessions() as session:
        return await session.scalar(select(Customer).join(CustomerIdentity).where(
            CustomerIdentity.external_id == external_userid))


async def followers_of(service, external_userid: str) -> dict[str, CustomerFollower]:
    async with service.sessions() as session:
        rows = (await session.execute(
            select(Staff.userid, CustomerFollower).join(Staff, Staff.id == CustomerFollower.staff_id)
            .join(CustomerIdentity, CustomerIdentity.customer_id == CustomerFollower.customer_id)
            .where(CustomerIdentity.external_id == external_userid))).all()
    return {userid: follower for userid, follower in rows}


def big_company(sim, contacts: int, reps: int = 3) -> GeneratedContacts:
    """A generated company of `contacts` over `reps` new reps (every tenth contact shared by two)."""
    userids = [f"rep{i:02d}" for i in range(reps)]
    for userid in userids:
        sim.staff[userid] = {**sim.staff["zhangwei"], "userid": userid, "name": f"销售{userid}"}
    sim.customer_contact_users = userids
    generated = GeneratedContacts(contacts, userids, tags=[
        {"group_name": "客户等级", "tag_name": "重要客户", "tag_id": "etDemoVip0001", "type": 1}])
    sim.external_contacts = generated
    return generated


async def test_first_start_brings_in_the_company_and_a_shared_contact_is_one_customer(service):
    sim = service.sim
    zhao = external_id(sim, "赵磊")
    sim.add_follower(zhao, "lina", remark="赵总(李娜)", remark_mobiles=["13800139999"],
                     tags=[{"group_name": "客户阶段", "tag_name": "已成交", "tag_id": "etDemoStage003", "type": 1}])

    report = await sync_on_first_start(service.app[keys.SESSIONS], service.app[keys.WECOM])

    assert report.status == "done" and report.created == 8 and report.contacts == 9 and report.failed_count == 0
    assert await counts(service) == (8, 9, 8)
    followers = await followers_of(service, zhao)
    assert set(followers) == {"zhangwei", "lina"}
    assert followers["zhangwei"].remark == "赵总-华东精密" and followers["zhangwei"].state == "expo2024"
    assert followers["zhangwei"].add_way == 1 and followers["zhangwei"].added_at.timestamp() == 1_700_000_000
    assert followers["lina"].remark_mobiles == ["13800139999"] and followers["lina"].add_way == 2
    zhao_row = await customer(service, zhao)
    async with service.sessions() as session:
        owner = await session.get(Staff, zhao_row.owner_id)
    # the rep who added them first owns them; their remark and mobile are the customer's
    assert owner.userid == "zhangwei" and zhao_row.remark == "赵总-华东精密" and zhao_row.phone == "13800131001"
    assert zhao_row.company == "华东精密机械有限公司" and zhao_row.name == "赵磊" and zhao_row.birthday is not None
    assert zhao_row.wecom_tags == ["重要客户", "报价谈判", "已成交"]  # tags land by name, both reps'

    assert await sync_on_first_start(service.app[keys.SESSIONS], service.app[keys.WECOM]) is None  # only once


async def test_a_channel_state_attributes_the_synced_customer(service):
    from crm_core.channels import ChannelService

    async with service.sessions() as session:
        channel = await ChannelService(session).create("展会2024", users=["zhangwei"])
        channel.state = "expo2024"
        await session.commit()
    assert (await run(service).run()).status == "done"
    zhao = await customer(service, external_id(service.sim, "赵磊"))
    assert zhao.source == "展会2024" and zhao.source_channel_id == channel.id


async def test_a_sync_killed_midway_resumes_from_the_kept_cursor_without_duplicates(service):
    big_company(service.sim, 250)  # 275 follow entries: 3 pages of 100 for one batch of reps
    cursors: list[str] = []
    wecom = service.app[keys.WECOM]
    original = wecom.batch_get_by_user

    async def recording(userids, *, cursor="", limit=100):
        cursors.append(cursor)
        return await original(userids, cursor=cursor, limit=limit)

    wecom.batch_get_by_user = recording

    def kill_after_two_pages(step):
        if step.pages == 2:
            raise asyncio.CancelledError()  # the process dies: no clean-up, the lease stays taken

    with pytest.raises(asyncio.CancelledError):
        await run(service, on_progress=kill_after_two_pages).run()
    customers, followers, identities = await counts(service)
    assert followers == 200 and customers == identities < 250  # two pages written with their cursor

    assert (await run(service).run()).status == "busy"  # its lease has not run out yet: nobody else works
    later = utcnow() + timedelta(minutes=5)
    report = await run(service, clock=lambda: later).run()

    assert report.status == "done" and report.resumed and report.pages == 3
    assert len(cursors) == 3 and cursors[0] == "" and cursors[2] not in ("", cursors[1])  # the resumed run
    # asked only for the third page, with the cursor the killed run had kept
    assert await counts(service) == (250, 275, 250)


async def test_rate_limits_back_off_and_the_sync_continues(service):
    sim = service.sim
    sim.fail_next(BATCH, errcode=45009)
    sim.fail_next("externalcontact/get_corp_tag_list", errcode=45033)
    sleeps = Sleeps()
    report = await run(service, sleep=sleeps).run()
    assert report.status == "done" and report.created == 8
    assert len(sleeps.seconds) == 2 and sorted(sleeps.seconds)[1] >= 60  # 45009: a minute, WeCom's shortest window


async def test_an_error_never_deletes_customers_and_a_failed_page_is_retried_next_run(service):
    sim = service.sim
    assert (await run(service).run()).status == "done"
    zhao = external_id(sim, "赵磊")
    sim.end_contact(zhao, "zhangwei")  # the rep deleted them; the callback never reached us
    sim.fail_next(BATCH, errcode=48002)  # WeCom refuses for good this time (api forbidden)

    report = await run(service).run()
    assert report.status == "failed" and "48002" in report.error
    assert await counts(service) == (8, 8, 8)
    assert (await followers_of(service, zhao))["zhangwei"].removed_at is None  # nothing ended on an error

    sim.fail_next(BATCH, errcode=-1, times=3)  # busy, busy, busy, then fine: retried, not skipped
    report = await run(service).run()
    assert report.status == "done" and report.resumed and report.ended == 1
    assert await counts(service) == (8, 8, 8)  # the customer stays; only the relation ended
    assert (await followers_of(service, zhao))["zhangwei"].removed_at is not None
    assert (await customer(service, zhao)).lifecycle == "churned"  # nobody of ours follows 赵磊 any more


async def test_a_contact_that_fails_to_load_is_reported_by_id_and_the_rest_arrive(service):
    sim = service.sim
    sun = external_id(sim, "孙丽")
    sim.external_contacts[sun]["follow_user"][0]["createtime"] = "not-a-time"
    report = await run(service).run()
    assert report.status == "done" and report.failed_count == 1 and report.failed[0]["id"] == sun
    assert await counts(service) == (7, 7, 7)


async def test_two_syncs_at_once_do_the_work_once(service):
    big_company(service.sim, 120)
    first, second = await asyncio.gather(run(service).run(), run(service).run())
    assert sorted([first.status, second.status]) == ["busy", "done"]
    assert await counts(service) == (120, 132, 120)


async def test_the_nightly_job_reconciles_contacts_whose_callbacks_were_missed(service):
    sim = service.sim
    job = make_customer_sync_job(service.app[keys.WECOM])
    ctx = JobContext(service.app[keys.SESSIONS], utcnow().astimezone(TZ), TZ)
    assert "8 new customer(s)" in await job(ctx)
    sim.external_contacts["wmMissedAdd0000000000000000000001"] = {
        "external_contact": {"external_userid": "wmMissedAdd0000000000000000000001", "name": "漏掉的客户", "type": 1,
                             "gender": 1},
        "follow_user": [{"userid": "lina", "remark": "漏", "createtime": 1_705_000_000, "tags": [],
                         "remark_mobiles": [], "add_way": 3, "state": ""}]}
    summary = await job(ctx)
    assert "1 new customer(s)" in summary
    assert (await customer(service, "wmMissedAdd0000000000000000000001")).name == "漏掉的客户"


async def test_the_cli_syncs_with_progress(service, backend, monkeypatch, capsys):
    use_service_env(monkeypatch, service)
    code = await asyncio.to_thread(cli.main, ["--log-level", "WARNING", "sync", "customers"])
    out = capsys.readouterr().out
    assert code == 0 and "全新同步" in out and "第 1/1 批成员" in out and "新客户 8 位" in out
    assert await counts(service) == (8, 8, 8)


async def test_change_external_tag_callbacks_keep_the_catalogue(service):
    sim = service.sim
    assert (await run(service).run()).status == "done"
    level = next(g for g in sim.corp_tag_groups if g["group_name"] == "客户等级")
    vip = next(t for t in level["tag"] if t["name"] == "重要客户")
    vip["name"] = "核心客户"
    level["tag"].append({"id": "etDemoNew00001", "name": "战略客户", "create_time": 1_760_000_000, "order": 5,
                         "deleted": False})
    normal = next(t for t in level["tag"] if t["name"] == "普通客户")
    normal["deleted"] = True
    for change_type, tag_id in (("update", vip["id"]), ("create", "etDemoNew00001"), ("delete", normal["id"])):
        status, _ = await service.wecom.change_external_tag(change_type, "tag", tag_id)
        assert status == 200
    await service.settle()

    async with service.sessions() as session:
        tags = CorpTagService(session)
        assert await tags.id_for("核心客户") == vip["id"] and await tags.id_for("重要客户") is None
        assert await tags.id_for("战略客户", group="客户等级") == "etDemoNew00001"
        assert await tags.id_for("普通客户") is None
        assert (await tags.names([normal["id"]])) == {normal["id"]: "普通客户"}  # an old id still reads as a name
        assert (await tags.group_of("etDemoNew00001")).name == "客户等级"
        deleted = await session.scalar(select(CorpTag.deleted).where(CorpTag.tag_id == normal["id"]))
    assert deleted is True
    zhao = await customer(service, external_id(sim, "赵磊"))
    assert zhao.wecom_tags == ["核心客户", "报价谈判"]  # the rename reaches the customers carrying it
    sun_row = await customer(service, external_id(sim, "孙丽"))
    assert sun_row.wecom_tags == ["意向客户"]  # a deleted tag leaves the customers (WeCom removes it from contacts)
    assert (await followers_of(service, external_id(sim, "孙丽")))["zhangwei"].tag_ids == ["etDemoStage001"]


async def test_a_tag_group_deleted_in_wecom_leaves_the_catalogue(service):
    sim = service.sim
    assert (await run(service).run()).status == "done"
    stage = next(g for g in sim.corp_tag_groups if g["group_name"] == "客户阶段")
    sim.corp_tag_groups.remove(stage)
    await service.wecom.change_external_tag("delete", "tag_group", stage["group_id"])
    await service.settle()
    async with service.sessions() as session:
        tags = CorpTagService(session)
        assert await tags.group_by_name("客户阶段") is None and await tags.id_for("意向客户") is None
        assert [g.name for g, _ in await tags.groups()] == ["客户等级"]
        state = await session.get(SyncState, KIND)
    assert state.status == "done"
    assert (await customer(service, external_id(sim, "赵磊"))).wecom_tags == ["重要客户"]


async def test_the_sync_reads_the_whole_catalogue_so_a_tag_deleted_without_a_callback_goes(service):
    sim = service.sim
    assert (await run(service).run()).status == "done"
    stage = next(g for g in sim.corp_tag_groups if g["group_name"] == "客户阶段")
    stage["tag"] = [t for t in stage["tag"] if t["name"] != "意向客户"]
    assert (await run(service).run()).status == "done"
    async with service.sessions() as session:
        tags = CorpTagService(session)
        assert await tags.id_for("意向客户") is None and await tags.id_for("已成交") == "etDemoStage003"
