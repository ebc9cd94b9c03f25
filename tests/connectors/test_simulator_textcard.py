"""The fake WeCom's textcard on message/send, as Tencent's doc describes it (document/path/90236)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from connectors.wecom.simulator.state import SimulatorState
from tests.connectors.test_simulator import api, post, token  # noqa: F401  (fixtures)

URL = "https://scrm.example.com/h5/dashboard"


def card_message(**card: object) -> dict:
    return {"touser": "zhangwei", "msgtype": "textcard", "agentid": 1000002, "textcard": card}


async def test_textcard_title_description_and_button_arrive_cut_to_their_limits(
        api: TestClient, token: str, sim_state: SimulatorState) -> None:  # noqa: F811
    payload = card_message(title="ab" + "周" * 43, description="销" * 171, url=URL, btntxt="打开看板吧")
    answer = await post(api, "message/send", token, payload)
    delivered = sim_state.sent_app_messages[-1]["textcard"]
    assert answer["errcode"] == 0
    assert delivered["title"] == "ab" + "周" * 42 and len(delivered["title"].encode()) == 128
    assert delivered["description"] == "销" * 170 and len(delivered["description"].encode()) == 510
    assert (delivered["btntxt"], delivered["url"]) == ("打开看板", URL)


async def test_textcard_within_limits_arrives_whole(api: TestClient, token: str,  # noqa: F811
                                                    sim_state: SimulatorState) -> None:
    card = {"title": "周" * 42 + "ab", "description": "销" * 170 + "ab", "url": URL, "btntxt": "详情"}
    assert (await post(api, "message/send", token, card_message(**card)))["errcode"] == 0
    assert sim_state.sent_app_messages[-1]["textcard"] == card


@pytest.mark.parametrize("card", [
    {"title": "周报", "description": "本周", "url": "https://x.cn/" + "a" * 2036},  # 2049 bytes
    {"description": "本周", "url": URL},
    {"title": "周报", "url": URL},
    {"title": "周报", "description": "本周"},
    {"title": "", "description": "本周", "url": URL},
    {"title": "周报", "description": "本周", "url": URL, "btntxt": 4},
])
async def test_textcard_missing_field_or_too_long_url_is_40058_and_sends_nothing(
        api: TestClient, token: str, sim_state: SimulatorState, card: dict) -> None:  # noqa: F811
    assert (await post(api, "message/send", token, card_message(**card)))["errcode"] == 40058
    assert sim_state.sent_app_messages == []


async def test_textcard_url_of_2048_bytes_is_taken(api: TestClient, token: str) -> None:  # noqa: F811
    card = {"title": "周报", "description": "本周", "url": "https://x.cn/" + "a" * 2035}
    assert (await post(api, "message/send", token, card_message(**card)))["errcode"] == 0


async def test_textcard_that_is_not_an_object_is_40058(api: TestClient, token: str) -> None:  # noqa: F811
    payload = {"touser": "zhangwei", "msgtype": "textcard", "agentid": 1000002, "textcard": "周报"}
    assert (await post(api, "message/send", token, payload))["errcode"] == 40058
