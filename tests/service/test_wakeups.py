"""A web process wakes the workers of another process when a callback commits (scrm.ingest.wakeups),
and a process that is both wakes one of its own workers, not all of them.

The workers here poll only once a minute, so the message can only be archived within the test's
deadline if the web side's announcement reached it through Redis.
"""

from __future__ import annotations

import asyncio
import functools
import time

import pytest
from sqlalchemy import event, select

from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import CallbackSender
from crm_core.models import Message, OutboxItem
from scrm import app as app_module
from scrm import keys
from scrm.ingest import wakeups
from scrm.app import create_app
from scrm.queue_worker import QueueWorker
from tests.support.service import service_settings

POLL_SECONDS = 60.0


async def test_a_callback_to_a_web_process_wakes_an_idle_worker_process(backend, sim, sim_server, aiohttp_client,
                                                                         monkeypatch):
    if backend.redis_url is None:
        pytest.skip("the in-process Redis stand-in serves one process: workers are woken directly")
    monkeypatch.setattr(app_module, "QueueWorker", functools.partial(QueueWorker, idle_interval=POLL_SECONDS))
    settings = service_settings(backend, sim, str(sim_server.make_url("/cgi-bin/")))
    web_client = await aiohttp_client(create_app(settings, frozenset({"web"})))
    worker_client = await aiohttp_client(create_app(settings, frozenset({"worker"})))
    await idle(worker_client.server.app)
    crypto = CallbackCrypto(sim.callback_token, sim.encoding_aes_key, sim.corp_id)
    sender = CallbackSender(web_client.session, str(web_client.make_url("/wecom/callback")), crypto,
                            corp_id=sim.corp_id, agent_id=str(sim.agent_id))
    status, _ = await sender.text("zhangwei", "帮助", msg_id=64_001)
    assert status == 200
    started = time.monotonic()
    sessions = worker_client.server.app[keys.SESSIONS]
    while time.monotonic() - started < POLL_SECONDS / 2:  # far inside the poll, far beyond a busy machine's delay
        async with sessions() as session:
            if await session.scalar(select(Message.id).where(Message.external_msg_id == "64001")):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not archived within {POLL_SECONDS / 2:.0f} s: the worker was not woken "
                         f"(it polls every {POLL_SECONDS:.0f} s)")


async def test_a_chat_message_costs_one_claim_that_takes_it_and_one_that_finds_the_inbox_empty(
        backend, sim, sim_server, aiohttp_client, monkeypatch):
    """Waking all four PostgreSQL inbox workers (and again on the process's own Redis announcement)
    cost a dozen claims per message, each a transaction beside the one doing the work."""
    monkeypatch.setattr(app_module, "QueueWorker", functools.partial(QueueWorker, idle_interval=POLL_SECONDS))
    settings = service_settings(backend, sim, str(sim_server.make_url("/cgi-bin/")))
    client = await aiohttp_client(create_app(settings, frozenset({"web", "worker"})))
    app = client.server.app
    await all_waiting(app)
    claims: list[str] = []
    record = lambda conn, cursor, statement, *args: claims.append(statement)  # noqa: E731
    engine = app[keys.ENGINE].sync_engine
    crypto = CallbackCrypto(sim.callback_token, sim.encoding_aes_key, sim.corp_id)
    sender = CallbackSender(client.session, str(client.make_url("/wecom/callback")), crypto,
                            corp_id=sim.corp_id, agent_id=str(sim.agent_id))
    event.listen(engine, "before_cursor_execute", record)
    try:
        status, _ = await sender.text("zhangwei", "帮助", msg_id=64_002)
        assert status == 200
        deadline = time.monotonic() + POLL_SECONDS / 2
        while time.monotonic() < deadline:
            async with app[keys.SESSIONS]() as session:
                if await session.scalar(select(OutboxItem.id).where(OutboxItem.idempotency_key == "reply:wecom_app:64002")):
                    break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("no reply: the callback did not wake a worker")
        await all_waiting(app)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len([s for s in claims if s.startswith("UPDATE inbox_items") and "locked_by" in s.partition("WHERE")[0]]) == 2


async def all_waiting(app) -> None:
    """Wait until every inbox worker sits in its long poll, none of them told to look again."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if all(w.waiting and not w.wakeup.is_set() for w in app[keys.INBOX_WORKERS]):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the inbox workers did not settle into their poll")


async def idle(app) -> None:
    """Wait until the worker process listens on the channel and its workers sit in their long poll."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        channel = wakeups.channel(app[keys.REDIS], app[keys.SETTINGS].wecom.corp_id)
        [(_, listeners)] = await app[keys.REDIS].pubsub_numsub(channel)
        if listeners and all(not w.wakeup.is_set() for w in app[keys.INBOX_WORKERS]):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the worker process did not start listening")
