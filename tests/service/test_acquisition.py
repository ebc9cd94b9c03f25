"""渠道活码 and 欢迎语 end to end: a manager makes a channel QR code from chat or the CLI, customers
scan it in the WeCom simulator and arrive attributed, greeted once within WeCom's 20 seconds (or
their rep is told, once, to greet them), and webhook leads naming a channel get an owner by rule."""

from __future__ import annotations

import asyncio
import json
import time
import tomllib
from pathlib import Path

import pytest
from sqlalchemy import func, select

from config.settings import WebhookSettings
from connectors.webhook import sign
from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import CallbackSender, build_plaintext_change_external_contact
from crm_core.assignment import LeadAssigner, SalesGroups
from crm_core.db import create_engine, session_factory
from crm_core.models import ContactChannel, Customer, InboxItem, OutboxItem, Staff
from scrm.cli import main as cli
from scrm.app import create_app
from tests.support.chat import ROLES_TOML, Chat
from tests.support.service import Service, TEST_ROLES, service_settings, use_service_env

SECRET = "site-secret-0123456789abcdef"
EXPO_WELCOME = "感谢您在展会上扫码，资料稍后发您。"


@pytest.fixture
async def chat(backend, sim, sim_server, aiohttp_client, tmp_path: Path) -> Chat:
    """The service with roles (liuyang manager, zhangwei and lina sales) and a webhook channel `site`;
    workers are stepped by hand (`settle`), so a test decides when the 20-second clock runs out."""
    roles = tmp_path / "roles.toml"
    roles.write_text(ROLES_TOML, encoding="utf-8")
    settings = service_settings(backend, sim, str(sim_server.make_url("/cgi-bin/")), roles_file=roles,
                                webhook=WebhookSettings(secrets=(("site", SECRET),)))
    client = await aiohttp_client(create_app(settings, TEST_ROLES))
    crypto = CallbackCrypto(sim.callback_token, sim.encoding_aes_key, sim.corp_id)
    sender = CallbackSender(client.session, str(client.make_url("/wecom/callback")), crypto,
                            corp_id=sim.corp_id, agent_id=str(sim.agent_id))
    service = Service(client=client, sim=sim, wecom=sender, crypto=crypto, settings=settings)
    await service.stop_background_workers()
    return Chat(service)


async def new_channel(chat: Chat, line: str) -> ContactChannel:
    replies = await chat.say("liuyang", line)
    assert len(replies) == 2, replies  # "registered", then the QR link once WeCom made the code
    async with chat.service.sessions() as session:
        return await session.scalar(select(ContactChannel).order_by(ContactChannel.id.desc()).limit(1))


async def customer_by_name(chat: Chat, name: str) -> Customer:
    async with chat.service.sessions() as session:
        return await session.scalar(select(Customer).where(Customer.name == name))


async def owner_of(chat: Chat, name: str) -> str | None:
    async with chat.service.sessions() as session:
        return await session.scalar(select(Staff.userid).join(Customer, Customer.owner_id == Staff.id)
                                    .where(Customer.name == name))


async def resend_with_new_timestamp(chat: Chat, scan) -> None:
    """WeCom resending the event a second later: a different inbox key, the same welcome code."""
    await chat.service.wecom.raw(build_plaintext_change_external_contact(
        chat.service.sim.corp_id, "add_external_contact", scan.userid, scan.external_userid,
        state=scan.state, welcome_code=scan.welcome_code, create_time=int(time.time()) + 1))


async def post_lead(chat: Chat, msg_id: str, sender: str, name: str, text: str, **meta) -> None:
    body = json.dumps({"id": msg_id, "from": {"id": sender, "name": name}, "text": text, "meta": meta},
                      ensure_ascii=False).encode()
    ts = int(time.time())
    resp = await chat.service.client.post("/webhook/site", data=body, headers={
        "Content-Type": "application/json", "X-SCRM-Timestamp": str(ts), "X-SCRM-Signature": sign(SECRET, ts, body)})
    assert resp.status == 200, await resp.text()
    await chat.service.settle()


