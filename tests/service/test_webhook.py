"""The generic JSON webhook end to end: signed messages from other channels become archived,
analysed customer messages (and tickets); anything unsigned, stale or malformed stores nothing."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from config.settings import ConfigError, WebhookSettings, WeComSettings, load_settings
from connectors.webhook import sign
from crm_core.models import Customer, InboxItem, Message
from crm_core.ticket_models import Ticket
from scrm import keys
from scrm.app import create_app
from scrm.delivery.sender import message_text
from tests.support.chat import sample_company_files, sync_directory
from tests.support.service import TEST_ROLES, Service, service_settings

SECRET = "site-secret-0123456789abcdef"
FEISHU_SECRET = "feishu-secret-0123456789abcdef"
COMPLAINT = "你们的东西用了两天就坏了，我要退款，不退我就去12315投诉"


def message(msg_id: str = "m-1", text: str = "你们服务很好，谢谢", sender: str = "visitor-42", **extra) -> dict:
    return {"id": msg_id, "from": {"id": sender, "name": "张三", "phone": "13800001111"}, "text": text, **extra}


async def post(service: Service, channel: str, body: dict | bytes, *, secret: str = SECRET,
               timestamp: int | None = None, signature: str | None = None) -> tuple[int, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {"Content-Type": "application/json", "X-SCRM-Timestamp": str(timestamp),
               "X-SCRM-Signature": signature if signature is not None else sign(secret, timestamp, raw)}
    resp = await service.client.post(f"/webhook/{channel}", data=raw, headers=headers)
    return resp.status, await resp.json()


async def count(service: Service, model, *where) -> int:
    async with service.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


@pytest.fixture
async def hook(backend, sim, sim_server, aiohttp_client, tmp_path: Path) -> Service:
    """The service with two webhook channels and the support roles tickets are routed by."""
    settings = service_settings(backend, sim, str(sim_server.make_url("/cgi-bin/")), **sample_company_files(tmp_path),
                                webhook=WebhookSettings(secrets=(("site", SECRET), ("feishu", FEISHU_SECRET))))
    client = await aiohttp_client(create_app(settings, TEST_ROLES))
    service = Service(client=client, sim=sim, wecom=None, crypto=None, settings=settings)
    await sync_directory(service.app[keys.SESSIONS], service.sim)
    return service


async def test_a_signed_message_creates_the_customer_and_is_archived_with_its_analysis(hook):
    body = message(sent_at="2026-11-29T10:00:00+08:00", meta={"page": "/pricing"})
    assert await post(hook, "site", body) == (200, {"ok": True, "duplicate": False})
    assert await count(hook, InboxItem, InboxItem.source == "webhook") == 1  # committed before the answer
    await hook.settle()

    async with hook.sessions() as session:
        customer = await session.scalar(select(Customer))
        archived = await session.scalar(select(Message))
    assert (customer.name, customer.phone) == ("张三", "13800001111")
    assert [(i.channel, i.external_id) for i in customer.identities] == [("webhook:site", "visitor-42")]
    assert (archived.channel, archived.direction, archived.external_msg_id) == ("webhook:site", "in", "m-1")
    assert archived.text == "你们服务很好，谢谢" and archived.customer_id == customer.id
    assert archived.sent_at == datetime(2026, 11, 29, 2, 0, tzinfo=timezone.utc)
    assert archived.meta == {"page": "/pricing"} and json.loads(archived.payload) == body
    assert archived.analysis["label"] == "positive" and customer.analysed_messages == 1
    assert customer.last_contact_at == archived.sent_at

    # The same visitor again is the same customer; their details never overwrite what the CRM has.
    later = message("m-2", "还有一个问题", sent_at=1_795_000_000)
    later["from"]["name"] = "别名"
    assert (await post(hook, "site", later))[0] == 200
    await hook.settle()
    assert await count(hook, Customer) == 1
    async with hook.sessions() as session:
        assert (await session.scalar(select(Customer))).name == "张三"
    status, page = await hook.api("/api/v1/messages", channel="webhook:site")
    assert status == 200 and [m["text"] for m in page["items"]] == ["你们服务很好，谢谢", "还有一个问题"]


async def test_channels_are_separate_identity_spaces(hook):
    await post(hook, "site", message("m-1"))
    await post(hook, "feishu", message("m-1"), secret=FEISHU_SECRET)  # same ids, another system
    await hook.settle()
    async with hook.sessions() as session:
        channels = sorted((await session.scalars(select(Message.channel))).all())
    assert channels == ["webhook:feishu", "webhook:site"]
    assert await count(hook, Customer) == 2


async def test_a_complaint_becomes_a_routed_ticket(hook):
    assert (await post(hook, "site", message("c-1", COMPLAINT)))[0] == 200
    await hook.settle()

    async with hook.sessions() as session:
        ticket = await session.scalar(select(Ticket))
        trigger = await session.get(Message, ticket.trigger_message_id)
    assert (ticket.status, ticket.category, ticket.priority) == ("open", "refund", "urgent")
    assert trigger.channel == "webhook:site" and trigger.text == COMPLAINT
    assert ticket.assignee.userid == "wangfang"
    assert ticket.ack_status == "no_channel"  # no 微信客服 window: a person is asked to reach out instead
    notices = [message_text(m) for m in hook.sim.sent_app_messages if m["touser"] == "wangfang"]
    assert any(ticket.number in text for text in notices)


async def test_a_retried_message_is_acked_again_and_processed_once(hook):
    assert await post(hook, "site", message()) == (200, {"ok": True, "duplicate": False})
    assert await post(hook, "site", message()) == (200, {"ok": True, "duplicate": True})
    await hook.settle()
    # A retry after processing, freshly signed with a new timestamp, is still the same message.
    assert await post(hook, "site", message(), timestamp=int(time.time()) + 5) == (200, {"ok": True, "duplicate": True})
    await hook.settle()

    assert await count(hook, InboxItem) == 1
    assert await count(hook, Message) == 1
    async with hook.sessions() as session:
        assert (await session.scalar(select(Customer))).analysed_messages == 1


async def test_bad_requests_get_a_clear_4xx_and_store_nothing(hook):
    now = int(time.time())
    good = json.dumps(message()).encode()
    cases = [
        # (what, channel, body, options, status, part of the error)
        ("wrong secret", "site", good, {"secret": "another-secret-0123456789"}, 403, "invalid signature"),
        ("another body's signature", "site", good, {"signature": sign(SECRET, now, b"{}")}, 403, "invalid signature"),
        ("no signature", "site", good, {"signature": ""}, 403, "X-SCRM-Signature"),
        ("stale timestamp", "site", good, {"timestamp": now - 301}, 403, "5 minutes"),
        ("timestamp from the future", "site", good, {"timestamp": now + 400}, 403, "5 minutes"),
        ("unknown channel", "wechat", good, {}, 404, "unknown channel"),
        ("not a channel name", "Site", good, {}, 404, "unknown channel"),
        ("malformed JSON", "site", b'{"id": "m-1", "text": ', {}, 400, "not valid JSON"),
        ("not an object", "site", b'["m-1"]', {}, 400, "JSON object"),
        ("not UTF-8", "site", "{\"id\": \"测试\"}".encode("gb18030"), {}, 400, "UTF-8"),
        ("empty", "site", b"", {}, 400, "empty"),
        ("missing fields", "site", b"{}", {}, 400, "id is missing; from is missing; text is missing"),
        ("missing from.id", "site", json.dumps({"id": "m", "from": {"name": "张三"}, "text": "hi"}).encode(), {}, 400,
         "from.id is missing"),
        ("wrong types", "site", json.dumps({"id": 7, "from": "visitor", "text": ["hi"], "meta": 1}).encode(), {}, 400,
         "id must be a string; from must be an object"),
        ("blank text", "site", json.dumps(message(text="  ")).encode(), {}, 400, "text must not be empty"),
        ("text too long", "site", json.dumps(message(text="长" * 10_001)).encode(), {}, 400,
         "text is longer than 10,000 characters"),
        ("time without offset", "site", json.dumps(message(sent_at="2026-11-29T10:00:00")).encode(), {}, 400,
         "sent_at needs a UTC offset"),
        ("NUL character", "site", json.dumps(message(text="a\u0000b")).encode(), {}, 400, "NUL character"),
        ("lone surrogate", "site", b'{"id": "m", "from": {"id": "v"}, "text": "\\ud800"}', {}, 400, "lone surrogate"),
        ("NaN", "site", b'{"id": "m", "from": {"id": "v"}, "text": "hi", "sent_at": NaN}', {}, 400, "not valid JSON"),
        ("oversized body", "site", json.dumps(message(meta={"x": "a" * (1024 * 1024)})).encode(), {}, 413,
         "larger than 1,048,576 bytes"),
    ]
    for what, channel, body, options, status, error in cases:
        got, answer = await post(hook, channel, body, **options)
        assert got == status, what
        assert answer["ok"] is False and error in answer["error"], (what, answer)
    await hook.settle()
    assert await count(hook, InboxItem) == 0
    assert await count(hook, Message) == 0
    assert await count(hook, Customer) == 0


async def test_the_webhook_is_served_without_wecom(backend, sim, sim_server, aiohttp_client):
    settings = replace(service_settings(backend, sim, str(sim_server.make_url("/cgi-bin/")),
                                        webhook=WebhookSettings(secrets=(("site", SECRET),))), wecom=WeComSettings())
    client = await aiohttp_client(create_app(settings, TEST_ROLES))
    hook = Service(client=client, sim=sim, wecom=None, crypto=None, settings=settings)
    assert await post(hook, "site", message()) == (200, {"ok": True, "duplicate": False})
    await hook.settle()
    assert await count(hook, Message, Message.channel == "webhook:site") == 1
    assert (await client.post("/wecom/callback", data=b"<xml/>")).status == 404


def test_secrets_come_from_the_environment_or_the_toml_file(tmp_path):
    settings = load_settings({"SCRM_WEBHOOK_SECRETS": f"site:{SECRET}, feishu:{FEISHU_SECRET}"})
    assert settings.webhook.channels == {"site": SECRET, "feishu": FEISHU_SECRET}
    assert SECRET not in repr(settings)

    path = tmp_path / "scrm.toml"
    path.write_text(f'[webhook]\nsecrets = {{mail = "{SECRET}"}}\n', encoding="utf-8")
    assert load_settings({"SCRM_CONFIG": str(path)}).webhook.channels == {"mail": SECRET}
    env = {"SCRM_CONFIG": str(path), "SCRM_WEBHOOK_SECRETS": f"site:{SECRET}"}
    assert load_settings(env).webhook.channels == {"site": SECRET}  # the environment wins
    assert load_settings({}).webhook.channels == {}


def test_bad_webhook_settings_are_reported_with_the_variable():
    with pytest.raises(ConfigError) as err:
        load_settings({"SCRM_WEBHOOK_SECRETS": f"Web Site:{SECRET},short:abc,site:{SECRET},site:{FEISHU_SECRET},"
                                               f"{'x' * 25}:{SECRET}"})
    problems = err.value.problems
    assert problems == [
        "SCRM_WEBHOOK_SECRETS: channel name 'Web Site' must be 1-24 characters of a-z, 0-9, _ and -",
        "SCRM_WEBHOOK_SECRETS: the secret of channel 'short' must be at least 16 characters (e.g. `openssl rand -hex 24`)",
        "SCRM_WEBHOOK_SECRETS names channel 'site' twice",
        f"SCRM_WEBHOOK_SECRETS: channel name '{'x' * 25}' must be 1-24 characters of a-z, 0-9, _ and -",
    ]
    bare_secret = "a-secret-without-its-channel"
    with pytest.raises(ConfigError, match="SCRM_WEBHOOK_SECRETS must read like site:SECRET") as err:
        load_settings({"SCRM_WEBHOOK_SECRETS": bare_secret})
    assert bare_secret not in str(err.value)


def test_a_malformed_toml_secrets_table_names_the_setting(tmp_path):
    path = tmp_path / "scrm.toml"
    path.write_text('[webhook]\nsecrets = "site:abc"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[webhook\] secrets"):
        load_settings({"SCRM_CONFIG": str(path)})
