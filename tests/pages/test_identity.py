"""Who is looking at a page: the simulated WeCom OAuth login, the session cookie, and every way in
that must be refused with nothing changed (scrm/http/pages/identity.py)."""

from __future__ import annotations

import json
import time
import types

import itsdangerous.timed
import pytest
from sqlalchemy import func, select
from yarl import URL

from connectors.wecom.simulator import directory
from crm_core.models import AuditEntry
from scrm.http.pages.identity import SESSION_COOKIE, STATE_COOKIE
from tests.support.service import external_id

CUSTOMER = "赵磊"


async def audit_actions(chat, actor: str | None = None) -> list[str]:
    async with chat.service.sessions() as session:
        query = select(AuditEntry.action).order_by(AuditEntry.id)
        if actor:
            query = query.where(AuditEntry.actor == actor)
        return list((await session.scalars(query)).all())


async def logins(chat) -> int:
    async with chat.service.sessions() as session:
        return await session.scalar(select(func.count()).where(AuditEntry.action == "page.login")) or 0


async def test_a_member_logs_in_through_wecom_and_lands_by_role(browser, other_browser, pages) -> None:
    resp, visited = await browser.open("/h5/", as_member="zhangwei")
    authorize = URL(visited[1])
    assert authorize.path == "/connect/oauth2/authorize"
    assert authorize.query["appid"] == pages.service.sim.corp_id and authorize.query["scope"] == "snsapi_base"
    assert URL(authorize.query["redirect_uri"]).path == "/h5/"
    assert "code" in URL(visited[2]).query  # back from WeCom with a code ...
    assert URL(visited[-1]).path == "/h5/sidebar" and "code" not in URL(visited[-1]).query  # ... shown without it
    assert browser.session_cookie()
    assert "page.login" in await audit_actions(pages, "zhangwei")

    _, manager_visited = await other_browser.open("/h5/", as_member="liuyang")
    assert URL(manager_visited[-1]).path == "/h5/dashboard"


async def test_the_session_cookie_is_httponly_samesite_and_short_lived(browser, pages) -> None:
    pages.service.sim.web.member = "zhangwei"
    first = await browser.http.get(browser.url("/h5/"), allow_redirects=False)
    state = first.cookies[STATE_COOKIE]
    assert state["httponly"] and state["samesite"] == "Lax" and state["path"] == "/h5/"
    back = await browser.http.get(URL(first.headers["Location"].split("#")[0]), allow_redirects=False)
    done = await browser.http.get(URL(back.headers["Location"]), allow_redirects=False)
    session = done.cookies[SESSION_COOKIE]
    assert session["httponly"] and session["samesite"] == "Lax" and session["path"] == "/h5/"
    assert int(session["max-age"]) == int(pages.service.settings.pages.session_seconds) <= 8 * 3600
    assert done.cookies[STATE_COOKIE].value == ""  # the state is used up


async def test_a_code_from_another_browser_is_refused_login_csrf(browser, other_browser, pages) -> None:
    """An attacker's own code, planted in the victim's browser, signs no one in: the state is not theirs."""
    pages.service.sim.web.member = "lina"  # the attacker
    start = await other_browser.http.get(other_browser.url("/h5/"), allow_redirects=False)
    back = await other_browser.http.get(URL(start.headers["Location"].split("#")[0]), allow_redirects=False)
    planted = URL(back.headers["Location"])
    before = await logins(pages)

    resp = await browser.http.get(planted, allow_redirects=False)
    assert resp.status == 400
    assert "登录校验失败" in await resp.text()
    assert browser.session_cookie() is None
    assert await logins(pages) == before


async def test_a_replayed_code_is_refused(browser, other_browser, pages) -> None:
    _, visited = await browser.open("/h5/", as_member="zhangwei")
    code_url = URL(visited[2])
    before = await logins(pages)
    again = await browser.http.get(code_url, allow_redirects=False)  # the state cookie was used up
    assert again.status == 400
    elsewhere = await other_browser.http.get(code_url, allow_redirects=False)
    assert elsewhere.status == 400 and other_browser.session_cookie() is None
    assert await logins(pages) == before


async def test_a_forged_code_is_refused(browser, pages) -> None:
    """The state matches (this browser started the login) but WeCom never issued the code: 40029."""
    pages.service.sim.web.member = "zhangwei"
    start = await browser.http.get(browser.url("/h5/"), allow_redirects=False)
    state = URL(start.headers["Location"].split("#")[0]).query["state"]
    resp = await browser.http.get(browser.url("/h5/").with_query(code="forged-code", state=state),
                                  allow_redirects=False)
    assert resp.status == 403 and "凭证无效" in await resp.text()
    assert browser.session_cookie() is None
    assert await logins(pages) == 0


