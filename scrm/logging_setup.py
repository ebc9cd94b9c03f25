"""Log output for every `scrm` command: human text by default, one JSON object per line on request.

A request id ties together every line logged while serving one HTTP request: the middleware
takes a sane incoming `X-Request-Id` (a proxy's or WeCom gateway's) or makes one, answers it as a
response header, and keeps it in a context variable the JSON formatter reads.
"""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from datetime import datetime, timezone

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REQUEST_ID_HEADER = "X-Request-Id"

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    """ts, level, logger, message, request_id (inside a request) and exc_info (text), one line each."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = getattr(record, "request_id", None) or request_id.get()
        if current:
            entry["request_id"] = current
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


# Personal data and credentials that must never reach a log in clear, wherever they appear (a
# message, an argument, a traceback's repr): mainland mobile numbers keep their first 3 and last 4
# digits; access tokens, secrets and signatures in URLs or JSON keep 3 characters.
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?(1[3-9]\d)(\d{4})(\d{4})(?!\d)")
_CREDENTIAL = re.compile(
    r"(?i)((?:access_token|corpsecret|secret|encoding_?aes_?key|aes_key|msg_signature|signature|token)"
    r"(?:\\?[\"'])?\s*[=:]\s*(?:\\?[\"'])?)([A-Za-z0-9_\-+/=]{4,})")


def mask_sensitive(text: str) -> str:
    text = _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    return _CREDENTIAL.sub(lambda m: f"{m.group(1)}{m.group(2)[:3]}***", text)


class MaskingFormatter(logging.Formatter):
    """Masks the finished line, so nothing a handler prints (exc_info included) escapes the rule."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return mask_sensitive(self.inner.format(record))


def configure_logging(level: str, log_format: str) -> None:
    handler = logging.StreamHandler()
    inner = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(MaskingFormatter(inner))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
    # Importing alembic announces each of its autogenerate plugins at INFO: noise before every command.
    logging.getLogger("alembic.runtime.plugins").setLevel(max(logging.WARNING, logging.getLogger().level))
