"""WeCom's side of a page login and of the JS-SDK: the authorize redirect, auth/getuserinfo and the app's
agent ticket, through WeComClient against the simulator (connectors/wecom/simulator/oauth.py)."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from connectors.wecom.client import agent_config_signature
from connectors.wecom.errors import RateLimitedError, WeComError
from connectors.wecom.simulator.oauth import TICKETS_PER_HOUR
from connectors.wecom.simulator.state import SimulatorState
from tests.support.clock import Clock

CUSTOMER = "wmDemoZhaoLei0000000000000000001"
PAGE = "https://scrm.example.com/h5/sidebar"


async def authorize(http: aiohttp.ClientSession, sim_server: TestServer, sim: SimulatorState, **changes: str):
    query = {"appid": sim.corp_id, "redirect_uri": PAGE, "response_type": "code", "scope": "snsapi_base",
             "state": "abc123", "agentid": str(sim.agent_id), **changes}
    return await http.get(sim_server.make_url("/connect/oauth2/authorize").with_query(query), allow_redirects=False)


async def code_for(http, sim_server, sim, member: str) -> str:
    sim.web.member = member
    resp = await authorize(http, sim_server, sim)
    assert resp.status == 302
    back = urlsplit(resp.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == PAGE
    params = parse_qs(back.query)
    assert params["state"] == ["abc123"]
    return params["code"][0]


def test_signature_is_tencents_worked_example() -> None:
    """The example on JS-SDK使用权限签名算法 (document/path/90506), and the "#" part is not signed."""
    ticket = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
    url = "http://mp.weixin.qq.com?params=value"
    expected = "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
    assert agent_config_signature(ticket, "Wm3WZYTPz0wzccnW", 1414587457, url) == expected
    assert agent_config_signature(ticket, "Wm3WZYTPz0wzccnW", 1414587457, url + "#section") == expected


async def test_a_member_is_identified_once_per_code(make_client, http, sim_server, sim_state: SimulatorState) -> None:
    code = await code_for(http, sim_server, sim_state, "zhangwei")
    client = make_client()
    assert (await client.oauth_user(code))["userid"] == "zhangwei"
    with pytest.raises(WeComError) as replayed:  # "code只能使用一次"
        await client.oauth_user(code)
    assert replayed.value.errcode == 40029 and not replayed.value.retryable


async def test_a_code_expires_after_five_minutes(make_client, http, sim_server, sim_state: SimulatorState,
                                                 clock: Clock) -> None:
    code = await code_for(http, sim_server, sim_state, "lina")
    clock.advance(301)
    with pytest.raises(WeComError) as expired:
        await make_client().oauth_user(code)
    assert expired.value.errcode == 40029


async def test_forged_and_missing_codes_are_refused(make_client, sim_state: SimulatorState) -> None:
    client = make_client()
    with pytest.raises(WeComError) as forged:
        await client.oauth_user("not-a-code-wecom-issued")
    assert forged.value.errcode == 40029
    with pytest.raises(WeComError) as missing:
        await client.oauth_user("")
    assert missing.value.errcode == 41008


async def test_a_visitor_outside_the_corp_gets_an_openid_not_a_userid(make_client, http, sim_server,
                                                                      sim_state: SimulatorState) -> None:
    code = await code_for(http, sim_server, sim_state, CUSTOMER)  # a customer, opening the link in WeChat
    answer = await make_client().oauth_user(code)
    assert "userid" not in answer
    assert answer["openid"] and answer["external_userid"] == CUSTOMER


async def test_a_redirect_outside_the_trusted_domain_is_refused(make_client, http, sim_server,
                                                               sim_state: SimulatorState) -> None:
    sim_state.web.trusted_domain = "scrm.other.example"
    code = await code_for(http, sim_server, sim_state, "zhangwei")
    with pytest.raises(WeComError) as refused:
        await make_client().oauth_user(code)
    assert refused.value.errcode == 50001


async def test_authorize_outside_the_client_and_with_bad_parameters(http, sim_server, sim_state: SimulatorState) -> None:
    sim_state.web.member = None
    outside = await authorize(http, sim_server, sim_state)
    assert outside.status == 200 and "请在企业微信客户端打开链接" in await outside.text()
    sim_state.web.member = "zhangwei"
    for changes in ({"appid": "wwsomeoneelse"}, {"state": "has spaces"}, {"state": "a" * 129},
                    {"agentid": "999"}, {"redirect_uri": "javascript:alert(1)"}, {"response_type": "token"}):
        resp = await authorize(http, sim_server, sim_state, **changes)
        assert resp.status == 400, changes
    assert not sim_state.web.codes


async def test_agent_ticket_is_fetched_once_and_shared(make_client, sim_state: SimulatorState) -> None:
    """Three "processes", twenty callers at once: one ticket/get, like the token."""
    clients = [make_client() for _ in range(3)]
    tickets = await asyncio.gather(*(clients[i % 3].agent_ticket() for i in range(20)))
    assert len(set(tickets)) == 1
    assert len(sim_state.web.ticket_calls) == 1
    assert sim_state.gettoken_calls == 1


async def test_ticket_rate_limit_is_wecoms(make_client, sim_state: SimulatorState) -> None:
    """100 tickets an hour per app; the 101st is 45009, a rate limit the caller backs off from."""
    client = make_client()
    with pytest.raises(WeComError) as wrong_type:
        await client.call("GET", "ticket/get", params={"type": "jsapi"})
    assert wrong_type.value.errcode == 40058
    for _ in range(TICKETS_PER_HOUR):
        await client.call("GET", "ticket/get", params={"type": "agent_config"})
    with pytest.raises(RateLimitedError):
        await client.call("GET", "ticket/get", params={"type": "agent_config"})


async def test_the_double_checks_the_signature_and_knows_the_open_chat(make_client, http, sim_server,
                                                                      sim_state: SimulatorState) -> None:
    ticket = await make_client().agent_ticket()
    fields = {"corpid": sim_state.corp_id, "agentid": sim_state.agent_id, "timestamp": 1750000000,
              "nonceStr": "n0nce", "jsApiList": ["getCurExternalContact"], "url": PAGE}

    async def post(path: str, body: dict) -> dict:
        async with http.post(sim_server.make_url(path), data=json.dumps(body),
                             headers={"Content-Type": "text/plain"}) as resp:
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
            return await resp.json()

    bad = await post("/sim/jssdk/agent_config", {**fields, "signature": "0" * 40})
    assert bad["errMsg"] == "agentConfig:fail" and bad["errCode"] == 40093
    good = await post("/sim/jssdk/agent_config", {**fields, "signature": agent_config_signature(
        ticket, "n0nce", 1750000000, PAGE)})
    assert good["errMsg"] == "agentConfig:ok"
    invoke = {"name": "getCurExternalContact", "configured": True, "jsApiList": ["getCurExternalContact"]}
    assert (await post("/sim/jssdk/invoke", {**invoke, "configured": False}))["err_msg"].endswith("no permission")
    sim_state.web.open_chat = None
    assert (await post("/sim/jssdk/invoke", invoke))["err_msg"].endswith("without context of external contact")
    sim_state.web.open_chat = CUSTOMER
    assert await post("/sim/jssdk/invoke", invoke) == {"err_msg": "getCurExternalContact:ok", "userId": CUSTOMER}
    double = await http.get(sim_server.make_url("/sim/jssdk/jweixin.js"))
    assert "agentConfig" in await double.text() and double.content_type == "application/javascript"