async def test_a_manager_creates_a_channel_qr_code_from_chat_and_a_rep_may_not(chat):
    [refusal] = await chat.say("zhangwei", "活码 新建 展会2026 分配:华东组")
    assert "活码" in refusal and not chat.service.sim.contact_ways

    registered, ready = await chat.say("liuyang", f"活码 新建 展会2026 分配:华东组 欢迎语:{EXPO_WELCOME}")
    assert "展会2026" in registered and "华东组" in registered
    [way] = chat.service.sim.contact_ways.values()
    assert (way["type"], way["scene"], way["user"], way["remark"]) == (2, 2, ["zhangwei", "lina"], "展会2026")
    assert way["qr_code"] in ready and "华东组" in ready
    async with chat.service.sessions() as session:
        channel = await session.scalar(select(ContactChannel))
    assert (channel.state, channel.config_id, channel.welcome_text) == (way["state"], way["config_id"], EXPO_WELCOME)
    assert channel.state == f"ch{channel.id}"

    [listing] = await chat.say("liuyang", "qrcode list")
    assert "展会2026" in listing and "使用中" in listing and way["qr_code"] in listing
    [taken] = await chat.say("liuyang", "活码 新建 展会2026")
    assert "已经存在" in taken and len(chat.service.sim.contact_ways) == 1
    [unknown] = await chat.say("liuyang", "活码 新建 展会2027 分配:火星组")
    assert "火星组" in unknown and "华东组" in unknown
    [usage] = await chat.say("liuyang", "活码 新建 展会2027 分配:华东组 随便写点")
    assert "活码 新建" in usage


async def test_a_code_wecom_refuses_is_reported_to_its_creator(chat):
    registered, failed = await chat.say("liuyang", "活码 新建 地推 成员:ghost")
    assert "地推" in registered and "没有生成" in failed and "实名" in failed
    assert not chat.service.sim.contact_ways
    [listing] = await chat.say("liuyang", "活码 列表")
    assert "生成中" in listing


async def test_a_customer_who_scans_is_attributed_welcomed_once_and_owned_by_the_rep_they_added(chat):
    channel = await new_channel(chat, f"活码 新建 展会2026 分配:华东组 欢迎语:{EXPO_WELCOME}")
    scan = await chat.service.wecom.customer_scans(chat.service.sim, channel.config_id, "钱多多", userid="lina",
                                                   corp_name="上海云图科技")
    await chat.service.settle()
    customer = await customer_by_name(chat, "钱多多")
    assert (customer.source, customer.source_channel_id) == ("展会2026", channel.id)
    assert await owner_of(chat, "钱多多") == "lina"
    assert [(m["welcome_code"], m["text"]["content"], m["userid"]) for m in chat.service.sim.sent_welcome_msgs] == [
        (scan.welcome_code, EXPO_WELCOME, "lina")]
    [notice] = chat.replies("lina")
    assert "钱多多" in notice and "展会2026" in notice

    await chat.service.wecom.change_external_contact("add_external_contact", scan.userid, scan.external_userid,
                                                     state=scan.state, welcome_code=scan.welcome_code)
    await resend_with_new_timestamp(chat, scan)
    await chat.service.settle()
    assert len(chat.service.sim.sent_welcome_msgs) == 1
    assert chat.replies("lina") == [notice]
    [listing] = await chat.say("liuyang", "活码 列表")
    assert "客户 1 位" in listing


