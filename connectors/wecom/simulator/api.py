"""What every simulated endpoint shares: the handler shape, the errcode exception and the ok reply.

Endpoints live in modules by area of the WeCom API; `server.APIS` lists them all.
"""

from __future__ import annotations

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


