"""The callback endpoint end to end: signed, encrypted callbacks in, archived records out."""

from __future__ import annotations

import json
import time

from sqlalchemy import func, select

from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import CallbackSender, build_plaintext_change_external_contact
from crm_core.db import create_engine, session_factory
from crm_core.followers import FollowerService
from crm_core.models import Customer, InboxItem, Message, OutboxItem, Staff
from scrm import keys
from scrm.app import create_app
from tests.support.service import Service, external_id, service_settings


async def count(service, model, *where) -> int:
    async with service.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


async def test_url_verification_answers_the_plain_echo(service):
    status, body = await service.wecom.verify_url("1288432023552776189")
    assert (status, body) == (200, "1288432023552776189")


async def test_employee_text_is_archived_once_with_staff_synced(service):
    status, body = await service.wecom.text("zhangwei", "查 赵磊", msg_id=1001)
    assert (status, body) == (200, "")
    # WeCom retries the same MsgId when it doubts our answer.
    for _ in range(3):
        assert (await service.wecom.text("zhangwei", "查 赵磊", msg_id=1001))[0] == 200
    await service.settle()

    assert await count(service, InboxItem) == 1
    assert await count(service, Message, Message.channel == "wecom_app", Message.direction == "in") == 1
    async with service.sessions() as session:
        staff = await session.scalar(select(Staff).where(Staff.userid == "zhangwei"))
        message = await session.scalar(select(Message).where(Message.external_msg_id == "1001"))
    assert staff.name == "张伟" and staff.department_ids == [2]
    assert message.text == "查 赵磊" and message.staff_id == staff.id and message.sender == "zhangwei"
    assert "<MsgId>1001</MsgId>" in message.payload


async def test_non_text_messages_keep_their_metadata(service):
    await service.wecom.image("lina", "https://example.invalid/p.jpg", "media-1", msg_id=2001)
    await service.wecom.location("lina", 31.23, 121.47, "上海市黄浦区", msg_id=2002)
    await service.settle()
    async with service.sessions() as session:
        rows = {m.external_msg_id: m for m in (await session.scalars(select(Message))).all()}
    assert rows["2001"].msg_type == "image" and rows["2001"].text == "[图片]"
    assert rows["2001"].meta["MediaId"] == "media-1"
    assert rows["2002"].text == "[位置] 上海市黄浦区"


async def test_added_external_contact_becomes_a_customer_with_wecom_details(service):
    status, _ = await service.wecom.change_external_contact("add_external_contact", "zhangwei", external_id(service.sim, "赵磊"), state="expo2024")
    assert status == 200
    await service.settle()
    async with service.sessions() as session:
        customer = await session.scalar(select(Customer))
    assert customer.name == "赵磊"
    assert customer.company == "华东精密机械有限公司"
    assert customer.phone == "13800131001"
    assert customer.remark == "赵总-华东精密"
    assert "重要客户" in customer.wecom_tags
    assert customer.owner.userid == "zhangwei"
    assert [(i.channel, i.external_id) for i in customer.identities] == [("wecom", external_id(service.sim, "赵磊"))]
    assert await count(service, Message, Message.channel == "wecom_event") == 1


async def test_edit_refreshes_the_customer(service):
    await service.wecom.change_external_contact("add_external_contact", "zhangwei", external_id(service.sim, "赵磊"))
    await service.settle()
    contact = service.sim.external_contacts[external_id(service.sim, "赵磊")]
    contact["follow_user"][0]["remark"] = "赵总（已签约）"
    await service.wecom.change_external_contact("edit_external_contact", "zhangwei", external_id(service.sim, "赵磊"))
    await service.settle()
    async with service.sessions() as session:
        customers = (await session.scalars(select(Customer))).all()
    assert len(customers) == 1 and customers[0].remark == "赵总（已签约）"


async def test_customer_deleting_the_rep_marks_churn_and_alerts_the_rep(service):
    await service.wecom.change_external_contact("add_external_contact", "zhangwei", external_id(service.sim, "赵磊"))
    await service.settle()
    def deletion(at: int) -> str:
        return build_plaintext_change_external_contact(service.sim.corp_id, "del_follow_user", "zhangwei",
                                                       external_id(service.sim, "赵磊"), create_time=at)

    service.sim.end_contact(external_id(service.sim, "赵磊"), "zhangwei")  # 张伟 was 赵磊's only rep
    await service.wecom.raw(deletion(1_800_000_000))
    await service.wecom.raw(deletion(1_800_000_000))  # WeCom's retry: the same callback again
    await service.wecom.raw(deletion(1_800_000_001))  # the same fact reported a second later: no second alert
    await service.settle()
    async with service.sessions() as session:
        customer = await session.scalar(select(Customer))
    assert customer.lifecycle == "churned" and customer.churned_at is not None
    alerts = [m for m in service.sim.sent_app_messages if m["touser"] == "zhangwei"]
    assert len(alerts) == 1
    assert "赵磊" in alerts[0]["text"]["content"] and "删除" in alerts[0]["text"]["content"]
    assert await count(service, OutboxItem, OutboxItem.status == "sent") == 1


