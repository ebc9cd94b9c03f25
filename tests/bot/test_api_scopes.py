"""The JSON API with a staff token sees what that person sees in chat, and no more.

Same data scope as the bot (sales: their own customers; managers: their departments'; admins:
everyone), the same audit trail under their userid, and a token that stops working when it is
revoked. Tokens are issued with the real `scrm api-token` command line.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from sqlalchemy import select

from crm_core.models import ApiToken, AuditEntry
from scrm.cli import main as cli
from tests.support.service import API_TOKEN


@pytest.fixture
async def onboarded(chat, monkeypatch):
    monkeypatch.setenv("SCRM_DATABASE_URL", chat.service.settings.database_url)
    monkeypatch.delenv("SCRM_CONFIG", raising=False)
    await chat.onboard()
    await chat.say("zhangwei", "帮助")  # zhangwei and liuyang are known staff once they have written
    await chat.say("liuyang", "帮助")
    return chat


async def scrm(capsys, *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli.main, ["--log-level", "WARNING", *argv])
    out, err = capsys.readouterr()
    return code, out, err


async def issue(capsys, userid: str) -> str:
    code, out, err = await scrm(capsys, "api-token", "issue", userid, "--label", "sidebar")
    assert code == 0, err
    return out.strip().splitlines()[-1]


async def get(chat, path: str, token: str, **params) -> tuple[int, dict]:
    resp = await chat.service.client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    return resp.status, await resp.json()


async def names(chat, token: str) -> set[str]:
    status, body = await get(chat, "/api/v1/customers", token, limit=1000)
    assert status == 200, body
    return {c["name"] for c in body["items"]}


async def test_a_reps_token_sees_only_their_customers_and_the_refusal_is_audited(onboarded, capsys):
    chat = onboarded
    token = await issue(capsys, "zhangwei")
    assert await names(chat, token) == {"赵磊", "孙丽", "周杰"}
    assert len(await names(chat, API_TOKEN)) == 8
    own, other = await chat.customer("赵磊"), await chat.customer("吴敏")
    assert (await get(chat, f"/api/v1/customers/{own.id}", token))[0] == 200
    # Not theirs answers exactly like does not exist: ids cannot be probed (issue #18 item 7).
    missing = other.id + 1000
    assert await get(chat, f"/api/v1/customers/{other.id}", token) == (404, {"error": f"customer {other.id} does not exist"})
    assert await get(chat, f"/api/v1/customers/{missing}", token) == (404, {"error": f"customer {missing} does not exist"})
    assert await get(chat, f"/api/v1/customers/{other.id}/messages", token) == (
        404, {"error": f"customer {other.id} does not exist"})
    status, body = await get(chat, "/api/v1/messages", token, limit=1000)
    assert status == 200 and body["items"]
    assert {m["customer_id"] for m in body["items"]} <= {own.id, (await chat.customer("孙丽")).id,
                                                          (await chat.customer("周杰")).id, None}
    async with chat.service.sessions() as session:
        trail = [(e.actor, e.action, e.customer_id) for e in (await session.scalars(select(AuditEntry))).all()]
    assert ("zhangwei", "customer.view", own.id) in trail
    assert ("zhangwei", "customer.view_denied", other.id) in trail


async def test_a_managers_token_sees_the_departments_and_an_admins_everyone(onboarded, capsys):
    chat = onboarded
    await chat.say("chenjing", "新客户 钱七 13900000009 总部公司")  # chenjing (admin) is in department 4
    managed = await names(chat, await issue(capsys, "liuyang"))  # leads departments 2 and 3
    assert len(managed) == 8 and "钱七" not in managed
    assert await names(chat, await issue(capsys, "chenjing")) == managed | {"钱七"}


async def test_a_revoked_token_stops_working_and_only_its_hash_is_stored(onboarded, capsys):
    chat = onboarded
    token = await issue(capsys, "zhangwei")
    code, listing, _ = await scrm(capsys, "api-token", "list")
    assert code == 0 and "zhangwei" in listing and "sidebar" in listing and token not in listing
    async with chat.service.sessions() as session:
        [stored] = (await session.scalars(select(ApiToken))).all()
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest() and stored.last_used_at is None
    assert (await get(chat, "/api/v1/staff", token))[0] == 200
    code, _, _ = await scrm(capsys, "api-token", "revoke", str(stored.id))
    assert code == 0
    status, body = await get(chat, "/api/v1/customers", token)
    assert status == 401 and "revoked" in body["error"]
    code, _, err = await scrm(capsys, "api-token", "revoke", str(stored.id))
    assert code == 2 and "no live API token" in err


async def test_tokens_are_only_issued_to_known_staff(onboarded, capsys):
    code, out, err = await scrm(capsys, "api-token", "issue", "nobody")
    assert code == 2 and "no staff member" in err and "scrm_" not in out
