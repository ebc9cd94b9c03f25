"""Issue #18 items 1 and 9 at the real endpoint: what an unauthenticated sender can make the service
do (nothing but a bounded scan and one hash: no XML parser, no decryption), and callbacks whose
signed timestamp is far from now (replays) are refused and counted."""

from __future__ import annotations

import hashlib
import time
from xml.parsers import expat

import pytest
from sqlalchemy import func, select

from connectors.wecom.crypto import MAX_ENVELOPE_BYTES
from connectors.wecom.receiver import CallbackReceiver
from connectors.wecom.simulator.callbacks import build_plaintext_text
from crm_core.models import InboxItem, Message
from tests.service.test_operability import scrape, value

SIBLINGS = b"<xml>" + b"<a/>" * 1999 + b"</xml>"  # the audit's 8 KB body: quadratic to flatten before the fix


async def stored(service) -> int:
    async with service.sessions() as session:
        return await session.scalar(select(func.count()).select_from(InboxItem)) or 0


def fresh_params(signature: str = "0" * 40, nonce: str = "7") -> dict[str, str]:
    return {"msg_signature": signature, "timestamp": str(int(time.time())), "nonce": nonce}


@pytest.fixture
def parser_calls(monkeypatch) -> list[int]:
    """Every expat parser the service creates, counted (the real parser still does the work)."""
    calls: list[int] = []
    real = expat.ParserCreate

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(expat, "ParserCreate", counting)
    return calls


async def test_unauthenticated_bodies_never_reach_the_xml_parser(service, parser_calls):
    encrypt = "A" * 64
    hostile = [
        SIBLINGS,
        b"<xml><Encrypt>" + encrypt.encode() + b"</Encrypt>" + b"<a/>" * 20 + b"</xml>",  # right shape, unsigned
        b"<xml>" + b"<a>" * 500 + b"</a>" * 500 + b"</xml>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>',
        b"<xml><Encrypt><![CDATA[" + encrypt.encode() + b"]]></Encrypt></xml>",
    ]
    for body in hostile:
        started = time.perf_counter()
        resp = await service.client.post("/wecom/callback", params=fresh_params(), data=body)
        elapsed = time.perf_counter() - started
        assert resp.status in (400, 403), (body[:40], resp.status)
        assert elapsed < 0.25, (body[:40], elapsed)  # about a second for SIBLINGS before the fix
    assert parser_calls == []
    assert await stored(service) == 0
    # A genuine callback is parsed once: its decrypted message, never the envelope.
    status, _ = await service.wecom.text("zhangwei", "帮助", msg_id=918001)
    assert status == 200 and parser_calls == [1]


async def test_a_signed_message_with_many_siblings_is_flattened_in_linear_time(service):
    items = "".join(f"<Item>{i}</Item>" for i in range(1990))
    plaintext = build_plaintext_text(service.sim.corp_id, str(service.sim.agent_id), "zhangwei", "帮助",
                                     msg_id=918002).replace("</xml>", items + "</xml>")
    started = time.perf_counter()
    status, _ = await service.wecom.raw(plaintext)
    assert status == 200
    assert time.perf_counter() - started < 0.5  # the flattener's search for a free `Item#n` was quadratic
    await service.settle()
    async with service.sessions() as session:
        message = await session.scalar(select(Message).where(Message.external_msg_id == "918002"))
    assert message.meta.get("Item#1990") == "1989"


async def test_a_body_larger_than_any_envelope_is_refused_unread(service):
    resp = await service.client.post("/wecom/callback", params=fresh_params(),
                                     data=b"<xml><Encrypt>" + b"A" * MAX_ENVELOPE_BYTES + b"</Encrypt></xml>")
    assert resp.status == 413
    assert await stored(service) == 0


def signed(service, plaintext: str, timestamp: int) -> tuple[dict[str, str], bytes]:
    body, signature = service.crypto.encrypt_callback(plaintext, timestamp=str(timestamp), nonce="5")
    return {"msg_signature": signature, "timestamp": str(timestamp), "nonce": "5"}, body.encode()


@pytest.mark.parametrize("offset", [-10**9, -3600, -301, 301, 3600])
async def test_a_correctly_signed_callback_with_a_stale_timestamp_is_refused_and_counted(service, offset, monkeypatch):
    # The receiver's clock stands still, so 301 s ahead stays 301 s ahead however long the request
    # takes on a busy machine (with the real clock, one slow second let it in).
    now = int(time.time())
    monkeypatch.setattr(CallbackReceiver, "clock", staticmethod(lambda: float(now)))
    plaintext = build_plaintext_text(service.sim.corp_id, str(service.sim.agent_id), "zhangwei", "帮助", msg_id=918003)
    timestamp = max(1, now + offset)  # -10**9: the audit's timestamp=1 and its like
    params, body = signed(service, plaintext, timestamp)
    resp = await service.client.post("/wecom/callback", params=params, data=body)
    assert resp.status == 403
    assert await stored(service) == 0
    assert value(await scrape(service), "scrm_callbacks_total", result="stale") == 1
    # Within WeCom's retry window (and a clock a little off) the same message is taken.
    params, body = signed(service, plaintext, now + (-240 if offset < 0 else 240))
    assert (await service.client.post("/wecom/callback", params=params, data=body)).status == 200
    assert await stored(service) == 1


async def test_url_verification_with_a_stale_timestamp_is_refused(service):
    body, signature = service.crypto.encrypt_callback("12345", timestamp="1", nonce="5")
    echostr = body.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    resp = await service.client.get("/wecom/callback", params={"msg_signature": signature, "timestamp": "1",
                                                               "nonce": "5", "echostr": echostr})
    assert resp.status == 403 and "12345" not in await resp.text()


@pytest.mark.parametrize("field", ["timestamp", "nonce", "msg_signature"])
async def test_query_values_that_are_not_utf8_are_refused_not_a_500(service, field):
    params = fresh_params()
    query = "&".join(f"{k}={v}" for k, v in params.items() if k != field) + f"&{field}=%FF%FE%E9"
    body = b"<xml><Encrypt>" + hashlib.sha1(b"x").hexdigest().encode() + b"</Encrypt></xml>"
    resp = await service.client.post(f"/wecom/callback?{query}", data=body)
    assert resp.status in (400, 403)