async def test_kf_messages_are_pulled_archived_once_and_linked_to_the_customer(service):
    kfid = next(iter(service.sim.kf_accounts))
    await service.wecom.change_external_contact("add_external_contact", "zhangwei", external_id(service.sim, "赵磊"))
    token = service.sim.kf_customer_writes(kfid, external_id(service.sim, "赵磊"), "你好，想问下报价")
    service.sim.kf_customer_writes(kfid, external_id(service.sim, "赵磊"), "什么时候能发货？")
    await service.wecom.kf_msg_or_event(token, kfid)
    await service.wecom.kf_msg_or_event(token, kfid)  # retry of the same wake-up
    await service.settle()
    async with service.sessions() as session:
        kf = (await session.scalars(select(Message).where(Message.channel == "wecom_kf").order_by(Message.id))).all()
        customer = await session.scalar(select(Customer))
    assert sorted(m.text for m in kf) == sorted(["你好，想问下报价", "什么时候能发货？"])
    assert {m.customer_id for m in kf} == {customer.id}
    assert customer.last_contact_at is not None
    # A later wake-up only brings what is new: the cursor was kept.
    token = service.sim.kf_customer_writes(kfid, external_id(service.sim, "赵磊"), "收到了，谢谢")
    await service.wecom.kf_msg_or_event(token, kfid)
    await service.settle()
    assert await count(service, Message, Message.channel == "wecom_kf") == 3


async def test_unknown_callback_types_are_archived_raw(service):
    plaintext = (
        f"<xml><ToUserName><![CDATA[{service.sim.corp_id}]]></ToUserName><FromUserName><![CDATA[lina]]></FromUserName>"
        "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[some_future_event]]></Event><AgentID>1000002</AgentID></xml>"
    )
    assert (await service.wecom.raw(plaintext))[0] == 200
    await service.settle()
    async with service.sessions() as session:
        message = await session.scalar(select(Message))
    assert message.msg_type == "event:some_future_event" and "some_future_event" in message.payload


async def test_bad_signature_is_refused_and_stores_nothing(service):
    now = str(int(time.time()))
    body, signature = service.crypto.encrypt_callback("<xml><MsgId>1</MsgId></xml>", timestamp=now, nonce="2")
    resp = await service.client.post(
        "/wecom/callback", params={"msg_signature": "0" * 40, "timestamp": now, "nonce": "2"}, data=body
    )
    assert resp.status == 403
    assert await count(service, InboxItem) == 0


async def test_malformed_and_hostile_bodies_get_4xx_and_store_nothing(service):
    params = {"msg_signature": "x", "timestamp": str(int(time.time())), "nonce": "2"}
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>'
        "<xml><Encrypt>&lol2;</Encrypt></xml>"
    )
    cases = [
        ("/wecom/callback", {}, b"<xml/>"),  # missing query parameters
        ("/wecom/callback", params, b""),  # empty body
        ("/wecom/callback", params, b"not xml at all"),
        ("/wecom/callback", params, bomb.encode()),
        ("/wecom/callback", params, b"<xml>" + b"a" * (1024 * 1024 + 10) + b"</xml>"),  # over 1 MiB
    ]
    for path, query, body in cases:
        resp = await service.client.post(path, params=query, data=body)
        assert 400 <= resp.status < 500, (body[:40], resp.status)
    assert await count(service, InboxItem) == 0


async def test_encrypted_garbage_with_a_valid_signature_is_a_400(service):
    now = str(int(time.time()))
    body, signature = service.crypto.encrypt_callback("this is not xml", timestamp=now, nonce="2")
    resp = await service.client.post("/wecom/callback", params={"msg_signature": signature, "timestamp": now, "nonce": "2"}, data=body)
    assert resp.status == 400
    assert await count(service, InboxItem) == 0


async def test_a_failing_item_is_retried_then_parked_with_its_error(service):
    await service.stop_background_workers()
    service.sim.fail_next("user/get", errcode=-1, times=100)  # WeCom "system busy", again and again
    await service.wecom.text("chenjing", "帮助", msg_id=3001)
    for _ in range(service.settings.inbox_max_attempts):
        async with service.sessions() as session:
            await session.execute(InboxItem.__table__.update().values(available_at=InboxItem.received_at))
            await session.commit()
        for worker in service.app[keys.INBOX_WORKERS]:
            await worker.run_once()
    async with service.sessions() as session:
        item = await session.scalar(select(InboxItem))
    assert item.status == "parked" and item.attempts == service.settings.inbox_max_attempts
    assert "system busy" in item.last_error
    assert await count(service, Message) == 0


