"""Issue #18 item 6: the shipped routing names nobody; agents are whoever the directory puts in the
departments or tags the company names, read from the staff table when a ticket is routed; with none,
the intake stays off and says what to configure."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import replace

import pytest
from sqlalchemy import select

from connectors.wecom.simulator.sample_data import sample_state
from crm_core.models import Department, Staff
from crm_core.ticket_routing import AgentSelector
from crm_core.ticket_policy import POLICY_FILE, default_policy, load_ticket_policy
from scrm.ingest.ticket_intake import TicketIntake
from scrm import keys
from tests.bot.conftest import ROLES_TOML, sync_directory
from tests.service.conftest import make_service
from tests.tickets.conftest import Desk

COMPLAINT = "你们的东西用了两天就坏了，我要退款，不退我就去12315投诉"
SAMPLE_PEOPLE = set(sample_state().staff)


def test_the_shipped_policy_names_no_one():
    text = POLICY_FILE.read_text(encoding="utf-8")
    assert not [userid for userid in SAMPLE_PEOPLE if userid in text]
    policy = default_policy()
    assert not policy.routing_configured
    assert all(not group.agents for group in policy.groups.values())
    raw = tomllib.loads(text)
    assert all("agents" not in g and "manager" not in g for g in raw["groups"].values())


def test_a_routing_file_is_checked(tmp_path):
    routing = tmp_path / "routing.toml"
    routing.write_text('[groups.nonexistent]\nagent_tags = ["x"]\n', encoding="utf-8")
    with pytest.raises(ValueError, match="unknown group"):
        load_ticket_policy.__wrapped__(routing)
    routing.write_text("[routing]\nagent_departments = [true]\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"\[routing\].agent_departments must be a list of department ids or names"):
        load_ticket_policy.__wrapped__(routing)
    routing.write_text('[routing]\nagent_departments = [3, "客户服务部"]\n[groups.billing]\nagent_tags = ["财务"]\n',
                       encoding="utf-8")
    policy = load_ticket_policy.__wrapped__(routing)
    assert policy.groups["aftersales"].agents == AgentSelector((3, "客户服务部"))
    assert policy.groups["billing"].agents == AgentSelector(tags=("财务",))


async def plain_desk(backend, sim, sim_server, aiohttp_client, tmp_path, **changes) -> Desk:
    """The service as shipped: the roles file, but no routing file unless given."""
    roles = tmp_path / "roles.toml"
    roles.write_text(ROLES_TOML, encoding="utf-8")
    service = await make_service(backend, sim, sim_server, aiohttp_client, roles_file=roles, **changes)
    desk = Desk(service)
    desk.set_clock(desk.now)
    return desk


async def test_with_no_routing_complaints_make_no_ticket_reach_no_sample_userid_and_the_log_says_why(
        backend, sim, sim_server, aiohttp_client, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    desk = await plain_desk(backend, sim, sim_server, aiohttp_client, tmp_path)
    assert "ticket intake is off: no support agents are configured" in caplog.text  # said at start
    # This company has a wangfang too: she must get nothing.
    await sync_directory(desk.service.app[keys.SESSIONS], desk.service.sim)
    await desk.onboard("孙丽")
    await desk.customer_writes("孙丽", COMPLAINT)
    assert await desk.tickets() == []
    assert desk.app_sent("wangfang") == [] and desk.app_sent("liuyang") == []
    assert "SCRM_TICKET_ROUTING_FILE" in caplog.text


async def test_the_intake_waits_for_members_then_starts_without_a_restart(
        backend, sim, sim_server, aiohttp_client, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    routing = tmp_path / "routing.toml"
    routing.write_text('[routing]\nagent_departments = ["客户服务部"]\n', encoding="utf-8")
    desk = await plain_desk(backend, sim, sim_server, aiohttp_client, tmp_path, ticket_routing_file=routing)
    await desk.onboard("孙丽", "周杰")
    await desk.customer_writes("孙丽", COMPLAINT)
    assert await desk.tickets() == []
    assert "ticket intake is waiting: the routing names department 客户服务部" in caplog.text
    # The directory sync arrives: departments with their names, every member.
    async with desk.service.sessions() as session:
        session.add_all([Department(id=3, name="客户服务部"), Department(id=2, name="销售部")])
        await session.commit()
    await sync_directory(desk.service.app[keys.SESSIONS], desk.service.sim)
    await desk.customer_writes("周杰", COMPLAINT)
    [ticket] = await desk.tickets()
    assert ticket.assignee.userid == "wangfang"
    assert "ticket intake started" in caplog.text


async def test_agents_by_member_tag_and_managers_from_their_departments(
        backend, sim, sim_server, aiohttp_client, tmp_path):
    routing = tmp_path / "routing.toml"
    routing.write_text('[routing]\nagent_tags = ["售后客服"]\n', encoding="utf-8")
    desk = await plain_desk(backend, sim, sim_server, aiohttp_client, tmp_path, ticket_routing_file=routing)
    await sync_directory(desk.service.app[keys.SESSIONS], desk.service.sim)
    async with desk.service.sessions() as session:
        lina = await session.scalar(select(Staff).where(Staff.userid == "lina"))
        lina.role, lina.tags = "support", ["售后客服"]  # tagged in the directory; wangfang is not
        await session.commit()
    await desk.onboard("孙丽")
    await desk.customer_writes("孙丽", COMPLAINT)
    [ticket] = await desk.tickets()
    assert ticket.assignee.userid == "lina"
    async with desk.service.sessions() as session:
        policy = replace(default_policy(), groups={name: replace(g, agents=AgentSelector(tags=("售后客服",)))
                                                   for name, g in default_policy().groups.items()})
        managers = await policy.team(session).managers("aftersales")
    assert [m.userid for m in managers] == ["liuyang"]  # manager of 销售部, lina's department


async def test_a_tagged_member_without_the_support_role_is_not_an_agent(
        backend, sim, sim_server, aiohttp_client, tmp_path):
    desk = await plain_desk(backend, sim, sim_server, aiohttp_client, tmp_path)
    await sync_directory(desk.service.app[keys.SESSIONS], desk.service.sim)
    policy = replace(default_policy(), groups={name: replace(g, agents=AgentSelector(users=("zhangwei",)))
                                               for name, g in default_policy().groups.items()})
    intake = TicketIntake(desk.service.settings.tz, policy)
    async with desk.service.sessions() as session:
        assert not await intake.check(session)  # zhangwei is sales: he could not work a ticket
