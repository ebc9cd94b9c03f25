"""The sidebar's quick actions are commands in the chat's per-member rate limit (bot.rate_limit): one count
for both, so a member over it in chat is refused on the page with nothing written, and page writes use up
the same minute chat does (SCRM_BOT_COMMANDS_PER_MINUTE)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import CallbackSender
from crm_core.db import utcnow
from crm_core.models import AuditEntry, FollowUp, Note
from scrm import keys
from scrm.app import create_app
from tests.support.chat import ROLES_TOML, Chat, sync_directory
from tests.support.service import TEST_ROLES, Service, service_settings

API = "/h5/api/sidebar"
LIMITED = "每分钟最多 3 条命令"


@pytest.fixture
async def pages(backend, sim, sim_server, aiohttp_client, tmp_path: Path) -> Chat:
    """The service at 3 commands a minute; chat and pages on one clock the test moves (`pages.now`)."""
    roles = tmp_path / "roles.toml"
    roles.write_text(ROLES_TOML, encoding="utf-8")
    settings = service_settings(backend, sim, str(sim_server.make_url("/cgi-bin/")), roles_file=roles,
                                bot_commands_per_minute=3)
    chat: Chat | None = None
    client = await aiohttp_client(create_app(settings, TEST_ROLES, clock=lambda: chat.now))
    crypto = CallbackCrypto(sim.callback_token, sim.encoding_aes_key, sim.corp_id)
    sender = CallbackSender(client.session, str(client.make_url("/wecom/callback")), crypto,
                            corp_id=sim.corp_id, agent_id=str(sim.agent_id))
    chat = Chat(Service(client=client, sim=sim, wecom=sender, crypto=crypto, settings=settings))
    chat.set_clock(utcnow().replace(second=5, microsecond=0))
    await sync_directory(client.app[keys.SESSIONS], sim)
    return chat


async def written(chat, actor: str) -> tuple[int, int, int]:
    """Notes, follow-ups, and the actor's audit entries for quick actions."""
    async with chat.service.sessions() as session:
        notes = await session.scalar(select(func.count()).select_from(Note))
        follow_ups = await session.scalar(select(func.count()).select_from(FollowUp))
        audits = await session.scalar(select(func.count()).where(
            AuditEntry.actor == actor,
            AuditEntry.action.in_(["customer.note", "customer.follow_up", "customer.tags", "deal.stage",
                                   "customer.note_denied", "customer.follow_up_denied"])))
    return notes or 0, follow_ups or 0, audits or 0


async def test_a_member_over_the_limit_in_chat_is_refused_on_the_page_and_nothing_is_written(browser, pages) -> None:
    await pages.onboard("赵磊")
    await browser.login("zhangwei")
    zhao = (await pages.customer("赵磊")).id
    for _ in range(4):
        await pages.say("zhangwei", "帮助")
    assert LIMITED in pages.replies("zhangwei")[-1]  # chat told them once
    before = await written(pages, "zhangwei")

    for path, body in [("notes", {"text": "电话沟通"}), ("follow-ups", {"when": "明天下午3点", "text": "回访"}),
                       ("tags", {"add": ["重点"]}), ("stage", {"stage": "报价"})]:
        status, answer = await browser.post(f"{API}/customers/{zhao}/{path}", body)
        assert (status, answer["error"]) == (429, "操作太频繁了：聊天和页面合计每分钟最多 3 次操作。请稍等一分钟再试，这次没有保存。")
    assert await written(pages, "zhangwei") == before
    async with pages.service.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Note)) == 0

    pages.set_clock(pages.now + timedelta(minutes=1))  # the next minute, the page works again
    status, card = await browser.post(f"{API}/customers/{zhao}/notes", {"text": "电话沟通"})
    assert status == 200 and card["notes"][0]["text"] == "电话沟通"


async def test_page_writes_count_toward_the_same_limit_as_chat(browser, pages) -> None:
    await pages.onboard("赵磊")
    await browser.login("zhangwei")
    zhao = (await pages.customer("赵磊")).id
    for i in range(3):
        status, _ = await browser.post(f"{API}/customers/{zhao}/notes", {"text": f"第{i + 1}次沟通"})
        assert status == 200
    [reply] = await pages.say("zhangwei", "帮助")
    assert LIMITED in reply  # the fourth command of the minute, typed in chat
    assert (await browser.post(f"{API}/customers/{zhao}/notes", {"text": "又一次"}))[0] == 429

    [answer] = await pages.say("lina", "帮助")  # the count is per member
    assert LIMITED not in answer
    assert (await written(pages, "zhangwei"))[0] == 3
