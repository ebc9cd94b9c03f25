"""A running service with a roles file and a fixed clock, and a rep's-eye view of the chat.

`chat.say("zhangwei", "查 赵磊")` sends a signed callback through the real endpoint, lets the
workers settle, and returns the replies that reached that user in the WeCom simulator.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import count
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import fakeredis
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from config.roles import RoleMap
from connectors.wecom.client import WeComClient
from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import CallbackSender
from connectors.wecom.simulator.server import create_simulator_app
from crm_core.models import Customer, Staff
from scrm import keys
from scrm.app import create_app
from scrm.sync.directory import Directory, DirectorySync
from scrm.delivery.handovers import make_handover_follow_job
from scheduler.runner import JobContext
from tests.service.conftest import TEST_ROLES, Service, external_id, service_settings, sim, sim_server  # noqa: F401  (fixtures)

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Wednesday 2026-11-18 10:00 in Shanghai.
FIXED_NOW = datetime(2026, 11, 18, 2, 0, tzinfo=timezone.utc)

ROLES_TOML = """
default = "sales"
[users]
chenjing = "admin"
liuyang = "manager"
wangfang = "support"
"""

# The sample company's support agents: 客户服务部 (department 3), where wangfang is support (ROLES_TOML).
TICKET_ROUTING_TOML = """
[routing]
agent_departments = [3]
"""


async def sync_directory(sessions, sim, roles_toml: str = ROLES_TOML) -> None:
    """The real directory sync (scrm.sync.directory) of `sim`'s company into the staff table, with the
    sample company's roles, over HTTP to a simulator serving `sim` (ticket routing reads the staff table)."""
    roles = tomllib.loads(roles_toml)
    role_map = RoleMap(users=roles.get("users", {}), departments={int(k): v for k, v in roles.get("departments", {}).items()},
                       default=roles.get("default", "sales"))
    server = TestServer(create_simulator_app(sim))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            wecom = WeComClient(http, api_base=str(server.make_url("/cgi-bin/")), corp_id=sim.corp_id, secret=sim.secret,
                                redis=fakeredis.FakeAsyncRedis())
            await DirectorySync(Directory(wecom, role_map), sessions).run()
    finally:
        await server.close()


def sample_company_files(tmp_path: Path) -> dict[str, Path]:
    """The sample company's SCRM_ROLES_FILE and SCRM_TICKET_ROUTING_FILE, as Settings fields."""
    roles, routing = tmp_path / "roles.toml", tmp_path / "ticket_routing.toml"
    roles.write_text(ROLES_TOML, encoding="utf-8")
    routing.write_text(TICKET_ROUTING_TOML, encoding="utf-8")
    return {"roles_file": roles, "ticket_routing_file": routing}


SAMPLE_OWNERS = {"赵磊": "zhangwei", "孙丽": "zhangwei", "周杰": "zhangwei", "吴敏": "lina", "郑浩": "lina",
                 "冯雪": "lina", "何军": "wangfang", "罗燕": "liuyang"}


@dataclass
class Chat:
    service: Service
    now: datetime = FIXED_NOW
    _ids: count = field(default_factory=lambda: count(90_000))

    def replies(self, userid: str) -> list[str]:
        return [reply_text(m) for m in self.service.sim.sent_app_messages if m["touser"] == userid]

    async def say(self, userid: str, text: str) -> list[str]:
        """Send one line as `userid`; the replies (usually one) it produced for them."""
        before = len(self.replies(userid))
        await self.service.wecom.text(userid, text, msg_id=next(self._ids))
        await self.service.settle()
        return self.replies(userid)[before:]

    async def ask(self, userid: str, text: str) -> str:
        [reply] = await self.say(userid, text)
        return reply

    def set_clock(self, now: datetime) -> None:
        self.now = now
        self.service.app[keys.DISPATCHER].clock = lambda: self.now

    async def onboard(self, *names: str) -> None:
        """Sample customers arrive through add_external_contact callbacks, owned by their rep, one
        after another in the order named: sent together, the workers would create them in whatever
        order they happened to finish, and customer ids (the order lists and tasks follow) with it."""
        for name in names or SAMPLE_OWNERS:
            await self.service.wecom.change_external_contact("add_external_contact", SAMPLE_OWNERS[name],
                                                             external_id(self.service.sim, name))
            await self.service.settle()

    async def customer(self, name: str) -> Customer:
        async with self.service.sessions() as session:
            return await session.scalar(select(Customer).where(Customer.name == name))

    async def staff(self, userid: str) -> Staff:
        async with self.service.sessions() as session:
            return await session.scalar(select(Staff).where(Staff.userid == userid))

    async def staff_by_id(self, staff_id: int) -> Staff:
        async with self.service.sessions() as session:
            return await session.get(Staff, staff_id)


async def follow_handovers(chat: Chat) -> str:
    """WeCom's 24 hours pass (every waiting transfer is decided), then the scheduler's
    handovers.follow_results runs once and the workers deliver what it queued."""
    chat.service.sim.transfer_book.settle(chat.service.sim)
    job = make_handover_follow_job(chat.service.app[keys.WECOM])
    summary = await job(JobContext(chat.service.app[keys.SESSIONS], chat.now.astimezone(SHANGHAI), SHANGHAI))
    await chat.service.settle()
    return summary


def reply_text(message: dict) -> str:
    return message[message["msgtype"]]["content"]


@pytest.fixture
async def chat(backend, sim, sim_server, aiohttp_client, tmp_path: Path) -> Chat:  # noqa: F811  (the imported fixtures)
    roles = tmp_path / "roles.toml"
    roles.write_text(ROLES_TOML, encoding="utf-8")
    settings = service_settings(backend, sim, str(sim_server.make_url("/cgi-bin/")), roles_file=roles)
    client = await aiohttp_client(create_app(settings, TEST_ROLES))
    crypto = CallbackCrypto(sim.callback_token, sim.encoding_aes_key, sim.corp_id)
    sender = CallbackSender(client.session, str(client.make_url("/wecom/callback")), crypto,
                            corp_id=sim.corp_id, agent_id=str(sim.agent_id))
    chat = Chat(Service(client=client, sim=sim, wecom=sender, crypto=crypto, settings=settings))
    chat.set_clock(FIXED_NOW)
    return chat


def later(days: float = 0, hours: float = 0) -> datetime:
    return FIXED_NOW + timedelta(days=days, hours=hours)
