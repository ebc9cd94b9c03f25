"""The fake WeCom HTTP API (``/cgi-bin/...``) over a ``SimulatorState``.

Every answer is HTTP 200 with a JSON ``errcode``/``errmsg`` like WeCom's, except injected
``http_status`` faults. Calls run in this order, as in WeCom: injected fault, access token,
JSON body, then the API's own checks.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from connectors.wecom.simulator import contacts, directory, groups, kf_state, oauth, tags, transfers
from connectors.wecom.simulator.api import Api, ApiError, Reply, ok
from connectors.wecom.simulator.state import SimulatorState, errmsg_for

STATE_KEY: web.AppKey[SimulatorState] = web.AppKey("wecom_simulator_state", SimulatorState)
# App messages (message/send): text "最长不超过2048个字节", markdown "最长不超过2048个字节，必须是utf8编码"
# (4096 is the group robot's markdown limit, not an app's): https://developer.work.weixin.qq.com/document/path/90236
# 微信客服 text (kf/send_msg) is held to the same. Errcode 45002 (content size out of limit) beyond it.
TEXT_MAX_BYTES = 2048
# Group-send and welcome texts: add_msg_template "最多4000个字节" (https://developer.work.weixin.qq.com/document/path/92135),
# send_welcome_msg "最长为4000字节" (https://developer.work.weixin.qq.com/document/path/92137).
TEMPLATE_TEXT_MAX_BYTES = 4000
# Textcard (文本卡片消息, same page 90236): title and description required, "不超过128个字节" and "不超过512个字节，
# 超过会自动截断"; url required, "最长2048字节，请确保包含了协议头(http/https)"; btntxt optional, "不超过4个文字，超过自动
# 截断". So WeCom delivers a cut title, description and button and refuses nothing for them; a missing field, or
# a url past its limit (the doc says no cut for it), is 40058 (不合法的参数, "传递参数不符合系统要求",
# https://developer.work.weixin.qq.com/document/path/90313).
CARD_TITLE_BYTES, CARD_DESCRIPTION_BYTES, CARD_URL_BYTES, CARD_BUTTON_CHARS = 128, 512, 2048, 4
KF_MSGID = re.compile(r"[0-9a-zA-Z_-]{1,32}")  # caller-chosen kf msgid; longer -> 40058 "msgid exceed max length"

def _check_text(content: Any, max_bytes: int = TEXT_MAX_BYTES) -> None:
    if not isinstance(content, str) or not content:
        raise ApiError(44004)
    if len(content.encode()) > max_bytes:
        raise ApiError(45002)


def _cut_bytes(text: str, max_bytes: int) -> str:
    """The longest prefix within ``max_bytes`` of UTF-8 that ends on a whole character, as WeCom cuts."""
    return text.encode()[:max_bytes].decode(errors="ignore")


def _delivered_textcard(card: Any) -> dict[str, Any]:
    """The textcard as the member receives it: checked, and cut where the doc says WeCom cuts."""
    if not isinstance(card, dict):
        raise ApiError(40058)
    title, description, url = card.get("title"), card.get("description"), card.get("url")
    if not all(isinstance(v, str) and v for v in (title, description, url)):
        raise ApiError(40058)
    if len(url.encode()) > CARD_URL_BYTES:
        raise ApiError(40058)
    delivered = {**card, "title": _cut_bytes(title, CARD_TITLE_BYTES),
                 "description": _cut_bytes(description, CARD_DESCRIPTION_BYTES)}
    if "btntxt" in card:
        if not isinstance(card["btntxt"], str):
            raise ApiError(40058)
        delivered["btntxt"] = card["btntxt"][:CARD_BUTTON_CHARS]
    return delivered


def _gettoken(state: SimulatorState, request: web.Request, _: dict[str, Any]) -> Reply:
    corpid = request.query.get("corpid")
    secret = request.query.get("corpsecret")
    if not corpid:
        raise ApiError(41002)
    if corpid != state.corp_id:
        raise ApiError(40013)
    if not secret:
        raise ApiError(41004)
    archive_secret = state.chat_archive.secret if state.chat_archive else None
    contacts = bool(state.contacts_secret) and secret == state.contacts_secret
    if secret != state.secret and secret != archive_secret and not contacts:
        raise ApiError(40001)
    return ok(access_token=state.issue_access_token(contacts=contacts), expires_in=7200)


def _external_contact_get(state: SimulatorState, request: web.Request, _: dict[str, Any]) -> Reply:
    external_userid = request.query.get("external_userid")
    if not external_userid:
        raise ApiError(40096)
    contact = state.external_contacts.get(external_userid)
    if contact is None or not contact["follow_user"]:
        # 84061 不存在外部联系人的关系: no member of the corp follows them (any more).
        # https://developer.work.weixin.qq.com/document/path/90313 (全局错误码)
        raise ApiError(84061)
    return ok(**contact, next_cursor="")


def _message_send(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    """Partly unknown recipients still send (listed in invaliduser); all unknown -> 81013."""
    if "agentid" not in body:
        raise ApiError(41011)
    if str(body["agentid"]) != str(state.agent_id):
        raise ApiError(40056)
    msgtype = body.get("msgtype")
    if msgtype in ("text", "markdown"):
        _check_text((body.get(msgtype) or {}).get("content"))
    delivered = {"textcard": _delivered_textcard(body.get("textcard"))} if msgtype == "textcard" else {}
    touser = [u for u in str(body.get("touser", "")).split("|") if u]
    toparty = [p for p in str(body.get("toparty", "")).split("|") if p]
    totag = [t for t in str(body.get("totag", "")).split("|") if t]
    if touser == ["@all"]:
        recipients = set(state.staff)
        invalid_users: list[str] = []
    else:
        recipients = {u for u in touser if u in state.staff}
        invalid_users = [u for u in touser if u not in state.staff]
    departments = {str(d) for user in state.staff.values() for d in user.get("department", [])}
    invalid_parties = [p for p in toparty if p not in departments]
    recipients |= {uid for uid, user in state.staff.items() if {str(d) for d in user.get("department", [])} & set(toparty)}
    if not recipients:
        raise ApiError(81013)
    repeat_of = state.duplicate_check(body)
    if repeat_of is not None:  # WeCom answers ok and delivers nothing: the person already has it
        state.dropped_app_messages.append({"msgid": repeat_of, **body})
        return ok(invaliduser="|".join(invalid_users), invalidparty="|".join(invalid_parties),
                   invalidtag="|".join(totag), unlicenseduser="", msgid=repeat_of)
    msgid = secrets.token_urlsafe(24)
    state.remember_for_duplicate_check(body, msgid)
    over_limit = sorted(u for u in recipients if not state.receives_app_message(u))
    state.over_limit_app_messages.extend((userid, body) for userid in over_limit)
    if len(over_limit) < len(recipients):
        state.sent_app_messages.append({"msgid": msgid, "recipients": sorted(recipients.difference(over_limit)),
                                        **body, **delivered})
    return ok(
        invaliduser="|".join(invalid_users),
        invalidparty="|".join(invalid_parties),
        invalidtag="|".join(totag),  # the simulator knows no tags
        unlicenseduser="",
        msgid=msgid,
    )


def _kf_sync_msg(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    token = body.get("token")
    if token and not state.kf_token_valid(str(token)):
        raise ApiError(95007)
    open_kfid = body.get("open_kfid")
    if open_kfid is not None and open_kfid not in state.kf_accounts:
        raise ApiError(95004)
    limit = body.get("limit", 1000)
    if not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise ApiError(40058)
    try:
        messages, next_cursor, has_more = state.kf_page(body.get("cursor"), limit, open_kfid)
    except ValueError as exc:
        raise ApiError(40058) from exc
    return ok(next_cursor=next_cursor, has_more=int(has_more), msg_list=messages)


def _kf_send_msg(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    open_kfid = body.get("open_kfid")
    touser = body.get("touser")
    if open_kfid not in state.kf_accounts:
        raise ApiError(95004)
    if not touser or ("msgid" in body and not KF_MSGID.fullmatch(str(body["msgid"]))):
        raise ApiError(40058)
    if body.get("msgtype") == "text":
        _check_text((body.get("text") or {}).get("content"))
    errcode = state.kf_reply_errcode(open_kfid, touser)
    if errcode:
        raise ApiError(errcode)
    msgid = str(body.get("msgid") or secrets.token_hex(16))
    state.sent_kf_messages.append({**body, "msgid": msgid})
    return ok(msgid=msgid)


def _add_msg_template(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    """fail_list: customers unknown, or not followed by ``sender`` when one is given."""
    if not (body.get("text") or body.get("attachments")):
        raise ApiError(40058)
    if "text" in body:
        _check_text(body["text"].get("content") if isinstance(body["text"], dict) else None, TEMPLATE_TEXT_MAX_BYTES)
    msgid, fail_list = state.add_msg_template(body)
    return ok(fail_list=fail_list, msgid=msgid)


def _group_msg_limit(body: dict[str, Any]) -> int:
    """WeCom's page size rule: "最大值1000，默认值500"; anything else is 40058."""
    limit = body.get("limit", 500)
    if not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise ApiError(40058)
    return limit


