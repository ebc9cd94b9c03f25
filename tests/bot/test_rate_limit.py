"""A flood of commands from one staff member gets one warning, then silence for the minute; the
messages are still archived, other staff are unaffected, and the next minute works again."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import CallbackSender
from crm_core.models import Message
from scrm import keys
from scrm.app import create_app
from tests.support.chat import FIXED_NOW, ROLES_TOML, Chat
from tests.support.service import TEST_ROLES, Service, service_settings


@pytest.fixture
async def strict_chat(backend, sim, sim_server, aiohttp_client, tmp_path: Path) -> Chat:  # noqa: F811
    roles = tmp_path / "roles.toml"
    roles.write_text(ROLES_TOML, encoding="utf-8")
    settings = service_settings(backend, sim, str(sim_server.make_url("/cgi-bin/")), roles_file=roles,
                                bot_commands_per_minute=3)
    client = await aiohttp_client(create_app(settings, TEST_ROLES))
    crypto = CallbackCrypto(sim.callback_token, sim.encoding_aes_key, sim.corp_id)
    sender = CallbackSender(client.session, str(client.make_url("/wecom/callback")), crypto,
                            corp_id=sim.corp_id, agent_id=str(sim.agent_id))
    chat = Chat(Service(client=client, sim=sim, wecom=sender, crypto=crypto, settings=settings))
    chat.set_clock(FIXED_NOW.replace(second=5))
    return chat


async def test_a_flood_gets_one_warning_then_silence_until_the_next_minute(strict_chat):
    chat = strict_chat
    for _ in range(6):
        await chat.say("zhangwei", "帮助")
    replies = chat.replies("zhangwei")
    assert len(replies) == 4  # three answers, one warning, then nothing
    assert "每分钟最多 3 条命令" in replies[3]
    async with chat.service.sessions() as session:
        archived = await session.scalar(select(func.count()).where(Message.direction == "in", Message.text == "帮助"))
    assert archived == 6  # every message is still on record

    await chat.say("lina", "帮助")
    assert len(chat.replies("lina")) == 1  # the limit is per person

    chat.set_clock(chat.now + timedelta(minutes=1))
    await chat.say("zhangwei", "帮助")
    assert len(chat.replies("zhangwei")) == 5


async def test_a_message_retried_after_a_rolled_back_batch_is_counted_once(strict_chat):
    """Inbox rows claimed together share a transaction; when one of them fails the rest run again one
    at a time (a database failover does the same to a whole batch). Redis is not rolled back with the
    transaction, so a limit that counted each processing would take a retried message for two."""
    chat = strict_chat
    await chat.say("zhangwei", "帮助")
    await chat.service.stop_background_workers()
    chat.service.sim.fail_next("user/get", errcode=-1, times=100)  # lina is new: her line fails the batch
    await chat.service.wecom.text("zhangwei", "帮助", msg_id=76_001)
    await chat.service.wecom.text("lina", "帮助", msg_id=76_002)
    await chat.service.wecom.text("zhangwei", "帮助", msg_id=76_003)
    worker = chat.service.app[keys.INBOX_WORKERS][0]
    worker.batch_seconds = float("inf")  # one batch, however busy the machine (see tests/bot/test_batches.py)
    await worker.run_once()
    for outbox in chat.service.app[keys.OUTBOX_WORKERS]:
        await outbox.drain()
    replies = chat.replies("zhangwei")
    assert len(replies) == 3 and not any("每分钟最多" in r for r in replies)  # 3 commands: all within the limit
