"""Every inbound customer message is analysed once; the customer's aggregates follow; a complaint
opens a ticket with the message; `scrm nlp reindex` recomputes the same aggregates and opens none."""

from __future__ import annotations

import asyncio
import io

from sqlalchemy import select

from crm_core.models import Customer, Message, Staff
from crm_core.ticket_models import Ticket
from scrm import keys
from scrm.cli.nlp_reindex import reindex
import pytest

from tests.support.chat import sample_company_files, sync_directory
from tests.support.service import external_id, make_service

COMPLAINT = "你们的东西用了两天就坏了，我要退款，不退我就去12315投诉"


async def customer_writes(service, name: str, *texts: str) -> None:
    kfid = next(iter(service.sim.kf_accounts))
    token = ""
    for text in texts:
        token = service.sim.kf_customer_writes(kfid, external_id(service.sim, name), text)
    await service.wecom.kf_msg_or_event(token, kfid)
    await service.settle()


@pytest.fixture
async def service(backend, sim, sim_server, aiohttp_client, tmp_path):
    """With the sample company's support agents, so a complaint opens a ticket."""
    service = await make_service(backend, sim, sim_server, aiohttp_client, **sample_company_files(tmp_path))
    await sync_directory(service.app[keys.SESSIONS], sim)
    return service


async def test_customer_messages_are_analysed_and_aggregated(service):
    await customer_writes(service, "赵磊", "你们服务很好，谢谢[微笑]", COMPLAINT)
    async with service.sessions() as session:
        inbound = (await session.scalars(select(Message).where(Message.channel == "wecom_kf", Message.direction == "in"))).all()
        praise, complaint = sorted(inbound, key=lambda m: m.text != "你们服务很好，谢谢[微笑]")
        customer = await session.scalar(select(Customer))
        tickets = (await session.scalars(select(Ticket))).all()
    assert praise.analysis["label"] == "positive"
    assert complaint.analysis["label"] == "negative"
    assert {"投诉", "退款"} <= set(complaint.analysis["tags"])
    assert complaint.analysis["intents"]["complaint"] >= 0.5
    assert customer.analysed_messages == 2
    assert customer.last_negative_message_id == complaint.id
    assert customer.tag_counts["投诉"]["count"] == 1
    assert customer.sentiment_score < praise.analysis["sentiment"]
    assert [(t.customer_id, t.trigger_message_id) for t in tickets] == [(customer.id, complaint.id)]


async def test_staff_commands_are_not_analysed(service):
    await service.wecom.text("zhangwei", "查 赵磊 投诉", msg_id=8001)
    await service.settle()
    async with service.sessions() as session:
        message = await session.scalar(select(Message).where(Message.external_msg_id == "8001"))
    assert message.analysis is None


async def test_reindex_recomputes_the_same_aggregates_without_new_tickets(service):
    for text in ("价格太贵了", COMPLAINT, "好的，收到👌"):  # one at a time: rolling sentiment depends on order
        await customer_writes(service, "孙丽", text)
    async with service.sessions() as session:
        before = await session.scalar(select(Customer))
        snapshot = (before.sentiment_score, before.analysed_messages, before.tag_counts, before.last_negative_message_id)
        await session.execute(Customer.__table__.update().values(sentiment_score=None, analysed_messages=0, tag_counts={}))
        await session.commit()
    out = io.StringIO()
    await reindex(service.settings, since=None, out=out)
    async with service.sessions() as session:
        after = await session.scalar(select(Customer))
    assert (after.sentiment_score, after.analysed_messages, after.tag_counts, after.last_negative_message_id) == snapshot
    assert "1/1 customers (100%)" in out.getvalue()
    async with service.sessions() as session:
        assert len((await session.scalars(select(Ticket))).all()) == 1  # the live complaint's, none from re-analysis


async def test_two_workers_on_one_customer_add_up_instead_of_overwriting(service):
    await service.stop_background_workers()
    kfid = next(iter(service.sim.kf_accounts))
    zhao = external_id(service.sim, "赵磊")
    token = ""
    for i in range(12):
        token = service.sim.kf_customer_writes(kfid, zhao, f"第{i}次问：发票什么时候开？")
    await service.wecom.kf_msg_or_event(token, kfid)
    workers = service.app[keys.INBOX_WORKERS]
    await workers[0].run_once()  # the wake-up: pulls the 12 messages into the inbox
    for worker in workers:
        worker.batch_size = 1
    other = workers[1] if len(workers) > 1 else workers[0]
    await asyncio.gather(workers[0].drain(), other.drain())
    async with service.sessions() as session:
        customer = await session.scalar(select(Customer))
    assert customer.analysed_messages == 12
    assert all(entry["count"] == 12 for entry in customer.tag_counts.values())


async def _writer(service) -> Customer:
    """The customer of the latest inbound message."""
    async with service.sessions() as session:
        message = await session.scalar(select(Message).where(Message.direction == "in").order_by(Message.id.desc()))
        return await session.get(Customer, message.customer_id)


async def test_a_neutral_question_opens_no_ticket_and_does_not_read_as_mood_going_down(service):
    await customer_writes(service, "赵磊", "你好，请问你们的工业烤箱一般多久能交货？")
    customer = await _writer(service)
    async with service.sessions() as session:
        message = await session.scalar(select(Message).where(Message.direction == "in"))
        assert (await session.scalars(select(Ticket))).all() == []
    assert message.analysis["label"] == "neutral"
    assert customer.last_negative_message_id is None  # 情绪走低的客户 lists only customers with one


async def test_a_buying_message_alerts_the_owner_once_and_moves_the_lifecycle(service):
    await customer_writes(service, "孙丽", "你好")
    customer = await _writer(service)
    async with service.sessions() as session:  # the customer's rep, as assignment would set it
        rep = await session.scalar(select(Staff).where(Staff.userid == "zhangwei"))  # synced with the directory
        await session.execute(Customer.__table__.update().where(Customer.id == customer.id).values(owner_id=rep.id))
        await session.commit()
    before = await _writer(service)
    assert before.lifecycle == "prospect" and before.owner is not None
    owner, name = before.owner.userid, before.name or before.remark
    alerts = lambda: [m["text"]["content"] for m in service.sim.sent_app_messages  # noqa: E731
                      if m["touser"] == owner and "购买意向" in m["text"]["content"]]
    await customer_writes(service, "孙丽", "我们想订一批冷链箱，麻烦报个价")
    await customer_writes(service, "孙丽", "五百个的话单价多少？")  # same customer, same hour: no second alert
    after = await _writer(service)
    [alert] = alerts()
    assert name in alert and "报个价" in alert and f"查 {name}" in alert
    assert after.lifecycle == "interested"
    assert after.lead_score > before.lead_score
