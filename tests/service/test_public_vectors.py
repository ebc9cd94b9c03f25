"""The real HTTP endpoint against the three public WeCom crypto vector sets: URL verification
answers the exact plaintext, each POST is acked and stored as the expected message, once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from config.settings import Settings, WeComSettings
from connectors.wecom.receiver import CallbackReceiver
from crm_core.models import InboxItem
from scrm import keys
from scrm.app import create_app

VECTORS_FILE = Path(__file__).parents[3] / "shared" / "datasets" / "wecom" / "crypto-vectors.json"
VECTORS = json.loads(VECTORS_FILE.read_text(encoding="utf-8")) if VECTORS_FILE.exists() else {}
if not VECTORS and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI=true but {VECTORS_FILE} is missing: CI checks out shared/ beside the repository")

pytestmark = pytest.mark.skipif(not VECTORS, reason=f"{VECTORS_FILE} not found (the team's shared/ folder)")


@pytest.fixture
def vector_clock(monkeypatch):
    """The vectors were signed years ago: the service's clock is set to each one's timestamp."""
    def set_to(timestamp: str) -> None:
        monkeypatch.setattr(CallbackReceiver, "clock", staticmethod(lambda: float(timestamp)))
    return set_to


async def vector_client(aiohttp_client, tmp_path, vector: dict):
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'v.sqlite3'}",
        wecom=WeComSettings(corp_id=vector["receiveid"], secret="unused", agent_id="1", token=vector["token"],
                            aes_key=vector["encoding_aes_key"], api_base="http://127.0.0.1:9/cgi-bin/"),
    )
    return await aiohttp_client(create_app(settings, frozenset({"web"})))


def post_body(vector: dict) -> bytes:
    post = vector["post_xml"]
    if "body" in post:
        return post["body"].encode()
    return (f"<xml><ToUserName><![CDATA[{vector['receiveid']}]]></ToUserName>"
            f"<Encrypt><![CDATA[{post['encrypt']}]]></Encrypt></xml>").encode()


@pytest.mark.parametrize("name", sorted(VECTORS))
async def test_url_verification_returns_the_exact_plaintext(aiohttp_client, tmp_path, vector_clock, name):
    vector = VECTORS[name]
    verify = vector["verify_url"]
    vector_clock(verify["timestamp"])
    client = await vector_client(aiohttp_client, tmp_path, vector)
    params = {k: verify[k] for k in ("msg_signature", "timestamp", "nonce", "echostr")}
    resp = await client.get("/wecom/callback", params=params)
    assert (resp.status, await resp.text()) == (200, verify["expected_plain"])


@pytest.mark.parametrize("name", sorted(VECTORS))
async def test_posted_vector_is_acked_and_stored_once(aiohttp_client, tmp_path, vector_clock, name):
    vector = VECTORS[name]
    post = vector["post_xml"]
    vector_clock(post["timestamp"])
    client = await vector_client(aiohttp_client, tmp_path, vector)
    params = {k: post[k] for k in ("msg_signature", "timestamp", "nonce")}
    for _ in range(2):  # a retry of the same callback is acked too, and stored once
        resp = await client.post("/wecom/callback", params=params, data=post_body(vector))
        assert (resp.status, await resp.text()) == (200, "")
    async with client.server.app[keys.SESSIONS]() as session:
        [item] = (await session.scalars(select(InboxItem))).all()
    expected = post.get("expected_plain")
    if expected:
        assert item.payload == expected
    for fragment in post.get("expected_plain_contains", []):
        assert fragment in item.payload
    assert item.dedup_key.startswith("wecom:msg:")
    # Tampering with one character of the signature is refused.
    bad = {**params, "msg_signature": ("0" if params["msg_signature"][0] != "0" else "1") + params["msg_signature"][1:]}
    assert (await client.post("/wecom/callback", params=bad, data=post_body(vector))).status == 403


@pytest.mark.parametrize("name", sorted(VECTORS))
async def test_a_vector_replayed_today_is_refused_as_stale(aiohttp_client, tmp_path, name):
    vector = VECTORS[name]
    post = vector["post_xml"]
    client = await vector_client(aiohttp_client, tmp_path, vector)
    params = {k: post[k] for k in ("msg_signature", "timestamp", "nonce")}
    resp = await client.post("/wecom/callback", params=params, data=post_body(vector))
    assert resp.status == 403
    async with client.server.app[keys.SESSIONS]() as session:
        assert (await session.scalars(select(InboxItem))).all() == []
