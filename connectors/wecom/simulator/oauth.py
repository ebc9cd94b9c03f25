"""The WeCom client in front of a page: OAuth2 web authorization, the JS-SDK's app ticket, and a test
double of the JS-SDK itself, so pages are tested and demonstrated offline.

Who the client is signed in as (`WebClient.member`) and which customer chat's toolbar opened the page
(`WebClient.open_chat`) are set by the test or the demo, as a person would by opening WeCom.

- GET /connect/oauth2/authorize (open.weixin.qq.com)   https://developer.work.weixin.qq.com/document/path/91022
  appid=CORPID, redirect_uri (urlencoded), response_type=code, scope snsapi_base / snsapi_privateinfo, state
  ("a-zA-Z0-9的参数值，长度不可超过128个字节"), agentid ("snsapi_privateinfo时必填"). The member is sent to
  redirect_uri?code=CODE&state=STATE ("code长度最大为512字节"). Opened outside the client (no member), WeCom
  shows a page asking to open the link in 企业微信.
- auth/getuserinfo (GET ?code=)   https://developer.work.weixin.qq.com/document/path/91023
  "code只能使用一次，5分钟未被使用自动过期"; a member of the corp (whether or not in the app's visible range)
  gets `userid`, anyone else `openid` (and `external_userid` when they are a customer of the corp); "跳转的
  域名须完全匹配access_token对应应用的可信域名，否则会返回50001错误". Errcodes (全局错误码,
  https://developer.work.weixin.qq.com/document/path/90313): 40029 invalid code, 41008 missing code,
  50001 redirect_uri 未授权.
- ticket/get?type=agent_config   https://developer.work.weixin.qq.com/document/path/90506 (获取应用的jsapi_ticket)
  answers `ticket` and `expires_in` 7200; "一小时内，一个企业最多可获取400次，且单个应用不能超过100次"
  (45009 beyond). An earlier ticket stays valid until it expires.
- The JS-SDK double (/sim/jssdk/jweixin.js): `wx.agentConfig` sends its fields and the page URL here, where
  the signature is checked against the tickets issued (JS-SDK使用权限签名算法, document/path/90506: sha1 of
  jsapi_ticket=…&noncestr=…&timestamp=…&url=…, the URL without "#"); `wx.invoke('getCurExternalContact')`
  (获取当前外部联系人userid, https://developer.work.weixin.qq.com/document/path/91799; the same page for 代开发 apps,
  document/path/96918, lists its errMsg values) answers the open chat's
  customer, "getCurExternalContact:fail no permission" before a good agentConfig (the API "必须使用应用身份
  进行注册") and "…:fail without context of external contact" outside a customer chat's toolbar.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from connectors.wecom.simulator.api import Api, ApiError, Reply, ok

if TYPE_CHECKING:
    from connectors.wecom.simulator.state import SimulatorState

CODE_TTL = 300  # "5分钟未被使用自动过期"
TICKET_TTL = 7200
TICKETS_PER_HOUR = 100  # per app
STATE_PARAM = re.compile(r"[a-zA-Z0-9]{0,128}")
SCOPES = ("snsapi_base", "snsapi_privateinfo")
JSSDK_DOUBLE = Path(__file__).with_name("jssdk_double.js")


@dataclass
class OAuthCode:
    member: str
    issued_at: float
    redirect_host: str
    used: bool = False


@dataclass
class WebClient:
    """The WeCom client a page is opened in, and what WeCom issued to pages."""

    member: str | None = None  # the userid signed in (or a WeChat user's external_userid); None: not in WeCom
    open_chat: str | None = None  # external_userid of the chat whose toolbar opened the page; None: elsewhere
    trusted_domain: str | None = None  # the app's 可信域名 (host[:port]); None: any
    codes: dict[str, OAuthCode] = field(default_factory=dict)
    tickets: dict[str, float] = field(default_factory=dict)  # agent ticket -> expires at
    ticket_calls: list[float] = field(default_factory=list)
    agent_configs: list[dict[str, Any]] = field(default_factory=list)  # every wx.agentConfig, with its outcome

    def issue_code(self, state: SimulatorState, redirect_host: str) -> str:
        code = secrets.token_urlsafe(48)  # 64 characters; WeCom's are at most 512 bytes
        self.codes[code] = OAuthCode(str(self.member), state.now(), redirect_host)
        return code

    def redeem(self, state: SimulatorState, code: str) -> str:
        """The member behind `code`, using it up; ApiError 40029 for an unknown, used or expired code."""
        entry = self.codes.get(code)
        if entry is None or entry.used or state.now() - entry.issued_at > CODE_TTL:
            raise ApiError(40029)
        if self.trusted_domain is not None and entry.redirect_host != self.trusted_domain:
            raise ApiError(50001)
        entry.used = True
        return entry.member

    def issue_ticket(self, state: SimulatorState) -> str:
        now = state.now()
        self.ticket_calls = [t for t in self.ticket_calls if now - t < 3600]
        if len(self.ticket_calls) >= TICKETS_PER_HOUR:
            raise ApiError(45009)
        self.ticket_calls.append(now)
        ticket = secrets.token_urlsafe(64)
        self.tickets[ticket] = now + TICKET_TTL
        return ticket

    def signature_valid(self, state: SimulatorState, fields: dict[str, Any]) -> bool:
        page = str(fields.get("url", "")).split("#", 1)[0]
        for ticket, expires_at in self.tickets.items():
            if state.now() >= expires_at:
                continue
            text = f"jsapi_ticket={ticket}&noncestr={fields.get('nonceStr')}&timestamp={fields.get('timestamp')}&url={page}"
            if secrets.compare_digest(hashlib.sha1(text.encode()).hexdigest(), str(fields.get("signature", ""))):
                return True
        return False


# -- /cgi-bin/ APIs ------------------------------------------------------------------------------------

def _getuserinfo(state: SimulatorState, request: web.Request, _: dict[str, Any]) -> Reply:
    code = request.query.get("code")
    if not code:
        raise ApiError(41008)
    member = state.web.redeem(state, code)
    if member in state.staff:
        return ok(userid=member)
    answer = ok(openid="o" + hashlib.sha256(f"{state.corp_id}:{member}".encode()).hexdigest()[:27])
    if member in state.external_contacts:
        answer["external_userid"] = member
    return answer


def _ticket_get(state: SimulatorState, request: web.Request, _: dict[str, Any]) -> Reply:
    if request.query.get("type") != "agent_config":
        raise ApiError(40058)
    return ok(ticket=state.web.issue_ticket(state), expires_in=TICKET_TTL)


APIS: dict[str, Api] = {
    "auth/getuserinfo": Api("GET", _getuserinfo),
    "ticket/get": Api("GET", _ticket_get),
}


# -- what the browser sees -----------------------------------------------------------------------------

def routes(state_key: web.AppKey[SimulatorState]) -> list[web.RouteDef]:
    """The browser's side: `state_key` is the server's, passed in (the server imports this module)."""
    async def authorize(request: web.Request) -> web.StreamResponse:
        return _authorize(request.app[state_key], request)

    async def double(request: web.Request) -> web.StreamResponse:
        script = JSSDK_DOUBLE.read_text(encoding="utf-8").replace("__SIMULATOR_ORIGIN__", json.dumps(
            f"{request.scheme}://{request.host}"))
        return web.Response(text=script, content_type="application/javascript", headers={"Cache-Control": "no-store"})

    async def agent_config(request: web.Request) -> web.StreamResponse:
        return _cors(_agent_config(request.app[state_key], await _json(request)))

    async def invoke(request: web.Request) -> web.StreamResponse:
        return _cors(_invoke(request.app[state_key], await _json(request)))

    return [web.get("/connect/oauth2/authorize", authorize), web.get("/sim/jssdk/jweixin.js", double),
            web.post("/sim/jssdk/agent_config", agent_config), web.post("/sim/jssdk/invoke", invoke)]


def _authorize(state: SimulatorState, request: web.Request) -> web.StreamResponse:
    query = request.query
    redirect_uri, state_param = query.get("redirect_uri", ""), query.get("state", "")
    target = urlsplit(redirect_uri)
    if (query.get("appid") != state.corp_id or query.get("response_type") != "code"
            or query.get("scope") not in SCOPES or target.scheme not in ("http", "https") or not target.netloc
            or not STATE_PARAM.fullmatch(state_param)
            or (query.get("agentid") and query["agentid"] != str(state.agent_id))
            or (query.get("scope") == "snsapi_privateinfo" and not query.get("agentid"))):
        return _page("参数错误", "请检查链接参数（appid、redirect_uri、scope、state、agentid）。", status=400)
    if state.web.member is None:
        return _page("请在企业微信客户端打开链接", "该链接需要在企业微信中打开。")
    code = state.web.issue_code(state, target.netloc)
    joiner = "&" if target.query else "?"
    raise web.HTTPFound(f"{redirect_uri}{joiner}{urlencode({'code': code, 'state': state_param})}")


def _agent_config(state: SimulatorState, fields: dict[str, Any]) -> dict[str, Any]:
    """What WeCom's client answers wx.agentConfig (JS-SDK 常见错误, document/path/90509)."""
    host = urlsplit(str(fields.get("url", ""))).netloc
    if str(fields.get("corpid")) != state.corp_id:
        answer = {"errMsg": "agentConfig:fail", "errCode": 40013, "err_Info": "invalid corpId"}
    elif str(fields.get("agentid")) != str(state.agent_id):
        answer = {"errMsg": "agentConfig:fail", "errCode": 40056, "err_Info": "invalid agentid"}
    elif state.web.trusted_domain is not None and host != state.web.trusted_domain:
        answer = {"errMsg": "agentConfig:fail", "errCode": 80001, "err_Info": "not match any reliable domain"}
    elif not state.web.signature_valid(state, fields):
        answer = {"errMsg": "agentConfig:fail", "errCode": 40093, "err_Info": "invalid signature"}
    else:
        answer = {"errMsg": "agentConfig:ok"}
    state.web.agent_configs.append({"url": fields.get("url"), "jsApiList": fields.get("jsApiList"), **answer})
    return answer


def _invoke(state: SimulatorState, fields: dict[str, Any]) -> dict[str, Any]:
    name = str(fields.get("name", ""))
    if name != "getCurExternalContact":
        return {"err_msg": f"{name}:fail function not exist"}
    if not fields.get("configured") or name not in (fields.get("jsApiList") or []):
        return {"err_msg": f"{name}:fail no permission"}
    if state.web.open_chat is None:
        return {"err_msg": f"{name}:fail without context of external contact"}
    return {"err_msg": f"{name}:ok", "userId": state.web.open_chat}


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.text())
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _cors(answer: dict[str, Any]) -> web.Response:
    """The double is loaded by the page's own origin and posts here as text/plain (no preflight)."""
    return web.json_response(answer, headers={"Access-Control-Allow-Origin": "*"})


def _page(title: str, text: str, status: int = 200) -> web.Response:
    body = (f"<!doctype html><html lang=zh-CN><meta charset=utf-8><title>{title}</title>"
            f"<body><h1>{title}</h1><p>{text}</p></body></html>")
    return web.Response(text=body, content_type="text/html", status=status)
