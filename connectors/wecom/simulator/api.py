"""What every simulated endpoint shares: the handler shape, the errcode exception and the ok reply.

Endpoints live in modules by area of the WeCom API; `server.APIS` lists them all.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

    from connectors.wecom.simulator.state import SimulatorState

Reply = dict[str, Any]
ApiHandler = Callable[["SimulatorState", "web.Request", dict[str, Any]], Reply]


class ApiError(Exception):
    """Ends an API handler with a WeCom errcode."""

    def __init__(self, errcode: int) -> None:
        super().__init__(errcode)
        self.errcode = errcode


def ok(**fields: Any) -> Reply:
    return {"errcode": 0, "errmsg": "ok", **fields}


@dataclass(frozen=True)
class Api:
    method: str
    handler: ApiHandler
    needs_token: bool = True


def encode_cursor(position: int, prefix: str = "sim-cursor") -> str:
    """An opaque cursor like WeCom's; `prefix` names the list it belongs to, so another list's
    cursor is refused as a bad one."""
    return base64.urlsafe_b64encode(f"{prefix}:{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, prefix: str = "sim-cursor") -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("bad cursor") from exc
    found, _, number = text.partition(":")
    if found != prefix or not number.isdigit():
        raise ValueError("bad cursor")
    return int(number)
