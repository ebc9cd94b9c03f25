"""In-memory world of the WeCom simulator: directory, tokens, 微信客服 log, sent records, faults.

Business rules that WeCom enforces live here (token expiry, the 微信客服 reply window, who
receives a group-send task once the rep confirms it); ``server.py`` only translates HTTP to
and from these methods.
"""

from __future__ import annotations

import calendar
import json
import secrets
import time
from collections import deque
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from itertools import takewhile
from typing import Any

from connectors.wecom.simulator.api import decode_cursor, encode_cursor
from connectors.wecom.simulator.chat_archive import ChatArchive
from connectors.wecom.simulator.kf_state import KfSessions
from connectors.wecom.simulator.oauth import WebClient
from connectors.wecom.simulator.transfers import TransferBook

ACCESS_TOKEN_TTL = 7200
KF_TOKEN_TTL = 600  # the Token in a kf_msg_or_event callback is valid for 10 minutes
KF_WINDOW_SECONDS = 48 * 3600
KF_WINDOW_MAX_REPLIES = 5
WELCOME_CODE_TTL = 20  # "企业仅可在收到相关事件后20秒内调用，且只可调用一次"
CONTACT_WAY_MAX_USERS = 100  # 41041: "默认限制不超过100人"
# https://developer.work.weixin.qq.com/document/path/92135 (updated 2025-11-17): "每位客户/每个客户群每月最多
# 可接收条数为当月天数 … 可在企业微信-群发助手-设置群发规则中调整为每周接收七条或每天接收一条". A customer
# over the limit gets send_result status 3. The company's rule: "month_days", "week_7" or "day_1".
GROUP_MSG_RULES = ("month_days", "week_7", "day_1")
CHINA_UTC_OFFSET = 8 * 3600  # WeCom counts natural days, weeks and months in China time

# Group-send statuses on the wire: a sender's task (get_groupmsg_task) and one customer's result
# (get_groupmsg_send_result).
TASK_NOT_SENT, TASK_SENT = 0, 2
RESULT_NOT_SENT, RESULT_SENT, RESULT_NOT_FRIEND, RESULT_LIMIT_REACHED = 0, 1, 2, 3

#: errmsg text per errcode (WeCom's own wording is English, with a hint and a help link).
ERRMSGS: dict[int, str] = {
    -1: "system busy",
    40001: "invalid credential",
    40003: "invalid userid",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40029: "invalid code",
    40056: "invalid agentid",
    40050: "invalid chatid",
    40058: "invalid parameter, Warning: wrong json format.",
    40068: "invalid tagid",
    40071: "invalid tag name",
    40096: "invalid external userid",
    41001: "access_token missing",
    41002: "corpid missing",
    41004: "corpsecret missing",
    41008: "missing code",
    41009: "missing userid",
    41011: "missing agentid",
    41046: "missing msgid",
    41047: "invalid msgid",
    41063: "msg is being dispatched, please try later",
    42001: "access_token expired",
    44004: "empty content",
    45002: "content size out of limit",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    48002: "api forbidden",
    50001: "redirect_url unauthorized",
    60111: "userid not found",
    60123: "invalid party id",
    81013: "user & party & tag all invalid",
    84061: "not external contact",
    95001: "send msg count limit",
    95002: "send msg time limit",
    95004: "open_kfid not exist",
    95007: "invalid msg token",
    40097: "user not resigned",
    40098: "user not real-name verified",
    40128: "transfer customer too frequently",
    40129: "customer is being transferred",
    40130: "handover and takeover user are the same",
    40131: "handover user is not the follow user of the external contact",
    41035: "missing external userid",
    95014: "user is not a servicer",
    95016: "invalid service state transition",
    95019: "servicer stopped or suspended",
    41037: "missing contact way type",
    41038: "missing contact way scene",
    41039: "invalid contact way type",
    41040: "invalid contact way scene",
    41041: "contact way user count exceed limit",
    41043: "missing config_id",
    41044: "invalid config_id",
    41049: "missing welcome code",
    41050: "invalid welcome code",
    41051: "externaluser has started chatting",
    41054: "user not active",
}


