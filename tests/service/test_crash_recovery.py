"""Invariant 1 and 2 with a real process: callbacks acked, then `kill -9`, then restart.

Every callback that got its 200 must end up archived exactly once, including retries WeCom
sends for the same MsgId, whatever the worker had or had not done when the process died.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import aiohttp
import pytest
from sqlalchemy import select

from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import CallbackSender
from crm_core.db import create_engine, session_factory
from crm_core.models import Message
from scrm.bench.processes import free_port, wait_healthy

pytestmark = pytest.mark.slow

N_MESSAGES = 300


def start_service(backend, sim, api_base: str, port: int, log_path, roles: str = "web,worker,scheduler") -> subprocess.Popen:
    env = {
        **os.environ,
        "SCRM_DATABASE_URL": backend.database_url,
        "SCRM_REDIS_URL": backend.redis_url or "",
        **sim.service_env(api_base),
        # Rows leased by the killed process are taken over once their lease expires.
        "SCRM_WORKER_LEASE_SECONDS": "3",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "scrm.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port), "--roles", roles],
        env=env, stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
    )


async def archived_ids(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            return list((await session.scalars(select(Message.external_msg_id).where(Message.channel == "wecom_app", Message.direction == "in"))).all())
    finally:
        await engine.dispose()


async def test_acked_callbacks_survive_kill_9_and_are_archived_exactly_once(backend, sim, sim_server, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api_base = str(sim_server.make_url("/cgi-bin/"))
    log_path = tmp_path / "service.log"
    proc = start_service(backend, sim, api_base, port, log_path)
    acked: set[str] = set()
    try:
        await wait_healthy(url, proc)
        async with aiohttp.ClientSession() as http:
            crypto = CallbackCrypto(sim.callback_token, sim.encoding_aes_key, sim.corp_id)
            sender = CallbackSender(http, f"{url}/wecom/callback", crypto, corp_id=sim.corp_id, agent_id=str(sim.agent_id))
            staff = list(sim.staff)

            async def post(i: int) -> None:
                # Every tenth message is sent twice, as WeCom does when it doubts an answer.
                for _ in range(2 if i % 10 == 0 else 1):
                    status, _ = await sender.text(staff[i % len(staff)], f"消息 {i}", msg_id=900_000 + i)
                    if status == 200:
                        acked.add(str(900_000 + i))

            await asyncio.gather(*(post(i) for i in range(N_MESSAGES)))
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
        assert len(acked) == N_MESSAGES

        proc = start_service(backend, sim, api_base, port, log_path)
        await wait_healthy(url, proc)
        deadline = time.monotonic() + 60
        ids = await archived_ids(backend.database_url)
        while len(ids) < len(acked) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            ids = await archived_ids(backend.database_url)
    finally:
        if proc.poll() is None:
            proc.terminate()  # the simulator lives in this event loop: keep it running while waiting
            await asyncio.to_thread(proc.wait, 30)
    assert len(ids) == len(set(ids)), "a message was archived twice"
    assert set(ids) == acked, f"{len(acked - set(ids))} acked but not archived; log:\n{log_path.read_text()[-1500:]}"
