"""change_contact callbacks: a member or department of the address book changed, and the CRM follows
at once (a departure closes the member's access, a new department or leadership changes their role).

A member event reads the member back with user/get (the callback itself carries only the userid
and departments); a department event reads department/list whole. Each runs in a transaction of
its own, since it calls WeCom, and is archived as an event like every other callback.
https://developer.work.weixin.qq.com/document/path/90970 (成员变更通知),
https://developer.work.weixin.qq.com/document/path/90971 (部门变更通知)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from connectors.wecom.errors import InvalidUserError
from connectors.wecom.inbound import DirectoryChange
from crm_core.directory import DirectoryService
from crm_core.messages import MessageService, NewMessage
from crm_core.models import InboxItem
from crm_core.sql import take_turns
from scrm.ingest.wecom_callbacks import EVENT_CHANNEL
from scrm.sync.directory import Directory

log = logging.getLogger(__name__)


@dataclass
class DirectoryChanges:
    directory: Directory
    batchable = False  # reads the member or the departments from WeCom

    async def handle(self, session: AsyncSession, item: InboxItem, change: DirectoryChange) -> None:
        if change.change_type == "delete_user" and change.userid:
            await self.directory.member_left(session, change.userid)
        elif change.change_type in ("create_user", "update_user") and change.userid:
            await self._member_changed(session, change)
        elif change.about_department:
            await take_turns(session, "wecom_departments")
            await self.directory.refresh_departments(session)
        elif change.change_type == "update_tag":  # https://developer.work.weixin.qq.com/document/path/96304
            await take_turns(session, "wecom_member_tags")
            await self.directory.refresh_tags(session)
        await MessageService(session).archive(
            NewMessage(channel=EVENT_CHANNEL, direction="in", external_msg_id=item.dedup_key,
                       msg_type=f"event:change_contact:{change.change_type}", sent_at=change.sent_at,
                       sender=change.userid or "sys", payload=item.payload, meta=change.meta))

    async def _member_changed(self, session: AsyncSession, change: DirectoryChange) -> None:
        userid = change.userid
        for name in sorted({userid, change.new_userid} - {""}):  # both names of a renamed member, in one order
            await take_turns(session, f"wecom_member:{name}")
        if change.new_userid and change.new_userid != userid:
            await DirectoryService(session, self.directory.roles).rename(userid, change.new_userid)
            userid = change.new_userid
        try:
            await self.directory.refresh_member(session, userid)
        except InvalidUserError:
            # Gone again before we asked: its delete_user follows; an error answer is no departure.
            log.info("user/get no longer knows %s after %s; waiting for its delete_user", userid, change.change_type)