async def test_a_visitor_outside_the_corp_is_refused(browser, pages) -> None:
    resp, _ = await browser.open("/h5/", as_member=external_id(pages.service.sim, CUSTOMER))
    assert resp.status == 403 and "仅限本企业成员" in await resp.text()
    assert browser.session_cookie() is None
    assert "page.login_denied" in await audit_actions(pages)


async def test_departed_staff_lose_their_session_and_cannot_log_in(browser, other_browser, pages) -> None:
    await browser.login("zhangwei")
    assert (await browser.http.get(browser.url("/h5/api/agent-config"), params={"url": str(browser.url("/h5/sidebar"))})).status == 200
    sim = pages.service.sim
    directory.leave(sim, "zhangwei")
    await pages.service.wecom.change_contact("delete_user", userid="zhangwei")
    await pages.service.settle()

    api = await browser.http.get(browser.url("/h5/api/agent-config"), params={"url": str(browser.url("/h5/sidebar"))})
    assert api.status == 403 and "已停用" in (await api.json())["error"]
    page, _ = await browser.open("/h5/")
    assert page.status == 403 and "已停用" in await page.text()
    assert browser.session_cookie() is None  # the refusal page drops the cookie
    # WeCom would no longer identify them; were a stale code still around, the directory says no
    sim.staff["zhangwei"] = {"userid": "zhangwei"}
    fresh, _ = await other_browser.open("/h5/", as_member="zhangwei")
    assert fresh.status == 403 and other_browser.session_cookie() is None


async def test_an_expired_session_logs_in_again(browser, pages, monkeypatch: pytest.MonkeyPatch) -> None:
    await browser.login("zhangwei")
    later = time.time() + pages.service.settings.pages.session_seconds + 60
    monkeypatch.setattr(itsdangerous.timed, "time", types.SimpleNamespace(time=lambda: later))
    api = await browser.http.get(browser.url("/h5/api/agent-config"), params={"url": str(browser.url("/h5/sidebar"))})
    assert api.status == 401
    body = await api.json()
    assert body["login"] is True and "过期" in body["error"]
    first = await browser.http.get(browser.url("/h5/"), allow_redirects=False)
    assert first.status == 302 and URL(first.headers["Location"]).path == "/connect/oauth2/authorize"


async def test_a_tampered_or_foreign_cookie_is_no_session(browser, pages) -> None:
    await browser.login("zhangwei")
    value = browser.session_cookie()
    for forged in (value[:-2] + ("AA" if not value.endswith("AA") else "BB"),
                   itsdangerous.URLSafeTimedSerializer("another-secret-" * 3, salt="scrm.pages.session").dumps(
                       {"s": 1, "c": "x"})):
        browser.http.cookie_jar.update_cookies({SESSION_COOKIE: forged}, browser.url("/h5/"))
        api = await browser.http.get(browser.url("/h5/api/agent-config"), params={"url": str(browser.url("/h5/x"))})
        assert api.status == 401


async def test_agent_config_is_signed_for_this_sites_pages_only(browser, pages) -> None:
    page = str(browser.url("/h5/sidebar"))
    assert (await browser.http.get(browser.url("/h5/api/agent-config"), params={"url": page})).status == 401
    await browser.login("zhangwei")
    config = await (await browser.http.get(browser.url("/h5/api/agent-config"), params={"url": page + "#x"})).json()
    assert config["corpid"] == pages.service.sim.corp_id and config["jsApiList"] == ["getCurExternalContact"]
    sim_server = URL(pages.service.settings.wecom.oauth_url).origin()
    checked = await browser.http.post(sim_server.join(URL("/sim/jssdk/agent_config")),
                                      data=json.dumps({**config, "url": page}))
    assert (await checked.json())["errMsg"] == "agentConfig:ok"  # WeCom's client would accept it
    await browser.http.get(browser.url("/h5/api/agent-config"), params={"url": page})
    assert len(pages.service.sim.web.ticket_calls) == 1  # the ticket is cached

    for foreign in ("https://evil.example/h5/sidebar", str(browser.url("/api/v1/customers")), "not a url"):
        resp = await browser.http.get(browser.url("/h5/api/agent-config"), params={"url": foreign})
        assert resp.status == 400, foreign


async def test_pages_answer_with_a_strict_content_security_policy(browser, pages) -> None:
    refused, _ = await browser.open("/h5/", as_member=external_id(pages.service.sim, CUSTOMER))
    policy = refused.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy
