"""离职继承 and 在职继承: moving a rep's customers to another rep, as WeCom does it.

WeCom never moves a customer at once: a transfer call only starts it ("0表示开始分配流程，待24小时后
自动接替，并不代表最终分配成功"), the customer may refuse within those 24 hours, and the outcome is read
back with transfer_result. Here the 24 hours are an explicit step (`TransferBook.settle`), so a test
decides when WeCom's answer becomes final; refusals and full takeover accounts are injected per
customer. A settled takeover moves the follow_user entry in the simulator's own contacts.

Endpoints (each checked against the official page):
- externalcontact/get_unassigned_list   https://developer.work.weixin.qq.com/document/path/92124
  page_size default and maximum 1000 (40058 beyond), cursor; info[handover_userid, external_userid,
  dimission_time], is_last, next_cursor ("" once done).
- externalcontact/resigned/transfer_customer   https://developer.work.weixin.qq.com/document/path/96331
  handover_userid must have left the company, at most 100 external_userid a call; answers a
  per-customer errcode list.
- externalcontact/transfer_customer (on the job)   https://developer.work.weixin.qq.com/document/path/96325
  the same, plus transfer_success_msg (≤ 200 characters) for the customer; "90个自然日内，在职成员的
  每位客户仅可被转接2次".
- externalcontact/transfer_result and resigned/transfer_result   https://developer.work.weixin.qq.com/document/path/96333
  by handover_userid + takeover_userid, pages of ≤ 1000 with next_cursor; customer[external_userid,
  status 1 接替完毕 / 2 等待接替 / 3 客户拒绝 / 4 接替成员客户达到上限 / 5 无接替记录, takeover_time].

Errcodes, from the global table (https://developer.work.weixin.qq.com/document/path/90313, as mirrored
in xen0n/go-workwx errcodes/mod.go): 40097 该成员尚未离职 (a resigned transfer of a member still on the
job), 40130 原跟进人与接手人一样, 40003 无效的UserID for a member not (any more) in the directory, 41035 missing
external userid, 40058 a list over 100 or a message over 200 characters; per customer 40096 an unknown
external_userid, 40131 handover_userid 并不是外部联系人的跟进人, 40128 客户转接过于频繁 (90个自然日内，
在职成员的每位客户仅可被转接2次), 40129 当前客户正在转接中 (a transfer of them is still waiting).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from connectors.wecom.simulator.api import Api, ApiError, Reply, ok

if TYPE_CHECKING:
    from aiohttp import web

    from connectors.wecom.simulator.state import SimulatorState

ONJOB, RESIGNED = "onjob", "resigned"
TAKEN, WAITING, REFUSED, LIMIT_REACHED = 1, 2, 3, 4  # transfer_result status
TAKEOVER_DELAY = 24 * 3600  # "待24小时后自动接替"
ONJOB_WINDOW = 90 * 24 * 3600
ONJOB_PER_WINDOW = 2
MAX_CUSTOMERS_PER_CALL = 100
MAX_MESSAGE_CHARS = 200
UNASSIGNED_PAGE_MAX = 1000
RESULT_PAGE_MAX = 1000
# transfer_fail callbacks' FailReason (https://developer.work.weixin.qq.com/document/path/92130, 客户接替失败事件)
FAIL_REASONS = {REFUSED: "customer_refused", LIMIT_REACHED: "customer_limit_exceed"}


@dataclass
class Transfer:
    """One customer handed from one rep to another; `status` 2 until `TransferBook.settle`."""

    kind: str
    handover_userid: str
    takeover_userid: str
    external_userid: str
    started_at: int
    message: str = ""
    status: int = WAITING
    takeover_time: int = 0

    def row(self) -> dict[str, Any]:
        return {"external_userid": self.external_userid, "status": self.status, "takeover_time": self.takeover_time}


@dataclass
class TransferBook:
    """Who left when, every transfer WeCom started, and the outcomes a test has lined up."""

    departed: dict[str, int] = field(default_factory=dict)  # userid -> dimission_time
    transfers: list[Transfer] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)  # external_userid -> REFUSED / LIMIT_REACHED next time

    def member_leaves(self, state: SimulatorState, userid: str) -> None:
        """The transfer side of a member leaving (simulator.directory.leave is the whole departure)."""
        state.staff.pop(userid)
        self.departed[userid] = int(state.now())

    def refuse(self, external_userid: str, status: int = REFUSED) -> None:
        """The customer will press 拒绝 (3), or the takeover rep's account will be full (4)."""
        if status not in FAIL_REASONS:
            raise ValueError(f"an injected outcome is {REFUSED} or {LIMIT_REACHED}, not {status}")
        self.outcomes[external_userid] = status

    def settle(self, state: SimulatorState, *, due_only: bool = False) -> list[Transfer]:
        """The 24 hours have passed: every waiting transfer (`due_only`: every one started at least 24
        hours ago on the simulator's clock) is taken over, refused or over the limit. Returns the
        settled transfers (send transfer_fail callbacks for the failed ones)."""
        now = int(state.now())
        settled = []
        for transfer in self.transfers:
            if transfer.status != WAITING or (due_only and now - transfer.started_at < TAKEOVER_DELAY):
                continue
            transfer.status = self.outcomes.pop(transfer.external_userid, TAKEN)
            contact = state.external_contacts[transfer.external_userid]
            handover = next((f for f in contact["follow_user"] if f["userid"] == transfer.handover_userid), None)
            if transfer.status == TAKEN:
                transfer.takeover_time = now
                contact["follow_user"] = [f for f in contact["follow_user"] if f["userid"] != transfer.handover_userid]
                state.add_follower(transfer.external_userid, transfer.takeover_userid,
                                   remark=handover["remark"] if handover else "",
                                   remark_mobiles=handover["remark_mobiles"] if handover else (),
                                   tags=handover["tags"] if handover else ())
            elif transfer.kind == RESIGNED:
                # A departed rep's customer who refuses is lost to the company; on the job they stay with the rep.
                contact["follow_user"] = [f for f in contact["follow_user"] if f["userid"] != transfer.handover_userid]
            settled.append(transfer)
        return settled

    def unassigned(self, state: SimulatorState) -> list[dict[str, Any]]:
        """Customers still followed by a departed member and not being inherited."""
        waiting = {t.external_userid for t in self.transfers if t.status == WAITING}
        return [{"handover_userid": f["userid"], "external_userid": eid, "dimission_time": self.departed[f["userid"]]}
                for eid, contact in state.external_contacts.items() if eid not in waiting
                for f in contact["follow_user"] if f["userid"] in self.departed]

    def start(self, state: SimulatorState, kind: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Check one transfer call and start what it may; returns the per-customer errcodes."""
        handover, takeover = body.get("handover_userid"), body.get("takeover_userid")
        if not handover or not takeover:
            raise ApiError(41009)
        if kind == RESIGNED and handover in state.staff:
            raise ApiError(40097)  # 该成员尚未离职: on the job, use transfer_customer
        # 40003 无效的UserID: "已离职或已删除成员，userid会从通讯录中移除，userid无效"
        if kind == ONJOB and handover not in state.staff:
            raise ApiError(40003)  # left the directory: use resigned/transfer_customer
        if takeover not in state.staff:
            raise ApiError(40003)
        if takeover == handover:
            raise ApiError(40130)  # 原跟进人与接手人一样，不可继承
        customers = body.get("external_userid")
        if not customers:
            raise ApiError(41035)
        if not isinstance(customers, list) or len(customers) > MAX_CUSTOMERS_PER_CALL:
            raise ApiError(40058)
        message = body.get("transfer_success_msg", "")
        if not isinstance(message, str) or len(message) > MAX_MESSAGE_CHARS:
            raise ApiError(40058)
        now = int(state.now())
        answers = []
        for external_userid in customers:
            errcode = self._customer_errcode(state, kind, str(handover), str(external_userid), now)
            if errcode == 0:
                self.transfers.append(Transfer(kind, str(handover), str(takeover), str(external_userid), now, message))
            answers.append({"external_userid": external_userid, "errcode": errcode})
        return answers

    def _customer_errcode(self, state: SimulatorState, kind: str, handover: str, external_userid: str, now: int) -> int:
        contact = state.external_contacts.get(external_userid)
        if contact is None:
            return 40096  # 不合法的外部联系人userid
        if handover not in {f["userid"] for f in contact["follow_user"]}:
            return 40131  # handover_userid 并不是外部联系人的跟进人
        mine = [t for t in self.transfers if t.external_userid == external_userid]
        if any(t.status == WAITING for t in mine):
            return 40129
        recent = [t for t in mine if t.kind == ONJOB and t.status != REFUSED and now - t.started_at < ONJOB_WINDOW]
        if kind == ONJOB and len(recent) >= ONJOB_PER_WINDOW:
            return 40128
        return 0

    def results(self, kind: str, handover: str, takeover: str) -> list[dict[str, Any]]:
        return [t.row() for t in self.transfers
                if t.kind == kind and t.handover_userid == handover and t.takeover_userid == takeover]


def _page(rows: list[dict[str, Any]], cursor: Any, size: int) -> tuple[list[dict[str, Any]], str]:
    """Opaque cursors like WeCom's: a position, base64-encoded."""
    start = 0
    if cursor:
        try:
            start = int(base64.urlsafe_b64decode(str(cursor).encode()).decode().removeprefix("transfer:"))
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise ApiError(40058) from exc
    end = start + size
    return rows[start:end], base64.urlsafe_b64encode(f"transfer:{end}".encode()).decode() if end < len(rows) else ""


def _get_unassigned_list(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    size = body.get("page_size", UNASSIGNED_PAGE_MAX)
    if not isinstance(size, int) or not 1 <= size <= UNASSIGNED_PAGE_MAX:
        raise ApiError(40058)
    info, next_cursor = _page(state.transfer_book.unassigned(state), body.get("cursor"), size)
    return ok(info=info, is_last=not next_cursor, next_cursor=next_cursor)


def _transfer(kind: str):
    def handle(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
        return ok(customer=state.transfer_book.start(state, kind, body))

    return handle


def _result(kind: str):
    def handle(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
        handover, takeover = body.get("handover_userid"), body.get("takeover_userid")
        if not handover or not takeover:
            raise ApiError(41009)
        rows = state.transfer_book.results(kind, str(handover), str(takeover))
        customers, next_cursor = _page(rows, body.get("cursor"), RESULT_PAGE_MAX)
        return ok(customer=customers, next_cursor=next_cursor)

    return handle


APIS: dict[str, Api] = {
    "externalcontact/get_unassigned_list": Api("POST", _get_unassigned_list),
    "externalcontact/resigned/transfer_customer": Api("POST", _transfer(RESIGNED)),
    "externalcontact/transfer_customer": Api("POST", _transfer(ONJOB)),
    "externalcontact/resigned/transfer_result": Api("POST", _result(RESIGNED)),
    "externalcontact/transfer_result": Api("POST", _result(ONJOB)),
}
