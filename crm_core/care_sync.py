"""Care deliveries sent as group-send tasks (channel "template"): settling them once the rep acts.

A template delivery is a task WeCom holds for the owner rep; nothing reaches the customer until
the rep confirms it in 群发助手. Its life::

    queued ──task created (msgid known)──▶ sent ──customer got it───────────────▶ confirmed
      │                                      ├──WeCom could not deliver──────────▶ unsent (why, in detail)
      │                                      └──rep never sent it before expiry──▶ unsent
      └──task never created before expiry─────────────────────────────────────────▶ unsent

Both clocks run from the moment WeCom got the task (the outbox row's sent_at; quiet hours may hold
it back well after the delivery row was written): a rep who leaves it unconfirmed for
`remind_after` is reminded once, and after `keep_for` it is given up. This module decides and
records; asking WeCom is scrm.delivery.group_sends' business, which hands over a `TaskReport` in plain
terms, so crm_core stays free of WeCom.

A care greeting's task holds one customer; a tag campaign's (crm_core.campaigns) holds all of a
rep's customers with the tag, one delivery each. Each delivery follows its own customer's copy,
and the rep's reminder names the task once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from config.templates import has, render
from crm_core.campaigns import campaign_id_of
from crm_core.care import CONTACT_CHANNEL
from crm_core.models import CareDelivery, Customer, CustomerIdentity, OutboxItem, Staff
from crm_core.outbox import OutboxService

OPEN_STATUSES = ("queued", "sent")
REMINDER_KEY_PREFIX = "care-sync:remind:"
# One reminder names its deliveries in its idempotency key ("care-sync:remind:12,15"); 20 ids
# stay well inside the key's 255 characters and the message inside WeCom's 2048 bytes.
MAX_TASKS_PER_REMINDER = 20
LOCK_CHUNK = 5000  # delivery ids per locking query, well inside PostgreSQL's 32767 bind parameters
# A task WeCom gave no answer for (errors every run) is given up this long after it expired, so
# the set of open deliveries cannot grow without end.
NO_ANSWER_GRACE = timedelta(days=1)

# What became of the customer's copy, as far as WeCom knows.
PENDING, DELIVERED, NOT_FRIEND, RECEIVE_LIMIT, GONE = "pending", "delivered", "not_friend", "receive_limit", "gone"
# What the sync does with a delivery.
WAIT, REMIND, CONFIRM, GIVE_UP = "wait", "remind", "confirm", "give_up"


@dataclass(frozen=True)
class GroupSendPolicy:
    """How long a task can still be sent (WeCom keeps it about 7 days) and when to nudge the rep."""

    keep_for: timedelta = timedelta(days=7)
    remind_after: timedelta = timedelta(hours=4)

    @property
    def keep_days(self) -> str:
        return f"{self.keep_for / timedelta(days=1):g}"


@dataclass(frozen=True)
class OpenTask:
    """An open template delivery, detached from its session so WeCom can be asked without a transaction."""

    delivery_id: int
    status: str
    started_at: datetime  # when WeCom got the task; the delivery's creation while there is none
    customer_id: int
    customer: str
    occasion: str
    staff_id: int | None
    rep_userid: str
    rep: str
    msgid: str  # "" while the task does not exist in WeCom yet
    msgid_is_new: bool  # known from the outbox answer but not yet stored on the delivery
    recipients: tuple[str, ...]  # external_userids in the task, without those WeCom refused
    refused: bool  # WeCom refused every recipient when the task was created


@dataclass(frozen=True)
class TaskReport:
    """WeCom's word on one task, for the delivery's rep and customer."""

    rep_sent: bool
    result: str = PENDING  # PENDING | DELIVERED | NOT_FRIEND | RECEIVE_LIMIT | GONE
    sent_at: datetime | None = None


@dataclass(frozen=True)
class Decision:
    action: str  # WAIT | REMIND | CONFIRM | GIVE_UP
    detail: str = ""


def decide(task: OpenTask, report: TaskReport | None, *, now: datetime, policy: GroupSendPolicy,
           tz: ZoneInfo) -> Decision:
    """What to do with one delivery; `report` is None when WeCom was not (or could not be) asked."""
    age = now - task.started_at
    expired = age >= policy.keep_for
    if task.refused:
        return Decision(GIVE_UP, render("group_sends.detail.refused", rep=task.rep))
    if report is None:
        if expired and not task.msgid:
            return Decision(GIVE_UP, render("group_sends.detail.not_created", days=policy.keep_days))
        if age >= policy.keep_for + NO_ANSWER_GRACE:
            return Decision(GIVE_UP, render("group_sends.detail.no_answer"))
        return Decision(WAIT)
    if report.result == DELIVERED:
        at = (report.sent_at or now).astimezone(tz)
        return Decision(CONFIRM, render("group_sends.detail.delivered", rep=task.rep,
                                        at=f"{at.month}月{at.day}日 {at:%H:%M}"))
    if report.result in (NOT_FRIEND, RECEIVE_LIMIT, GONE):
        detail_key = {NOT_FRIEND: "not_friend", RECEIVE_LIMIT: "receive_limit", GONE: "task_gone"}[report.result]
        return Decision(GIVE_UP, render(f"group_sends.detail.{detail_key}", rep=task.rep))
    if expired:
        detail_key = "rep_skipped" if report.rep_sent else "rep_not_sent"
        return Decision(GIVE_UP, render(f"group_sends.detail.{detail_key}", rep=task.rep, days=policy.keep_days))
    if not report.rep_sent and age >= policy.remind_after:
        return Decision(REMIND)
    return Decision(WAIT)


def occasion_label(occasion: str) -> str:
    """The occasion as a rep reads it: birthday → 生日祝福, festival:mid_autumn → 中秋节祝福.

    Names come from the care labels (care.labels.* in templates_care.toml), the same words the
    care job used when it told the rep about the task; a tag campaign reads 群发活动（C12）."""
    campaign_id = campaign_id_of(occasion)
    if campaign_id is not None:
        return render("campaigns.occasion", id=campaign_id)
    name = occasion.removeprefix("festival:")
    label = render(f"care.labels.{name}") if has(f"care.labels.{name}") else name
    return render("group_sends.occasion", label=label)


class CareSyncService:
    """Reads open template deliveries, records their outcome and queues the rep's one reminder."""

    def __init__(self, session: AsyncSession):
        self.session = session

    async def open_tasks(self, *, after_id: int, limit: int) -> list[OpenTask]:
        """Open template deliveries with id > `after_id`, oldest first (keyset paging over a run)."""
        rows = (await self.session.execute(
            select(CareDelivery.id, CareDelivery.status, CareDelivery.created_at, CareDelivery.customer_id,
                   CareDelivery.occasion, CareDelivery.staff_id, CareDelivery.wecom_msgid,
                   Customer.name, Customer.remark, Staff.userid, Staff.name.label("staff_name"),
                   OutboxItem.id.label("outbox_id"), OutboxItem.status.label("outbox_status"), OutboxItem.sent_at)
            .join(Customer, Customer.id == CareDelivery.customer_id)
            .outerjoin(Staff, Staff.id == CareDelivery.staff_id)
            .outerjoin(OutboxItem, OutboxItem.idempotency_key == CareDelivery.outbox_key)
            .where(CareDelivery.channel == "template", CareDelivery.status.in_(OPEN_STATUSES),
                   CareDelivery.id > after_id)
            .order_by(CareDelivery.id)
            .limit(limit)
        )).all()
        sends = await self._sends({row.outbox_id for row in rows if row.outbox_id is not None})
        shared = [row for row in rows if row.outbox_id in sends and len(sends[row.outbox_id].asked_for) > 1]
        contacts = await self._contacts({row.customer_id for row in shared})
        shared_ids = {row.id for row in shared}
        return [_open_task(row, sends.get(row.outbox_id),
                           contacts.get(row.customer_id, frozenset()) if row.id in shared_ids else None)
                for row in rows]

    async def _sends(self, outbox_ids: set[int]) -> dict[int, _Send]:
        """Each task's request and answer, read once per batch: a campaign task names thousands of
        customers and is shared by as many deliveries."""
        if not outbox_ids:
            return {}
        rows = await self.session.execute(
            select(OutboxItem.id, OutboxItem.status, OutboxItem.payload, OutboxItem.response)
            .where(OutboxItem.id.in_(outbox_ids)))
        return {row.id: _send(row) for row in rows}

    async def _contacts(self, customer_ids: set[int]) -> dict[int, frozenset[str]]:
        """The customers' WeCom external_userids, to find each one's own result in a shared task."""
        if not customer_ids:
            return {}
        rows = await self.session.execute(
            select(CustomerIdentity.customer_id, CustomerIdentity.external_id)
            .where(CustomerIdentity.customer_id.in_(customer_ids), CustomerIdentity.channel == CONTACT_CHANNEL))
        contacts: dict[int, set[str]] = defaultdict(set)
        for customer_id, external_id in rows:
            contacts[customer_id].add(external_id)
        return {customer_id: frozenset(ids) for customer_id, ids in contacts.items()}

    async def settle(self, decisions: list[tuple[OpenTask, Decision]]) -> None:
        """Store what is now known, in the caller's transaction; a delivery closed meanwhile is left alone."""
        for task, decision in decisions:
            values: dict[str, str] = {"wecom_msgid": task.msgid} if task.msgid_is_new else {}
            if decision.action == CONFIRM:
                values |= {"status": "confirmed", "detail": decision.detail}
            elif decision.action == GIVE_UP:
                values |= {"status": "unsent", "detail": decision.detail}
            elif task.msgid and task.status == "queued":
                values["status"] = "sent"  # the task exists; the rep has it
            if values:
                await self.session.execute(
                    update(CareDelivery)
                    .where(CareDelivery.id == task.delivery_id, CareDelivery.status.in_(OPEN_STATUSES))
                    .values(**values)
                )

    async def remind(self, tasks: list[OpenTask], policy: GroupSendPolicy) -> tuple[int, int]:
        """Queue one app message per rep listing their unconfirmed tasks not reminded before.

        Returns (messages, reps). The delivery rows are locked first (PostgreSQL), so a second sync
        running at the same moment waits and then sees this one's reminder keys.
        """
        if not tasks:
            return 0, 0
        ids = sorted(t.delivery_id for t in tasks)
        still_open: set[int] = set()
        for start in range(0, len(ids), LOCK_CHUNK):
            still_open.update((await self.session.scalars(
                select(CareDelivery.id)
                .where(CareDelivery.id.in_(ids[start:start + LOCK_CHUNK]), CareDelivery.status == "sent")
                .order_by(CareDelivery.id)
                .with_for_update()
            )).all())
        reminded = await self._reminded_ids(min(t.started_at for t in tasks))
        # A campaign task holds many customers, one delivery each: the rep hears about the task once,
        # and its reminder key names the task's first delivery.
        groups: dict[tuple[str, str], list[OpenTask]] = defaultdict(list)
        for task in tasks:
            if task.delivery_id in still_open and task.rep_userid:
                groups[(task.rep_userid, task.msgid or str(task.delivery_id))].append(task)
        by_rep: dict[str, list[list[OpenTask]]] = defaultdict(list)
        for (rep_userid, _), group in groups.items():
            if not any(t.delivery_id in reminded for t in group):
                by_rep[rep_userid].append(sorted(group, key=lambda t: t.delivery_id))
        outbox = OutboxService(self.session)
        messages = 0
        for rep_userid, pending in by_rep.items():
            pending.sort(key=lambda g: g[0].delivery_id)
            for start in range(0, len(pending), MAX_TASKS_PER_REMINDER):
                chunk = pending[start:start + MAX_TASKS_PER_REMINDER]
                if await outbox.enqueue(
                    idempotency_key=REMINDER_KEY_PREFIX + ",".join(str(g[0].delivery_id) for g in chunk),
                    kind="app_message",
                    payload={"touser": rep_userid, "msgtype": "text", "text": {"content": _reminder(chunk, policy)}},
                    customer_id=chunk[0][0].customer_id if len(chunk) == 1 and len(chunk[0]) == 1 else None,
                    staff_id=chunk[0][0].staff_id,
                ):
                    messages += 1
        return messages, len(by_rep)

    async def _reminded_ids(self, since: datetime) -> set[int]:
        """Deliveries named in a reminder key queued since `since` (no reminder predates its task)."""
        keys = (await self.session.scalars(
            select(OutboxItem.idempotency_key)
            .where(OutboxItem.idempotency_key.startswith(REMINDER_KEY_PREFIX), OutboxItem.created_at >= since)
        )).all()
        return {int(part) for key in keys for part in key.removeprefix(REMINDER_KEY_PREFIX).split(",")}


