"""The chat bot: staff type commands into the WeCom app chat and get replies."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from bot.conversation import Conversations
from bot.dispatcher import Dispatcher
from bot.rate_limit import CommandRateLimit
from bot.handlers import (campaigns, care, channels, customers, deals, followups, groups, handover, help, lifecycle,
                          notes, targets, tickets)
from crm_core.db import utcnow
from config.policies import load_policy
from crm_core.deals import DEAL_PIPELINE_FILE, DealStages
from crm_core.ticket_policy import TicketPolicy, default_policy


def build_dispatcher(
    timezone: ZoneInfo, redis: Redis, *, clock: Callable[[], datetime] = utcnow, deal_pipeline: Path = DEAL_PIPELINE_FILE,
    commands_per_minute: int = 30, ticket_policy: TicketPolicy | None = None, page_base_url: str = "",
) -> Dispatcher:
    """Every feature router, included explicitly; help lists whatever is included, in this order."""
    dispatcher = Dispatcher(
        [customers.router, groups.router, notes.router, followups.router, deals.router, targets.router, lifecycle.router,
         handover.router,
         care.router,
         tickets.router, channels.router, campaigns.router, help.router],
        timezone,
        stages=load_policy(deal_pipeline, DealStages.from_toml),
        conversations=Conversations(redis),
        rate_limit=CommandRateLimit(redis, commands_per_minute),
        clock=clock,
        tickets=ticket_policy or default_policy(),
        page_base_url=page_base_url,
    )
    dispatcher.understanding.lexicon.check(c.name for c in dispatcher.commands)
    return dispatcher
