"""The WeCom callback endpoint: verify, decrypt, store durably, then ack.

Nothing is acted on here. The decrypted plaintext is handed to `accept`, which commits it to
the inbox; only then does WeCom get its empty 200. If storing fails the answer is 503 and
WeCom retries, so an acked callback can never be lost.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Awaitable, Callable

from aiohttp import web

from connectors.wecom.crypto import CallbackCrypto, MalformedCallbackError, SignatureError, parse_plaintext_xml
from connectors.wecom.inbound import callback_dedup_key

log = logging.getLogger(__name__)

SOURCE = "wecom_callback"
REQUIRED_QUERY = ("msg_signature", "timestamp", "nonce")

# (dedup_key, source, plaintext) -> True if new, False if a retry we already hold
AcceptCallback = Callable[[str, str, str], Awaitable[bool]]
# (result, seconds to answer) for metrics; result is one of RESULT_BY_STATUS's values, "accepted" or "duplicate"
ObserveCallback = Callable[[str, float], None]
RESULT_BY_STATUS = {400: "bad_request", 403: "bad_signature", 413: "bad_request", 503: "unavailable"}


def parse_plaintext(plaintext: str) -> dict:
    """Callbacks arrive as XML; the JSON form exists for some newer apps and is accepted too."""
    if plaintext.lstrip().startswith("{"):
        try:
            data = json.loads(plaintext)
        except json.JSONDecodeError as exc:
            raise MalformedCallbackError(f"decrypted JSON is invalid: {exc}") from exc
        if not isinstance(data, dict):
            raise MalformedCallbackError("decrypted JSON is not an object")
        return data
    return parse_plaintext_xml(plaintext)


class CallbackReceiver:
    def __init__(self, crypto: CallbackCrypto, accept: AcceptCallback, observe: ObserveCallback | None = None):
        self.crypto = crypto
        self.accept = accept
        self.observe = observe

    def routes(self, path: str = "/wecom/callback") -> list[web.RouteDef]:
        return [web.get(path, self.verify_url), web.post(path, self.receive)]

    async def verify_url(self, request: web.Request) -> web.Response:
        """URL verification when the admin saves the callback URL: answer the decrypted echostr."""
        params = _require(request, (*REQUIRED_QUERY, "echostr"))
        try:
            echo = self.crypto.verify_url(params["msg_signature"], params["timestamp"], params["nonce"], params["echostr"])
        except SignatureError:
            raise web.HTTPForbidden(text="invalid signature")
        except MalformedCallbackError as exc:
            raise web.HTTPBadRequest(text=f"invalid echostr: {exc}")
        return web.Response(text=echo)

    async def receive(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            created = await self._store(request)
        except web.HTTPException as exc:
            self._observe(RESULT_BY_STATUS.get(exc.status, "bad_request"), started)
            raise
        self._observe("accepted" if created else "duplicate", started)
        return web.Response(text="")

    def _observe(self, result: str, started: float) -> None:
        if self.observe is not None:
            self.observe(result, time.perf_counter() - started)

    async def _store(self, request: web.Request) -> bool:
        """Verify, decrypt and commit one callback; True if it is new. Refusals raise HTTP errors."""
        params = _require(request, REQUIRED_QUERY)
        body = await request.read()
        if not body:
            raise web.HTTPBadRequest(text="empty body")
        try:
            plaintext, fields = self.crypto.open_callback(body, params["msg_signature"], params["timestamp"], params["nonce"])
            fields = fields if fields is not None else parse_plaintext(plaintext)
            dedup_key = callback_dedup_key(fields)
        except SignatureError:
            log.warning("callback rejected: bad signature from %s", request.remote)
            raise web.HTTPForbidden(text="invalid signature")
        except (MalformedCallbackError, ValueError) as exc:
            log.warning("callback rejected: %s", exc)
            raise web.HTTPBadRequest(text="malformed callback")
        try:
            created = await self.accept(dedup_key, SOURCE, plaintext)
        except Exception:
            log.exception("could not store callback %s; answering 503 so WeCom retries", dedup_key)
            raise web.HTTPServiceUnavailable(text="try again")
        log.info("callback %s %s", dedup_key, "stored" if created else "duplicate")
        return created


def _require(request: web.Request, names: tuple[str, ...]) -> dict[str, str]:
    missing = [name for name in names if not request.query.get(name)]
    if missing:
        raise web.HTTPBadRequest(text="missing query parameter(s): " + ", ".join(missing))
    return {name: request.query[name] for name in names}
