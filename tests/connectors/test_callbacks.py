"""CallbackSender, checked by decrypting what it sends with CallbackCrypto in a tiny receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from connectors.wecom.crypto import CallbackCrypto, CallbackCryptoError, SignatureError, parse_plaintext_xml
from connectors.wecom.simulator.callbacks import (
    CallbackSender,
    build_plaintext_change_external_contact,
    build_plaintext_text,
)
from connectors.wecom.simulator.sample_data import (
    DEMO_AGENT_ID,
    DEMO_CALLBACK_TOKEN,
    DEMO_CORP_ID,
    DEMO_ENCODING_AES_KEY,
    DEMO_OPEN_KFID,
)

RECEIVED: web.AppKey[list[dict[str, Any]]] = web.AppKey("received", list)
ENVELOPES: web.AppKey[list[dict[str, str]]] = web.AppKey("envelopes", list)
CUSTOMER = "wmDemoZhaoLei0000000000000000001"


def crypto() -> CallbackCrypto:
    return CallbackCrypto(DEMO_CALLBACK_TOKEN, DEMO_ENCODING_AES_KEY, DEMO_CORP_ID)


async def receive(request: web.Request) -> web.Response:
    q = request.query
    try:
        if request.method == "GET":
            return web.Response(text=crypto().verify_url(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"]))
        body = await request.read()
        plain = crypto().decrypt_callback(body, q["msg_signature"], q["timestamp"], q["nonce"])
    except SignatureError:
        return web.Response(status=403)
    except CallbackCryptoError:
        return web.Response(status=400)
    request.app[ENVELOPES].append(parse_plaintext_xml(body.decode()))
    request.app[RECEIVED].append(parse_plaintext_xml(plain))
    return web.Response(text="success")


@pytest.fixture
async def receiver(aiohttp_server) -> TestServer:  # type: ignore[no-untyped-def]
    app = web.Application()
    app[RECEIVED], app[ENVELOPES] = [], []
    app.router.add_route("*", "/wecom/callback", receive)
    return await aiohttp_server(app)


@pytest.fixture
async def sender(receiver: TestServer) -> AsyncIterator[CallbackSender]:
    async with aiohttp.ClientSession() as http:
        yield CallbackSender(http, str(receiver.make_url("/wecom/callback")), crypto(),
                             corp_id=DEMO_CORP_ID, agent_id=str(DEMO_AGENT_ID))


def last(receiver: TestServer) -> dict[str, Any]:
    return receiver.app[RECEIVED][-1]


async def test_text_message(sender: CallbackSender, receiver: TestServer) -> None:
    assert await sender.text("zhangwei", "记 赵磊 电话沟通, 要报价", msg_id=123, create_time=1700000000) == (200, "success")
    assert last(receiver) == {
        "ToUserName": DEMO_CORP_ID, "FromUserName": "zhangwei", "CreateTime": "1700000000", "MsgType": "text",
        "Content": "记 赵磊 电话沟通, 要报价", "MsgId": "123", "AgentID": "1000002",
    }
    envelope = receiver.app[ENVELOPES][-1]
    assert list(envelope) == ["ToUserName", "Encrypt", "AgentID"]
    assert (envelope["ToUserName"], envelope["AgentID"]) == (DEMO_CORP_ID, "1000002")


async def test_image_voice_location(sender: CallbackSender, receiver: TestServer) -> None:
    await sender.image("lina", "https://example.invalid/p.jpg", "MEDIA_1")
    image = last(receiver)
    await sender.voice("lina", "MEDIA_2")
    voice = last(receiver)
    await sender.location("lina", 31.2304, 121.4737, "上海市黄浦区")
    location = last(receiver)
    assert (image["MsgType"], image["PicUrl"], image["MediaId"]) == ("image", "https://example.invalid/p.jpg", "MEDIA_1")
    assert (voice["MsgType"], voice["MediaId"], voice["Format"]) == ("voice", "MEDIA_2", "amr")
    assert (location["Location_X"], location["Location_Y"], location["Label"]) == ("31.2304", "121.4737", "上海市黄浦区")
    assert int(image["MsgId"]) != int(voice["MsgId"])


@pytest.mark.parametrize(
    ("change_type", "kwargs", "extra"),
    [
        ("add_external_contact", {"state": "expo2024", "welcome_code": "WC1"}, {"State": "expo2024", "WelcomeCode": "WC1"}),
        ("edit_external_contact", {}, {}),
        ("del_external_contact", {}, {}),
        ("del_follow_user", {}, {}),
        ("transfer_fail", {"fail_reason": "customer_refused"}, {"FailReason": "customer_refused"}),
    ],
)
async def test_change_external_contact(sender: CallbackSender, receiver: TestServer, change_type: str,
                                       kwargs: dict[str, str], extra: dict[str, str]) -> None:
    assert (await sender.change_external_contact(change_type, "zhangwei", CUSTOMER, **kwargs))[0] == 200
    event = last(receiver)
    event.pop("CreateTime")
    assert event == {
        "ToUserName": DEMO_CORP_ID, "FromUserName": "sys", "MsgType": "event", "Event": "change_external_contact",
        "ChangeType": change_type, "UserID": "zhangwei", "ExternalUserID": CUSTOMER, **extra,
    }


async def test_kf_msg_or_event(sender: CallbackSender, receiver: TestServer) -> None:
    await sender.kf_msg_or_event("ENCtoken123", DEMO_OPEN_KFID)
    event = last(receiver)
    assert (event["MsgType"], event["Event"], event["Token"], event["OpenKfId"]) == (
        "event", "kf_msg_or_event", "ENCtoken123", DEMO_OPEN_KFID)
    assert "FromUserName" not in event


async def test_verify_url_echo(sender: CallbackSender) -> None:
    assert await sender.verify_url("1616140317555161061") == (200, "1616140317555161061")


async def test_raw_hostile_plaintext_is_refused_by_receiver(sender: CallbackSender, receiver: TestServer) -> None:
    hostile = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><A>&e;</A></xml>'
    assert (await sender.raw(hostile))[0] == 400
    assert receiver.app[RECEIVED] == []


async def test_wrong_token_is_refused_with_403(receiver: TestServer) -> None:
    async with aiohttp.ClientSession() as http:
        forger = CallbackSender(http, str(receiver.make_url("/wecom/callback")),
                                CallbackCrypto("guessed-token", DEMO_ENCODING_AES_KEY, DEMO_CORP_ID),
                                corp_id=DEMO_CORP_ID, agent_id="1000002")
        assert (await forger.text("zhangwei", "hi"))[0] == 403


def test_builders_validate_and_escape_cdata() -> None:
    with pytest.raises(ValueError):
        build_plaintext_change_external_contact(DEMO_CORP_ID, "add_friend", "zhangwei", CUSTOMER)
    with pytest.raises(ValueError):
        build_plaintext_change_external_contact(DEMO_CORP_ID, "transfer_fail", "zhangwei", CUSTOMER)
    tricky = "a]]><evil/>b"
    assert parse_plaintext_xml(build_plaintext_text(DEMO_CORP_ID, "1000002", "zhangwei", tricky))["Content"] == tricky
