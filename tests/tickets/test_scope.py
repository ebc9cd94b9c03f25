"""Issue #18 items 2 and 7: one rule for who may see a ticket, in chat and in the API alike (the
assignee, the group's agents and managers, the customer's owner, the managers of the owner's
departments, the admins), and a ticket outside it answers exactly like one that does not exist."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from crm_core.models import AuditEntry, Staff
from scrm import keys
from scrm.cli import main as cli
from tests.support.chat import sync_directory

COMPLAINT = "你们的东西用了两天就坏了，我要退款，不退我就去12315投诉"


@pytest.fixture
async def company(desk, monkeypatch):
    """The sample company plus two outsiders: 赵强 leads 行政部 (a manager, not of sales or support)
    and 孙浩, a support agent there, outside the ticket groups' 客户服务部."""
    sim = desk.service.sim
    for userid, name, leader in (("zhaoqiang", "赵强", 1), ("sunhao", "孙浩", 0)):
        sim.staff[userid] = {**sim.staff["chenjing"], "userid": userid, "name": name, "mobile": "",
                             "is_leader_in_dept": [leader], "email": f"{userid}@xinghe-demo.cn"}
    await sync_directory(desk.service.app[keys.SESSIONS], desk.service.sim)
    async with desk.service.sessions() as session:
        (await session.scalar(select(Staff).where(Staff.userid == "sunhao"))).role = "support"
        await session.commit()
    monkeypatch.setenv("SCRM_DATABASE_URL", desk.service.settings.database_url)
    monkeypatch.delenv("SCRM_CONFIG", raising=False)
    await desk.onboard("孙丽")  # zhangwei's customer
    await desk.customer_writes("孙丽", COMPLAINT)
    return desk


async def token_for(capsys, userid: str) -> str:
    code = await asyncio.to_thread(cli.main, ["--log-level", "WARNING", "api-token", "issue", userid])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out.strip().splitlines()[-1]


async def api(desk, path: str, token: str) -> tuple[int, dict]:
    resp = await desk.service.client.get(path, headers={"Authorization": f"Bearer {token}"})
    return resp.status, await resp.json()


def nonexistent(number: str) -> str:
    """A ticket number of the same day that was never issued."""
    return number[:-4] + "9999"


async def test_chat_shows_a_ticket_only_to_those_the_rule_names(company):
    desk = company
    [ticket] = await desk.tickets()
    assert ticket.assignee.userid == "wangfang"
    missing = nonexistent(ticket.number)
    for userid in ("wangfang", "liuyang", "chenjing"):  # assignee/agent, manager of the owner's departments, admin
        assert ticket.number in (await desk.say(userid, f"工单 {ticket.number}"))[0], userid
    for userid in ("zhaoqiang", "sunhao"):  # a manager and an agent from elsewhere
        hidden = await desk.ask(userid, f"工单 {ticket.number}")
        assert hidden == (await desk.ask(userid, f"工单 {missing}")).replace(missing, ticket.number)
        assert "孙丽" not in hidden and COMPLAINT[:6] not in hidden
    async with desk.service.sessions() as session:
        denied = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "ticket.view_denied")
                                        .order_by(AuditEntry.id))).all()
    assert [(e.actor, e.detail) for e in denied] == [("zhaoqiang", ticket.number), ("sunhao", ticket.number)]


async def test_an_outside_manager_cannot_reply_to_the_customer_or_work_the_ticket(company):
    desk = company
    [ticket] = await desk.tickets()
    sent_before = list(desk.kf_sent("孙丽"))
    for line in (f"回复 {ticket.number} 加我微信领红包", f"解决 {ticket.number} 好了", f"转派 {ticket.number} 赵强",
                 f"接单 {ticket.number}", f"关闭 {ticket.number}"):
        assert "没有找到工单" in await desk.ask("zhaoqiang", line), line
    await desk.service.settle()
    assert desk.kf_sent("孙丽") == sent_before
    [after] = await desk.tickets()
    assert (after.status, after.assignee.userid) == ("open", "wangfang")


async def test_the_api_applies_the_same_rule_and_answers_hidden_like_missing(company, capsys):
    desk = company
    [ticket] = await desk.tickets()
    missing = nonexistent(ticket.number)
    for userid in ("wangfang", "liuyang", "chenjing", "zhangwei"):  # zhangwei: the customer's owner
        token = await token_for(capsys, userid)
        assert (await api(desk, f"/api/v1/tickets/{ticket.number}", token))[0] == 200, userid
        status, page = await api(desk, "/api/v1/tickets", token)
        assert status == 200 and [t["number"] for t in page["items"]] == [ticket.number], userid
    for userid in ("zhaoqiang", "sunhao"):
        token = await token_for(capsys, userid)
        hidden = await api(desk, f"/api/v1/tickets/{ticket.number}", token)
        assert hidden == (404, {"error": f"ticket {ticket.number} does not exist"})
        assert await api(desk, f"/api/v1/tickets/{missing}", token) == (404, {"error": f"ticket {missing} does not exist"})
        status, page = await api(desk, "/api/v1/tickets", token)
        assert status == 200 and page["items"] == [] and page["total"] == 0
