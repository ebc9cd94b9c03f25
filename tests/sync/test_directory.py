"""WeCom's directory comes into the CRM and stays current, and people who leave lose access.

Through the real entry points: a fresh install's first start, signed change_contact callbacks, the
`scrm sync directory` and `scrm import customers` command lines, the chat and the API, against the
simulator's own address book.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from connectors.wecom.simulator import directory as company
from crm_core.db import utcnow
from crm_core.group_models import CustomerGroup
from crm_core.leases import Lease, LeaseService
from crm_core.models import AuditEntry, Customer, Department, OutboxItem, Staff
from scrm import keys
from scrm.sync.directory import LEASE, Directory, DirectorySync, SyncBusy, role_map
from tests.support.chat import ROLES_TOML, sync_directory
from tests.support.service import make_service
from tests.sync.conftest import scrm

DIRECTORY_ROLES = """
default = "sales"
[users]
chenjing = "admin"
wangfang = "support"
"""


async def staff_table(sessions) -> dict[str, tuple[str, bool, list[int]]]:
    async with sessions() as session:
        rows = (await session.scalars(select(Staff).order_by(Staff.userid))).all()
    return {s.userid: (s.role, s.active, list(s.department_ids)) for s in rows}


async def api(chat, path: str, token: str, **params) -> tuple[int, dict]:
    resp = await chat.service.client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    return resp.status, await resp.json()


async def visible(chat, token: str) -> set[str]:
    status, body = await api(chat, "/api/v1/customers", token, limit=1000)
    assert status == 200, body
    return {c["name"] for c in body["items"]}


async def issue_token(capsys, userid: str) -> str:
    code, out, err = await scrm(capsys, "api-token", "issue", userid, "--label", "sidebar")
    assert code == 0, err
    return out.strip().splitlines()[-1]


async def test_a_fresh_install_syncs_the_company_on_first_start_without_holding_up_health_checks(
        backend, sim, sim_server, aiohttp_client, tmp_path: Path):
    """A company already on WeCom starts the service and finds its people there, with their roles,
    though its app (created after 2022-06-20) is not told mobiles or genders."""
    roles = tmp_path / "roles.toml"
    roles.write_text(DIRECTORY_ROLES, encoding="utf-8")
    sim.hides_member_details = True
    sim.fail_next("department/list", delay=1.0)  # a slow WeCom: start-up must not wait for it
    service = await make_service(backend, sim, sim_server, aiohttp_client, roles_file=roles, sync_on_first_start=True)
    first_sync = service.app[keys.FIRST_SYNC]
    health = await service.client.get("/healthz")
    assert health.status == 200 and not first_sync.done()
    await first_sync
    assert await staff_table(service.app[keys.SESSIONS]) == {
        "chenjing": ("admin", True, [4]), "lina": ("sales", True, [2]), "liuyang": ("manager", True, [2, 3]),
        "wangfang": ("support", True, [3]), "zhangwei": ("sales", True, [2])}  # liuyang leads 销售部 and 客户服务部
    async with service.sessions() as session:
        departments = {d.id: (d.name, d.parent_id) for d in (await session.scalars(select(Department))).all()}
        zhangwei = await session.scalar(select(Staff).where(Staff.userid == "zhangwei"))
    assert departments == {1: ("星河科技", None), 2: ("销售部", 1), 3: ("客户服务部", 1), 4: ("行政部", 1)}
    assert zhangwei.name == "张伟" and zhangwei.mobile == ""
    async with service.sessions() as session:  # then its customers and their groups
        customers = await session.scalar(select(func.count()).select_from(Customer))
        groups = sorted((await session.scalars(select(CustomerGroup.name))).all())
    assert customers == len(sim.external_contacts)
    assert groups == sorted(g["name"] for g in sim.group_chats.values())
    assert not await DirectorySync(Directory(service.app[keys.WECOM], role_map(service.settings)),
                                   service.app[keys.SESSIONS]).needed()  # the next start does not sync again


async def test_a_member_who_leaves_loses_chat_and_api_access_at_once(cli_env, capsys):
    chat = cli_env
    await sync_directory(chat.service.app[keys.SESSIONS], chat.service.sim)
    await chat.onboard()
    token = await issue_token(capsys, "zhangwei")
    assert await visible(chat, token) == {"赵磊", "孙丽", "周杰"}
    assert "赵磊" in await chat.ask("zhangwei", "查 赵磊")

    company.leave(chat.service.sim, "zhangwei")
    status, _ = await chat.service.wecom.change_contact("delete_user", userid="zhangwei")
    assert status == 200
    await chat.service.settle()

    assert (await api(chat, "/api/v1/customers", token))[0] == 401
    assert await chat.say("zhangwei", "查 赵磊") == []  # WeCom delivers nothing to someone who left ...
    async with chat.service.sessions() as session:
        last = await session.scalar(select(OutboxItem).order_by(OutboxItem.id.desc()).limit(1))
        departed = (await session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "staff.departed"))).all()
    assert last.payload["touser"] == "zhangwei"  # ... and the bot's answer was the refusal, not the card
    assert "系统里还没有您的员工信息" in last.payload["text"]["content"]
    assert departed == ["zhangwei: left the directory"]
    # The customers stay with their (departed) owner until someone hands them over.
    assert (await chat.customer("赵磊")).owner.userid == "zhangwei"


async def test_a_disabled_account_is_closed_like_a_departure(cli_env, capsys):
    chat = cli_env
    await sync_directory(chat.service.app[keys.SESSIONS], chat.service.sim)
    token = await issue_token(capsys, "lina")
    company.disable(chat.service.sim, "lina")
    await chat.service.wecom.change_contact("update_user", userid="lina", department=[2])
    await chat.service.settle()
    assert (await api(chat, "/api/v1/customers", token))[0] == 401
    assert (await chat.staff("lina")).active is False
    assert "系统里还没有您的员工信息" in await chat.ask("lina", "查 吴敏")


async def test_leading_a_department_makes_a_manager_and_losing_it_takes_the_view_away(cli_env, capsys):
    chat = cli_env
    await sync_directory(chat.service.app[keys.SESSIONS], chat.service.sim)
    await chat.onboard()
    token = await issue_token(capsys, "lina")
    assert await visible(chat, token) == {"吴敏", "郑浩", "冯雪"}

    company.move(chat.service.sim, "lina", [2], leader_in=(2,))
    await chat.service.wecom.change_contact("update_user", userid="lina", department=[2])
    await chat.service.settle()
    assert (await chat.staff("lina")).role == "manager"
    # 销售部's customers (zhangwei's, hers, liuyang's), not 客户服务部's 何军
    assert await visible(chat, token) == {"赵磊", "孙丽", "周杰", "吴敏", "郑浩", "冯雪", "罗燕"}

    company.move(chat.service.sim, "lina", [2])  # a second later: not a retry of the first event
    await chat.service.wecom.change_contact("update_user", userid="lina", department=[2], create_time=int(time.time()) + 1)
    await chat.service.settle()
    assert (await chat.staff("lina")).role == "sales"
    assert await visible(chat, token) == {"吴敏", "郑浩", "冯雪"}

    company.move(chat.service.sim, "wangfang", [2])  # and a member moving departments moves in the CRM
    await chat.service.wecom.change_contact("update_user", userid="wangfang", department=[2])
    await chat.service.settle()
    assert (await chat.staff("wangfang")).department_ids == [2]
    async with chat.service.sessions() as session:
        changes = (await session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "staff.role")
                                         .order_by(AuditEntry.id))).all()
    assert changes == ["lina: sales -> manager", "lina: manager -> sales"]


async def test_new_members_and_departments_arrive_by_callback(chat):
    await sync_directory(chat.service.app[keys.SESSIONS], chat.service.sim)
    company.add_department(chat.service.sim, 5, "华南销售部")
    await chat.service.wecom.change_contact("create_party", party_id=5, parent_id=1)
    company.hire(chat.service.sim, "zhaoqiang", "赵强", [5], position="销售代表", leader_in=(5,))
    await chat.service.wecom.change_contact("create_user", userid="zhaoqiang", department=[5])
    await chat.service.settle()
    assert (await staff_table(chat.service.app[keys.SESSIONS]))["zhaoqiang"] == ("manager", True, [5])
    async with chat.service.sessions() as session:
        assert (await session.get(Department, 5)).name == "华南销售部"
    assert "系统里还没有您的员工信息" not in await chat.ask("zhaoqiang", "帮助")  # they may use the bot at once


async def test_scrm_sync_directory_pages_through_the_list_shows_progress_and_then_imports_name_owners(
        cli_env, capsys, tmp_path: Path):
    """Six (member, department) rows in pages of two: three pages, every member read once."""
    code, out, err = await scrm(capsys, "sync", "directory", "--page-size", "2")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "部门：4 个已同步"
    assert [line for line in lines if line.startswith("成员列表")] == [
        "成员列表：已读取 2 人", "成员列表：已读取 3 人", "成员列表：已读取 5 人"]  # liuyang is listed in two departments
    assert "成员资料：5/5" in lines
    assert "通讯录同步完成：4 个部门，5 名成员；离职或停用 0 人，角色变化 0 人。" in lines
    assert set(await staff_table(cli_env.service.app[keys.SESSIONS])) == {"chenjing", "lina", "liuyang", "wangfang",
                                                                           "zhangwei"}

    company.leave(cli_env.service.sim, "lina")  # no callback reached us: the next sync finds out
    code, out, err = await scrm(capsys, "sync", "directory")
    assert code == 0, err
    assert "  已停用：lina（不能再使用机器人、API 和页面）" in out.splitlines()

    sheet = tmp_path / "customers.csv"
    sheet.write_text("姓名,手机,负责人\n钱多多,13800139001,张伟\n孙小美,13800139002,wangfang\n李大海,13800139003,李娜\n",
                     encoding="utf-8")
    code, out, err = await scrm(capsys, "import", "customers", sheet)
    assert code == 1, out + err
    assert "已离职" in out + err  # 李娜's row: she left; the others have their owners
    assert (await cli_env.customer("钱多多")).owner.userid == "zhangwei"
    assert (await cli_env.customer("孙小美")).owner.userid == "wangfang"


async def test_a_page_wecom_refuses_ends_the_sync_and_deactivates_nobody(cli_env, capsys):
    chat = cli_env
    await sync_directory(chat.service.app[keys.SESSIONS], chat.service.sim)
    before = await staff_table(chat.service.app[keys.SESSIONS])
    company.leave(chat.service.sim, "zhangwei")
    chat.service.sim.fail_next("user/list_id", errcode=48002)  # api forbidden: the secret lacks the permission
    code, out, err = await scrm(capsys, "sync", "directory", "--page-size", "2")
    assert code == 2
    assert "通讯录同步中断" in err and "没有任何成员因此被停用" in err and "scrm sync directory" in err
    assert await staff_table(chat.service.app[keys.SESSIONS]) == before  # zhangwei too: the list was not complete


async def test_throttled_pages_wait_and_are_retried_and_an_unreadable_member_is_reported(chat):
    """45009 on two pages: waited out (WeCom's minute), then the same pages again, none skipped; a
    member user/get cannot read is named and kept as they were, the others go on."""
    sessions = chat.service.app[keys.SESSIONS]
    await sync_directory(sessions, chat.service.sim, ROLES_TOML)
    company.leave(chat.service.sim, "lina")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    chat.service.sim.fail_next("user/list_id", errcode=45009, times=2)
    chat.service.sim.fail_next("user/get", errcode=40003)  # 40003 invalid userid: not retried
    sync = DirectorySync(Directory(chat.service.app[keys.WECOM], role_map(chat.service.settings)), sessions,
                         page_size=2, concurrency=1, sleep=sleep)
    report = await sync.run()
    assert len(waits) == 2 and all(60 <= w <= 75 for w in waits)
    [unreadable] = report.failed
    assert report.members == 3 and report.departed == ["lina"]
    table = await staff_table(sessions)
    assert table[unreadable][1] is True and table["lina"][1] is False


async def test_one_sync_at_a_time_and_a_dead_holder_does_not_block_it(chat):
    sessions = chat.service.app[keys.SESSIONS]
    sync = DirectorySync(Directory(chat.service.app[keys.WECOM], role_map(chat.service.settings)), sessions)
    other = DirectorySync(Directory(chat.service.app[keys.WECOM], role_map(chat.service.settings)), sessions)
    async with sessions() as session:  # another scheduler is in the middle of a sync
        assert await LeaseService(session).acquire(LEASE, other.holder, ttl=60)
        await session.commit()
    try:
        await sync.run()
        raise AssertionError("a second sync ran while the first held the lease")
    except SyncBusy:
        pass
    assert await staff_table(sessions) == {}
    async with sessions() as session:  # ... and was killed: its lease runs out
        await session.execute(update(Lease).where(Lease.name == LEASE).values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    report = await sync.run()
    assert report.members == 5


async def test_the_member_list_is_read_with_the_contacts_sync_secret_when_wecom_demands_it(cli_env, capsys, monkeypatch):
    """Only the 通讯录同步 Secret may call user/list_id: without it the sync stops and says which to set."""
    cli_env.service.sim.contacts_secret = "contacts-sync-secret-Pq8wE2rT5yU1iO4pA7sD0fG3"
    code, out, err = await scrm(capsys, "sync", "directory")
    assert code == 2 and "errcode 48002" in err and "SCRM_WECOM_CONTACTS_SECRET" in err
    assert await staff_table(cli_env.service.app[keys.SESSIONS]) == {}
    monkeypatch.setenv("SCRM_WECOM_CONTACTS_SECRET", cli_env.service.sim.contacts_secret)
    code, out, err = await scrm(capsys, "sync", "directory")
    assert code == 0, err
    assert len(await staff_table(cli_env.service.app[keys.SESSIONS])) == 5
