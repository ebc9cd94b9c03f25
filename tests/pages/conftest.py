"""The service's pages as a browser meets them: logged in through the simulator's OAuth, the sample
company's directory synced (so its members are staff), on the fixed clock of the chat fixture."""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiohttp
import pytest
from yarl import URL

from crm_core.db import utcnow
from scrm import keys
from scrm.http.pages.identity import SESSION_COOKIE
from tests.support.chat import Chat, sync_directory
from tests.support.dashboard import seed_deals
from tests.support.service import use_service_env


@dataclass
class Browser:
    """One browser (its own cookie jar) in front of the service, inside the WeCom client the simulator plays."""

    chat: Chat
    http: aiohttp.ClientSession

    @property
    def sim(self):
        return self.chat.service.sim

    def url(self, path: str) -> URL:
        return self.chat.service.client.make_url(path)

    async def open(self, path: str, *, as_member: str | None = None, max_hops: int = 6) -> tuple[aiohttp.ClientResponse, list[str]]:
        """GET `path` following redirects (service → WeCom's authorize → service) as the WeCom client
        signed in as `as_member` would; the final answer and the URLs visited."""
        if as_member is not None:
            self.sim.web.member = as_member
        url, visited = self.url(path), []
        for _ in range(max_hops):
            visited.append(str(url))
            resp = await self.http.get(url, allow_redirects=False)
            await resp.read()
            if resp.status not in (301, 302, 303, 307):
                return resp, visited
            url = URL(resp.headers["Location"].split("#", 1)[0])
            if not url.is_absolute():
                url = self.url(str(url))
        raise AssertionError(f"too many redirects: {visited}")

    csrf_token: str = ""

    async def login(self, userid: str, path: str = "/h5/sidebar") -> aiohttp.ClientResponse:
        """Open `path` as `userid`, through WeCom's OAuth; keeps the page's CSRF token for `post`."""
        resp, _ = await self.open(path, as_member=userid)
        html = await resp.text()
        marker = '<meta name="csrf-token" content="'
        if marker in html:
            self.csrf_token = html.split(marker, 1)[1].split('"', 1)[0]
        return resp

    async def get(self, path: str, **params) -> tuple[int, dict]:
        resp = await self.http.get(self.url(path), params=params)
        return resp.status, await resp.json()

    async def post(self, path: str, body, *, csrf: str | None = None) -> tuple[int, dict]:
        """POST JSON the way the page's script does, with the page's CSRF token unless `csrf` says otherwise."""
        headers = {"X-CSRF-Token": self.csrf_token if csrf is None else csrf}
        data = body if isinstance(body, (str, bytes)) else json.dumps(body, ensure_ascii=False)
        resp = await self.http.post(self.url(path), data=data, headers={"Content-Type": "application/json", **headers})
        return resp.status, await resp.json()

    def session_cookie(self) -> str | None:
        found = [c for c in self.http.cookie_jar if c.key == SESSION_COOKIE]
        return found[0].value if found else None


@pytest.fixture
async def pages(chat: Chat) -> Chat:
    """The chat and the pages on one clock (the pages read the service's, the real one)."""
    chat.set_clock(utcnow().replace(microsecond=0))
    await sync_directory(chat.service.app[keys.SESSIONS], chat.service.sim)
    return chat


@pytest.fixture
async def browser(pages: Chat):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield Browser(pages, http)


@pytest.fixture
async def other_browser(pages: Chat):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield Browser(pages, http)


@pytest.fixture
async def seeded(pages: Chat, monkeypatch) -> Chat:
    """The pages' service with deals that have a history and this month's targets (tests/support/dashboard.py),
    its settings in the environment so `scrm report` in the same test reads the same database."""
    use_service_env(monkeypatch, pages.service)
    await seed_deals(pages)
    return pages
