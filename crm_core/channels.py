"""渠道活码: channel QR codes, and what happens when a customer arrives through one.

A channel is a row with a short `state` (`ch<id>`); its WeCom 「联系我」 code carries that state, so the
add_external_contact event says which channel the customer scanned. Asking WeCom for the code, and
greeting the customer with the welcome_code of that event, go through the outbox like every other
call that changes something at WeCom (kinds `contact_way` and `welcome_msg`): durable, retried,
and keyed so a retried callback never greets anyone twice. This module decides and records;
scrm.delivery.sender talks to WeCom.

    ChannelError (DomainError)
    ├── ChannelExistsError       that name is taken (also by a stopped channel)
    ├── ChannelNotFoundError
    ├── UnknownGroupError        .known: the groups config/sales_groups.toml defines
    └── NoChannelUsersError      neither a group nor reps to connect customers to
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config.templates import render
from crm_core.assignment import LeadAssigner, SalesGroups, default_groups
from crm_core.audit import AuditService
from crm_core.errors import DomainError
from crm_core.models import ContactChannel, Customer, Message, Staff
from crm_core.outbox import OutboxService

STATE_PREFIX = "ch"
NAME_MAX = 30  # the name is also the code's remark in WeCom, which allows 30 characters
CONTACT_WAY_SCENE_QR = 2
# send_welcome_msg text.content "最长为4000字节": https://developer.work.weixin.qq.com/document/path/92137
WELCOME_TEXT_MAX_BYTES = 4000

# (session, userid) -> that staff member's row, created (from WeCom's directory) when first seen.
EnsureStaff = Callable[[AsyncSession, str], Awaitable[Staff]]


class ChannelError(DomainError):
    pass


class ChannelExistsError(ChannelError):
    pass


class ChannelNotFoundError(ChannelError):
    pass


class UnknownGroupError(ChannelError):
    def __init__(self, group: str, known: Sequence[str]):
        super().__init__(f"no sales group {group!r}")
        self.group = group
        self.known = list(known)


class NoChannelUsersError(ChannelError):
    pass


class WelcomeTooLongError(ChannelError):
    def __init__(self, size: int):
        super().__init__(f"the welcome text has {size} bytes; WeCom sends at most {WELCOME_TEXT_MAX_BYTES}")
        self.size = size


def state_for(channel_id: int) -> str:
    return f"{STATE_PREFIX}{channel_id}"


def contact_way_body(channel: ContactChannel) -> dict:
    """The add_contact_way request: a QR code for one rep (type 1) or several (type 2)."""
    return {"type": 1 if len(channel.user_ids) == 1 else 2, "scene": CONTACT_WAY_SCENE_QR, "remark": channel.name,
            "skip_verify": True, "state": channel.state, "user": list(channel.user_ids)}


class ChannelService:
    def __init__(self, session: AsyncSession, groups: SalesGroups | None = None):
        self.session = session
        self.groups = groups or default_groups()

    async def create(self, name: str, *, group: str = "", users: Sequence[str] = (), welcome: str = "",
                     by: Staff | None = None) -> ContactChannel:
        """A new channel for the group's members (or `users`, or else the creator alone); no WeCom call yet."""
        name = name.strip()
        if not name or len(name) > NAME_MAX:
            raise ValueError(f"a channel name has 1 to {NAME_MAX} characters")
        if group and self.groups.get(group) is None:
            raise UnknownGroupError(group, list(self.groups.groups))
        user_ids = list(dict.fromkeys(users)) or (list(self.groups.get(group).members) if group else []) \
            or ([by.userid] if by is not None else [])
        if not user_ids:
            raise NoChannelUsersError("a channel needs a sales group or reps")
        welcome = welcome.strip()
        if (size := len(welcome.encode("utf-8"))) > WELCOME_TEXT_MAX_BYTES:
            raise WelcomeTooLongError(size)
        if await self.by_name(name) is not None:
            raise ChannelExistsError(f"channel {name!r} exists")
        # The state needs the id: insert with a placeholder, then name it. (No savepoint: on SQLite,
        # releasing one outside a transaction commits, and the CLI must be able to roll this back.)
        channel = ContactChannel(name=name, state=f"new-{secrets.token_hex(8)}", group=group, user_ids=user_ids,
                                 welcome_text=welcome, active=True,
                                 created_by_id=by.id if by is not None else None)
        self.session.add(channel)
        await self.session.flush()
        channel.state = state_for(channel.id)
        await self.session.flush()
        AuditService(self.session).record(actor=by.userid if by else "cli", action="channel.create",
                                          detail=f"{channel.state} {name} group={group} users={','.join(user_ids)}")
        return channel

    async def request_qr_code(self, channel: ContactChannel) -> None:
        """Ask WeCom for the channel's code through the outbox; its creator gets the link when it is ready."""
        await OutboxService(self.session).enqueue(
            idempotency_key=f"contact_way:add:{channel.id}", kind="contact_way",
            payload={"action": "add", "channel_id": channel.id, "body": contact_way_body(channel)},
            staff_id=channel.created_by_id,
        )

    async def qr_code_ready(self, channel_id: int, *, config_id: str, qr_code: str) -> ContactChannel | None:
        """WeCom made the code: keep its id and image link, and send the link to whoever asked for it."""
        channel = await self.session.get(ContactChannel, channel_id)
        if channel is None:
            return None
        channel.config_id, channel.qr_code = config_id, qr_code
        creator = await self.session.get(Staff, channel.created_by_id) if channel.created_by_id else None
        if creator is not None:
            await self._tell(creator, f"channel:ready:{channel.id}",
                             render("channels.bot.ready", name=channel.name, link=qr_code, reps=self.reps_text(channel)))
        return channel

    async def qr_code_failed(self, channel_id: int, reason: str) -> None:
        """WeCom refused the code for good: tell whoever asked, once."""
        channel = await self.session.get(ContactChannel, channel_id)
        creator = await self.session.get(Staff, channel.created_by_id) if channel and channel.created_by_id else None
        if channel is not None and creator is not None:
            await self._tell(creator, f"channel:failed:{channel.id}",
                             render("channels.bot.failed", name=channel.name, reason=reason))

    async def deactivate(self, name: str, *, by: Staff | None = None) -> ContactChannel:
        """Stop attributing and greeting through the channel, and delete its code so it no longer adds anyone."""
        channel = await self.by_name(name)
        if channel is None:
            raise ChannelNotFoundError(f"no channel {name!r}")
        if channel.active:
            channel.active = False
            if channel.config_id:
                await OutboxService(self.session).enqueue(
                    idempotency_key=f"contact_way:del:{channel.id}", kind="contact_way",
                    payload={"action": "del", "channel_id": channel.id, "body": {"config_id": channel.config_id}},
                    staff_id=by.id if by else None,
                )
            AuditService(self.session).record(actor=by.userid if by else "cli", action="channel.stop",
                                              detail=f"{channel.state} {channel.name}")
        return channel

    async def all(self) -> list[ContactChannel]:
        return list((await self.session.scalars(select(ContactChannel).order_by(ContactChannel.id))).all())

    async def by_name(self, name: str) -> ContactChannel | None:
        return await self.session.scalar(select(ContactChannel).where(ContactChannel.name == name))

    async def active_by_state(self, state: str) -> ContactChannel | None:
        if not state:
            return None
        return await self.session.scalar(
            select(ContactChannel).where(ContactChannel.state == state, ContactChannel.active.is_(True)))

    async def active_by_reference(self, reference: str) -> ContactChannel | None:
        """A channel a message names, by its state (`ch3`) or its name (`展会2026`)."""
        return await self.active_by_state(reference) or await self.session.scalar(
            select(ContactChannel).where(ContactChannel.name == reference, ContactChannel.active.is_(True)))

    def reps_text(self, channel: ContactChannel) -> str:
        return (f"{channel.group}：" if channel.group else "") + "、".join(channel.user_ids)

    async def _tell(self, staff: Staff, key: str, text: str) -> None:
        await OutboxService(self.session).enqueue(
            idempotency_key=key, kind="app_message",
            payload={"touser": staff.userid, "msgtype": "text", "text": {"content": text}}, staff_id=staff.id)


