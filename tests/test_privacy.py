"""Personal data: a customer's export and erasure (个人信息保护法), the audit trail, and logs that
never show a phone number or a secret in clear."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text

from crm_core.db import utcnow
from crm_core.models import AuditEntry, Customer, CustomerIdentity, InboxItem, Message, Note, OutboxItem
from crm_core.privacy import PrivacyService
from crm_core.ticket_models import Ticket
from scrm.cli import main as cli
from scrm.logging_setup import JsonFormatter, MaskingFormatter
from tests.tickets.conftest import *  # noqa: F401,F403  (the desk fixture and its dependencies)

COMPLAINT = "你们的东西用了两天就坏了，我要退款，我的电话是13912345678，不退我就去12315投诉"


async def a_customer_with_history(desk) -> Customer:
    await desk.onboard("孙丽")
    await desk.customer_writes("孙丽", "你好，想问下报价", COMPLAINT)
    await desk.say("zhangwei", "记 孙丽 电话沟通，客户在上海浦东")
    return await desk.customer("孙丽")


async def test_export_holds_everything_about_the_customer_and_is_audit_logged(desk):
    customer = await a_customer_with_history(desk)
    async with desk.service.sessions() as session:
        data = await PrivacyService(session).export(customer.id, actor="dpo")
        await session.commit()
    json.dumps(data, ensure_ascii=False)  # plain data, ready to hand over
    assert data["customer"]["name"] == "孙丽" and data["customer"]["phone"]
    assert [m["text"] for m in data["messages"] if m["direction"] == "in" and m["channel"] == "wecom_kf"] == \
        ["你好，想问下报价", COMPLAINT]
    assert data["notes"][0]["text"] == "电话沟通，客户在上海浦东"
    assert data["tickets"][0]["number"].startswith("T")
    assert {i["channel"] for i in data["identities"]} >= {"wecom"}
    async with desk.service.sessions() as session:
        assert await session.scalar(select(func.count()).where(
            AuditEntry.action == "customer.export", AuditEntry.customer_id == customer.id, AuditEntry.actor == "dpo")) == 1


async def test_erasure_removes_what_identifies_the_customer_and_keeps_the_statistics(desk):
    customer = await a_customer_with_history(desk)
    async with desk.service.sessions() as session:
        before = await session.scalar(select(func.count()).where(Message.customer_id == customer.id))
        score = (await session.get(Customer, customer.id)).sentiment_score
        kf_keys = [f"wecom:kfmsg:{m}" for m in (await session.scalars(select(Message.external_msg_id).where(
            Message.customer_id == customer.id, Message.channel == "wecom_kf"))).all()]
        session.add(OutboxItem(idempotency_key="pending-greeting", kind="kf_message", customer_id=customer.id,
                               payload={"touser": "x", "msgtype": "text", "text": {"content": "孙丽您好"}},
                               available_at=utcnow().replace(year=2099)))
        await session.commit()

    async with desk.service.sessions() as session:
        report = await PrivacyService(session).erase(customer.id, actor="dpo", at=desk.now)
        await session.commit()
    assert report.messages == before and report.inbox_rows >= 2 and report.tickets == 1 and report.outbox_parked == 1

    async with desk.service.sessions() as session:
        erased = await session.get(Customer, customer.id)
        assert erased.name == f"已删除的客户 #{customer.id}" and erased.phone == erased.company == erased.remark == ""
        assert erased.sentiment_score == score and not erased.may_receive_care
        assert await session.scalar(select(func.count()).where(CustomerIdentity.customer_id == customer.id)) == 0
        texts = (await session.scalars(select(Message.text).where(Message.customer_id == customer.id))).all()
        assert len(texts) == before and set(texts) == {""}
        analysed = [a for a in (await session.scalars(select(Message.analysis).where(
            Message.customer_id == customer.id))).all() if a]
        assert analysed and all("keywords" not in a and "label" in a for a in analysed)
        payloads = (await session.scalars(select(InboxItem.payload).where(InboxItem.dedup_key.in_(kf_keys)))).all()
        assert payloads and set(payloads) == {""}
        [ticket] = (await session.scalars(select(Ticket).where(Ticket.customer_id == customer.id))).all()
        assert ticket.summary == "" and ticket.status == "open"
        pending = (await session.scalars(select(OutboxItem).where(OutboxItem.idempotency_key == "pending-greeting"))).one()
        assert pending.status == "parked" and pending.payload == {"erased": True}
        everything = json.dumps([m.payload for m in (await session.scalars(select(Message))).all()], ensure_ascii=False)
        assert "13912345678" not in everything and COMPLAINT not in everything
    assert "没有找到" in await desk.ask("zhangwei", "查 孙丽")


@pytest.mark.slow
def test_erasure_needs_confirmation_and_the_audit_trail_is_queryable(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "SCRM_DATA_DIR": str(tmp_path)}

    def scrm(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "scrm.cli.main", "--log-level", "WARNING", *args],
                              capture_output=True, text=True, timeout=120, env=env)

    refused = scrm("customer", "erase", "1")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    missing = scrm("customer", "erase", "1", "--yes")
    assert missing.returncode == 2 and "no customer 1" in missing.stderr
    listing = scrm("audit", "--customer", "1")
    assert listing.returncode == 0 and "no audit entries match" in listing.stdout


def test_logs_never_show_phone_numbers_or_secrets():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    log = logging.getLogger("tests.privacy")
    log.addHandler(handler)
    log.propagate = False
    try:
        for inner in (logging.Formatter("%(message)s"), JsonFormatter()):
            handler.setFormatter(MaskingFormatter(inner))
            log.warning("customer %s called from +86 13800131001", "孙丽")
            log.warning("gettoken?corpid=ww1&corpsecret=S3cretValue123 failed")
            try:
                raise ValueError({"mobile": "13912345678", "access_token": "tok_ABCDEF123456"})
            except ValueError:
                log.exception("sync failed")
    finally:
        log.removeHandler(handler)
    output = stream.getvalue()
    assert "138****1001" in output and "139****5678" in output
    for secret in ("13800131001", "13912345678", "S3cretValue123", "tok_ABCDEF123456"):
        assert secret not in output


ERASED_ADDRESS = "上海浦东新区世纪大道100号"


async def test_erase_through_the_cli_leaves_no_trace_of_the_customer_in_any_table(desk, backend, monkeypatch, capsys):
    """Issue #18 item 3: staff commands, bot replies, notices, raw callbacks and keys named the
    customer without her id; after `scrm customer erase` nothing in the database names her."""
    sim = desk.service.sim
    await desk.onboard("孙丽", "赵磊")
    await desk.customer_writes("孙丽", "你好，想问下报价", COMPLAINT)  # a ticket: agent and owner are told, by name
    [ticket] = await desk.tickets()
    for userid, line in (("zhangwei", f"记 孙丽 客户手机13800131002 地址{ERASED_ADDRESS}"),
                         ("zhangwei", "查 13800131002"), ("zhangwei", "查 孙丽"), ("zhangwei", "查 sunli"),
                         ("zhangwei", "记 赵磊 孙丽介绍来的，她电话13800131002"),
                         ("wangfang", f"工单 {ticket.number}"), ("wangfang", f"回复 {ticket.number} 孙丽您好，已为您处理"),
                         ("liuyang", "新客户 孙丽 13800131002")):
        assert await desk.say(userid, line), line
    customer = await desk.customer("孙丽")
    external = next(k for k, c in sim.external_contacts.items() if c["external_contact"]["name"] == "孙丽")
    unionid = sim.external_contacts[external]["external_contact"]["unionid"]
    erased = ["孙丽", "孙丽-云帆", "13800131002", "13912345678", external, unionid, ERASED_ADDRESS, "sunli"]
    assert all([await rows_holding(desk, backend, value) for value in erased[:6]]), "the scenario names her everywhere"

    monkeypatch.setenv("SCRM_DATABASE_URL", backend.database_url)
    monkeypatch.delenv("SCRM_CONFIG", raising=False)
    code = await asyncio.to_thread(cli.main, ["--log-level", "WARNING", "customer", "erase", str(customer.id), "--yes"])
    assert code == 0

    for value in erased:
        assert await rows_holding(desk, backend, value) == [], value
    assert "other records (staff commands, bot replies, notices, keys) that named them scrubbed" in capsys.readouterr().out
    if backend.name == "sqlite":  # the file itself: no old page or WAL frame keeps her either
        path = Path(backend.database_url.split("///", 1)[1])
        raw = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
        for value in erased:
            for form in {value.encode(), json.dumps(value)[1:-1].encode()}:
                assert form not in raw, value
    # What statistics need is kept, and nobody else lost anything.
    async with desk.service.sessions() as session:
        assert await session.scalar(select(func.count()).where(Message.customer_id == customer.id)) >= 3
        assert (await session.get(Ticket, ticket.id)).status == "open"
        zhao = await session.scalar(select(Customer).where(Customer.name == "赵磊"))
        [note] = (await session.scalars(select(Note).where(Note.customer_id == zhao.id))).all()
    assert note.text == "［已删除］介绍来的，她电话［已删除］"
    assert "【赵磊】" in await desk.ask("zhangwei", "查 赵磊")
    assert "没有找到" in await desk.ask("zhangwei", "查 13800131002")


async def rows_holding(desk, backend, value: str) -> list[str]:
    """Every row of every table whose text (JSON as stored included) holds `value`."""
    forms = {value, json.dumps(value)[1:-1]}
    found = []
    async with desk.service.sessions() as session:
        tables = await session.run_sync(lambda s: inspect(s.connection()).get_table_names())
        for table in sorted(tables):
            if backend.name == "postgres":
                rows = (await session.execute(text(f'SELECT row_to_json(t)::text FROM "{table}" t'))).scalars().all()
            else:
                rows = [repr(tuple(r)) for r in (await session.execute(text(f'SELECT * FROM "{table}"'))).all()]
            found += [f"{table}: {row[:120]}" for row in rows if any(form in row for form in forms)]
    return found
