"""Fixtures: a simulator on loopback, Redis (fakeredis and, when reachable, the real one), clients."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable

import aiohttp
import fakeredis
import pytest
import redis.asyncio
from aiohttp.test_utils import TestServer

from connectors.wecom.client import WeComClient
from connectors.wecom.simulator.sample_data import sample_state
from connectors.wecom.simulator.server import SimulatorAccessLogger, create_simulator_app
from connectors.wecom.simulator.state import SimulatorState
from tests.support.clock import Clock

RedisFactory = Callable[[], redis.asyncio.Redis]


@pytest.fixture
def corp_id() -> str:
    """A corp id no other test (or test run sharing the real Redis) uses."""
    return f"wwtest{uuid.uuid4().hex[:10]}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim_state(corp_id: str, clock: Clock) -> SimulatorState:
    return sample_state(corp_id=corp_id, now=clock)


@pytest.fixture
async def sim_server(aiohttp_server, sim_state: SimulatorState) -> TestServer:  # type: ignore[no-untyped-def]
    return await aiohttp_server(create_simulator_app(sim_state), access_log_class=SimulatorAccessLogger)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(params=["fakeredis", "real-redis"])
async def redis_factory(request: pytest.FixtureRequest, corp_id: str) -> AsyncIterator[RedisFactory]:
    """Makes connections to one shared store, as separate processes would have."""
    opened: list[redis.asyncio.Redis] = []
    if request.param == "fakeredis":
        server = fakeredis.FakeServer()

        def make() -> redis.asyncio.Redis:
            opened.append(fakeredis.FakeAsyncRedis(server=server))
            return opened[-1]
    else:
        probe = redis.asyncio.Redis(host="127.0.0.1", port=6379, db=15, socket_connect_timeout=1)
        try:
            await probe.ping()
        except (redis.exceptions.ConnectionError, OSError) as exc:
            await probe.aclose()
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI=true but Redis at 127.0.0.1:6379 is unreachable: {exc}")
            pytest.skip(f"Redis at 127.0.0.1:6379 unreachable: {exc}")
        opened.append(probe)

        def make() -> redis.asyncio.Redis:
            opened.append(redis.asyncio.Redis(host="127.0.0.1", port=6379, db=15))
            return opened[-1]
    yield make
    keys = [key async for key in opened[0].scan_iter(match=f"scrm:wecom:*:{corp_id}*")]  # tokens and tickets
    if keys:
        await opened[0].delete(*keys)
    for connection in opened:
        await connection.aclose()


@pytest.fixture
def make_client(
    http: aiohttp.ClientSession, sim_server: TestServer, sim_state: SimulatorState, redis_factory: RedisFactory
) -> Callable[..., WeComClient]:
    """WeComClient against the simulator; each call is a new "process" on the shared Redis."""

    def make(*, timeout: float = 5.0, secret: str | None = None, api_base: str | None = None) -> WeComClient:
        return WeComClient(
            http,
            api_base=api_base or str(sim_server.make_url("/cgi-bin/")),
            corp_id=sim_state.corp_id,
            secret=secret if secret is not None else sim_state.secret,
            redis=redis_factory(),
            timeout=timeout,
        )

    return make
