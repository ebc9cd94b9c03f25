"""What message analysis teaches us about a customer: recent mood, recurring topics, the last bad moment.

The analysis itself comes from nlp/ as a plain dict (see nlp.Analysis.to_dict); this module only
stores it and keeps the customer's aggregates, so it stays free of any NLP library.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Customer, Message

# Weight of the newest message in the rolling sentiment: recent mood matters most, but one
# sharp message should not erase a long good relationship.
SENTIMENT_WEIGHT = 0.3


class InsightService:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def record(self, customer: Customer, message: Message, analysis: dict[str, Any]) -> None:
        """Store the analysis on the message and fold it into the customer's aggregates.

        The customer row is re-read under a row lock first: two workers analysing messages of the
        same customer at once must add up, not overwrite each other's counts."""
        await self.session.flush()  # our own pending changes first, so the re-read includes them
        await self.session.refresh(customer, ["sentiment_score", "analysed_messages", "tag_counts",
                                              "last_negative_message_id"], with_for_update=True)
        message.analysis = analysis
        sentiment = float(analysis.get("sentiment", 0.0))
        if customer.sentiment_score is None:
            customer.sentiment_score = sentiment
        else:
            customer.sentiment_score = (1 - SENTIMENT_WEIGHT) * customer.sentiment_score + SENTIMENT_WEIGHT * sentiment
        customer.analysed_messages = (customer.analysed_messages or 0) + 1
        if analysis.get("label") == "negative":
            customer.last_negative_message_id = message.id
        seen_at = message.sent_at.isoformat()
        counts = dict(customer.tag_counts or {})
        for tag in analysis.get("tags", []):
            entry = counts.get(tag, {"count": 0, "last_seen": seen_at})
            counts[tag] = {"count": entry["count"] + 1, "last_seen": max(entry["last_seen"], seen_at)}
        customer.tag_counts = counts  # reassigned so the JSON column is marked changed

    @staticmethod
    def reset(customer: Customer) -> None:
        """Forget the aggregates before re-analysing a customer's history (after a model change)."""
        customer.sentiment_score = None
        customer.analysed_messages = 0
        customer.tag_counts = {}
        customer.last_negative_message_id = None