def errmsg_for(errcode: int) -> str:
    """WeCom-shaped errmsg: text, request hint and the devtool link."""
    text = ERRMSGS.get(errcode, "simulated error")
    return f"{text}, hint: [{secrets.token_hex(12)}], more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"


@dataclass
class Fault:
    """One injected failure for the next call(s) of an API."""

    errcode: int | None
    http_status: int | None
    delay: float | None
    times: int


@dataclass
class KfWindow:
    """When a 微信客服 customer last wrote and how many replies followed."""

    last_customer_message_at: float
    replies: int = 0


@dataclass
class GroupMsgTask:
    """One add_msg_template call: each sender's share of customers, and what happened once they confirmed."""

    recipients: dict[str, list[str]]  # sender userid -> external_userids in their task
    sent_at: dict[str, int] = field(default_factory=dict)  # sender userid -> when they confirmed
    results: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # (userid, external_userid) -> (status, send_time)


@dataclass
class WelcomeCode:
    """The WelcomeCode of one add_external_contact event: usable once, for 20 seconds."""

    userid: str
    external_userid: str
    issued_at: float
    used: bool = False


@dataclass(frozen=True)
class Scan:
    """A customer added a rep by scanning a 「联系我」 code: what WeCom's callback will carry."""

    userid: str
    external_userid: str
    state: str
    welcome_code: str


