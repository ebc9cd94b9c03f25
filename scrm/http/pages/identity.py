"""Who is looking at a page: WeCom's OAuth2 web authorization once, then a signed session cookie.

A page asked for without a valid session sends the browser to WeCom's authorize URL
(构造网页授权链接, https://developer.work.weixin.qq.com/document/path/91022) with `redirect_uri` the very page
and a random `state` that is also kept in a short-lived cookie of this browser (login CSRF: a code that
comes back with another browser's state, or with none, is refused). WeCom sends the member back with
`code`, which `auth/getuserinfo` (获取访问用户身份, https://developer.work.weixin.qq.com/document/path/91023)
turns into their userid: the code works once and for 5 minutes, anything else is 40029 invalid code; a
visitor who is not a member of the corp gets an `openid` instead of a userid and is refused. Only staff
the directory knows and keeps active get a session.

The session cookie holds the staff id and a CSRF token, signed and dated with itsdangerous (HMAC-SHA1
over the payload and timestamp; a cookie older than SCRM_PAGE_SESSION_SECONDS or signed with another
secret is no session). It is HttpOnly (page scripts never see it), SameSite=Lax (WeCom's redirect back
is a cross-site top-level GET, which Strict would strip, looping the login) and Secure on https. JSON
calls that change something must also send the token in `X-CSRF-Token`; pages read it from
`<meta name="csrf-token">`. Inside the WeCom client the OAuth round trip is silent (scope snsapi_base),
so a short session costs the member nothing.

Refusals are pages (or JSON for /h5/api/) with a Chinese message from config/templates_pages.toml;
none of them changes anything but the audit trail.
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web
from itsdangerous import BadData, URLSafeTimedSerializer
from yarl import URL

from config.settings import Settings
from config.templates import render
from connectors.wecom.errors import WeComError
from crm_core.audit import AuditService
from crm_core.models import Staff
from crm_core.staff import StaffService
from scrm import keys

log = logging.getLogger(__name__)

SESSION_COOKIE = "scrm_page_session"
STATE_COOKIE = "scrm_page_oauth"
COOKIE_PATH = "/h5/"
STATE_SECONDS = 600  # one trip to WeCom and back; its code lives 5 minutes
CODE_MAX_BYTES = 512  # "code长度最大为512字节"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Viewer:
    staff_id: int
    userid: str
    name: str
    role: str
    csrf_token: str


class PageRefusal(Exception):
    """A reason this browser gets no page: `status` and a template under pages.refusals."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def page_secret(settings: Settings) -> str:
    """SCRM_PAGE_SECRET, or the one generated into DATA_DIR/page_secret on first start and kept there."""
    if settings.pages.secret:
        return settings.pages.secret
    path = Path(settings.data_dir) / "page_secret"
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process of this install wrote it first
        return path.read_text(encoding="ascii").strip()
    secret = secrets.token_hex(32)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secret + "\n")
    log.info("generated the pages' session secret into %s (set SCRM_PAGE_SECRET to share one across hosts)", path)
    return secret


async def viewer_for_page(request: web.Request) -> Viewer:
    """The member looking at this page; without a session, off to WeCom's OAuth and back here (HTTPFound).
    A refusal answers an HTML page and raises its HTTP error."""
    try:
        if "code" in request.query or "state" in request.query:
            raise await _finish_login(request)
        viewer = await _session_viewer(request)
        if viewer is None:
            raise _start_login(request)
        return viewer
    except PageRefusal as refusal:
        raise refusal_page(request, refusal.status, refusal.reason) from None


async def viewer_for_api(request: web.Request) -> Viewer:
    """The member behind a JSON call: 401 without a valid session (the page logs in again), 403 for a
    write without the session's X-CSRF-Token."""
    try:
        viewer = await _session_viewer(request)
    except PageRefusal as refusal:
        raise api_error(refusal.status, render(f"pages.refusals.{refusal.reason}")) from None
    if viewer is None:
        raise api_error(401, render("pages.refusals.session_expired"), login=True)
    if request.method in UNSAFE_METHODS:
        given = request.headers.get(CSRF_HEADER, "")
        if not (given.isascii() and hmac.compare_digest(given.encode(), viewer.csrf_token.encode())):
            raise api_error(403, render("pages.refusals.csrf"))
    return viewer


def api_error(status: int, message: str, **extra: object) -> web.HTTPException:
    """A JSON refusal of a /h5/api/ call: {"error": message, ...}."""
    cls = {400: web.HTTPBadRequest, 401: web.HTTPUnauthorized, 403: web.HTTPForbidden, 404: web.HTTPNotFound,
           409: web.HTTPConflict, 429: web.HTTPTooManyRequests, 503: web.HTTPServiceUnavailable}[status]
    return cls(text=json.dumps({"error": str(message), **extra}, ensure_ascii=False), content_type="application/json")


def refusal_page(request: web.Request, status: int, reason: str) -> web.HTTPException:
    """A small page saying why, with a link to open the page afresh (which starts a new login)."""
    cls = {400: web.HTTPBadRequest, 403: web.HTTPForbidden, 404: web.HTTPNotFound,
           503: web.HTTPServiceUnavailable}[status]
    title = html.escape(str(render("pages.refusals.title")))
    message = html.escape(str(render(f"pages.refusals.{reason}")))
    retry = html.escape(str(render("pages.refusals.retry")))
    again = html.escape(str(_clean_url(request).relative()), quote=True)
    body = (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
            f'<link rel="stylesheet" href="/h5/static/page.css"></head><body class="refusal">'
            f'<main><h1>{title}</h1><p data-reason="{html.escape(reason)}">{message}</p>'
            f'<p><a href="{again}">{retry}</a></p></main></body></html>')
    exc = cls(text=body, content_type="text/html")
    exc.headers.update(security_headers(request.app[keys.SETTINGS]))
    if reason in ("staff_inactive", "not_member"):
        exc.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return exc


