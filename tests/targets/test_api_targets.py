"""/api/v1/targets: the service token sets and sees any target; a staff token what that person may
set and see in chat (a manager within their departments, a rep only themselves); bad bodies are
refused with nothing changed."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from crm_core.models import AuditEntry
from crm_core.targets import SalesTarget
from scrm.cli import main as cli
from scrm import keys
from tests.support.chat import SHANGHAI, Chat
from tests.support.service import API_TOKEN, use_service_env


async def issue(capsys, userid: str) -> str:
    code = await asyncio.to_thread(cli.main, ["--log-level", "WARNING", "api-token", "issue", userid])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out.strip().splitlines()[-1]


async def call(chat: Chat, method: str, token: str, body=None, **params) -> tuple[int, dict]:
    resp = await chat.service.client.request(method, "/api/v1/targets", params=params, json=body,
                                             headers={"Authorization": f"Bearer {token}"})
    return resp.status, await resp.json()


async def stored(chat: Chat) -> list[tuple[str, str, int, int, str]]:
    async with chat.service.sessions() as session:
        rows = (await session.scalars(select(SalesTarget).order_by(SalesTarget.id))).all()
    return [(t.month, t.kind, t.subject_id, t.amount, t.set_by) for t in rows]


@pytest.fixture
async def tokens(team: Chat, monkeypatch, capsys) -> dict[str, str]:
    use_service_env(monkeypatch, team.service)
    return {userid: await issue(capsys, userid) for userid in ("zhangwei", "liuyang", "chenjing")}


async def test_the_service_token_sets_and_lists_targets(team: Chat, tokens):
    chat = team
    zhang = await chat.staff("zhangwei")
    status, body = await call(chat, "PUT", API_TOKEN, {"month": "2026-11", "staff": "zhangwei", "amount": 500000})
    assert (status, body) == (200, {"month": "2026-11", "kind": "staff", "id": zhang.id, "name": "张伟",
                                    "userid": "zhangwei", "amount": 500000, "previous": None})
    status, body = await call(chat, "PUT", API_TOKEN, {"month": "2026-11", "department": 2, "amount": 2e6})
    assert status == 200 and body["previous"] is None and body["name"] == "销售部"
    status, body = await call(chat, "PUT", API_TOKEN, {"month": "2026-11", "staff": "zhangwei", "amount": 600000})
    assert body["previous"] == 500000

    status, body = await call(chat, "GET", API_TOKEN, month="2026-11")
    assert status == 200 and body["month"] == "2026-11"
    sales = next(d for d in body["departments"] if d["id"] == 2)
    assert sales == {"kind": "department", "id": 2, "name": "销售部", "userid": None, "target": 2000000,
                     "won_amount": 400000, "won_deals": 2, "attainment": 0.2}
    assert next(r for r in body["reps"] if r["userid"] == "zhangwei")["attainment"] == 0.5
    assert {r["userid"] for r in body["reps"]} >= {"zhangwei", "lina", "liuyang"}
    status, body = await call(chat, "GET", API_TOKEN)  # no month: the app clock's
    assert body["month"] == f"{chat.service.app[keys.CLOCK]().astimezone(SHANGHAI):%Y-%m}"
    status, body = await call(chat, "GET", API_TOKEN, month="2026-11", department=2)
    assert [d["id"] for d in body["departments"]] == [2] and "chenjing" not in {r["userid"] for r in body["reps"]}
    assert await stored(chat) == [("2026-11", "staff", zhang.id, 600000, "api"), ("2026-11", "department", 2, 2000000, "api")]


async def test_staff_tokens_set_and_see_what_their_person_may(team: Chat, tokens):
    chat = team
    status, _ = await call(chat, "PUT", tokens["liuyang"], {"month": "2026-12", "staff": "lina", "amount": 300000})
    assert status == 200
    status, body = await call(chat, "PUT", tokens["liuyang"], {"month": "2026-12", "staff": "chenjing", "amount": 1})
    assert status == 403 and body["error"]
    status, _ = await call(chat, "PUT", tokens["liuyang"], {"month": "2026-12", "department": 4, "amount": 1})
    assert status == 403
    status, _ = await call(chat, "PUT", tokens["zhangwei"], {"month": "2026-12", "staff": "zhangwei", "amount": 1})
    assert status == 403
    status, _ = await call(chat, "PUT", tokens["chenjing"], {"month": "2026-12", "department": 4, "amount": 100000})
    assert status == 200
    lina = await chat.staff("lina")
    assert await stored(chat) == [("2026-12", "staff", lina.id, 300000, "liuyang"),
                                  ("2026-12", "department", 4, 100000, "chenjing")]
    async with chat.service.sessions() as session:
        denied = (await session.scalars(select(AuditEntry.actor).where(AuditEntry.action == "target.set_denied")
                                        .order_by(AuditEntry.id))).all()
    assert denied == ["liuyang", "liuyang", "zhangwei"]

    status, body = await call(chat, "GET", tokens["zhangwei"], month="2026-11")
    assert status == 200 and body["departments"] == [] and [r["userid"] for r in body["reps"]] == ["zhangwei"]
    status, body = await call(chat, "GET", tokens["liuyang"], month="2026-11")
    assert [d["name"] for d in body["departments"]] == ["销售部", "客户服务部"]
    assert "chenjing" not in {r["userid"] for r in body["reps"]}
    assert (await call(chat, "GET", tokens["liuyang"], department=4))[0] == 404  # not theirs: as if absent
    assert (await call(chat, "GET", API_TOKEN, department=99))[0] == 404


async def test_bad_bodies_are_refused_and_change_nothing(team: Chat, tokens):
    chat = team
    bad = [
        {"month": "2026-13", "staff": "zhangwei", "amount": 1},
        {"month": "12月", "staff": "zhangwei", "amount": 1},
        {"month": "2026-12", "staff": "zhangwei", "amount": 0},
        {"month": "2026-12", "staff": "zhangwei", "amount": 1.5},
        {"month": "2026-12", "staff": "zhangwei", "amount": True},
        {"month": "2026-12", "staff": "zhangwei", "amount": "50万"},
        {"month": "2026-12", "amount": 1},
        {"month": "2026-12", "staff": "zhangwei", "department": 2, "amount": 1},
        {"month": "2026-12", "staff": "zhang\x00wei", "amount": 1},
        {"month": "2026-12", "department": "2", "amount": 1},
        ["2026-12"],
    ]
    for body in bad:
        status, answer = await call(chat, "PUT", API_TOKEN, body)
        assert status == 400 and answer["error"], body
    resp = await chat.service.client.put("/api/v1/targets", data=b"not json",
                                         headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert resp.status == 400
    assert (await call(chat, "PUT", API_TOKEN, {"month": "2026-12", "staff": "nobody", "amount": 1}))[0] == 404
    assert (await call(chat, "PUT", API_TOKEN, {"month": "2026-12", "department": 99, "amount": 1}))[0] == 404
    assert (await call(chat, "PUT", "wrong", {"month": "2026-12", "staff": "zhangwei", "amount": 1}))[0] == 401
    assert (await call(chat, "GET", API_TOKEN, month="2026-1"))[0] == 400
    assert await stored(chat) == []
