"""change_external_chat callbacks: a customer group (客户群) was created, changed or dismissed.

The event says what kind of change happened (UpdateDetail add_member / del_member / change_owner /
change_name …) but not the whole group, so each create or update reads the group from WeCom
(groupchat/get) and stores what it says, whatever the detail: late or repeated events then leave
the same, current group. A dismissal, or a group WeCom no longer knows (40050), marks it gone.
https://developer.work.weixin.qq.com/document/path/92130 (客户群变更事件)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from connectors.wecom.errors import GroupChatGoneError
from connectors.wecom.inbound import ChatChange
from connectors.wecom.profiles import group_profile
from crm_core.groups import GroupService
from crm_core.messages import MessageService, NewMessage
from crm_core.models import InboxItem
from crm_core.sql import take_turns
from scrm.ingest.context import IngestContext
from scrm.ingest.wecom_callbacks import EVENT_CHANNEL

log = logging.getLogger(__name__)


@dataclass
class ChatChanges:
    context: IngestContext
    batchable = False  # reads the group from WeCom

    async def handle(self, session: AsyncSession, item: InboxItem, change: ChatChange) -> None:
        groups = GroupService(session)
        if change.change_type == "dismiss":
            await groups.dismiss(change.chat_id, at=change.sent_at)
        elif change.chat_id:
            await take_turns(session, f"wecom_group:{change.chat_id}")
            try:
                detail = (await self.context.wecom.groupchat_get(change.chat_id))["group_chat"]
            except GroupChatGoneError:
                log.info("groupchat/get no longer knows %s; marking it gone", change.chat_id)
                await groups.dismiss(change.chat_id, at=change.sent_at)
            else:
                profile = group_profile(detail)
                owner = await self.context.staff(session, profile.owner_userid) if profile.owner_userid else None
                await groups.apply(profile, owner, at=change.sent_at)
        kind = ":".join(p for p in ("event:change_external_chat", change.change_type, change.update_detail) if p)
        await MessageService(session).archive(
            NewMessage(channel=EVENT_CHANNEL, direction="in", external_msg_id=item.dedup_key, msg_type=kind,
                       sent_at=change.sent_at, sender="sys", recipient=change.chat_id, payload=item.payload,
                       meta=change.meta))