async def test_an_expired_welcome_code_is_not_resent_and_the_rep_is_told_once(chat):
    channel = await new_channel(chat, "活码 新建 地推 分配:华东组")
    scan = await chat.service.wecom.customer_scans(chat.service.sim, channel.config_id, "孔明", userid="zhangwei")
    real_clock = chat.service.sim.now
    chat.service.sim.now = lambda: real_clock() + 21  # the worker got to it after WeCom's 20 seconds
    await chat.service.settle()
    await resend_with_new_timestamp(chat, scan)
    await chat.service.settle()

    assert chat.service.sim.sent_welcome_msgs == []
    told = [r for r in chat.replies("zhangwei") if "20 秒" in r]
    assert len(told) == 1 and "孔明" in told[0] and "主动" in told[0]
    async with chat.service.sessions() as session:
        [welcome] = (await session.scalars(select(OutboxItem).where(OutboxItem.kind == "welcome_msg"))).all()
    assert (welcome.status, welcome.attempts) == ("parked", 1)
    assert "WelcomeCodeInvalidError" in welcome.last_error


async def test_a_welcome_without_channel_text_uses_the_default_with_the_reps_name(chat):
    channel = await new_channel(chat, "活码 新建 官网 成员:zhangwei,lina")
    await chat.service.wecom.customer_scans(chat.service.sim, channel.config_id, "鲁班")
    await chat.service.settle()
    [welcome] = chat.service.sim.sent_welcome_msgs
    rep = chat.service.sim.staff[welcome["userid"]]["name"]
    assert rep in welcome["text"]["content"] and welcome["userid"] in ("zhangwei", "lina")


async def test_an_unknown_or_stopped_state_attributes_nothing_and_breaks_nothing(chat):
    channel = await new_channel(chat, "活码 新建 展会2026 分配:华东组")
    [stopped] = await chat.say("liuyang", "活码 停用 展会2026")
    assert "已停用" in stopped and chat.service.sim.contact_ways == {}  # the code itself was deleted
    stale = chat.service.sim.add_contact_way({"type": 1, "scene": 2, "state": channel.state, "user": ["zhangwei"]})
    other = chat.service.sim.add_contact_way({"type": 1, "scene": 2, "state": "flyer-2019", "user": ["zhangwei"]})
    await chat.service.wecom.customer_scans(chat.service.sim, stale["config_id"], "张飞")
    await chat.service.wecom.customer_scans(chat.service.sim, other["config_id"], "关羽")
    await chat.service.settle()
    for name in ("张飞", "关羽"):
        customer = await customer_by_name(chat, name)
        assert (customer.source, customer.source_channel_id) == ("", None)
        assert await owner_of(chat, name) == "zhangwei"  # WeCom paired them all the same
    async with chat.service.sessions() as session:
        assert await session.scalar(select(func.count()).where(InboxItem.status != "done")) == 0
    assert len(chat.service.sim.sent_welcome_msgs) == 2  # a welcome code is a welcome code


async def test_webhook_leads_naming_a_channel_are_assigned_by_region(chat):
    await new_channel(chat, "活码 新建 上海展会 分配:全国组")
    await new_channel(chat, "活码 新建 官网 分配:全国组")
    await post_lead(chat, "a-1", "v-1", "广州李生", "想了解一下报价", channel="官网")  # no region: first in turn
    await post_lead(chat, "a-2", "v-2", "上海王总", "你好", channel="上海展会")  # 上海 → 华东 → zhangwei
    assert await owner_of(chat, "上海王总") == "zhangwei"
    customer = await customer_by_name(chat, "上海王总")
    assert customer.source == "上海展会"
    notice = [r for r in chat.replies("zhangwei") if "上海王总" in r]
    assert len(notice) == 1 and "上海展会" in notice[0] and "首条消息：你好" in notice[0]

    await post_lead(chat, "a-3", "v-2", "上海王总", "在吗", channel="官网")  # not new: keeps source and owner
    customer = await customer_by_name(chat, "上海王总")
    assert (customer.source, await owner_of(chat, "上海王总")) == ("上海展会", "zhangwei")
    await post_lead(chat, "a-4", "v-4", "路人", "随便看看")  # names no channel: nobody assigned
    assert await owner_of(chat, "路人") is None


