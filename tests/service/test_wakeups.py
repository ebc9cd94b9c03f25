"""A web process wakes the workers of another process when a callback commits (scrm.ingest.wakeups).

The worker here polls only once a minute, so the message can only be archived within the test's
deadline if the web side's announcement reached it through Redis.
"""

from __future__ import annotations

import asyncio
import functools
import time

import pytest
from sqlalchemy import select

from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import CallbackSender
from crm_core.models import Message
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


async def idle(app) -> None:
    """Wait until the worker process listens on the channel and its workers sit in their long poll."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        [(_, listeners)] = await app[keys.REDIS].pubsub_numsub(wakeups.CHANNEL)
        if listeners and all(not w.wakeup.is_set() for w in app[keys.INBOX_WORKERS]):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the worker process did not start listening")
