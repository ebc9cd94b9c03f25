"""Async WeCom API client on aiohttp, with the access token shared by all processes via Redis.

Token life cycle: ``gettoken`` answers a token valid ``expires_in`` (7200) seconds; it is
stored under ``scrm:wecom:token:{corp_id}:{secret digest}`` with TTL ``expires_in - margin``,
so every process reads the same token and it is replaced a little before WeCom expires it.
Refreshes happen under a Redis lock and re-read the cache after taking it, so N callers
that all miss (or all see the token rejected) cause exactly one ``gettoken``. The secret
digest is part of the key because each WeCom app (self-built app, 客户联系, 微信客服) of
one corp has its own secret and its own token.

The JS-SDK's app ticket (``ticket/get?type=agent_config``, for ``wx.agentConfig``) lives the same way
under ``scrm:wecom:agent_ticket:…``: Tencent allows 100 of them an hour per app (400 per corp), so all
processes share one, replaced a little before its ``expires_in`` (7200 s), fetched under its own lock.

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

# externalcontact/batch/get_by_user: "userid_list … 最多支持100个", "limit … 最大值100，默认值50"
# https://developer.work.weixin.qq.com/document/path/92994
BATCH_USERIDS_MAX = 100
BATCH_LIMIT_MAX = 100


def agent_config_signature(ticket: str, noncestr: str, timestamp: int, url: str) -> str:
    """The ``signature`` of ``wx.agentConfig``: SHA-1 of the four fields in this order, values as they
    are (no URL encoding), the page URL without its ``#`` part.
    https://developer.work.weixin.qq.com/document/path/90506 (JS-SDK使用权限签名算法)"""
    page = url.split("#", 1)[0]
    text = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={page}"
    return hashlib.sha1(text.encode()).hexdigest()


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
        self._ticket_key = f"scrm:wecom:agent_ticket:{corp_id}:{digest}"
        self._lock_timeout = timeout + 5.0
        self._known_tokens: deque[str] = deque(maxlen=4)  # recent tokens, only to redact them

    def with_secret(self, secret: str) -> WeComClient:
        """The same corp's other app (通讯录同步, 客户联系, …): its own secret, token and cache key."""
        return WeComClient(self._http, api_base=self._api_base, corp_id=self._corp_id, secret=secret,
                           redis=self._redis, timeout=self._timeout.total or 10.0, token_refresh_margin=self._margin)

    async def access_token(self, *, force_refresh: bool = False) -> str:
        """Return the shared token; ``force_refresh`` replaces the one currently cached."""
        cached = await self._cached(self._token_key)
        if cached and not force_refresh:
            return cached
        return await self._refresh(stale=cached)

    async def agent_ticket(self) -> str:
        """The app's JS-SDK ticket for ``wx.agentConfig`` (ticket/get?type=agent_config), shared by all
        processes. https://developer.work.weixin.qq.com/document/path/90506 (获取应用的jsapi_ticket)"""
        cached = await self._cached(self._ticket_key)
        if cached:
            return cached
        return await self._replace_shared(self._ticket_key, self._fetch_agent_ticket, stale=None, what="agent ticket")

    async def oauth_user(self, code: str) -> dict[str, Any]:
        """Who opened a page (auth/getuserinfo): ``userid`` for a member of the corp, else ``openid``
        (and ``external_userid`` for a customer). The code comes back from WeCom's OAuth redirect, works
        once and for 5 minutes; anything else is 40029 invalid code.
        https://developer.work.weixin.qq.com/document/path/91023 (获取访问用户身份)"""
        return await self.call("GET", "auth/getuserinfo", params={"code": code})

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

    async def get_follow_user_list(self) -> list[str]:
        """Userids of the members with 客户联系 (externalcontact/get_follow_user_list), within the app's scope.
        https://developer.work.weixin.qq.com/document/path/92571"""
        return [str(u) for u in (await self.call("GET", "externalcontact/get_follow_user_list")).get("follow_user") or []]

    async def batch_get_by_user(self, userids: list[str], *, cursor: str = "", limit: int = 100) -> dict[str, Any]:
        """One page of the contacts these reps added (externalcontact/batch/get_by_user): at most 100
        userids, `limit` at most 100 follow entries (default 50); pass `next_cursor` back until it is empty.
        Each entry of `external_contact_list` is one (contact, rep) pair: `external_contact` and that
        rep's `follow_info` (tag ids only, `tag_id`). https://developer.work.weixin.qq.com/document/path/92994"""
        if not 1 <= len(userids) <= BATCH_USERIDS_MAX or not 1 <= limit <= BATCH_LIMIT_MAX:
            raise ValueError(f"batch/get_by_user takes 1..{BATCH_USERIDS_MAX} userids and a limit of 1..{BATCH_LIMIT_MAX}")
        body: dict[str, Any] = {"userid_list": list(userids), "limit": limit, **({"cursor": cursor} if cursor else {})}
        return await self.call("POST", "externalcontact/batch/get_by_user", json=body)

    async def get_corp_tag_list(self, *, tag_ids: list[str] | None = None,
                                group_ids: list[str] | None = None) -> dict[str, Any]:
        """The corp tag catalogue (externalcontact/get_corp_tag_list): `tag_group` with each group's `tag`.
        Neither filter: every live group; `group_ids` wins over `tag_ids` when both are given; a
        filtered answer also lists deleted groups and tags, marked `deleted`.
        https://developer.work.weixin.qq.com/document/path/92117"""
        body: dict[str, Any] = {}
        if tag_ids:
            body["tag_id"] = list(tag_ids)
        if group_ids:
            body["group_id"] = list(group_ids)
        return await self.call("POST", "externalcontact/get_corp_tag_list", json=body)

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

    async def del_contact_way(self, config_id: str) -> dict[str, Any]:
        """Delete a code (externalcontact/del_contact_way): scanning it no longer adds anyone."""
        return await self.call("POST", "externalcontact/del_contact_way", json={"config_id": config_id})

    async def send_welcome_msg(self, body: dict[str, Any]) -> dict[str, Any]:
        """Greet a customer who just added a rep (externalcontact/send_welcome_msg).

        ``welcome_code`` comes from the add_external_contact event and works once, within 20 s:
        afterwards ``WelcomeCodeInvalidError``; ``WelcomeAlreadySentError`` when a welcome already arrived.
        """
        return await self.call("POST", "externalcontact/send_welcome_msg", json=body)

    async def groupchat_list(self, *, cursor: str | None = None, limit: int = 1000, status_filter: int = 0,
                             owners: list[str] | None = None) -> dict[str, Any]:
        """One page of the corp's customer groups (externalcontact/groupchat/list, document/path/92120).

        ``group_chat_list`` items: chat_id, status (0 normal, 1 owner resigned, 2 being inherited,
        3 inherited). ``limit`` is 1–1000 and ``owners`` at most 100 userids (else 40058); pass a
        non-empty ``next_cursor`` back for the next page.
        """
        body: dict[str, Any] = {"status_filter": status_filter, "limit": limit, **({"cursor": cursor} if cursor else {})}
        if owners is not None:
            body["owner_filter"] = {"userid_list": owners}
        return await self.call("POST", "externalcontact/groupchat/list", json=body)

    async def groupchat_get(self, chat_id: str, *, need_name: bool = True) -> dict[str, Any]:
        """One customer group with its members (externalcontact/groupchat/get, document/path/92122).

        ``group_chat``: name, owner, create_time, notice, member_list (userid, type 1 staff / 2
        external, join_time, join_scene, invitor, group_nickname, name with ``need_name``, unionid),
        admin_list, member_version. An unknown or dismissed group answers 40050.
        """
        return await self.call("POST", "externalcontact/groupchat/get",
                               json={"chat_id": chat_id, "need_name": int(need_name)})

    async def add_corp_tag(self, group_name: str, names: list[str]) -> dict[str, Any]:
        """New corp tags in the group called ``group_name``, created when WeCom has none
        (externalcontact/add_corp_tag, document/path/92117). ``tag_group.tag`` lists the new tags with
        their ids; a name the group already has is 40071."""
        return await self.call("POST", "externalcontact/add_corp_tag",
                               json={"group_name": group_name, "tag": [{"name": n} for n in names]})

    async def mark_tag(self, userid: str, external_userid: str, *, add: list[str] = (),
                       remove: list[str] = ()) -> dict[str, Any]:
        """Set and remove corp tags (by id) on ``userid``'s contact (externalcontact/mark_tag,
        document/path/92118). An unknown tag id is 40068; a contact the rep does not follow 84061."""
        return await self.call("POST", "externalcontact/mark_tag",
                               json={"userid": userid, "external_userid": external_userid,
                                     "add_tag": list(add), "remove_tag": list(remove)})

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

    async def unassigned_customers(self) -> list[dict[str, Any]]:
        """Every customer a departed member left behind (externalcontact/get_unassigned_list, all pages):
        items handover_userid, external_userid, dimission_time. document/path/92124"""
        return await self._all_pages(
            "externalcontact/get_unassigned_list", "info",
            lambda cursor: self.call("POST", "externalcontact/get_unassigned_list",
                                     json={"page_size": 1000, **({"cursor": cursor} if cursor else {})}))

    async def transfer_customers(self, handover_userid: str, takeover_userid: str, external_userids: list[str], *,
                                 resigned: bool, transfer_success_msg: str = "") -> dict[str, Any]:
        """Start handing ≤ 100 customers to another member: ``resigned`` for a member who left
        (externalcontact/resigned/transfer_customer, document/path/96331), else on the job with a
        message to the customer (externalcontact/transfer_customer, document/path/96325).

        ``customer`` answers each one's errcode: 0 means WeCom started the transfer (final within 24 h),
        not that it succeeded; follow it with ``transfer_results``."""
        body: dict[str, Any] = {"handover_userid": handover_userid, "takeover_userid": takeover_userid,
                                "external_userid": external_userids}
        if not resigned and transfer_success_msg:
            body["transfer_success_msg"] = transfer_success_msg
        api = "externalcontact/resigned/transfer_customer" if resigned else "externalcontact/transfer_customer"
        return await self.call("POST", api, json=body)

    async def transfer_results(self, handover_userid: str, takeover_userid: str, *, resigned: bool) -> list[dict[str, Any]]:
        """Every transfer between the two members, all pages ((resigned/)transfer_result, document/path/96333):
        items external_userid, status (1 taken over, 2 waiting, 3 refused, 4 takeover rep full, 5 no record),
        takeover_time."""
        api = "externalcontact/resigned/transfer_result" if resigned else "externalcontact/transfer_result"
        body = {"handover_userid": handover_userid, "takeover_userid": takeover_userid}
        return await self._all_pages(api, "customer", lambda cursor: self.call(
            "POST", api, json={**body, **({"cursor": cursor} if cursor else {})}))

    async def kf_servicers(self, open_kfid: str) -> list[dict[str, Any]]:
        """A kf account's 接待人员 (kf/servicer/list): userid, status 0 serving / 1 stopped. document/path/96420"""
        return (await self.call("GET", "kf/servicer/list", params={"open_kfid": open_kfid})).get("servicer_list") or []

    async def kf_service_state(self, open_kfid: str, external_userid: str) -> dict[str, Any]:
        """A kf conversation's state (kf/service_state/get): service_state 0-4, servicer_userid when 3."""
        return await self.call("POST", "kf/service_state/get",
                               json={"open_kfid": open_kfid, "external_userid": external_userid})

    async def kf_change_service_state(self, open_kfid: str, external_userid: str, service_state: int,
                                      servicer_userid: str = "") -> dict[str, Any]:
        """Move a kf conversation (kf/service_state/trans, document/path/94698): 3 hands it to
        ``servicer_userid``, 4 ends it; a change the current state does not allow is 95016."""
        body: dict[str, Any] = {"open_kfid": open_kfid, "external_userid": external_userid,
                                "service_state": service_state}
        if servicer_userid:
            body["servicer_userid"] = servicer_userid
        return await self.call("POST", "kf/service_state/trans", json=body)

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

    async def _cached(self, key: str) -> str | None:
        value = await self._redis.get(key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def _refresh(self, *, stale: str | None) -> str:
        return await self._replace_shared(self._token_key, self._fetch_token, stale=stale, what="token")

    async def _replace_shared(self, key: str, fetch: Callable[[], Awaitable[tuple[str, float]]], *,
                              stale: str | None, what: str) -> str:
        """Fetch a new value for ``key`` unless another caller replaced ``stale`` while we waited."""
        lock = self._redis.lock(
            f"{key}:lock", timeout=self._lock_timeout, sleep=0.05,
            blocking_timeout=self._lock_timeout, thread_local=False,
        )
        if not await lock.acquire():
            raise WeComUnavailableError(f"timed out waiting for the {what} refresh lock", "gettoken")
        try:
            cached = await self._cached(key)
            if cached and cached != stale:
                return cached
            value, expires_in = await fetch()
            ttl = max(int(expires_in - self._margin), 1)
            await self._redis.set(key, value, ex=ttl)
            log.info("wecom %s refreshed for corp %s: %s, cached %ss", what, self._corp_id, mask(value), ttl)
            return value
        finally:
            try:
                await lock.release()
            except LockError:
                log.warning("wecom %s lock expired before release (WeCom slower than %ss)", what,
                            self._lock_timeout)

    async def _fetch_token(self) -> tuple[str, float]:
        log.info("wecom gettoken for corp %s with secret %s", self._corp_id, mask(self._secret))
        body = await self._request("GET", "gettoken", {"corpid": self._corp_id, "corpsecret": self._secret}, None)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise WeComUnavailableError("gettoken answered without access_token", "gettoken")
        self._known_tokens.append(token)
        return token, float(body.get("expires_in", 7200))

    async def _fetch_agent_ticket(self) -> tuple[str, float]:
        body = await self.call("GET", "ticket/get", params={"type": "agent_config"})
        ticket = body.get("ticket")
        if not isinstance(ticket, str) or not ticket:
            raise WeComUnavailableError("ticket/get answered without ticket", "ticket/get")
        self._known_tokens.append(ticket)
        return ticket, float(body.get("expires_in", 7200))

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