async def test_webhook_leads_go_round_robin_or_to_the_least_loaded_rep(chat):
    await new_channel(chat, "活码 新建 官网 分配:全国组")
    await new_channel(chat, "活码 新建 公众号 分配:华东组")
    for i in range(4):
        await post_lead(chat, f"rr-{i}", f"rr-{i}", f"轮流{i}", "你好", channel="官网")
    assert [await owner_of(chat, f"轮流{i}") for i in range(4)] == ["zhangwei", "lina", "liuyang", "zhangwei"]

    # 华东组 is least_loaded between zhangwei (now 2 customers) and lina (1): lina, then either tie-break.
    await post_lead(chat, "ll-1", "ll-1", "少者1", "你好", channel="公众号")
    await post_lead(chat, "ll-2", "ll-2", "少者2", "你好", channel="公众号")
    await post_lead(chat, "ll-3", "ll-3", "少者3", "你好", channel="公众号")
    assert [await owner_of(chat, f"少者{i}") for i in (1, 2, 3)] == ["lina", "zhangwei", "lina"]


GROUPS = SalesGroups.from_toml(tomllib.loads("""
[regions]
"华东" = ["上海"]
[[groups]]
name = "轮"
members = ["a", "b", "c"]
strategy = "round_robin"
[[groups]]
name = "均"
members = ["a", "b"]
strategy = "least_loaded"
"""))


@pytest.mark.parametrize(("group", "expected"), [("轮", {"a", "b"}), ("均", {"a", "b"})])
async def test_two_concurrent_assignments_pick_different_reps(backend, group, expected):
    from crm_core.migrate import upgrade_async

    await upgrade_async(backend.database_url)
    engine = create_engine(backend.database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session:
            session.add_all(Staff(userid=u, name=u) for u in ("a", "b", "c"))
            session.add_all(Customer(name=f"新客{i}") for i in (1, 2))
            await session.commit()

        async def assign(name: str) -> str:
            async with sessions() as session:
                customer = await session.scalar(select(Customer).where(Customer.name == name))
                staff = (await session.scalars(select(Staff))).all()
                owner = await LeadAssigner(session, GROUPS).assign(GROUPS.get(group), customer, staff, hints=[])
                await session.commit()
                return owner.userid

        assert set(await asyncio.gather(assign("新客1"), assign("新客2"))) == expected
    finally:
        await engine.dispose()


async def test_the_cli_creates_and_lists_channels(chat, backend, monkeypatch, capsys):
    use_service_env(monkeypatch, chat.service)
    sim = chat.service.sim

    code = await asyncio.to_thread(cli.main, ["--log-level", "WARNING", "channels", "create", "抖音直播",
                                              "--group", "全国组", "--welcome", "欢迎来自直播间的朋友"])
    out = capsys.readouterr().out
    [way] = sim.contact_ways.values()
    assert code == 0 and way["qr_code"] in out and way["user"] == ["zhangwei", "lina", "liuyang"]

    # A welcome text past send_welcome_msg's 4000 bytes is refused with its size, and nothing is saved.
    code = await asyncio.to_thread(cli.main, ["--log-level", "WARNING", "channels", "create", "长欢迎语",
                                              "--users", "lina", "--welcome", "欢" * 1334])
    assert code == 1 and "4002 bytes" in capsys.readouterr().err and len(sim.contact_ways) == 1

    code = await asyncio.to_thread(cli.main, ["--log-level", "WARNING", "channels", "create", "幽灵", "--users", "ghost"])
    assert code == 1 and "60111" in capsys.readouterr().err and len(sim.contact_ways) == 1

    assert await asyncio.to_thread(cli.main, ["--log-level", "WARNING", "channels", "list"]) == 0
    out = capsys.readouterr().out
    assert "抖音直播" in out and way["state"] in out and "幽灵" not in out

    scan = await chat.service.wecom.customer_scans(sim, way["config_id"], "诸葛亮", userid="liuyang")
    await chat.service.settle()
    assert [m["text"]["content"] for m in sim.sent_welcome_msgs] == ["欢迎来自直播间的朋友"]
    assert (await customer_by_name(chat, "诸葛亮")).source == "抖音直播" and scan.userid == "liuyang"
