"""Redis going away and coming back (a restart, a failover): callbacks are still acked because the
inbox is in the database, /readyz reports the outage while it lasts, and once Redis is back every
acked message is processed and answered exactly once. Runs its own redis-server, so the machine's
service is never touched."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import CallbackSender
from crm_core.models import InboxItem, Message, OutboxItem
from scrm.app import create_app
from scrm.bench.processes import free_port
from tests.service.conftest import TEST_ROLES, Service, service_settings, sim, sim_server  # noqa: F401  (fixtures)


pytestmark = pytest.mark.slow  # starts its own redis-server


class PrivateRedis:
    def __init__(self, port: int, workdir: Path):
        self.port, self.workdir, self.proc = port, workdir, None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(250):  # until it accepts connections: a bounded wait for a condition
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                try:
                    self.proc.wait(timeout=0.02)
                    raise RuntimeError("redis-server exited at start")
                except subprocess.TimeoutExpired:
                    pass
        raise RuntimeError("redis-server did not start within 5 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    redis = PrivateRedis(free_port(), tmp_path)
    redis.start()
    yield redis
    redis.stop()


async def test_callbacks_are_kept_through_a_redis_restart_and_answered_once(backend, sim, sim_server, aiohttp_client,
                                                                             private_redis):
    settings = dataclasses.replace(service_settings(backend, sim, str(sim_server.make_url("/cgi-bin/"))),
                                   redis_url=f"redis://127.0.0.1:{private_redis.port}/0")
    client = await aiohttp_client(create_app(settings, TEST_ROLES))
    crypto = CallbackCrypto(sim.callback_token, sim.encoding_aes_key, sim.corp_id)
    wecom = CallbackSender(client.session, str(client.make_url("/wecom/callback")), crypto,
                           corp_id=sim.corp_id, agent_id=str(sim.agent_id))
    service = Service(client=client, sim=sim, wecom=wecom, crypto=crypto, settings=settings)
    await service.stop_background_workers()

    await wecom.text("zhangwei", "帮助", msg_id=660001)
    await service.settle_past_backoffs()
    assert (await client.get("/readyz")).status == 200

    private_redis.stop()
    readyz = await client.get("/readyz")
    assert readyz.status == 503 and (await readyz.json())["checks"]["redis"] is False
    for msg_id in (660002, 660003):
        status, _ = await wecom.text("zhangwei", "帮助", msg_id=msg_id)
        assert status == 200  # acked: the inbox is in the database
    await service.settle_past_backoffs()  # the workers try, fail on Redis, and keep the rows

    private_redis.start()
    await service.settle_past_backoffs()
    assert (await client.get("/readyz")).status == 200
    async with service.sessions() as session:
        archived = await session.scalar(select(func.count()).where(Message.direction == "in", Message.text == "帮助"))
        stuck = await session.scalar(select(func.count()).where(InboxItem.status != "done"))
    assert archived == 3 and stuck == 0
    assert len([m for m in sim.sent_app_messages if m["touser"] == "zhangwei"]) == 3
