"""The WeCom callback endpoint: verify, decrypt, store durably, then ack.

Nothing is acted on here. The decrypted plaintext is handed to `accept`, which commits it to
the inbox; only then does WeCom get its empty 200. If storing fails the answer is 503 and
WeCom retries, so an acked callback can never be lost.

Before the sender is known, a request costs a few microseconds of work bounded by its size:
the timestamp must be fresh, the body at most MAX_ENVELOPE_BYTES, and the signature over the
envelope's Encrypt text must hold (connectors.wecom.crypto); only then is anything decrypted or
parsed, and a large authenticated body is decrypted and parsed in a thread, off the event loop.

Freshness: WeCom signs every callback with its send time (`timestamp`) and, when it has no
answer within 5 s, retries it, three times in all (接收消息与事件,
https://developer.work.weixin.qq.com/document/path/90238): a genuine callback reaches us well
within a minute of its timestamp. MAX_CLOCK_SKEW_SECONDS (5 minutes either way) covers those
retries and a server clock a few minutes off; a signed callback replayed later is refused (403,
counted as `stale` in scrm_callbacks_total), not merely deduplicated.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Awaitable, Callable

from aiohttp import web

from connectors.wecom.crypto import (
    MAX_ENVELOPE_BYTES,
    CallbackCrypto,
    EnvelopeTooLargeError,
    MalformedCallbackError,
    SignatureError,
    parse_plaintext_xml,
)
from connectors.wecom.inbound import callback_dedup_key

log = logging.getLogger(__name__)

SOURCE = "wecom_callback"
REQUIRED_QUERY = ("msg_signature", "timestamp", "nonce")

# (dedup_key, source, plaintext) -> True if new, False if a retry we already hold
AcceptCallback = Callable[[str, str, str], Awaitable[bool]]
# (result, seconds to answer) for metrics; result is one of RESULT_BY_STATUS's values, "stale", "accepted" or "duplicate"
ObserveCallback = Callable[[str, float], None]
RESULT_BY_STATUS = {400: "bad_request", 403: "bad_signature", 413: "bad_request", 503: "unavailable"}
STALE = "stale"
MAX_CLOCK_SKEW_SECONDS = 300
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
# Ciphertexts up to this size (every ordinary message and event) are decrypted and parsed inline,
# which takes tens of microseconds; larger ones go to a thread rather than hold the event loop.
INLINE_CIPHERTEXT_CHARS = 8 * 1024


class StaleCallbackError(web.HTTPForbidden):
    """The callback's timestamp is outside the freshness window (a replay, or a broken clock)."""


class RefusalLog:
    """Warnings about refused callbacks, at most one per `every` seconds, each saying how many were
    refused since the last: a flood must not become a flood of log lines (disk, and the CPU to
    write them); scrm_callbacks_total counts every one."""

    def __init__(self, every: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.every, self.clock = every, clock
        self.last = -every
        self.unlogged = 0

    def warning(self, message: str, *args: object) -> None:
        now = self.clock()
        if now - self.last < self.every:
            self.unlogged += 1
            return
        since = f" ({self.unlogged} more refused since the last such line)" if self.unlogged else ""
        log.warning("callback rejected: " + message + "%s", *args, since)
        self.last, self.unlogged = now, 0


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
    clock: Callable[[], float] = staticmethod(time.time)  # unix seconds, for the freshness window

    def __init__(self, crypto: CallbackCrypto, accept: AcceptCallback, observe: ObserveCallback | None = None):
        self.crypto = crypto
        self.accept = accept
        self.observe = observe
        self.refusals = RefusalLog()

    def routes(self, path: str = "/wecom/callback") -> list[web.RouteDef]:
        return [web.get(path, self.verify_url), web.post(path, self.receive)]

    async def verify_url(self, request: web.Request) -> web.Response:
        """URL verification when the admin saves the callback URL: answer the decrypted echostr."""
        params = _require(request, (*REQUIRED_QUERY, "echostr"))
        self._require_fresh(params["timestamp"])
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
        except StaleCallbackError:
            self._observe(STALE, started)
            raise
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
        self._require_fresh(params["timestamp"])
        if request.content_length is not None and request.content_length > MAX_ENVELOPE_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_ENVELOPE_BYTES, actual_size=request.content_length)
        body = await request.read()
        if not body:
            raise web.HTTPBadRequest(text="empty body")
        try:
            encrypted = self.crypto.verify_envelope(body, params["msg_signature"], params["timestamp"], params["nonce"])
            if len(encrypted) <= INLINE_CIPHERTEXT_CHARS:
                plaintext, fields = self.crypto.open_verified(encrypted)
            else:
                plaintext, fields = await asyncio.to_thread(self.crypto.open_verified, encrypted)
            fields = fields if fields is not None else parse_plaintext(plaintext)
            dedup_key = callback_dedup_key(fields)
        except SignatureError:
            self.refusals.warning("bad signature from %s", request.remote)
            raise web.HTTPForbidden(text="invalid signature")
        except EnvelopeTooLargeError:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_ENVELOPE_BYTES, actual_size=len(body))
        except (MalformedCallbackError, ValueError) as exc:
            self.refusals.warning("%s", exc)
            raise web.HTTPBadRequest(text="malformed callback")
        try:
            created = await self.accept(dedup_key, SOURCE, plaintext)
        except Exception:
            log.exception("could not store callback %s; answering 503 so WeCom retries", dedup_key)
            raise web.HTTPServiceUnavailable(text="try again")
        log.info("callback %s %s", dedup_key, "stored" if created else "duplicate")
        return created


    def _require_fresh(self, timestamp: str) -> None:
        """Unix seconds within MAX_CLOCK_SKEW_SECONDS of our clock, checked before anything else."""
        if not _TIMESTAMP.fullmatch(timestamp) or abs(self.clock() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
            self.refusals.warning("timestamp %.12s is not within %d s of our clock (a replay, or check this "
                                  "server's clock)", timestamp.encode("ascii", "replace").decode(), MAX_CLOCK_SKEW_SECONDS)
            raise StaleCallbackError(text="stale or invalid timestamp")


def _require(request: web.Request, names: tuple[str, ...]) -> dict[str, str]:
    missing = [name for name in names if not request.query.get(name)]
    if missing:
        raise web.HTTPBadRequest(text="missing query parameter(s): " + ", ".join(missing))
    return {name: request.query[name] for name in names}
