"""The guarantees: one open ticket per customer under concurrency, unique numbers, SLA notices
exactly once with a fixed clock, and a complaint is never dropped (no channel, routing failure)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

import nlp
from crm_core.db import utcnow
from crm_core.models import Customer, Message
from crm_core.ticket_models import Ticket, TicketCounter, TicketEvent
from crm_core.ticket_policy import default_policy
from crm_core.tickets import TicketService
from scrm.delivery.sender import message_text
from scrm.ingest.ticket_intake import TicketIntake

COMPLAINT = "你们的东西用了两天就坏了，我要退款，不退我就去12315投诉"


async def _message(desk, name: str, text: str, *, channel: str = "wecom_kf", msg_id: str) -> tuple[int, int]:
    """Archive an analysed inbound message for a sample customer, as the pipeline would have."""
    async with desk.service.sessions() as session:
        customer = await session.scalar(select(Customer).where(Customer.name == name))
        message = Message(channel=channel, direction="in", external_msg_id=msg_id, msg_type="text", text=text,
                          sender="wmExternal", recipient="wkOpenKf", customer_id=customer.id, sent_at=desk.now,
                          analysis=nlp.analyze(text).to_dict())
        session.add(message)
        await session.commit()
        return customer.id, message.id


async def _intake(desk, customer_id: int, message_id: int) -> None:
    intake = TicketIntake(desk.service.settings.tz, desk.policy, clock=lambda: desk.now)
    async with desk.service.sessions() as session:
        await intake(session, await session.get(Customer, customer_id), await session.get(Message, message_id))
        await session.commit()


async def test_two_workers_same_customer_same_second_make_one_ticket(desk, backend, monkeypatch):
    await desk.onboard("孙丽")
    customer_id, first = await _message(desk, "孙丽", "收到的货是坏的，我要退货", msg_id="race-1")
    _, second = await _message(desk, "孙丽", "太过分了，质量这么差", msg_id="race-2")
    if backend.name == "postgres":
        # Both workers look for an open ticket, find none, and only then go on to insert one.
        # (SQLite has one writer, a single pooled connection: there the two workers queue.)
        barrier, open_for, looked = asyncio.Barrier(2), TicketService.open_for, set()

        async def open_for_then_wait(self, cid):
            found = await open_for(self, cid)
            if id(self.session) not in looked:  # the first look only; the loser looks again after its insert
                looked.add(id(self.session))
                await barrier.wait()
            return found

        monkeypatch.setattr(TicketService, "open_for", open_for_then_wait)
    await asyncio.gather(_intake(desk, customer_id, first), _intake(desk, customer_id, second))
    monkeypatch.undo()
    [ticket] = await desk.tickets()
    assert ticket.complaint_messages == 2
    async with desk.service.sessions() as session:
        kinds = (await session.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket.id))).all()
    assert sorted(k for k in kinds if k in ("created", "message")) == ["created", "message"]
    if backend.name == "postgres":  # both really tried to insert: the loser drew number 2, then joined ticket 1
        async with desk.service.sessions() as session:
            assert await session.scalar(select(TicketCounter.last)) == 2


async def test_the_database_refuses_a_second_open_ticket_and_a_repeated_number(desk):
    await desk.onboard("孙丽")
    await desk.customer_writes("孙丽", COMPLAINT)
    [ticket] = await desk.tickets()
    now = utcnow()
    for clash in ({"open_key": ticket.open_key, "number": "T20990101-0001"}, {"open_key": None, "number": ticket.number}):
        async with desk.service.sessions() as session:
            session.add(Ticket(customer_id=ticket.customer_id, status="open", category="other", priority="normal",
                               group="service", first_response_due_at=now, resolution_due_at=now, **clash))
            with pytest.raises(IntegrityError):
                await session.commit()


async def test_numbers_count_per_business_day(desk):
    await desk.onboard("孙丽", "周杰", "吴敏")
    await desk.customer_writes("孙丽", COMPLAINT)
    await desk.customer_writes("周杰", COMPLAINT)
    desk.advance(days=1)
    await desk.customer_writes("吴敏", COMPLAINT)
    numbers = [t.number for t in await desk.tickets()]
    assert [n[-4:] for n in numbers] == ["0001", "0002", "0001"]
    assert len(set(numbers)) == 3


async def test_sla_breaches_escalate_to_agent_then_manager_once_each(desk):
    await desk.onboard("孙丽")
    await desk.customer_writes("孙丽", COMPLAINT)  # urgent: first response 30 min, resolution 8 h, manager 30 min later
    [ticket] = await desk.tickets()
    start, tz = ticket.created_at, desk.service.settings.tz

    async def escalate(**after) -> int:
        async with desk.service.sessions() as session:
            count = await TicketService(session, desk.policy, tz).escalate_sla_breaches(start + timedelta(**after))
            await session.commit()
        return count

    assert await escalate(minutes=29) == 0
    assert await escalate(minutes=31) == 1  # first response -> agent
    assert await escalate(minutes=31) == 0
    assert await escalate(minutes=61) == 1  # first response -> manager
    assert await escalate(hours=8, minutes=1) == 1  # resolution -> agent
    assert await escalate(hours=9) == 1  # resolution -> manager
    assert await escalate(hours=9) == 0
    assert await asyncio.gather(escalate(hours=10), escalate(hours=10)) == [0, 0]
    await desk.service.settle()
    agent = [message_text(m) for m in desk.app_sent("wangfang") if "超时" in message_text(m)]
    manager = [message_text(m) for m in desk.app_sent("liuyang") if "超时" in message_text(m)]
    assert len(agent) == 2 and len(manager) == 2
    assert all(ticket.number in text for text in agent + manager)
    assert "首次响应" in agent[0] and "解决" in agent[1]

    desk.set_clock(start + timedelta(hours=10))
    await desk.say("wangfang", f"解决 {ticket.number} 已退款")
    await desk.say("wangfang", f"重开 {ticket.number}")  # a new cycle may escalate again
    assert await escalate(hours=10, minutes=31) == 1


async def test_no_channel_means_the_ticket_says_so_and_the_rep_is_asked(desk):
    await desk.onboard("孙丽")
    customer_id, message_id = await _message(desk, "孙丽", "货到了是坏的，质量太差，我要退货", channel="wecom_archive",
                                             msg_id="archive-1")
    await _intake(desk, customer_id, message_id)
    await desk.service.settle()
    [ticket] = await desk.tickets()
    assert ticket.ack_status == "no_channel" and ticket.assignee.userid == "wangfang"
    assert desk.service.sim.sent_kf_messages == []
    assert any(ticket.number in t and "主动联系" in t for t in desk.replies("zhangwei"))
    [reply] = await desk.say("wangfang", f"回复 {ticket.number} 您好")
    assert "目前无法直接回复" in reply
    [resolved] = await desk.say("wangfang", f"解决 {ticket.number} 已换货")
    assert "主动联系" in resolved
    assert any("打分" in t for t in desk.replies("zhangwei"))


async def test_routing_failure_keeps_the_ticket_open_and_tells_the_manager(desk, monkeypatch):
    async def broken_route(self, ticket, now, **_):
        raise RuntimeError("directory unavailable")

    monkeypatch.setattr(TicketService, "route", broken_route)
    await desk.onboard("孙丽")
    await desk.customer_writes("孙丽", COMPLAINT)
    [ticket] = await desk.tickets()
    assert ticket.status == "open" and ticket.assignee is None and ticket.ack_status == "sent"
    assert any(ticket.number in t and "自动分配出错" in t for t in desk.replies("liuyang"))
    async with desk.service.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == 1


def test_policy_rejects_a_category_without_a_group(tmp_path):
    from config.policies import load_policy
    from crm_core.ticket_policy import POLICY_FILE, TicketPolicy

    broken = tmp_path / "tickets.toml"
    broken.write_text(POLICY_FILE.read_text(encoding="utf-8").replace('group = "billing"', 'group = "nobody"'),
                      encoding="utf-8")
    with pytest.raises(ValueError, match="unknown group 'nobody'"):
        load_policy(broken, TicketPolicy.from_toml)
    assert default_policy().category("refund").group == "aftersales"