async def test_api_lists_archived_messages_and_customers(service):
    await service.wecom.change_external_contact("add_external_contact", "zhangwei", external_id(service.sim, "赵磊"))
    await service.wecom.text("zhangwei", "你好", msg_id=4001)
    await service.settle()
    status, page = await service.api("/api/v1/customers", q="华东")
    assert status == 200 and page["total"] == 1 and page["items"][0]["name"] == "赵磊"
    status, page = await service.api("/api/v1/messages", channel="wecom_app", direction="in")
    assert status == 200 and [m["text"] for m in page["items"]] == ["你好"]
    status, page = await service.api("/api/v1/messages", direction="sideways")
    assert status == 400
    resp = await service.client.get("/api/v1/customers")
    assert resp.status == 401
    spec = await (await service.client.get("/api/v1/openapi.json")).json()
    assert "/api/v1/messages" in spec["paths"]
    ready = await service.client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["checks"] == {"database": True, "redis": True}
    assert json.dumps(page)


async def test_kf_cursor_survives_a_restart(backend, sim, sim_server, aiohttp_client):
    settings = service_settings(backend, sim, str(sim_server.make_url("/cgi-bin/")))
    kfid = next(iter(sim.kf_accounts))
    zhao = external_id(sim, "赵磊")
    crypto_args = (sim.callback_token, sim.encoding_aes_key, sim.corp_id)

    async def run_once(text: str) -> None:
        client = await aiohttp_client(create_app(settings))
        sender = CallbackSender(client.session, str(client.make_url("/wecom/callback")), CallbackCrypto(*crypto_args),
                                corp_id=sim.corp_id, agent_id=str(sim.agent_id))
        service = Service(client=client, sim=sim, wecom=sender, crypto=CallbackCrypto(*crypto_args), settings=settings)
        token = sim.kf_customer_writes(kfid, zhao, text)
        await sender.kf_msg_or_event(token, kfid)
        await service.settle()
        await client.close()

    await run_once("第一条")
    await run_once("重启后的第二条")  # a new process: only the new message may be pulled
    engine = create_engine(settings.database_url)
    async with session_factory(engine)() as session:
        texts = (await session.scalars(select(Message.text).where(Message.channel == "wecom_kf", Message.direction == "in"))).all()
    await engine.dispose()
    assert sorted(texts) == ["第一条", "重启后的第二条"]


async def test_contact_removal_events_are_recorded(service):
    zhao = external_id(service.sim, "赵磊")
    await service.wecom.change_external_contact("add_external_contact", "zhangwei", zhao)
    await service.settle()
    service.sim.end_contact(zhao, "zhangwei")
    await service.wecom.change_external_contact("del_external_contact", "zhangwei", zhao)
    await service.wecom.change_external_contact("transfer_fail", "zhangwei", zhao, fail_reason="customer_refused")
    await service.settle()
    async with service.sessions() as session:
        types = (await session.scalars(select(Message.msg_type).where(Message.channel == "wecom_event").order_by(Message.id))).all()
        customer = await session.scalar(select(Customer))
    assert sorted(types) == ["event:change_external_contact:add_external_contact",
                             "event:change_external_contact:del_external_contact",
                             "event:change_external_contact:transfer_fail"]
    assert customer.lifecycle == "prospect"  # the rep removing a contact is not the customer leaving


async def test_a_contact_two_reps_added_is_one_customer_with_two_followers(service):
    zhao, sim = external_id(service.sim, "赵磊"), service.sim
    await service.wecom.change_external_contact("add_external_contact", "zhangwei", zhao)
    sim.add_follower(zhao, "lina", remark="赵总（李娜）", remark_mobiles=["13700000001"],
                     tags=[{"group_name": "客户等级", "tag_name": "重要客户", "tag_id": "etDemoVip0001", "type": 1}])
    await service.wecom.change_external_contact("add_external_contact", "lina", zhao)
    await service.settle()
    async with service.sessions() as session:
        [customer] = (await session.scalars(select(Customer))).all()
        followers = {f.staff.userid: f for f in await FollowerService(session).of_customer(customer.id)}
    assert set(followers) == {"zhangwei", "lina"}
    assert customer.owner_id == followers["zhangwei"].staff_id  # the first rep keeps the customer
    assert (followers["lina"].remark, followers["lina"].remark_mobiles) == ("赵总（李娜）", ["13700000001"])
    assert followers["lina"].tag_ids == ["etDemoVip0001"] and followers["lina"].add_way == 2
    assert followers["zhangwei"].added_at is not None

    sim.end_contact(zhao, "lina")  # the customer deletes 李娜; 张伟 still follows
    await service.wecom.change_external_contact("del_follow_user", "lina", zhao)
    await service.settle()
    async with service.sessions() as session:
        remaining = [f.staff.userid for f in await FollowerService(session).of_customer(customer.id)]
    assert remaining == ["zhangwei"]
    async with service.sessions() as session:
        customer = await session.get(Customer, customer.id)
    assert customer.lifecycle != "churned"  # 张伟 still follows: a lost rep, not a lost customer
