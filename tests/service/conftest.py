"""The running service with the default settings (no roles or routing file)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer

from connectors.wecom.simulator.state import SimulatorState
from tests.support.service import Service, make_service


@pytest.fixture
async def service(backend, sim: SimulatorState, sim_server: TestServer, aiohttp_client) -> Service:
    return await make_service(backend, sim, sim_server, aiohttp_client)