def _get_groupmsg_task(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    """Each sender's status for one group send: 0 not yet confirmed, 2 sent."""
    msgid = body.get("msgid")
    if not msgid:
        raise ApiError(41046)
    limit = _group_msg_limit(body)
    try:
        task_list, next_cursor = state.groupmsg_task_page(str(msgid), body.get("cursor"), limit)
    except KeyError as exc:
        raise ApiError(41047) from exc
    except ValueError as exc:
        raise ApiError(40058) from exc
    return ok(next_cursor=next_cursor, task_list=task_list)


def _get_groupmsg_send_result(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    """Each customer's result in one sender's task: 0 not sent, 1 sent, 2 not a friend, 3 limit reached."""
    msgid, userid = body.get("msgid"), body.get("userid")
    if not msgid:
        raise ApiError(41046)
    if not userid:
        raise ApiError(41009)
    if userid not in state.staff:
        raise ApiError(60111)
    limit = _group_msg_limit(body)
    try:
        send_list, next_cursor = state.groupmsg_send_result_page(str(msgid), str(userid), body.get("cursor"), limit)
    except KeyError as exc:
        raise ApiError(41047) from exc
    except ValueError as exc:
        raise ApiError(40058) from exc
    return ok(next_cursor=next_cursor, send_list=send_list)


def _add_contact_way(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    """A 「联系我」 code: type 1 (one rep) or 2 (several), scene 1 (button) or 2 (QR code)."""
    if errcode := state.contact_way_errcode(body):
        raise ApiError(errcode)
    way = state.add_contact_way(body)
    return ok(config_id=way["config_id"], **({"qr_code": way["qr_code"]} if "qr_code" in way else {}))


def _contact_way(state: SimulatorState, body: dict[str, Any]) -> dict[str, Any]:
    config_id = body.get("config_id")
    if not config_id:
        raise ApiError(41043)
    way = state.contact_ways.get(str(config_id))
    if way is None:
        raise ApiError(41044)
    return way


def _del_contact_way(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    way = _contact_way(state, body)
    del state.contact_ways[way["config_id"]]
    return ok()


def _send_welcome_msg(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    """Once per code, within 20 s of the event; text and/or up to 9 attachments."""
    code = body.get("welcome_code")
    if not code:
        raise ApiError(41049)
    if not (body.get("text") or body.get("attachments")):
        raise ApiError(40058)
    if "text" in body:
        _check_text(body["text"].get("content") if isinstance(body["text"], dict) else None, TEMPLATE_TEXT_MAX_BYTES)
    if errcode := state.welcome_errcode(str(code)):
        raise ApiError(errcode)
    entry = state.welcome_codes[str(code)]
    state.sent_welcome_msgs.append({**body, "userid": entry.userid, "external_userid": entry.external_userid})
    return ok()


def _finance_getchatdata(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    """Stand-in for the finance SDK's GetChatData(seq, limit): encrypted records after ``seq``."""
    if state.chat_archive is None:
        raise ApiError(48002)
    seq, limit = body.get("seq", 0), body.get("limit", 100)
    if not isinstance(seq, int) or not isinstance(limit, int):
        raise ApiError(40058)
    try:
        return ok(chatdata=state.chat_archive.page(seq, limit))
    except ValueError as exc:
        raise ApiError(40058) from exc


CORE_APIS: dict[str, Api] = {
    "gettoken": Api("GET", _gettoken, needs_token=False),
    "externalcontact/get": Api("GET", _external_contact_get),
    "message/send": Api("POST", _message_send),
    "kf/sync_msg": Api("POST", _kf_sync_msg),
    "kf/send_msg": Api("POST", _kf_send_msg),
    "externalcontact/add_msg_template": Api("POST", _add_msg_template),
    "externalcontact/get_groupmsg_task": Api("POST", _get_groupmsg_task),
    "externalcontact/get_groupmsg_send_result": Api("POST", _get_groupmsg_send_result),
    "externalcontact/add_contact_way": Api("POST", _add_contact_way),
    "externalcontact/del_contact_way": Api("POST", _del_contact_way),
    "externalcontact/send_welcome_msg": Api("POST", _send_welcome_msg),
    "sim/finance/getchatdata": Api("POST", _finance_getchatdata),
}

# Each area of the API keeps its endpoints in its own module and is listed here once.
APIS: dict[str, Api] = {
    **CORE_APIS,
    **directory.APIS,
    **contacts.APIS,
    **transfers.APIS,
    **kf_state.APIS,
    **groups.APIS,
    **tags.APIS,
    **oauth.APIS,
}


def _endpoint(name: str, api: Api) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE_KEY]
        fault = state.take_fault(name)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.http_status is not None:
                return web.Response(status=fault.http_status, text=f"simulated HTTP {fault.http_status}")
            if fault.errcode is not None:
                return _error(fault.errcode)
        try:
            if api.needs_token and (errcode := state.token_errcode(request.query.get("access_token"))):
                raise ApiError(errcode)
            body: dict[str, Any] = {}
            if api.method == "POST":
                try:
                    body = json.loads(await request.read())
                except ValueError as exc:
                    raise ApiError(40058) from exc
                if not isinstance(body, dict):
                    raise ApiError(40058)
            return web.json_response(api.handler(state, request, body))
        except ApiError as exc:
            return _error(exc.errcode)

    return handle


def _error(errcode: int) -> web.Response:
    return web.json_response({"errcode": errcode, "errmsg": errmsg_for(errcode)})


async def _sim_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].snapshot(), dumps=lambda o: json.dumps(o, ensure_ascii=False))


class SimulatorAccessLogger(AbstractAccessLogger):
    """Access log without query strings: they carry corpsecret and access_token."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %.3fs", request.method, request.path, response.status, time)


def create_simulator_app(state: SimulatorState) -> web.Application:
    """An aiohttp app serving the fake API under /cgi-bin/, open.weixin.qq.com's OAuth page, the JS-SDK
    double under /sim/jssdk/ and a JSON view at /sim/state."""
    app = web.Application()
    app[STATE_KEY] = state
    for name, api in APIS.items():
        app.router.add_route(api.method, f"/cgi-bin/{name}", _endpoint(name, api))
    app.router.add_get("/sim/state", _sim_state)
    app.add_routes(oauth.routes(STATE_KEY))  # the OAuth redirect and the JS-SDK double, as a browser meets them
    return app