@dataclass
class SimulatorState:
    """Everything the fake WeCom knows; tests read the ``sent_*`` records and inject faults."""

    corp_id: str
    agent_id: int
    secret: str
    callback_token: str
    encoding_aes_key: str
    staff: dict[str, dict[str, Any]] = field(default_factory=dict)
    departments: dict[int, dict[str, Any]] = field(default_factory=dict)  # department/list entries by id
    member_tags: dict[int, dict[str, Any]] = field(default_factory=dict)  # 通讯录标签: tagid -> tagname, userlist, partylist
    # The 通讯录同步 Secret; when set, only its tokens may list member ids (user/list_id answers others 48002).
    contacts_secret: str | None = None
    # Apps created after 2022-06-20 no longer get a member's avatar, gender, mobile, email or address from user/get.
    hides_member_details: bool = False
    # external_userid -> contact in externalcontact/get's shape (a plain dict, or a generated company)
    external_contacts: MutableMapping[str, dict[str, Any]] = field(default_factory=dict)
    customer_contact_users: list[str] | None = None  # members with 客户联系; None: every member
    corp_tag_groups: list[dict[str, Any]] = field(default_factory=list)  # get_corp_tag_list's tag_group
    tag_marks: list[dict[str, Any]] = field(default_factory=list)  # mark_tag calls that changed a contact
    kf_accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    now: Callable[[], float] = time.time
    sent_app_messages: list[dict[str, Any]] = field(default_factory=list)
    # message/send requests WeCom's duplicate check dropped (answered ok, delivered to nobody)
    dropped_app_messages: list[dict[str, Any]] = field(default_factory=list)
    # (userid, request) of app messages dropped past a member's limits (answered ok, not delivered to them)
    over_limit_app_messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    app_messages_per_member_per_minute: int = 30  # WeCom's limits (receives_app_message)
    app_messages_per_member_per_hour: int = 1000
    sent_kf_messages: list[dict[str, Any]] = field(default_factory=list)
    msg_templates: list[dict[str, Any]] = field(default_factory=list)
    kf_log: list[dict[str, Any]] = field(default_factory=list)
    group_msg_tasks: dict[str, GroupMsgTask] = field(default_factory=dict)
    group_msg_rule: str = "month_days"  # 群发规则 (see GROUP_MSG_RULES)
    group_chats: dict[str, dict[str, Any]] = field(default_factory=dict)  # chat_id -> 客户群 (simulator.groups)
    chat_archive: ChatArchive | None = None  # 会话内容存档, when the company has it enabled
    contact_ways: dict[str, dict[str, Any]] = field(default_factory=dict)  # config_id -> 「联系我」 code
    welcome_codes: dict[str, WelcomeCode] = field(default_factory=dict)
    sent_welcome_msgs: list[dict[str, Any]] = field(default_factory=list)
    transfer_book: TransferBook = field(default_factory=TransferBook)  # 离职/在职继承 (simulator.transfers)
    kf_sessions: KfSessions = field(default_factory=KfSessions)  # 微信客服 servicers and session states
    web: WebClient = field(default_factory=WebClient)  # the WeCom client pages open in (simulator.oauth)
    gettoken_calls: int = 0
    _app_receipts: dict[str, deque[float]] = field(default_factory=dict)  # userid -> delivery times, last hour
    _access_tokens: dict[str, float] = field(default_factory=dict)
    _contacts_tokens: set[str] = field(default_factory=set)
    _kf_tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    _kf_windows: dict[tuple[str, str], KfWindow] = field(default_factory=dict)
    _faults: dict[str, deque[Fault]] = field(default_factory=dict)
    _duplicate_checks: dict[str, tuple[float, str]] = field(default_factory=dict)  # request JSON -> (until, msgid)

    # -- access tokens -------------------------------------------------------------------

    def issue_access_token(self, *, contacts: bool = False) -> str:
        """Hand out a new token (old ones stay valid until they expire, as in WeCom); `contacts`: for
        the 通讯录同步 Secret."""
        self.gettoken_calls += 1
        token = secrets.token_urlsafe(48)
        self._access_tokens[token] = self.now() + ACCESS_TOKEN_TTL
        if contacts:
            self._contacts_tokens.add(token)
        return token

    def is_contacts_token(self, token: str | None) -> bool:
        return token in self._contacts_tokens

    def token_errcode(self, token: str | None) -> int:
        """0 if the token may be used, else the errcode WeCom answers."""
        if not token:
            return 41001
        expires_at = self._access_tokens.get(token)
        if expires_at is None:
            return 40014
        return 42001 if self.now() >= expires_at else 0

    def expire_all_tokens(self) -> None:
        """Make every issued token answer 42001 from now on."""
        now = self.now()
        self._access_tokens = {token: now for token in self._access_tokens}

    # -- fault injection -----------------------------------------------------------------

    def fail_next(
        self,
        api: str,
        *,
        errcode: int | None = None,
        http_status: int | None = None,
        delay: float | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``api`` (e.g. "message/send") fail or stall.

        ``delay`` alone only slows the call down; with ``errcode`` or ``http_status`` the
        call answers that after the delay.
        """
        if errcode is None and http_status is None and delay is None:
            raise ValueError("fail_next needs an errcode, an http_status or a delay")
        self._faults.setdefault(api, deque()).append(Fault(errcode, http_status, delay, times))

    def service_env(self, api_base: str) -> dict[str, str]:
        """The SCRM_WECOM_* settings that point a `scrm serve` process at this simulator."""
        origin = api_base.split("/cgi-bin/", 1)[0]
        return {"SCRM_WECOM_CORP_ID": self.corp_id, "SCRM_WECOM_SECRET": self.secret,
                "SCRM_WECOM_AGENT_ID": str(self.agent_id), "SCRM_WECOM_TOKEN": self.callback_token,
                "SCRM_WECOM_AES_KEY": self.encoding_aes_key, "SCRM_WECOM_API_BASE": api_base,
                "SCRM_WECOM_OAUTH_URL": f"{origin}/connect/oauth2/authorize",
                "SCRM_PAGE_JSSDK_URLS": f"{origin}/sim/jssdk/jweixin.js"}

    def duplicate_check(self, body: dict[str, Any]) -> str | None:
        """WeCom's `enable_duplicate_check`: the same request JSON within its interval is not
        delivered again; returns the msgid of the delivery it repeats, or None."""
        if body.get("enable_duplicate_check") != 1:
            return None
        until, msgid = self._duplicate_checks.get(_request_key(body), (0.0, ""))
        return msgid if until > self.now() else None

    def remember_for_duplicate_check(self, body: dict[str, Any], msgid: str) -> None:
        if body.get("enable_duplicate_check") == 1:
            interval = min(int(body.get("duplicate_check_interval") or 1800), 4 * 3600)
            self._duplicate_checks[_request_key(body)] = (self.now() + interval, msgid)

    def receives_app_message(self, userid: str) -> bool:
        """Whether WeCom delivers one more app message to `userid` now, and counts it: one app
        reaches a member at most 30 times a minute and 1,000 times an hour; past that the message
        is dropped and the call still answers ok (每应用对同一个成员不可超过30次/分钟，1000次/小时，
        超过部分会被丢弃不下发: https://developer.work.weixin.qq.com/document/path/90236). Counted
        over the trailing minute and hour."""
        now = self.now()
        times = self._app_receipts.setdefault(userid, deque())
        while times and times[0] <= now - 3600:
            times.popleft()
        in_last_minute = sum(1 for _ in takewhile(lambda t: t > now - 60, reversed(times)))
        if len(times) >= self.app_messages_per_member_per_hour or in_last_minute >= self.app_messages_per_member_per_minute:
            return False
        times.append(now)
        return True

    def take_fault(self, api: str) -> Fault | None:
        """Consume one use of the oldest fault queued for ``api``."""
        queue = self._faults.get(api)
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.popleft()
        return fault

    # -- 微信客服 ------------------------------------------------------------------------

    def kf_customer_writes(self, open_kfid: str, external_userid: str, text: str) -> str:
        """A WeChat customer writes to a kf account: log it, open the reply window, return the callback Token."""
        self._require_kf_account(open_kfid)
        now = self.now()
        self.kf_log.append({
            "msgid": secrets.token_hex(16),
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "send_time": int(now),
            "origin": 3,
            "msgtype": "text",
            "text": {"content": text},
        })
        self._kf_windows[(open_kfid, external_userid)] = KfWindow(last_customer_message_at=now)
        return self._issue_kf_token(open_kfid)

    def kf_event(self, open_kfid: str, external_userid: str, event_type: str = "enter_session",
                 **fields: str) -> str:
        """A system event (origin 4), e.g. the customer opening the chat; returns the callback Token."""
        self._require_kf_account(open_kfid)
        event = {"event_type": event_type, "open_kfid": open_kfid, "external_userid": external_userid, **fields}
        self.kf_log.append({
            "msgid": secrets.token_hex(16),
            "send_time": int(self.now()),
            "origin": 4,
            "msgtype": "event",
            "event": event,
        })
        return self._issue_kf_token(open_kfid)

    def kf_token_valid(self, token: str) -> bool:
        """Whether a callback Token was handed out and is younger than 10 minutes."""
        entry = self._kf_tokens.get(token)
        return entry is not None and self.now() < entry[1]

    def kf_page(self, cursor: str | None, limit: int, open_kfid: str | None) -> tuple[list[dict[str, Any]], str, bool]:
        """One sync_msg page after ``cursor``: (messages, next_cursor, has_more). Raises ValueError on a bad cursor."""
        start = decode_cursor(cursor) if cursor else 0
        page: list[dict[str, Any]] = []
        position = start
        while position < len(self.kf_log) and len(page) < limit:
            message = self.kf_log[position]
            position += 1
            kfid = message.get("open_kfid") or message.get("event", {}).get("open_kfid")
            if open_kfid is None or kfid == open_kfid:
                page.append(message)
        return page, encode_cursor(position), position < len(self.kf_log)

    def kf_reply_errcode(self, open_kfid: str, external_userid: str) -> int:
        """Apply the reply window: 0 and count the reply, or 95002 (over 48 h) / 95001 (over 5 replies)."""
        window = self._kf_windows.get((open_kfid, external_userid))
        if window is None or self.now() - window.last_customer_message_at > KF_WINDOW_SECONDS:
            return 95002
        if window.replies >= KF_WINDOW_MAX_REPLIES:
            return 95001
        window.replies += 1
        return 0

    def _require_kf_account(self, open_kfid: str) -> None:
        if open_kfid not in self.kf_accounts:
            raise KeyError(f"unknown open_kfid {open_kfid!r}")

    def _issue_kf_token(self, open_kfid: str) -> str:
        token = "ENC" + secrets.token_urlsafe(33).replace("-", "").replace("_", "")
        self._kf_tokens[token] = (open_kfid, self.now() + KF_TOKEN_TTL)
        return token

    # -- group-send tasks (企业群发) ---------------------------------------------------------

    def add_msg_template(self, body: dict[str, Any]) -> tuple[str, list[str]]:
        """Create a task for each sender to confirm; returns (msgid, fail_list).

        fail_list: customers unknown, or not followed by ``sender`` when one is given. Without a
        sender, WeCom hands each remaining customer to every staff member who follows them.
        """
        sender = body.get("sender")
        fail_list: list[str] = []
        recipients: dict[str, list[str]] = {}
        for external_userid in body.get("external_userid", []):
            followers = self._followers(external_userid)
            if not followers or (sender and sender not in followers):
                fail_list.append(external_userid)
                continue
            for userid in [sender] if sender else sorted(followers):
                recipients.setdefault(userid, []).append(external_userid)
        if sender and sender in self.staff:
            recipients.setdefault(sender, [])
        msgid = "msg" + secrets.token_urlsafe(18)
        self.msg_templates.append({**body, "msgid": msgid, "fail_list": fail_list})
        self.group_msg_tasks[msgid] = GroupMsgTask(recipients)
        return msgid, fail_list

    def confirm_msg_template(self, msgid: str, sender: str) -> dict[str, int]:
        """The rep taps 发送 on their task: each customer gets it (1), unless no longer a friend (2)
        or already at the company's group-message receive limit (3). Returns external_userid -> status."""
        task = self.group_msg_tasks[msgid]
        if sender not in task.recipients:
            raise KeyError(f"{sender!r} has no task in {msgid!r}")
        if sender in task.sent_at:
            raise ValueError(f"{sender!r} already sent {msgid!r}")
        now = int(self.now())
        task.sent_at[sender] = now
        outcome = {}
        for external_userid in task.recipients[sender]:
            if sender not in self._followers(external_userid):
                status = RESULT_NOT_FRIEND
            elif self._group_msgs_in_window(external_userid, now) >= self.group_msg_allowance(now)[1]:
                status = RESULT_LIMIT_REACHED
            else:
                status = RESULT_SENT
            task.results[(sender, external_userid)] = (status, now)
            outcome[external_userid] = status
        return outcome

    def add_follower(self, external_userid: str, userid: str, *, remark: str = "", remark_mobiles: list[str] = (),
                     tags: list[dict[str, Any]] = (), add_way: int = 2, state: str = "") -> None:
        """Another rep adds an existing contact (add_way 2: found by phone number): one more follow_user
        entry, with that rep's own remark and tags. Send add_external_contact for them afterwards."""
        contact = self.external_contacts[external_userid]
        contact["follow_user"] = [f for f in contact["follow_user"] if f["userid"] != userid]
        contact["follow_user"].append({
            "userid": userid, "remark": remark, "description": "", "createtime": int(self.now()), "tags": list(tags),
            "remark_corp_name": "", "remark_mobiles": list(remark_mobiles), "oper_userid": userid,
            "add_way": add_way, "state": state,
        })

    def end_contact(self, external_userid: str, userid: str) -> None:
        """The customer deletes the rep (or the rep the customer): they are no longer friends."""
        contact = self.external_contacts[external_userid]
        contact["follow_user"] = [f for f in contact["follow_user"] if f["userid"] != userid]

    def groupmsg_task_page(self, msgid: str, cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str]:
        """One get_groupmsg_task page: (task_list, next_cursor, "" on the last page).

        Raises KeyError for an unknown msgid, ValueError for a bad cursor."""
        task = self.group_msg_tasks[msgid]
        rows = []
        for userid in sorted(task.recipients):
            sent_at = task.sent_at.get(userid)
            row: dict[str, Any] = {"userid": userid, "status": TASK_SENT if sent_at else TASK_NOT_SENT}
            if sent_at:
                row["send_time"] = sent_at
            rows.append(row)
        return _page(rows, cursor, limit)

    def groupmsg_send_result_page(
        self, msgid: str, userid: str, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str]:
        """One get_groupmsg_send_result page for ``userid``'s customers; same errors as above."""
        task = self.group_msg_tasks[msgid]
        rows = []
        for external_userid in task.recipients.get(userid, []):
            status, send_time = task.results.get((userid, external_userid), (RESULT_NOT_SENT, 0))
            row: dict[str, Any] = {"external_userid": external_userid, "userid": userid, "status": status}
            if status == RESULT_SENT:
                row["send_time"] = send_time
            rows.append(row)
        return _page(rows, cursor, limit)

    def _followers(self, external_userid: str) -> set[str]:
        contact = self.external_contacts.get(external_userid)
        return {f["userid"] for f in contact["follow_user"]} if contact else set()

    def group_msg_allowance(self, now: float) -> tuple[object, int]:
        """The receive window `now` is in (a comparable key) and how many group messages it allows."""
        moment = time.gmtime(int(now) + CHINA_UTC_OFFSET)
        if self.group_msg_rule == "day_1":
            return (moment.tm_year, moment.tm_yday), 1
        if self.group_msg_rule == "week_7":
            return time.strftime("%G-%V", moment), 7
        if self.group_msg_rule != "month_days":
            raise ValueError(f"unknown group_msg_rule {self.group_msg_rule!r}")
        return (moment.tm_year, moment.tm_mon), calendar.monthrange(moment.tm_year, moment.tm_mon)[1]

    def _group_msgs_in_window(self, external_userid: str, now: int) -> int:
        window = self.group_msg_allowance(now)[0]
        return sum(
            1
            for task in self.group_msg_tasks.values()
            for (_, customer), (status, send_time) in task.results.items()
            if customer == external_userid and status == RESULT_SENT and self.group_msg_allowance(send_time)[0] == window
        )

    # -- 「联系我」 codes and welcome messages -------------------------------------------------

    def contact_way_errcode(self, body: dict[str, Any]) -> int:
        """0 if add_contact_way may store ``body``, else WeCom's errcode."""
        if "type" not in body:
            return 41037
        if "scene" not in body:
            return 41038
        if body["type"] not in (1, 2):
            return 41039
        if body["scene"] not in (1, 2):
            return 41040
        for name in ("state", "remark"):
            value = body.get(name, "")
            if not isinstance(value, str) or len(value) > 30:
                return 40058
        users = body.get("user", [])
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            return 40058
        if body["type"] == 1 and len(users) != 1:
            return 40058
        if not users and not body.get("party"):
            return 40058
        if len(users) > CONTACT_WAY_MAX_USERS:
            return 41041
        for userid in users:
            if userid not in self.staff:
                return 60111
            if int(self.staff[userid].get("status", 1)) != 1:
                return 41054
        return 0

    def add_contact_way(self, body: dict[str, Any]) -> dict[str, Any]:
        """Store a checked code; returns it with its config_id and (scene 2) QR image URL."""
        config_id = secrets.token_hex(16)
        way = {"config_id": config_id, "skip_verify": True, "state": "", "remark": "", "user": [], "party": [], **body}
        if way["scene"] == 2:
            way["qr_code"] = f"https://wework.qpic.cn/wwpic/sim/{config_id}/0"
        self.contact_ways[config_id] = way
        return way

    def customer_scans(self, config_id: str, name: str, *, userid: str | None = None,
                       external_userid: str | None = None, corp_name: str = "", description: str = "") -> Scan:
        """A WeChat user scans a code and adds one of its reps (``userid``, else the next in turn).

        The contact is created (or gains that follower) with the code's state, and a WelcomeCode is
        issued; send the add_external_contact callback with both. KeyError for a deleted code."""
        way = self.contact_ways[config_id]
        users = way["user"]
        if userid is None:
            scans = sum(1 for c in self.external_contacts.values() for f in c["follow_user"] if f.get("state") == way["state"] and f["userid"] in users)
            userid = users[scans % len(users)]
        elif userid not in users:
            raise ValueError(f"{userid!r} is not on code {config_id!r}")
        external_userid = external_userid or "wmSim" + secrets.token_hex(13)
        contact = self.external_contacts.setdefault(external_userid, {
            "external_contact": {"external_userid": external_userid, "name": name, "type": 1, "gender": 0,
                                 "avatar": "", "corp_name": corp_name, "corp_full_name": corp_name, "position": "",
                                 "unionid": "oUnion" + secrets.token_hex(11)},
            "follow_user": [],
        })
        now = int(self.now())
        contact["follow_user"].append({
            "userid": userid, "remark": "", "description": description, "createtime": now, "tags": [],
            "remark_corp_name": corp_name, "remark_mobiles": [], "oper_userid": external_userid,
            "add_way": 1, "state": way["state"],
        })
        code = "WC" + secrets.token_urlsafe(24)
        self.welcome_codes[code] = WelcomeCode(userid, external_userid, self.now())
        return Scan(userid=userid, external_userid=external_userid, state=way["state"], welcome_code=code)

    def welcome_errcode(self, code: str) -> int:
        """0 and use the code up, or 41050 (unknown, or older than 20 s) / 41051 (already used)."""
        entry = self.welcome_codes.get(code)
        if entry is None or self.now() - entry.issued_at > WELCOME_CODE_TTL:
            return 41050
        if entry.used:
            return 41051
        entry.used = True
        return 0

    # -- demo view -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What was sent and asked for; no credentials."""
        return {
            "corp_id": self.corp_id,
            "agent_id": self.agent_id,
            "gettoken_calls": self.gettoken_calls,
            "sent_app_messages": self.sent_app_messages,
            "sent_kf_messages": self.sent_kf_messages,
            "msg_templates": self.msg_templates,
            "group_msg_tasks": {
                msgid: {"sent_at": task.sent_at,
                        "results": {f"{userid}/{customer}": status
                                    for (userid, customer), (status, _) in task.results.items()}}
                for msgid, task in self.group_msg_tasks.items()
            },
            "kf_log_size": len(self.kf_log),
            "contact_ways": list(self.contact_ways.values()),
            "sent_welcome_msgs": self.sent_welcome_msgs,
            "group_chats": [{"chat_id": c["chat_id"], "name": c["name"], "owner": c["owner"],
                             "members": len(c["member_list"])} for c in self.group_chats.values()],
            "tag_marks": self.tag_marks,
            "transfers": [{"kind": t.kind, "handover_userid": t.handover_userid, "takeover_userid": t.takeover_userid,
                           **t.row()} for t in self.transfer_book.transfers],
            "kf_session_changes": self.kf_sessions.changes,
        }


def _page(rows: list[dict[str, Any]], cursor: str | None, limit: int) -> tuple[list[dict[str, Any]], str]:
    start = decode_cursor(cursor) if cursor else 0
    end = start + limit
    return rows[start:end], encode_cursor(end) if end < len(rows) else ""


def _request_key(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, ensure_ascii=False)
