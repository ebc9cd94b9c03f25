"""The chat bot: staff type commands into the WeCom app chat and get replies."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from bot.dispatcher import Dispatcher
from bot.handlers import customers, help


def build_dispatcher(timezone: ZoneInfo) -> Dispatcher:
    """Every feature router, included explicitly; help lists whatever is included."""
    return Dispatcher([customers.router, help.router], timezone)
