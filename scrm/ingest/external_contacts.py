"""change_external_contact callbacks: a rep's external contact was added, edited or deleted.

Each one pulls the contact's profile from WeCom (so it runs in a transaction of its own), keeps the
customer record and that rep's follower relation in step, and archives the event under the customer.
https://developer.work.weixin.qq.com/document/path/92130 (客户变更事件)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from config.templates import render
from connectors.wecom.errors import InvalidUserError
from connectors.wecom.inbound import EXTERNAL_CHANNEL, ContactChange
from connectors.wecom.profiles import contact_profile, follow_entry, follower_profile
from crm_core.corp_tags import CorpTagService
from crm_core.customers import CustomerService
from crm_core.followers import FollowerService, choose_owner
from crm_core.lifecycle import LifecycleService
from crm_core.messages import MessageService, NewMessage
from crm_core.models import Customer, InboxItem, Staff
from crm_core.outbox import OutboxService
from crm_core.sql import take_turns
from crm_core.tags import TagService
from scrm.ingest.context import IngestContext
from scrm.ingest.wecom_callbacks import EVENT_CHANNEL

log = logging.getLogger(__name__)

# del_follow_user: the customer deleted the rep; del_external_contact: the rep deleted the customer.
DELETIONS = ("del_follow_user", "del_external_contact")


@dataclass
class ContactChanges:
    context: IngestContext
    batchable = False  # pulls the contact from WeCom

    async def handle(self, session: AsyncSession, item: InboxItem, change: ContactChange) -> None:
        ctx = self.context
        customers = CustomerService(session)
        contact: dict = {}
        await take_turns(session, f"wecom_contact:{change.external_userid}")
        try:
            # Deletions too: whether anyone still follows the customer decides between a lost rep and a lost customer.
            contact = await ctx.wecom.get_external_contact(change.external_userid)
        except InvalidUserError:  # 84061: no rep of ours follows them any more
            log.info("externalcontact/get has no relation for %s; recording the event only", change.external_userid)
        staff = await ctx.staff(session, change.userid) if change.userid else None
        customer = await customers.ensure(EXTERNAL_CHANNEL, change.external_userid)
        followers = FollowerService(session)
        removed = False
        if staff is not None and change.change_type in DELETIONS:
            removed = await followers.remove(customer, staff, at=change.sent_at)
        if contact:
            await customers.apply_profile(customer, contact_profile(
                contact, userid=change.userid, owner_staff_id=await self._owner(session, customer, contact, staff)),
                at=change.sent_at)
        if staff is not None and (follow := follow_entry(contact, staff.userid)):
            if change.change_type == "edit_external_contact":
                await self._tags_edited_in_wecom(session, customer, staff, follow)
            await followers.upsert(customer, staff, follower_profile(follow), at=change.sent_at)
        if change.change_type == "del_follow_user":
            await self._customer_left(session, item, customer, staff, at=change.sent_at,
                                      still_followed=bool(contact.get("follow_user")), removed=removed)
        if change.change_type == "add_external_contact":
            await ctx.acquisition.contact_added(session, customer, staff, external_userid=change.external_userid,
                                                state=change.state, welcome_code=change.welcome_code)
            ctx.outbox_changed(session)  # the welcome code lives 20 s
        await MessageService(session).archive(
            NewMessage(channel=EVENT_CHANNEL, direction="in", external_msg_id=item.dedup_key,
                       msg_type=f"event:change_external_contact:{change.change_type}", sent_at=change.sent_at,
                       sender=change.external_userid, recipient=change.userid, payload=item.payload, meta=change.meta,
                       customer_id=customer.id, staff_id=staff.id if staff else None)
        )

    async def _tags_edited_in_wecom(self, session: AsyncSession, customer: Customer, staff: Staff, follow: dict) -> None:
        """The rep set or removed corp tags in their WeCom client: the CRM's tags follow, and are not
        sent back to WeCom (crm_core.tag_push: a change goes out only to where it did not come from)."""
        known = await FollowerService(session).get(customer.id, staff.id)
        if known is None:
            return
        before = set((await CorpTagService(session).names(known.tag_ids)).values())
        after = {str(t["tag_name"]) for t in follow.get("tags") or []
                 if t.get("tag_name") and int(t.get("type", 1) or 1) == 1}
        if before != after:
            await TagService(session).change(customer, None, add=sorted(after - before), remove=sorted(before - after),
                                             from_wecom=True)
        if not after:
            customer.wecom_tags = []  # the profile keeps the last rep's tags only when there are some

    async def _owner(self, session: AsyncSession, customer: Customer, contact: dict, staff: Staff | None) -> int | None:
        """Who owns the customer: their owner while the owner still follows them, otherwise the rep who
        added them first. Decided from WeCom's follower list, not from which event a worker handled
        first, so two reps' add events processed at once agree."""
        following = {str(f.get("userid", "")): int(f.get("createtime") or 0) for f in contact.get("follow_user") or []}
        owner = await session.get(Staff, customer.owner_id) if customer.owner_id is not None else None
        chosen = choose_owner((owner.userid, owner.active) if owner is not None else None, following)
        if chosen is None:
            return None
        if owner is not None and chosen == owner.userid:
            return owner.id
        if staff is not None and chosen == staff.userid:
            return staff.id
        return (await self.context.staff(session, chosen)).id

    async def _customer_left(self, session: AsyncSession, item: InboxItem, customer: Customer, staff: Staff | None, *,
                             at: datetime, still_followed: bool, removed: bool) -> None:
        """The customer deleted the rep: tell the rep while there is still a chance, and mark the
        customer churned when no rep of ours follows them any more.

        Only a change alerts (the relation ending, or the customer becoming churned): a second deletion
        event (WeCom resending with a new timestamp) is archived but tells nobody again. The row lock
        makes two workers handling two such events agree on which one made the change."""
        changed = removed if still_followed else await LifecycleService(session).churn(customer, at=at)
        if not changed:
            return
        last = await MessageService(session).last_for_customer(customer.id)
        if staff is None:
            return
        last_text = (
            f"{self.context.local(last.sent_at)} {'客户' if last.direction == 'in' else '我方'}：{last.text[:60]}"
            if last is not None else render("alerts.customer_deleted_you_no_history")
        )
        content = render("alerts.customer_deleted_you", customer=customer.name or customer.remark or "一位客户",
                         last_interaction=last_text)
        await OutboxService(session).enqueue(
            idempotency_key=f"alert:customer_left:{item.dedup_key}",
            kind="app_message",
            payload={"touser": staff.userid, "msgtype": "text", "text": {"content": content}},
            customer_id=customer.id,
            staff_id=staff.id,
        )
        self.context.outbox_changed(session)
