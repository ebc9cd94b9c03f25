"""Async WeCom API client on aiohttp, with the access token shared by all processes via Redis.

Token life cycle: ``gettoken`` answers a token valid ``expires_in`` (7200) seconds; it is
stored under ``scrm:wecom:token:{corp_id}:{secret digest}`` with TTL ``expires_in - margin``,
so every process reads the same token and it is replaced a little before WeCom expires it.
Refreshes happen under a Redis lock and re-read the cache after taking it, so N callers
that all miss (or all see the token rejected) cause exactly one ``gettoken``. The secret
digest is part of the key because each WeCom app (self-built app, 客户联系, 微信客服) of
one corp has its own secret and its own token.

Retries: only a rejected token is retried here (one refresh, one retry). Rate limits and
unavailability are raised as typed errors (see ``errors``) for the caller's backoff.
The secret and tokens never reach logs or exception messages in clear. Redis errors are
not WeCom's and propagate unchanged.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from redis.exceptions import LockError

from connectors.wecom.errors import (
    UNEXPECTED_HTTP_ERRCODE,
    TokenExpiredError,
    WeComError,
    WeComUnavailableError,
    error_for,
)

if TYPE_CHECKING:
    import redis.asyncio

log = logging.getLogger(__name__)


def mask(secret: str) -> str:
    """Show only enough of a credential to tell two apart in a log line."""
    return f"{secret[:3]}***({len(secret)})" if secret else "<empty>"


class WeComClient:
    """One WeCom app's API (one corp id + secret); safe to share across tasks."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        api_base: str,
        corp_id: str,
        secret: str,
        redis: redis.asyncio.Redis,
        timeout: float = 10.0,
        token_refresh_margin: float = 300.0,
    ) -> None:
        self._http = http
        self._api_base = api_base.rstrip("/") + "/"
        self._corp_id = corp_id
        self._secret = secret
        self._redis = redis
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._margin = token_refresh_margin
        digest = hashlib.sha256(secret.encode()).hexdigest()[:16]
        self._token_key = f"scrm:wecom:token:{corp_id}:{digest}"
        self._lock_key = f"{self._token_key}:lock"
        self._lock_timeout = timeout + 5.0
        self._known_tokens: deque[str] = deque(maxlen=4)  # recent tokens, only to redact them

    def with_secret(self, secret: str) -> WeComClient:
        """The same corp's other app (通讯录同步, 客户联系, …): its own secret, token and cache key."""
        return WeComClient(self._http, api_base=self._api_base, corp_id=self._corp_id, secret=secret,
                           redis=self._redis, timeout=self._timeout.total or 10.0, token_refresh_margin=self._margin)

    async def access_token(self, *, force_refresh: bool = False) -> str:
        """Return the shared token; ``force_refresh`` replaces the one currently cached."""
        cached = await self._cached_token()
        if cached and not force_refresh:
            return cached
        return await self._refresh(stale=cached)

    async def call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Call ``{api_base}{path}`` with the token; return the body or raise a typed error.

        A rejected token (40014/42001/...) is refreshed once and the call retried once; a
        second rejection is raised as ``TokenExpiredError``.
        """
        api = path.strip("/")
        token = await self.access_token()
        try:
            return await self._call_with(token, method, api, params, json)
        except TokenExpiredError as exc:
            log.info("wecom %s rejected token %s (errcode %s); refreshing once", api, mask(token), exc.errcode)
            token = await self._refresh(stale=token)
            return await self._call_with(token, method, api, params, json)

    async def get_user(self, userid: str) -> dict[str, Any]:
        """Staff member by userid (user/get)."""
        return await self.call("GET", "user/get", params={"userid": userid})

    async def list_departments(self) -> list[dict[str, Any]]:
        """Every department in the app's visible range (department/list, one answer, not paged):
        id, name, parentid, order, department_leader. https://developer.work.weixin.qq.com/document/path/90208"""
        return list((await self.call("GET", "department/list")).get("department") or [])

    async def list_member_ids(self, *, cursor: str | None = None, limit: int = 10_000) -> dict[str, Any]:
        """One page of (userid, department) rows (user/list_id): ``dept_user`` and ``next_cursor``
        (empty on the last page); limit 1..10000. https://developer.work.weixin.qq.com/document/path/96067"""
        return await self.call("POST", "user/list_id", json={"limit": limit, **({"cursor": cursor} if cursor else {})})

    async def list_tags(self) -> list[dict[str, Any]]:
        """Every member tag (通讯录标签) the app may see (tag/list): tagid, tagname.
        https://developer.work.weixin.qq.com/document/path/90216"""
        return list((await self.call("GET", "tag/list")).get("taglist") or [])

    async def get_tag(self, tag_id: int) -> dict[str, Any]:
        """One member tag (tag/get): tagname, userlist (userid, name), partylist (department ids); only
        members in the app's visible range are listed. https://developer.work.weixin.qq.com/document/path/90213"""
        return await self.call("GET", "tag/get", params={"tagid": str(tag_id)})

    async def get_external_contact(self, external_userid: str) -> dict[str, Any]:
        """Customer profile and the staff who follow them (externalcontact/get)."""
        return await self.call("GET", "externalcontact/get", params={"external_userid": external_userid})

    async def send_app_message(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send an app message (message/send).

        WeCom answers errcode 0 even when some recipients are unknown or unlicensed; the
        returned dict then carries non-empty ``invaliduser`` / ``invalidparty`` /
        ``invalidtag`` / ``unlicenseduser`` strings ("a|b"). Only when *all* recipients are
        invalid does WeCom fail the call (81013, raised as ``InvalidUserError``).
        """
        if "agentid" not in payload:
            raise ValueError("message/send payload needs an agentid")
        return await self.call("POST", "message/send", json=payload)

    async def kf_sync_msg(
        self, *, token: str | None, cursor: str | None, open_kfid: str | None = None, limit: int = 1000
    ) -> dict[str, Any]:
        """Page through 微信客服 messages (kf/sync_msg); pass ``next_cursor`` back while ``has_more``."""
        body: dict[str, Any] = {"limit": limit}
        if token:
            body["token"] = token
        if cursor:
            body["cursor"] = cursor
        if open_kfid:
            body["open_kfid"] = open_kfid
        return await self.call("POST", "kf/sync_msg", json=body)

    async def kf_send_msg(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Reply to a 微信客服 customer (kf/send_msg); closed window -> ``KfWindowClosedError``."""
        return await self.call("POST", "kf/send_msg", json=payload)

    async def add_msg_template(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Create a group-send task a rep confirms (externalcontact/add_msg_template).

        The answer's ``fail_list`` names external_userids that cannot receive it.
        """
        return await self.call("POST", "externalcontact/add_msg_template", json=payload)

    async def add_contact_way(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a 「联系我」 code (externalcontact/add_contact_way); answers ``config_id`` and, for scene 2, ``qr_code``.

        body: type (1 one rep, 2 several), scene (1 mini-program button, 2 QR code), optional style,
        remark (≤ 30 chars), skip_verify (default true), state (≤ 30 chars, comes back in the
        add_external_contact event), user (userids; exactly one for type 1), party (type 2 only).
        """
        return await self.call("POST", "externalcontact/add_contact_way", json=body)

    async def get_contact_way(self, config_id: str) -> dict[str, Any]:
        """One configured 「联系我」 code (externalcontact/get_contact_way) under ``contact_way``."""
        return await self.call("POST", "externalcontact/get_contact_way", json={"config_id": config_id})

    async def update_contact_way(self, body: dict[str, Any]) -> dict[str, Any]:
        """Change a code's remark, state, users, ... in place (externalcontact/update_contact_way); needs ``config_id``."""
        return await self.call("POST", "externalcontact/update_contact_way", json=body)

    async def del_contact_way(self, config_id: str) -> dict[str, Any]:
        """Delete a code (externalcontact/del_contact_way): scanning it no longer adds anyone."""
        return await self.call("POST", "externalcontact/del_contact_way", json={"config_id": config_id})

    async def send_welcome_msg(self, body: dict[str, Any]) -> dict[str, Any]:
        """Greet a customer who just added a rep (externalcontact/send_welcome_msg).

        ``welcome_code`` comes from the add_external_contact event and works once, within 20 s:
        afterwards ``WelcomeCodeInvalidError``; ``WelcomeAlreadySentError`` when a welcome already arrived.
        """
        return await self.call("POST", "externalcontact/send_welcome_msg", json=body)

    async def get_groupmsg_task(self, msgid: str, *, cursor: str | None = None, limit: int = 1000) -> dict[str, Any]:
        """One page of a group send's per-sender tasks (externalcontact/get_groupmsg_task).

        ``task_list`` items: userid, status (0 not sent, 2 sent), send_time once sent. Pass a
        non-empty ``next_cursor`` back for the next page. An unknown or expired msgid is
        errcode 41047; asking right after creating the task may answer 41063 (still dispatching).
        """
        body = {"msgid": msgid, "limit": limit, **({"cursor": cursor} if cursor else {})}
        return await self.call("POST", "externalcontact/get_groupmsg_task", json=body)

    async def get_groupmsg_send_result(
        self, msgid: str, userid: str, *, cursor: str | None = None, limit: int = 1000
    ) -> dict[str, Any]:
        """One page of what each customer in ``userid``'s task got (externalcontact/get_groupmsg_send_result).

        ``send_list`` items: external_userid, userid, status (0 not sent, 1 sent, 2 not a friend,
        3 already got another group message), send_time when sent. Paged like ``get_groupmsg_task``.
        """
        body = {"msgid": msgid, "userid": userid, "limit": limit, **({"cursor": cursor} if cursor else {})}
        return await self.call("POST", "externalcontact/get_groupmsg_send_result", json=body)

    async def groupmsg_task_list(self, msgid: str) -> list[dict[str, Any]]:
        """Every sender's task of a group send, all pages."""
        return await self._all_pages("externalcontact/get_groupmsg_task", "task_list",
                                     lambda cursor: self.get_groupmsg_task(msgid, cursor=cursor))

    async def groupmsg_send_list(self, msgid: str, userid: str) -> list[dict[str, Any]]:
        """Every customer's result in ``userid``'s task, all pages."""
        return await self._all_pages("externalcontact/get_groupmsg_send_result", "send_list",
                                     lambda cursor: self.get_groupmsg_send_result(msgid, userid, cursor=cursor))

    async def _all_pages(
        self, api: str, field: str, fetch: Callable[[str | None], Awaitable[dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """Follow ``next_cursor`` until WeCom answers an empty one; a cursor seen twice would loop forever."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = await fetch(cursor)
            items.extend(page.get(field) or [])
            cursor = page.get("next_cursor") or None
            if cursor is None:
                return items
            if cursor in seen:
                raise WeComUnavailableError(f"next_cursor {cursor!r} came back twice", api)
            seen.add(cursor)

    async def _cached_token(self) -> str | None:
        value = await self._redis.get(self._token_key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def _refresh(self, *, stale: str | None) -> str:
        """Fetch a new token unless another caller replaced ``stale`` while we waited."""
        lock = self._redis.lock(
            self._lock_key, timeout=self._lock_timeout, sleep=0.05,
            blocking_timeout=self._lock_timeout, thread_local=False,
        )
        if not await lock.acquire():
            raise WeComUnavailableError("timed out waiting for the token refresh lock", "gettoken")
        try:
            cached = await self._cached_token()
            if cached and cached != stale:
                return cached
            token, expires_in = await self._fetch_token()
            ttl = max(int(expires_in - self._margin), 1)
            await self._redis.set(self._token_key, token, ex=ttl)
            log.info("wecom token refreshed for corp %s: %s, cached %ss", self._corp_id, mask(token), ttl)
            return token
        finally:
            try:
                await lock.release()
            except LockError:
                log.warning("wecom token lock expired before release (gettoken slower than %ss)",
                            self._lock_timeout)

    async def _fetch_token(self) -> tuple[str, float]:
        log.info("wecom gettoken for corp %s with secret %s", self._corp_id, mask(self._secret))
        body = await self._request("GET", "gettoken", {"corpid": self._corp_id, "corpsecret": self._secret}, None)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise WeComUnavailableError("gettoken answered without access_token", "gettoken")
        self._known_tokens.append(token)
        return token, float(body.get("expires_in", 7200))

    async def _call_with(
        self, token: str, method: str, api: str, params: dict[str, Any] | None, json: dict[str, Any] | None
    ) -> dict[str, Any]:
        if token not in self._known_tokens:
            self._known_tokens.append(token)
        query = {**(params or {}), "access_token": token}
        return await self._request(method, api, query, json)

    async def _request(
        self, method: str, api: str, params: dict[str, Any], json: dict[str, Any] | None
    ) -> dict[str, Any]:
        """One HTTP exchange returning a body with errcode 0; anything else raises a typed error.

        Transport failures, 5xx and bodies that are not a JSON object with an integer
        errcode become WeComUnavailableError.
        """
        url = self._api_base + api
        try:
            async with self._http.request(method, url, params=params, json=json, timeout=self._timeout) as resp:
                if resp.status >= 500:
                    raise WeComUnavailableError(f"HTTP {resp.status}", api)
                if resp.status != 200:
                    raise WeComError(UNEXPECTED_HTTP_ERRCODE, f"unexpected HTTP {resp.status}", api)
                body = await resp.json(content_type=None)
        except WeComError:
            raise
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            # "from None": aiohttp errors can carry the request URL, which holds the token/secret.
            raise WeComUnavailableError(f"{type(exc).__name__}: {self._redact(str(exc))}", api) from None
        errcode = body.get("errcode", 0) if isinstance(body, dict) else None
        if not isinstance(errcode, int):
            raise WeComUnavailableError("answer is not a JSON object with an integer errcode", api)
        if errcode != 0:
            raise error_for(errcode, self._redact(str(body.get("errmsg", ""))), api)
        return body

    def _redact(self, text: str) -> str:
        for secret in (self._secret, *self._known_tokens):
            if secret:
                text = text.replace(secret, mask(secret))
        return text
