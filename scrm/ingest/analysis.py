"""The first reaction to a customer's message: the NLP analysis, folded into the customer's
aggregates, with the lifecycle stage and 热度 following (reactions after it read `message.analysis`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from sqlalchemy.ext.asyncio import AsyncSession

import nlp
from crm_core.insights import InsightService
from crm_core.lead_score import LeadScoreService
from crm_core.lifecycle import LifecycleService
from crm_core.models import Customer, Message

# Long pasted texts cost tens of milliseconds: analyse those in a thread, not on the event loop.
INLINE_LIMIT = 300


@dataclass
class MessageAnalysis:
    # (mode, seconds) for each analysis, mode "inline" or "thread": the analysis time alone, for metrics
    observe: Callable[[str, float], None] | None = None

    async def __call__(self, session: AsyncSession, customer: Customer, message: Message) -> None:
        """Analyse, fold into the customer's aggregates, then let the stage and 热度 follow (a purchase
        intent makes a prospect interested)."""
        if message.msg_type != "text" or not message.text.strip():
            return
        started = time.perf_counter()
        if len(message.text) <= INLINE_LIMIT:
            mode, analysis = "inline", nlp.analyze(message.text)
        else:
            mode, [analysis] = "thread", await nlp.analyze_batch([message.text])
        if self.observe is not None:
            self.observe(mode, time.perf_counter() - started)
        result = analysis.to_dict()
        await InsightService(session).record(customer, message, result)
        await LifecycleService(session).message_analysed(customer, result, at=message.sent_at)
        await LeadScoreService(session).rescore(customer, at=message.sent_at)
