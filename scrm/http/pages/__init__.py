"""The H5 pages WeCom opens: the chat sidebar (`sidebar`), the managers' 看板 (`dashboard`), and what they
share: who is looking (`identity`), the homepage by role, the JS-SDK's agentConfig signature, the static
files under /h5/static/, and the page shell (`page_response`).

Every page module exports `routes()`; scrm/app.py adds them in the web role. A page's words come from
config/templates_pages.toml and reach its script as data (a JSON block), which the script puts on the
page with textContent, never as HTML.
"""

from __future__ import annotations

import html
import json
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from config.templates import all_templates, render
from connectors.wecom.client import agent_config_signature
from connectors.wecom.errors import WeComError
from scrm import keys
from scrm.http.pages.identity import Viewer, api_error, public_origin, security_headers, viewer_for_api, viewer_for_page

STATIC_DIR = Path(__file__).with_name("static")
MANAGER_ROLES = ("manager", "admin")
# the JS-SDK calls a page may register for (wx.agentConfig's jsApiList)
AGENT_JS_APIS = ("getCurExternalContact",)


def routes() -> list[web.AbstractRouteDef]:
    return [web.get("/h5/", home), web.get("/h5/api/agent-config", agent_config),
            web.static("/h5/static/", STATIC_DIR, append_version=False)]


async def home(request: web.Request) -> web.StreamResponse:
    """The app's homepage (应用主页): managers and admins land on the 看板, everyone else on their customers."""
    viewer = await viewer_for_page(request)
    raise web.HTTPFound("/h5/dashboard" if viewer.role in MANAGER_ROLES else "/h5/sidebar")


async def agent_config(request: web.Request) -> web.Response:
    """What the page passes to wx.agentConfig for its own URL (`?url=`, without "#"): the app's ticket
    (cached and shared, connectors.wecom.client.agent_ticket) signed with a fresh nonce and time.
    Only this site's /h5/ pages are signed."""
    await viewer_for_api(request)
    url = request.query.get("url", "").split("#", 1)[0]
    parts, origin = urlsplit(url), public_origin(request)
    if (parts.scheme, parts.netloc) != (origin.scheme, origin.raw_authority) or not parts.path.startswith("/h5/"):
        raise api_error(400, render("pages.refusals.bad_url"))
    settings = request.app[keys.SETTINGS]
    try:
        ticket = await request.app[keys.WECOM].agent_ticket()
    except WeComError:
        raise api_error(503, render("pages.refusals.wecom_unavailable"))
    nonce, timestamp = secrets.token_hex(8), int(time.time())
    return web.json_response({"corpid": settings.wecom.corp_id, "agentid": settings.wecom.agent_id,
                              "timestamp": timestamp, "nonceStr": nonce, "jsApiList": list(AGENT_JS_APIS),
                              "signature": agent_config_signature(ticket, nonce, timestamp, url)},
                             headers={"Cache-Control": "no-store"})


def words(prefix: str) -> dict[str, str]:
    """Every template under `prefix` (e.g. "pages.sidebar"), by its key below it, for a page's script."""
    start = f"{prefix}."
    return {key[len(start):]: text for key, text in all_templates().items() if key.startswith(start)}


def page_response(request: web.Request, viewer: Viewer, *, title: str, page: str, data: dict[str, Any],
                  jssdk: bool = False, styles: tuple[str, ...] = ()) -> web.Response:
    """A page's HTML shell: page.css (+ `styles`), the CSRF token, `data` as a JSON block the page's own
    script (/h5/static/{page}.js) reads, and the JS-SDK when the page talks to the WeCom client."""
    settings = request.app[keys.SETTINGS]
    payload = json.dumps({"viewer": {"userid": viewer.userid, "name": viewer.name, "role": viewer.role}, **data},
                         ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    links = "".join(f'<link rel="stylesheet" href="/h5/static/{html.escape(s, quote=True)}">' for s in styles)
    scripts = "".join(f'<script src="{html.escape(u, quote=True)}"></script>'
                      for u in (settings.pages.jssdk_urls if jssdk else ()))
    body = (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">'
            f'<meta name="csrf-token" content="{html.escape(viewer.csrf_token, quote=True)}">'
            f'<title>{html.escape(title)}</title><link rel="stylesheet" href="/h5/static/page.css">{links}</head>'
            f'<body data-page="{html.escape(page, quote=True)}"><main id="app" aria-live="polite"></main>'
            f'<script type="application/json" id="page-data">{payload}</script>{scripts}'
            f'<script src="/h5/static/{html.escape(page, quote=True)}.js"></script></body></html>')
    return web.Response(text=body, content_type="text/html", headers=security_headers(settings))
