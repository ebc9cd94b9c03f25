"""Fixtures every folder uses: the two storage backends every service test runs on, the WeCom
simulator, and the running service seen as a rep's chat (`chat`) or a support desk (`desk`).

`sqlite`: a fresh SQLite file and the in-process Redis stand-in (the embedded quickstart).
`postgres`: the PostgreSQL and Redis services on 127.0.0.1 (production shape). The helpers behind
these fixtures are plain modules in tests/support/.

Every SQLite connection a test opens returns the rows of a SELECT without ORDER BY in reverse
(`PRAGMA reverse_unordered_selects`): code or a test relying on an order nobody asked for then fails
on every run, instead of on the odd PostgreSQL run where a plan or a concurrent worker changed it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import event
from sqlalchemy.engine import Engine

from connectors.wecom.simulator.sample_data import sample_state
from connectors.wecom.simulator.server import SimulatorAccessLogger, create_simulator_app
from connectors.wecom.simulator.state import SimulatorState
from crm_core.db import utcnow
from scrm import keys
from tests.support.backends import (PG_ADMIN_URL, PG_TEST_DB, PG_URL, Backend, flush_redis, redis_url,
                                    reset_postgres, require_service)
from tests.support.chat import FIXED_NOW, ROLES_TOML, Chat, sample_company_files, sync_directory
from tests.support.desk import Desk
from tests.support.scheduling import job_env
from tests.support.service import make_service


@event.listens_for(Engine, "connect")
def _reverse_unordered_selects(dbapi_connection, _record) -> None:
    if "sqlite" in type(dbapi_connection).__module__:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA reverse_unordered_selects = ON")
        cursor.close()


@pytest.fixture(scope="session", autouse=True)
def drop_test_database():
    """Remove this run's PostgreSQL database once every test is done."""
    yield

    async def drop() -> None:
        import asyncpg

        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{PG_TEST_DB}" WITH (FORCE)')
        finally:
            await admin.close()

    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
    except OSError:
        return
    asyncio.run(drop())


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head per run; each test gets a copy (migrating afresh took
    0.2-1 s per test)."""
    from crm_core.migrate import upgrade

    path = tmp_path_factory.mktemp("sqlite-template") / "scrm.sqlite3"
    with ThreadPoolExecutor(1) as thread:  # alembic runs its own event loop; a test's may be running here
        thread.submit(upgrade, f"sqlite+aiosqlite:///{path}").result()
    leftovers = sorted(p.name for p in path.parent.iterdir() if p != path)
    assert not leftovers, f"the template must be one self-contained file, found {leftovers}"
    return path


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path) -> Backend:
    if request.param == "sqlite":
        database = tmp_path / "scrm.sqlite3"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), database)
        return Backend("sqlite", f"sqlite+aiosqlite:///{database}", None)
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    await asyncio.gather(reset_postgres(), flush_redis())
    return Backend("postgres", PG_URL, redis_url())


@pytest.fixture
def sim() -> SimulatorState:
    """A fresh demo company with its own corp id, so token caches in a shared Redis never collide."""
    return sample_state(corp_id=f"wwtest{uuid.uuid4().hex[:10]}")


@pytest.fixture
async def sim_server(aiohttp_server, sim: SimulatorState) -> TestServer:
    return await aiohttp_server(create_simulator_app(sim), access_log_class=SimulatorAccessLogger)


@pytest.fixture
async def chat(backend, sim, sim_server, aiohttp_client, tmp_path: Path) -> Chat:
    """The service with the sample company's roles file, on a fixed clock."""
    roles = tmp_path / "roles.toml"
    roles.write_text(ROLES_TOML, encoding="utf-8")
    chat = Chat(await make_service(backend, sim, sim_server, aiohttp_client, roles_file=roles))
    chat.set_clock(FIXED_NOW)
    return chat


@pytest.fixture
async def desk(backend, sim, sim_server, aiohttp_client, tmp_path: Path) -> Desk:
    """The service with tickets wired in (the sample company's roles and routing) and its directory synced."""
    desk = Desk(await make_service(backend, sim, sim_server, aiohttp_client, **sample_company_files(tmp_path)))
    desk.set_clock(utcnow().replace(microsecond=0))
    await sync_directory(desk.service.app[keys.SESSIONS], desk.service.sim)
    return desk


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium, which the browser tests drive with playwright (it cannot download its own here)."""
    browser = Path("/usr/bin/chromium")
    if not browser.exists():
        reason = f"{browser} is missing (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)
    return str(browser)


@pytest.fixture
async def env(backend):
    """(sessions, [redis, redis]) for scheduler and job tests: tests/support/scheduling.job_env."""
    async with job_env(backend) as value:
        yield value