@dataclass
class Acquisition:
    """How a new customer is attributed, greeted and assigned; plugged into the ingest pipeline."""

    groups: SalesGroups = field(default_factory=default_groups)

    async def contact_added(self, session: AsyncSession, customer: Customer, rep: Staff | None, *,
                            external_userid: str, state: str, welcome_code: str) -> None:
        """add_external_contact: the customer scanned `state`'s code and added `rep` (WeCom paired them).

        Safe to run again for a retried event: attribution fills only an empty source, and the
        welcome and the owner's notice are keyed by the welcome code and the customer."""
        channel = await ChannelService(session, self.groups).active_by_state(state)
        if channel is not None and attribute(customer, channel):
            if customer.owner_id is None and rep is not None and rep.userid in channel.user_ids:
                customer.owner_id = rep.id
            owner = await session.get(Staff, customer.owner_id) if customer.owner_id else None
            if owner is not None:
                await tell_owner(session, owner, customer, channel, None)
        elif state and channel is None:
            AuditService(session).record(actor="system", action="channel.unknown_state", customer_id=customer.id,
                                         detail=state[:64])
        if welcome_code and rep is not None:
            text = channel.welcome_text if channel is not None and channel.welcome_text else \
                render("channels.welcome_default", rep=rep.name or rep.userid)
            await OutboxService(session).enqueue(
                idempotency_key=f"welcome:{welcome_code}", kind="welcome_msg",
                payload={"welcome_code": welcome_code, "text": {"content": text}, "external_userid": external_userid},
                customer_id=customer.id, staff_id=rep.id,
            )

    async def lead_arrived(self, session: AsyncSession, customer: Customer, message: Message,
                           ensure_staff: EnsureStaff) -> Staff | None:
        """A customer from another path (the JSON webhook) whose first message names a channel in
        `meta.channel`: attribute them and, if the channel names a group, assign an owner by its rule."""
        reference = str((message.meta or {}).get("channel") or "")
        if not reference or customer.source or customer.owner_id is not None:
            return None
        channel = await ChannelService(session, self.groups).active_by_reference(reference[:64])
        if channel is None or not attribute(customer, channel):
            return None
        group = self.groups.get(channel.group) if channel.group else None
        if group is None:
            return None
        members = [await ensure_staff(session, userid) for userid in group.members]
        owner = await LeadAssigner(session, self.groups).assign(
            group, customer, members, hints=[channel.name, customer.company, customer.description])
        if owner is not None:
            await tell_owner(session, owner, customer, channel, message)
        return owner


def attribute(customer: Customer, channel: ContactChannel) -> bool:
    """Credit the channel, unless the customer already has a source (first touch wins)."""
    if customer.source or customer.source_channel_id is not None:
        return False
    customer.source_channel_id, customer.source = channel.id, channel.name[:64]
    return True


async def tell_owner(session: AsyncSession, owner: Staff, customer: Customer, channel: ContactChannel,
                     message: Message | None) -> None:
    """The owner hears once about a new customer: where they came from and what they wrote first."""
    first = render("channels.lead_first_message", text=message.text[:80]) if message is not None and message.text else ""
    await OutboxService(session).enqueue(
        idempotency_key=f"lead:{customer.id}:{owner.id}", kind="app_message",
        payload={"touser": owner.userid, "msgtype": "text", "text": {"content": render(
            "channels.lead_notice", customer=customer.name or customer.remark or render("channels.unnamed"),
            channel=channel.name, first_message=first).strip()}},
        customer_id=customer.id, staff_id=owner.id,
    )
