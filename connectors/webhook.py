"""A generic inbound JSON webhook, so other channels (a website chat, a DingTalk or Feishu bridge,
an email gateway) feed customer messages into the same pipeline as WeCom.

Protocol::

    POST /webhook/{channel}
    Content-Type: application/json
    X-SCRM-Timestamp: 1795000000                       (unix seconds, within 5 minutes of our clock)
    X-SCRM-Signature: sha256=<hex HMAC-SHA256 of f"{timestamp}.{raw body}" with the channel's secret>

    {"id": "msg-123",                                  the sender's unique message id (retries reuse it)
     "from": {"id": "visitor-42",                      the customer's stable id on that channel
              "name": "张三",                           optional
              "phone": "13800001111"},                  optional
     "text": "你好，想问下报价",                          1 to 10,000 characters
     "sent_at": "2026-11-29T10:00:00+08:00",           optional: ISO-8601 with offset, or unix seconds
     "meta": {"page": "/pricing"}}                     optional object, archived with the message

Answers: 200 `{"ok": true, "duplicate": false}` once the message is committed to the inbox
(`duplicate: true` for a retry of an id we already hold; it is not processed again); 404 for a
channel without a secret; 403 for a missing or wrong signature or a timestamp more than 5 minutes
off (a captured request cannot be replayed later); 400 for a body that is not such a message and
413 for one over the service's body limit, each `{"ok": false, "error": "..."}` saying what is
wrong. Nothing is stored unless the answer is 200; a 503 means "try again".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Mapping

from aiohttp import web

log = logging.getLogger(__name__)

SOURCE = "webhook"
SIGNATURE_HEADER = "X-SCRM-Signature"
TIMESTAMP_HEADER = "X-SCRM-Timestamp"
MAX_CLOCK_SKEW_SECONDS = 300
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
MAX_TEXT_CHARS = 10_000
# Column sizes of what these fields are stored in (message id, customer identity, name, phone).
MAX_ID_CHARS = 128
MAX_NAME_CHARS = 128
MAX_PHONE_CHARS = 32

# (dedup_key, source, payload) -> True if new, False if a retry we already hold
AcceptCallback = Callable[[str, str, str], Awaitable[bool]]


class MalformedWebhookError(ValueError):
    """The body is not a webhook message; the text says every way in which it is not."""


@dataclass(frozen=True)
class WebhookSender:
    id: str
    name: str = ""
    phone: str = ""


@dataclass(frozen=True)
class WebhookMessage:
    id: str
    sender: WebhookSender
    text: str
    sent_at: datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """The X-SCRM-Signature value for `body` sent at `timestamp`: what senders compute, and we check."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def dedup_key(channel: str, message_id: str) -> str:
    return f"webhook:{channel}:{message_id}"


def inbox_payload(channel: str, body: str) -> str:
    """The inbox row keeps the channel next to the raw body, which alone does not name it."""
    return json.dumps({"channel": channel, "body": body}, ensure_ascii=False)


def read_inbox_payload(payload: str) -> tuple[str, str]:
    data = json.loads(payload)
    return data["channel"], data["body"]


def parse_message(body: bytes | str) -> WebhookMessage:
    """Check and read a webhook body; MalformedWebhookError lists every problem found."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedWebhookError("body is not UTF-8 text") from None
    if not body.strip():
        raise MalformedWebhookError("body is empty; send a JSON object")
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise MalformedWebhookError(f"body is not valid JSON: {exc}") from None
    except (RecursionError, ValueError) as exc:
        raise MalformedWebhookError(f"body is not valid JSON: {exc or 'nested too deeply'}") from None
    if not isinstance(data, dict):
        raise MalformedWebhookError("body must be a JSON object")
    if not _storable(data):
        raise MalformedWebhookError("body contains a NUL character or a lone surrogate (\\u0000, \\ud800…), "
                                    "which cannot be stored")
    problems: list[str] = []
    message_id = _string(data, "id", problems, required=True, limit=MAX_ID_CHARS)
    sender = data.get("from")
    sender_id = name = phone = ""
    if sender is None:
        problems.append("from is missing")
    elif not isinstance(sender, dict):
        problems.append("from must be an object with id, and optionally name and phone")
    else:
        sender_id = _string(sender, "id", problems, required=True, limit=MAX_ID_CHARS, prefix="from.")
        name = _string(sender, "name", problems, limit=MAX_NAME_CHARS, prefix="from.")
        phone = _string(sender, "phone", problems, limit=MAX_PHONE_CHARS, prefix="from.")
    text = _string(data, "text", problems, required=True, limit=MAX_TEXT_CHARS, strip=False)
    sent_at = _sent_at(data.get("sent_at"), problems)
    meta = data.get("meta", {})
    if meta is None:
        meta = {}
    elif not isinstance(meta, dict):
        problems.append("meta must be an object")
    if problems:
        raise MalformedWebhookError("; ".join(problems))
    return WebhookMessage(id=message_id, sender=WebhookSender(sender_id, name, phone), text=text, sent_at=sent_at,
                          meta=meta)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _storable(data: Any) -> bool:
    """Every string (keys too) fits a database text column: no NUL, no unpaired surrogate."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            if "\x00" in value:
                return False
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def _string(data: dict, name: str, problems: list[str], *, required: bool = False, limit: int, prefix: str = "",
            strip: bool = True) -> str:
    value = data.get(name)
    if value is None:
        if required:
            problems.append(f"{prefix}{name} is missing")
        return ""
    if not isinstance(value, str):
        problems.append(f"{prefix}{name} must be a string")
        return ""
    if strip:
        value = value.strip()
    if required and not value.strip():
        problems.append(f"{prefix}{name} must not be empty")
    elif len(value) > limit:
        problems.append(f"{prefix}{name} is longer than {limit:,} characters")
    return value