def security_headers(settings: Settings) -> dict[str, str]:
    """What every page answers with: scripts only from here and the JS-SDK's origins, no inline code."""
    origins = " ".join(sorted({f"{URL(u).scheme}://{URL(u).raw_authority}" for u in settings.pages.jssdk_urls}))
    policy = (f"default-src 'none'; script-src 'self' {origins}; connect-src 'self' {origins}; "
              "style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'self'")
    return {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}


def public_origin(request: web.Request) -> URL:
    """Where WeCom sends members back to: SCRM_PAGE_BASE_URL, else the origin this request came to."""
    base = request.app[keys.SETTINGS].pages.base_url
    return URL(base) if base else request.url.origin()


# -- the session cookie -------------------------------------------------------------------------------

def _serializer(request: web.Request, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app[keys.PAGE_SECRET], salt=f"scrm.pages.{purpose}")


async def _session_viewer(request: web.Request) -> Viewer | None:
    """The signed session's staff member, None without a valid cookie; PageRefusal when they left."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    settings = request.app[keys.SETTINGS]
    try:
        payload = _serializer(request, "session").loads(raw, max_age=settings.pages.session_seconds)
    except BadData:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("s"), int) or not isinstance(payload.get("c"), str):
        return None
    async with request.app[keys.SESSIONS]() as session:
        staff = await session.get(Staff, payload["s"])
        if staff is None or not staff.active:
            AuditService(session).record(actor=staff.userid if staff else f"staff:{payload['s']}",
                                         action="page.session_denied", detail=request.path)
            await session.commit()
            raise PageRefusal(403, "staff_inactive")
        return Viewer(staff.id, staff.userid, staff.name, staff.role, payload["c"])


def _start_login(request: web.Request) -> web.HTTPFound:
    """Off to WeCom's authorize URL, with this browser's state kept in a cookie to compare on return."""
    settings = request.app[keys.SETTINGS]
    state = secrets.token_hex(16)  # "a-zA-Z0-9的参数值，长度不可超过128个字节"
    redirect_uri = public_origin(request).join(_clean_url(request).relative())
    query = urlencode({"appid": settings.wecom.corp_id, "redirect_uri": str(redirect_uri), "response_type": "code",
                       "scope": "snsapi_base", "state": state, "agentid": settings.wecom.agent_id})
    found = web.HTTPFound(f"{settings.wecom.oauth_url}?{query}#wechat_redirect")
    found.set_cookie(STATE_COOKIE, _serializer(request, "oauth-state").dumps(state), max_age=STATE_SECONDS,
                     path=COOKIE_PATH, httponly=True, samesite="Lax", secure=_secure(request))
    found.headers["Cache-Control"] = "no-store"
    return found


async def _finish_login(request: web.Request) -> web.HTTPFound:
    """WeCom sent the member back: check the state against this browser's, redeem the code, open a
    session, and show the page at its own URL (so the code never stays in history or a Referer)."""
    code, state = request.query.get("code", ""), request.query.get("state", "")
    kept = request.cookies.get(STATE_COOKIE, "")
    try:
        expected = _serializer(request, "oauth-state").loads(kept, max_age=STATE_SECONDS) if kept else None
    except BadData:
        expected = None
    if not (isinstance(expected, str) and state.isascii() and hmac.compare_digest(state.encode(), expected.encode())):
        raise PageRefusal(400, "bad_state")
    if not code or len(code.encode()) > CODE_MAX_BYTES:
        raise PageRefusal(400, "bad_code")
    try:
        answer = await request.app[keys.WECOM].oauth_user(code)
    except WeComError as exc:
        log.info("auth/getuserinfo refused a page login: %s", exc)
        raise PageRefusal(503, "wecom_unavailable") if exc.retryable else PageRefusal(403, "bad_code")
    userid = answer.get("userid")
    async with request.app[keys.SESSIONS]() as session:
        if not isinstance(userid, str) or not userid:  # an openid: someone outside the corp
            AuditService(session).record(actor="page", action="page.login_denied", detail="not a member of the corp")
            await session.commit()
            raise PageRefusal(403, "not_member")
        staff = await StaffService(session).get_by_userid(userid)
        if staff is None or not staff.active:
            AuditService(session).record(actor=userid, action="page.login_denied",
                                         detail="not in the directory" if staff is None else "inactive")
            await session.commit()
            raise PageRefusal(403, "staff_inactive")
        AuditService(session).record(actor=userid, action="page.login", detail=request.path)
        await session.commit()
        staff_id = staff.id
    found = web.HTTPFound(str(_clean_url(request).relative()))
    token = _serializer(request, "session").dumps({"s": staff_id, "c": secrets.token_urlsafe(24)})
    found.set_cookie(SESSION_COOKIE, token, max_age=int(request.app[keys.SETTINGS].pages.session_seconds),
                     path=COOKIE_PATH, httponly=True, samesite="Lax", secure=_secure(request))
    found.del_cookie(STATE_COOKIE, path=COOKIE_PATH)
    found.headers["Cache-Control"] = "no-store"
    return found


def _clean_url(request: web.Request) -> URL:
    """This page's URL without the OAuth parameters WeCom appended."""
    query = [(k, v) for k, v in request.url.query.items() if k not in ("code", "state")]
    return request.url.with_query(query)


def _secure(request: web.Request) -> bool:
    return public_origin(request).scheme == "https"
