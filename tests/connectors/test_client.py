"""WeComClient against the simulator over loopback, with the token shared through Redis."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from connectors.wecom.client import WeComClient
from connectors.wecom.errors import (
    UNAVAILABLE_ERRCODE,
    UNEXPECTED_HTTP_ERRCODE,
    InvalidUserError,
    KfWindowClosedError,
    RateLimitedError,
    TokenExpiredError,
    WeComError,
    WeComUnavailableError,
)
from connectors.wecom.simulator.sample_data import DEMO_OPEN_KFID
from connectors.wecom.simulator.state import SimulatorState
from tests.support.clock import Clock

MakeClient = Callable[..., WeComClient]
CUSTOMER = "wmDemoZhaoLei0000000000000000001"


async def test_token_fetched_once_and_shared_between_clients(make_client: MakeClient, sim_state: SimulatorState) -> None:
    first, second = make_client(), make_client()
    assert (await first.get_user("zhangwei"))["name"] == "张伟"
    assert (await second.get_user("lina"))["name"] == "李娜"
    assert await first.access_token() == await second.access_token()
    assert sim_state.gettoken_calls == 1


async def test_fifty_concurrent_calls_cause_one_gettoken(make_client: MakeClient, sim_state: SimulatorState) -> None:
    clients = [make_client(), make_client()]
    users = await asyncio.gather(*(clients[i % 2].get_user("wangfang") for i in range(50)))
    assert {user["userid"] for user in users} == {"wangfang"}
    assert sim_state.gettoken_calls == 1


async def test_expired_token_is_refreshed_once_and_call_retried(
    make_client: MakeClient, sim_state: SimulatorState
) -> None:
    client = make_client()
    old = await client.access_token()
    sim_state.expire_all_tokens()
    assert (await client.get_user("liuyang"))["position"] == "销售总监"
    assert sim_state.gettoken_calls == 2
    assert await client.access_token() != old


async def test_concurrent_callers_seeing_expiry_refresh_once(make_client: MakeClient, sim_state: SimulatorState) -> None:
    clients = [make_client(), make_client()]
    await clients[0].access_token()
    sim_state.expire_all_tokens()
    await asyncio.gather(*(clients[i % 2].get_user("zhangwei") for i in range(20)))
    assert sim_state.gettoken_calls == 2


async def test_second_consecutive_token_rejection_raises(make_client: MakeClient, sim_state: SimulatorState) -> None:
    client = make_client()
    sim_state.fail_next("user/get", errcode=42001, times=2)
    with pytest.raises(TokenExpiredError) as caught:
        await client.get_user("zhangwei")
    assert caught.value.errcode == 42001 and caught.value.api == "user/get"
    assert sim_state.gettoken_calls == 2  # the first fetch and exactly one refresh


async def test_rate_limit_raises_without_retry(make_client: MakeClient, sim_state: SimulatorState) -> None:
    client = make_client()
    sim_state.fail_next("user/get", errcode=45009)
    with pytest.raises(RateLimitedError) as caught:
        await client.get_user("zhangwei")
    assert caught.value.retryable and caught.value.retry_after == 60.0
    assert (await client.get_user("zhangwei"))["userid"] == "zhangwei"


async def test_timeout_raises_unavailable(make_client: MakeClient, sim_state: SimulatorState) -> None:
    client = make_client(timeout=0.1)
    await client.access_token()
    sim_state.fail_next("user/get", delay=3.0)
    with pytest.raises(WeComUnavailableError) as caught:
        # Without its own timeout the call would wait out the 3 s delay and wait_for would raise
        # TimeoutError instead: no stopwatch, however busy the machine.
        await asyncio.wait_for(client.get_user("zhangwei"), 2.0)
    assert caught.value.errcode == UNAVAILABLE_ERRCODE and caught.value.retryable


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_http_5xx_raises_unavailable(make_client: MakeClient, sim_state: SimulatorState, status: int) -> None:
    client = make_client()
    sim_state.fail_next("message/send", http_status=status)
    with pytest.raises(WeComUnavailableError, match=f"HTTP {status}"):
        await client.send_app_message({"touser": "zhangwei", "msgtype": "text", "agentid": 1000002,
                                       "text": {"content": "hi"}})
    assert sim_state.sent_app_messages == []


async def test_connection_refused_raises_unavailable(make_client: MakeClient) -> None:
    client = make_client(api_base="http://127.0.0.1:9/cgi-bin")
    with pytest.raises(WeComUnavailableError):
        await client.access_token()


async def test_api_base_with_or_without_trailing_slash(make_client: MakeClient, sim_state: SimulatorState) -> None:
    base = make_client()._api_base  # noqa: SLF001 - the fixture's URL, reused in both spellings
    for spelling in (base.rstrip("/"), base + "/"):
        assert (await make_client(api_base=spelling).get_user("chenjing"))["userid"] == "chenjing"


async def test_wrong_secret_is_a_permanent_error(make_client: MakeClient) -> None:
    with pytest.raises(WeComError) as caught:
        await make_client(secret="not-the-secret").get_user("zhangwei")
    assert type(caught.value) is WeComError and caught.value.errcode == 40001 and not caught.value.retryable


async def test_unknown_people_raise_invalid_user(make_client: MakeClient) -> None:
    client = make_client()
    with pytest.raises(InvalidUserError) as staff:
        await client.get_user("nobody")
    with pytest.raises(InvalidUserError) as customer:
        await client.get_external_contact("wmNoSuchCustomer")
    assert (staff.value.errcode, customer.value.errcode) == (60111, 84061)
    assert not staff.value.retryable


async def test_external_contact_profile(make_client: MakeClient) -> None:
    contact = await make_client().get_external_contact(CUSTOMER)
    assert contact["external_contact"]["name"] == "赵磊"
    assert contact["follow_user"][0]["userid"] == "zhangwei"


async def test_invaliduser_is_surfaced_and_all_invalid_raises(make_client: MakeClient, sim_state: SimulatorState) -> None:
    client = make_client()
    sent = await client.send_app_message({"touser": "zhangwei|ghost|nobody", "msgtype": "text", "agentid": 1000002,
                                          "text": {"content": "今日待办: 3 项"}})
    assert sent["errcode"] == 0 and sent["invaliduser"] == "ghost|nobody" and sent["msgid"]
    assert sim_state.sent_app_messages[0]["recipients"] == ["zhangwei"]
    with pytest.raises(InvalidUserError) as caught:
        await client.send_app_message({"touser": "ghost", "msgtype": "text", "agentid": 1000002,
                                       "text": {"content": "x"}})
    assert caught.value.errcode == 81013
    with pytest.raises(ValueError, match="agentid"):
        await client.send_app_message({"touser": "zhangwei", "msgtype": "text", "text": {"content": "x"}})


async def test_kf_window_closed_raises(make_client: MakeClient, sim_state: SimulatorState, clock: Clock) -> None:
    client = make_client()

    def reply(text: str) -> dict:
        return {"touser": CUSTOMER, "open_kfid": DEMO_OPEN_KFID, "msgtype": "text", "text": {"content": text}}

    sim_state.kf_customer_writes(DEMO_OPEN_KFID, CUSTOMER, "你好, 订单什么时候发货?")
    for n in range(5):
        assert (await client.kf_send_msg(reply(f"回复 {n}")))["msgid"]
    with pytest.raises(KfWindowClosedError) as too_many:
        await client.kf_send_msg(reply("第六条"))
    sim_state.kf_customer_writes(DEMO_OPEN_KFID, CUSTOMER, "好的")
    await client.kf_send_msg(reply("收到"))
    clock.advance(48 * 3600 + 1)  # access tokens expire too: the client refreshes on the way
    with pytest.raises(KfWindowClosedError) as too_late:
        await client.kf_send_msg(reply("迟到的回复"))
    assert (too_many.value.errcode, too_late.value.errcode) == (95001, 95002)
    assert not too_late.value.retryable
    assert len(sim_state.sent_kf_messages) == 6


async def test_kf_sync_msg_pages_with_cursor(make_client: MakeClient, sim_state: SimulatorState) -> None:
    client = make_client()
    for text in ("一", "二"):
        sim_state.kf_customer_writes(DEMO_OPEN_KFID, CUSTOMER, text)
    token = sim_state.kf_customer_writes(DEMO_OPEN_KFID, CUSTOMER, "三")
    first = await client.kf_sync_msg(token=token, cursor=None, open_kfid=DEMO_OPEN_KFID, limit=2)
    assert [m["text"]["content"] for m in first["msg_list"]] == ["一", "二"] and first["has_more"] == 1
    second = await client.kf_sync_msg(token=token, cursor=first["next_cursor"], open_kfid=DEMO_OPEN_KFID)
    assert [m["text"]["content"] for m in second["msg_list"]] == ["三"] and second["has_more"] == 0
    assert second["msg_list"][0]["origin"] == 3 and second["msg_list"][0]["external_userid"] == CUSTOMER
    with pytest.raises(WeComError) as caught:
        await client.kf_sync_msg(token="ENCforged", cursor=None)
    assert caught.value.errcode == 95007


async def test_add_msg_template_reports_fail_list(make_client: MakeClient, sim_state: SimulatorState) -> None:
    answer = await make_client().add_msg_template({
        "chat_type": "single",
        "external_userid": [CUSTOMER, "wmDemoWuMin000000000000000000004", "wmUnknown"],
        "sender": "zhangwei",
        "text": {"content": "赵总生日快乐!"},
    })
    assert answer["msgid"] and answer["fail_list"] == ["wmDemoWuMin000000000000000000004", "wmUnknown"]
    assert sim_state.msg_templates[0]["sender"] == "zhangwei"


async def test_secret_and_token_never_logged_or_raised(
    make_client: MakeClient, sim_state: SimulatorState, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(timeout=0.1)
    raised: list[str] = []
    token = await client.access_token()
    sim_state.expire_all_tokens()
    await client.get_user("zhangwei")
    tokens = {token, await client.access_token()}
    sim_state.fail_next("user/get", delay=0.3)
    sim_state.fail_next("gettoken", http_status=502)
    for failing in (client.get_user("zhangwei"), client.access_token(force_refresh=True),
                    make_client(secret=sim_state.secret + "x").access_token()):
        with pytest.raises(WeComError) as caught:
            await failing
        raised.append(str(caught.value))
    assert "gettoken" in caplog.text  # something was logged at all
    for text in (caplog.text, *raised):
        assert sim_state.secret not in text
        assert not any(t in text for t in tokens)


async def test_token_cached_with_ttl_below_expiry(make_client: MakeClient, redis_factory) -> None:  # type: ignore[no-untyped-def]
    client = make_client()
    await client.access_token()
    ttl = await redis_factory().ttl(client._token_key)  # noqa: SLF001
    assert 7200 - 300 - 5 <= ttl <= 7200 - 300


async def test_non_json_answer_and_http_4xx(make_client: MakeClient, sim_state: SimulatorState) -> None:
    client = make_client()
    sim_state.fail_next("user/get", http_status=200)  # a 200 whose body is plain text
    sim_state.fail_next("user/get", http_status=404)
    with pytest.raises(WeComUnavailableError, match="JSON"):
        await client.get_user("zhangwei")
    with pytest.raises(WeComError) as caught:
        await client.get_user("zhangwei")
    assert caught.value.errcode == UNEXPECTED_HTTP_ERRCODE and not caught.value.retryable