def _sent_at(value: Any, problems: list[str]) -> datetime | None:
    """ISO-8601 with a UTC offset, or unix seconds; a time without an offset would be a guess."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            if not math.isfinite(value):
                raise ValueError
            return datetime.fromtimestamp(value, timezone.utc)
        except (ValueError, OverflowError, OSError):
            problems.append("sent_at is not a usable unix time")
            return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            problems.append("sent_at must be ISO-8601 (e.g. 2026-11-29T10:00:00+08:00) or unix seconds")
            return None
        if parsed.tzinfo is None:
            problems.append("sent_at needs a UTC offset (e.g. +08:00 or Z)")
            return None
        try:
            return parsed.astimezone(timezone.utc)
        except OverflowError:
            problems.append("sent_at is out of range")
            return None
    problems.append("sent_at must be an ISO-8601 string or unix seconds")
    return None


class WebhookReceiver:
    """`POST /webhook/{channel}`: check the channel, size, signature and body, commit, then answer."""

    def __init__(self, secrets: Mapping[str, str], accept: AcceptCallback, *, max_body_bytes: int,
                 clock: Callable[[], float] = time.time):
        self.secrets = dict(secrets)
        self.accept = accept
        self.max_body_bytes = max_body_bytes
        self.clock = clock

    def routes(self, path: str = "/webhook/{channel}") -> list[web.RouteDef]:
        return [web.post(path, self.receive)]

    async def receive(self, request: web.Request) -> web.Response:
        channel = request.match_info["channel"]
        secret = self.secrets.get(channel)
        if secret is None:
            raise _error(web.HTTPNotFound, "unknown channel: no secret is configured for it")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _error(web.HTTPRequestEntityTooLarge, f"body is larger than {self.max_body_bytes:,} bytes",
                         max_size=self.max_body_bytes) from None
        self._verify(request, channel, secret, body)
        try:
            message = parse_message(body)
        except MalformedWebhookError as exc:
            log.warning("webhook %s: rejected a malformed body: %s", channel, exc)
            raise _error(web.HTTPBadRequest, str(exc)) from None
        key = dedup_key(channel, message.id)
        try:
            created = await self.accept(key, SOURCE, inbox_payload(channel, body.decode("utf-8")))
        except Exception:
            log.exception("could not store webhook message %s; answering 503 so the sender retries", key)
            raise _error(web.HTTPServiceUnavailable, "could not store the message; try again") from None
        log.info("webhook %s %s", key, "stored" if created else "duplicate")
        return web.json_response({"ok": True, "duplicate": not created})

    def _verify(self, request: web.Request, channel: str, secret: str, body: bytes) -> None:
        """Fresh timestamp and matching HMAC, compared in constant time; both or a 403."""
        timestamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
        signature = request.headers.get(SIGNATURE_HEADER, "").strip()
        if not _TIMESTAMP.fullmatch(timestamp) or not signature:
            log.warning("webhook %s: rejected, %s or %s missing", channel, TIMESTAMP_HEADER, SIGNATURE_HEADER)
            raise _error(web.HTTPForbidden, f"{TIMESTAMP_HEADER} (unix seconds) and {SIGNATURE_HEADER} are required")
        if abs(self.clock() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
            log.warning("webhook %s: rejected, timestamp %s is stale", channel, timestamp)
            raise _error(web.HTTPForbidden, f"{TIMESTAMP_HEADER} is more than {MAX_CLOCK_SKEW_SECONDS // 60} minutes "
                                            "off; sign with the current time (and check the sender's clock)")
        # A signature is ASCII hex; anything else (even bytes that are not UTF-8) is just wrong.
        if not signature.isascii() or not hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.encode()):
            log.warning("webhook %s: rejected, bad signature from %s", channel, request.remote)
            raise _error(web.HTTPForbidden, "invalid signature")


def _error(cls: type[web.HTTPException], message: str, **kwargs) -> web.HTTPException:
    return cls(text=json.dumps({"ok": False, "error": message}, ensure_ascii=False), content_type="application/json",
               **kwargs)
