"""change_external_tag callbacks: an admin changed the corp tag catalogue in WeCom.

A created or renamed tag (or group) is read back from get_corp_tag_list by its id, and customers
carrying a renamed tag read it by its new name; a deleted one is marked deleted here without asking
and taken off the customers (WeCom removes it from every contact); a shuffle (new order) reads the
whole catalogue again. The event itself is archived like every other callback.
https://developer.work.weixin.qq.com/document/path/92130 (事件格式 · 企业客户标签事件)
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from connectors.wecom.inbound import TagChange
from connectors.wecom.profiles import tag_groups
from crm_core.corp_tags import CorpTagService
from crm_core.messages import MessageService, NewMessage
from crm_core.models import InboxItem
from scrm.ingest.context import IngestContext
from scrm.ingest.wecom_callbacks import EVENT_CHANNEL

GROUP = "tag_group"


@dataclass
class TagChanges:
    context: IngestContext
    batchable = False  # asks WeCom for the changed tags

    async def handle(self, session: AsyncSession, item: InboxItem, change: TagChange) -> None:
        tags = CorpTagService(session)
        is_group = change.tag_type == GROUP
        if change.change_type == "delete" and change.id:
            gone = await tags.tag_ids_of_group(change.id) if is_group else [change.id]
            await tags.mark_deleted([change.id], groups=is_group)
            await tags.retag_customers(gone, removed=True)
        elif change.change_type in ("create", "update") and change.id:
            answer = await self.context.wecom.get_corp_tag_list(
                **({"group_ids": [change.id]} if is_group else {"tag_ids": [change.id]}))
            groups, deleted_groups, deleted_tags = tag_groups(answer)
            await tags.upsert(groups, at=change.sent_at)
            await tags.mark_deleted(deleted_groups, groups=True)
            await tags.mark_deleted(deleted_tags, groups=False)
            if change.change_type == "update":  # a renamed tag reads by its new name on every customer
                await tags.retag_customers([t.tag_id for g in groups for t in g.tags], removed=False)
        else:  # shuffle, or a kind WeCom adds later: the whole catalogue as it is now
            groups, _, _ = tag_groups(await self.context.wecom.get_corp_tag_list())
            await tags.replace_all(groups, at=change.sent_at)
        await MessageService(session).archive(
            NewMessage(channel=EVENT_CHANNEL, direction="in", external_msg_id=item.dedup_key,
                       msg_type=f"event:change_external_tag:{change.change_type}", sent_at=change.sent_at,
                       sender="sys", payload=item.payload,
                       meta={"TagType": change.tag_type, "Id": change.id, "StrategyId": change.strategy_id}))