@dataclass(frozen=True)
class _Send:
    """One task's outbox row: whom it asked for and, once WeCom answered, the msgid and whom it refused."""

    sender: str
    asked_for: tuple[str, ...]
    msgid: str
    refused: frozenset[str]


_NOT_QUEUED = _Send(sender="", asked_for=(), msgid="", refused=frozenset())


def _send(row) -> _Send:
    payload = row.payload or {}
    response = row.response or {}
    answered = row.status == "sent"
    return _Send(
        sender=str(payload.get("sender") or ""),
        asked_for=tuple(str(e) for e in payload.get("external_userid") or []),
        msgid=str(response.get("msgid") or "") if answered else "",
        refused=frozenset(response.get("fail_list") or []) if answered else frozenset(),
    )


def _open_task(row, send: _Send | None, own: frozenset[str] | None) -> OpenTask:
    """`own`: the customer's external_userids when the task is shared by several customers (a
    campaign), so the delivery follows its own customer's copy only; None for a one-customer task."""
    send = send or _NOT_QUEUED
    answered = row.outbox_status == "sent"
    msgid = row.wecom_msgid or send.msgid
    asked_for = send.asked_for if own is None else tuple(sorted(own.intersection(send.asked_for)))
    recipients = tuple(e for e in asked_for if e not in send.refused)
    rep_userid = row.userid or send.sender
    return OpenTask(
        delivery_id=row.id, status=row.status, started_at=row.sent_at if answered and row.sent_at else row.created_at,
        customer_id=row.customer_id, customer=row.name or row.remark, occasion=row.occasion, staff_id=row.staff_id,
        rep_userid=rep_userid, rep=row.staff_name or rep_userid,
        msgid=msgid, msgid_is_new=bool(msgid) and msgid != row.wecom_msgid,
        recipients=recipients, refused=answered and bool(asked_for) and not recipients,
    )


def _reminder(groups: list[list[OpenTask]], policy: GroupSendPolicy) -> str:
    """One line per task; a task for several customers (a campaign) names the first and the count."""
    if len(groups) == 1:
        return render("group_sends.reminder_one", customer=_customers(groups[0]),
                      occasion=occasion_label(groups[0][0].occasion), days=policy.keep_days)
    lines = "\n".join(render("group_sends.reminder_line", customer=_customers(g), occasion=occasion_label(g[0].occasion))
                      for g in groups)
    return render("group_sends.reminder_many", count=len(groups), lines=lines, days=policy.keep_days)


def _customers(group: list[OpenTask]) -> str:
    if len(group) == 1:
        return group[0].customer
    return render("campaigns.reminder_customers", first=group[0].customer, count=len(group))
