"""微信客服 sessions: who serves a conversation, and who may (分配客服会话, 接待人员管理).

- kf/servicer/list (GET ?open_kfid=)   https://developer.work.weixin.qq.com/document/path/96420
  servicer_list[userid, status 0 接待中 / 1 停止接待] (department entries carry department_id only).
- kf/service_state/get and kf/service_state/trans   https://developer.work.weixin.qq.com/document/path/94698
  service_state 0 未处理, 1 智能助手接待, 2 待接入池排队中, 3 人工接待 (servicer_userid), 4 已结束/未开始.
  Only these changes are allowed: 0 → 1/2/3/4, 1 → 2/3/4, 2 → 3/4, 3 → 3 (another servicer)/4; a
  session in 4 cannot be changed by API ("不允许通过API变更会话状态"), it becomes 0 when the customer
  writes again. State 3 needs a servicer who is 接待中 and active in WeCom (95014 otherwise).
  trans answers a msg_code for the session's greeting (2, 3) or closing words (4).
Errcodes (https://developer.work.weixin.qq.com/document/path/90313): 95004 open_kfid 不存在, 95014
接待人员不可用, 95016 不允许这种状态转换, 40096 missing external_userid.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from connectors.wecom.simulator.api import Api, ApiError, Reply, ok

if TYPE_CHECKING:
    from aiohttp import web

    from connectors.wecom.simulator.state import SimulatorState

UNTREATED, ASSISTANT, QUEUED, HUMAN, ENDED = 0, 1, 2, 3, 4
ALLOWED = {UNTREATED: {ASSISTANT, QUEUED, HUMAN, ENDED}, ASSISTANT: {QUEUED, HUMAN, ENDED},
           QUEUED: {HUMAN, ENDED}, HUMAN: {HUMAN, ENDED}, ENDED: set()}
SERVING, STOPPED = 0, 1  # servicer_list status


@dataclass
class KfSession:
    state: int
    servicer_userid: str
    changed_at: float


@dataclass
class KfSessions:
    """Each kf account's servicers, and each conversation's state as the API last set it."""

    servicers: dict[str, dict[str, int]] = field(default_factory=dict)  # open_kfid -> userid -> status
    sessions: dict[tuple[str, str], KfSession] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)  # every accepted trans, for tests

    def add_servicer(self, open_kfid: str, userid: str, status: int = SERVING) -> None:
        self.servicers.setdefault(open_kfid, {})[userid] = status

    def state_of(self, state: SimulatorState, open_kfid: str, external_userid: str) -> KfSession:
        """A session the customer wrote into after it ended (or never set) is 未处理 again."""
        window = state._kf_windows.get((open_kfid, external_userid))
        wrote_at = window.last_customer_message_at if window else None
        session = self.sessions.get((open_kfid, external_userid))
        if session is None:
            return KfSession(UNTREATED if wrote_at is not None else ENDED, "", 0.0)
        if session.state == ENDED and wrote_at is not None and wrote_at > session.changed_at:
            return KfSession(UNTREATED, "", wrote_at)
        return session

    def change(self, state: SimulatorState, body: dict[str, Any]) -> str:
        open_kfid, external_userid = _conversation(state, body)
        target, servicer = body.get("service_state"), str(body.get("servicer_userid") or "")
        current = self.state_of(state, open_kfid, external_userid)
        if target not in ALLOWED[current.state]:
            raise ApiError(95016)
        if target == HUMAN:
            member = state.staff.get(servicer)
            if self.servicers.get(open_kfid, {}).get(servicer) != SERVING or member is None or member.get("status", 1) != 1:
                raise ApiError(95014)
        self.sessions[(open_kfid, external_userid)] = KfSession(int(target), servicer if target == HUMAN else "",
                                                               state.now())
        self.changes.append({"open_kfid": open_kfid, "external_userid": external_userid, "service_state": target,
                             "servicer_userid": servicer})
        return "MSGCODE" + secrets.token_hex(12)


def _conversation(state: SimulatorState, body: dict[str, Any]) -> tuple[str, str]:
    open_kfid, external_userid = body.get("open_kfid"), body.get("external_userid")
    if open_kfid not in state.kf_accounts:
        raise ApiError(95004)
    if not external_userid:
        raise ApiError(40096)
    return str(open_kfid), str(external_userid)


def _servicer_list(state: SimulatorState, request: web.Request, _: dict[str, Any]) -> Reply:
    open_kfid = request.query.get("open_kfid")
    if open_kfid not in state.kf_accounts:
        raise ApiError(95004)
    servicers = state.kf_sessions.servicers.get(open_kfid, {})
    return ok(servicer_list=[{"userid": userid, "status": status} for userid, status in sorted(servicers.items())])


def _service_state_get(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    session = state.kf_sessions.state_of(state, *_conversation(state, body))
    return ok(service_state=session.state, servicer_userid=session.servicer_userid)


def _service_state_trans(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    msg_code = state.kf_sessions.change(state, body)
    return ok(msg_code=msg_code)


APIS: dict[str, Api] = {
    "kf/servicer/list": Api("GET", _servicer_list),
    "kf/service_state/get": Api("POST", _service_state_get),
    "kf/service_state/trans": Api("POST", _service_state_trans),
}
