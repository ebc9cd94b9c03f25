"""The service, the chat and the command line, for the syncs that bring a company's WeCom in."""

from __future__ import annotations

import asyncio

import pytest

from scrm.cli import main as cli
from tests.bot.conftest import chat  # noqa: F401  (fixture)
from tests.service.conftest import sim, sim_server  # noqa: F401  (fixtures)


@pytest.fixture
def cli_env(chat, sim_server, monkeypatch):  # noqa: F811
    """`scrm …` run by hand against the chat's database and the simulator (as an operator would)."""
    settings = chat.service.settings
    monkeypatch.delenv("SCRM_CONFIG", raising=False)
    monkeypatch.setenv("SCRM_DATABASE_URL", settings.database_url)
    if settings.redis_url:
        monkeypatch.setenv("SCRM_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("SCRM_ROLES_FILE", str(settings.roles_file))
    for name, value in chat.service.sim.service_env(str(sim_server.make_url("/cgi-bin/"))).items():
        monkeypatch.setenv(name, value)
    return chat


async def scrm(capsys, *argv: str) -> tuple[int, str, str]:
    """The real command line, in a thread (it runs its own event loop), with its output."""
    code = await asyncio.to_thread(cli.main, ["--log-level", "WARNING", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err
