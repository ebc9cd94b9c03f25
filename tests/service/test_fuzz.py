"""Hostile input against the real endpoint and the bot, with a fixed seed so a failure replays:
mutated and random bodies, bad and valid signatures over garbage, the wrong corp, truncation,
replays of a valid callback, and random chat lines. Never a 5xx, never a stored row from an
invalid callback, never an internal-error reply, and a replay is processed once."""

from __future__ import annotations

import hashlib
import random
import time

import pytest
from sqlalchemy import func, select

from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import CallbackSender, build_plaintext_text
from crm_core.models import InboxItem, Message
from scrm import keys
from scrm.app import create_app
from tests.support.service import TEST_ROLES, Service, service_settings

SEED = 20261129
CASES = 120


def sign(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """WeCom's msg_signature: SHA-1 of the sorted token, timestamp, nonce and ciphertext."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()


def mutate(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        kind = rng.choice(("flip", "cut", "insert", "repeat"))
        if not data:
            break
        at = rng.randrange(len(data))
        if kind == "flip":
            data[at] ^= 1 << rng.randrange(8)
        elif kind == "cut":
            del data[at:at + rng.randint(1, 64)]
        elif kind == "insert":
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        else:
            data[at:at] = data[at:at + rng.randint(1, 128)] * rng.randint(2, 50)
    return bytes(data)


def random_text(rng: random.Random, length: int, *, xml_safe: bool = False) -> str:
    """Random characters from ASCII, CJK, emoji, full-width forms, zero-width marks and (unless the
    text must travel inside XML, as a WeCom message does) C0 control characters."""
    pools = [(0x20, 0x7E), (0x4E00, 0x9FFF), (0x1F300, 0x1FAFF), (0xFF00, 0xFFEF), (0x200B, 0x200F)]
    pools += [(0x9, 0xA)] if xml_safe else [(0x0, 0x1F)]
    chars = []
    for _ in range(length):
        low, high = rng.choice(pools)
        chars.append(chr(rng.randint(low, high)))
    return "".join(chars)


async def stored(service) -> tuple[int, int]:
    async with service.sessions() as session:
        return (await session.scalar(select(func.count()).select_from(InboxItem)) or 0,
                await session.scalar(select(func.count()).select_from(Message)) or 0)


async def post(service, params: dict, body: bytes) -> int:
    resp = await service.client.post("/wecom/callback", params=params, data=body)
    await resp.read()
    return resp.status


async def test_mutated_and_forged_callbacks_are_refused_without_5xx_or_storage(service):
    rng = random.Random(SEED)
    sim, crypto, now = service.sim, service.crypto, str(int(time.time()))
    plaintext = build_plaintext_text(sim.corp_id, str(sim.agent_id), "zhangwei", "查 赵磊", msg_id=1)
    body, signature = crypto.encrypt_callback(plaintext, timestamp=now, nonce="42", agent_id=str(sim.agent_id))
    good = {"msg_signature": signature, "timestamp": now, "nonce": "42"}
    encrypted = body.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    statuses = []
    for _ in range(CASES):
        kind = rng.choice(("mutated body", "mutated ciphertext, valid signature", "random bytes", "bad params"))
        if kind == "mutated body":
            statuses.append(await post(service, good, mutate(body.encode(), rng)))
        elif kind == "mutated ciphertext, valid signature":
            forged = mutate(encrypted.encode(), rng).decode("latin-1")
            params = {**good, "msg_signature": sign(sim.callback_token, now, "42", forged)}
            statuses.append(await post(service, params, f"<xml><Encrypt><![CDATA[{forged}]]></Encrypt></xml>".encode("utf-8", "replace")))
        elif kind == "random bytes":
            statuses.append(await post(service, good, bytes(rng.randrange(256) for _ in range(rng.randint(0, 4096)))))
        else:
            params = {k: random_text(rng, rng.randint(0, 80)) for k in rng.sample(sorted(good), rng.randint(0, 3))}
            statuses.append(await post(service, params, body.encode()))
    assert all(400 <= status < 500 for status in statuses), sorted(set(statuses))
    assert await stored(service) == (0, 0)


async def test_well_signed_garbage_and_the_wrong_corp_are_4xx_and_store_nothing(service):
    rng = random.Random(SEED + 1)
    sim, crypto, now = service.sim, service.crypto, str(int(time.time()))
    other_corp = CallbackCrypto(sim.callback_token, sim.encoding_aes_key, "wwsomeoneelse0001")
    plaintexts = ["", "<xml>", "<xml><MsgType>text</xml>", "<" * 5000, random_text(rng, 300),
                  "<xml>" + "<a>" * 2000 + "</a>" * 2000 + "</xml>",  # deeper than any real message
                  "<xml>" + "<a>x</a>" * 30000 + "</xml>",  # a flood of siblings
                  '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Content>&a;</Content></xml>']
    for i, plaintext in enumerate(plaintexts):
        for who in (crypto, other_corp):
            body, signature = who.encrypt_callback(plaintext, timestamp=now, nonce=str(i))
            status = await post(service, {"msg_signature": signature, "timestamp": now, "nonce": str(i)},
                                body.encode())
            assert 400 <= status < 500, (plaintext[:30], who is other_corp, status)
    # A well-formed callback for another corp is refused too, however valid it looks.
    valid = build_plaintext_text(sim.corp_id, str(sim.agent_id), "zhangwei", "帮助", msg_id=77)
    body, signature = other_corp.encrypt_callback(valid, timestamp=now, nonce="9")
    status = await post(service, {"msg_signature": signature, "timestamp": now, "nonce": "9"}, body.encode())
    assert 400 <= status < 500
    assert await stored(service) == (0, 0)


async def test_replays_of_a_valid_callback_are_acked_and_processed_once(service):
    for _ in range(5):
        status, _ = await service.wecom.text("zhangwei", "帮助", msg_id=880001)
        assert status == 200
    await service.settle()
    async with service.sessions() as session:
        archived = await session.scalar(select(func.count()).where(Message.external_msg_id == "880001"))
    assert archived == 1
    assert len([m for m in service.sim.sent_app_messages if m["touser"] == "zhangwei"]) == 1


@pytest.fixture
async def lenient_service(backend, sim, sim_server, aiohttp_client) -> Service:  # noqa: F811
    """The service with the rate limits out of the way (the bot's per staff member, WeCom's per member):
    here every line must be answered at once."""
    settings = service_settings(backend, sim, str(sim_server.make_url("/cgi-bin/")), bot_commands_per_minute=10_000)
    client = await aiohttp_client(create_app(settings, TEST_ROLES))
    for worker in client.server.app[keys.OUTBOX_WORKERS]:
        worker.process.member_limit.per_minute = 10_000
    sim.app_messages_per_member_per_minute = 10_000  # and WeCom, which would drop what ours let through
    crypto = CallbackCrypto(sim.callback_token, sim.encoding_aes_key, sim.corp_id)
    sender = CallbackSender(client.session, str(client.make_url("/wecom/callback")), crypto,
                            corp_id=sim.corp_id, agent_id=str(sim.agent_id))
    return Service(client=client, sim=sim, wecom=sender, crypto=crypto, settings=settings)


async def test_random_chat_lines_always_get_a_short_friendly_reply(lenient_service):
    service = lenient_service
    rng = random.Random(SEED + 2)
    lines = [random_text(rng, rng.choice((1, 5, 40, 300, 3000)), xml_safe=True) for _ in range(40)]
    lines += ["查 " + random_text(rng, 200, xml_safe=True), "记 " + "\u200b" * 50,
              "跟进 赵磊 " + random_text(rng, 30, xml_safe=True), "阶段 " + "%" * 100, "帮助 " + "_" * 5000,
              "标签 赵磊 +" + random_text(rng, 80, xml_safe=True)]
    for msg_id, line in enumerate(lines, start=990001):
        status, _ = await service.wecom.text("zhangwei", line, msg_id=msg_id)
        assert status == 200
    await service.settle()
    replies = [m[m["msgtype"]]["content"] for m in service.sim.sent_app_messages if m["touser"] == "zhangwei"]
    assert len(replies) == len(lines)
    for reply in replies:
        assert reply and len(reply.encode()) <= 2048
        assert "错误编号" not in reply  # no internal error behind any of them
