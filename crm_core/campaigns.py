"""Tag campaigns (群发 标签:VIP …): a manager's message to every reachable customer with a CRM tag.

WeCom lets the company reach a rep's external contacts only through group-send tasks the rep
confirms (externalcontact/add_msg_template), so a campaign becomes one task per owning rep, split
every 10,000 customers (WeCom's limit per task), and an app message telling the rep to confirm it
in 群发助手. Each customer's outcome is a CareDelivery with occasion "campaign:<id>" and channel
"template", so the group-send sync (crm_core.care_sync) settles it like a care greeting: confirmed,
or unsent with WeCom's reason, and the rep who sits on the task is reminded once.

Who is left out, and counted by reason: customers who opted out (退订), churned customers, those
without a WeCom contact identity, those without an active owner to send the task, and those who
already have as many group messages as WeCom's receive limit allows in its current window (as many
a month as the month has days, unless the company chose 7 a week or 1 a day: crm_core.group_send_limits;
every template delivery created in the window counts, care greetings included, except those that
provably never reached the customer).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from config.templates import render
from crm_core.care import CONTACT_CHANNEL, TEMPLATE
from crm_core.group_send_limits import ReceiveLimit, default_limit
from crm_core.models import Campaign, CareDelivery, Customer, CustomerIdentity, CustomerTag, Staff
from crm_core.outbox import OutboxService
from crm_core.scope import Scope

OCCASION_PREFIX = "campaign:"
TASK_RECIPIENT_LIMIT = 10_000  # external_userids WeCom accepts in one add_msg_template call
# add_msg_template text.content: "消息文本内容，最多4000个字节" https://developer.work.weixin.qq.com/document/path/92135
CONTENT_LIMIT_BYTES = 4000
REPEAT_WINDOW = timedelta(minutes=10)  # the same tag and text again within this is a double send, not a new campaign
# Why a tagged customer is left out, in the order they are checked (one reason per customer).
OPTED_OUT, CHURNED, NO_CONTACT, NO_OWNER, LIMIT = "opted_out", "churned", "no_contact", "no_owner", "limit"
EXCLUSIONS = (OPTED_OUT, CHURNED, NO_CONTACT, NO_OWNER, LIMIT)
OPEN_STATUSES = ("queued", "sent")
NAMES_PER_REASON = 5


def occasion_of(campaign_id: int) -> str:
    return f"{OCCASION_PREFIX}{campaign_id}"


def campaign_id_of(occasion: str) -> int | None:
    """The campaign a delivery's occasion names, or None for a care occasion."""
    if not occasion.startswith(OCCASION_PREFIX):
        return None
    number = occasion.removeprefix(OCCASION_PREFIX)
    return int(number) if number.isdigit() else None


@dataclass(frozen=True)
class Recipient:
    customer_id: int
    external_userid: str


@dataclass
class Audience:
    """Who a campaign would reach, per owning rep, and who it leaves out and why."""

    tag: str
    reps: dict[int, Staff] = field(default_factory=dict)
    recipients: dict[int, list[Recipient]] = field(default_factory=dict)  # owner staff id -> customers
    excluded: Counter[str] = field(default_factory=Counter)

    @property
    def customers(self) -> int:
        return sum(len(r) for r in self.recipients.values())


@dataclass(frozen=True)
class Progress:
    """Where a campaign's customers stand, from their deliveries' statuses."""

    delivered: int = 0  # confirmed: WeCom says the customer got it
    failed: int = 0  # unsent: the rep did not send it in time, or WeCom could not deliver
    pending: int = 0  # queued / sent: waiting for the rep to confirm in 群发助手

    @property
    def customers(self) -> int:
        return self.delivered + self.failed + self.pending


@dataclass(frozen=True)
class Failure:
    reason: str  # the delivery's detail, written by the group-send sync
    count: int
    names: tuple[str, ...]  # the first few customers it happened to


@dataclass(frozen=True)
class RepOutcome:
    rep: str
    progress: Progress
    failures: tuple[Failure, ...]


@dataclass(frozen=True)
class CampaignReport:
    campaign: Campaign
    creator: str
    progress: Progress
    reps: tuple[RepOutcome, ...]


class CampaignService:
    def __init__(self, session: AsyncSession, timezone: ZoneInfo, *, task_limit: int = TASK_RECIPIENT_LIMIT,
                 receive_limit: ReceiveLimit | None = None):
        self.session = session
        self.timezone = timezone
        self.task_limit = task_limit
        self.receive_limit = receive_limit or default_limit()

    async def just_sent(self, tag: str, content: str, by: Staff, now: datetime) -> Campaign | None:
        """The same staff member's campaign with this tag and text from the last few minutes: a
        repeated command (a double tap, a retyped line) must not reach customers twice."""
        return await self.session.scalar(
            select(Campaign)
            .where(Campaign.created_by_id == by.id, Campaign.tag == tag, Campaign.content == content,
                   Campaign.created_at >= now - REPEAT_WINDOW)
            .order_by(Campaign.id.desc()).limit(1))

    async def audience(self, tag: str, scope: Scope, now: datetime) -> Audience:
        """Customers in `scope` with the CRM tag, split into who each rep would send to and who is left out."""
        contact = (select(CustomerIdentity.external_id)
                   .where(CustomerIdentity.customer_id == Customer.id, CustomerIdentity.channel == CONTACT_CHANNEL)
                   .order_by(CustomerIdentity.id).limit(1).scalar_subquery())
        window_start, allowed = self.receive_limit.window(now)
        in_window = (select(func.count()).select_from(CareDelivery)
                     .where(CareDelivery.customer_id == Customer.id, CareDelivery.channel == TEMPLATE,
                            CareDelivery.created_at >= window_start, CareDelivery.status != "unsent")
                     .scalar_subquery())
        rows = (await self.session.execute(
            select(Customer.id, Customer.owner_id, Customer.care_opted_out_at, Customer.lifecycle,
                   contact.label("contact"), in_window.label("in_window"), Staff.active.label("owner_active"))
            .join(CustomerTag, (CustomerTag.customer_id == Customer.id) & (CustomerTag.name == tag))
            .outerjoin(Staff, Staff.id == Customer.owner_id)
            .where(*scope.where())
            .order_by(Customer.id)
        )).all()
        audience = Audience(tag)
        for row in rows:
            reason = _exclusion(row, allowed)
            if reason:
                audience.excluded[reason] += 1
            else:
                audience.recipients.setdefault(row.owner_id, []).append(Recipient(row.id, row.contact))
        if audience.recipients:
            reps = await self.session.scalars(select(Staff).where(Staff.id.in_(audience.recipients)))
            audience.reps = {rep.id: rep for rep in reps}
        return audience

    async def launch(self, audience: Audience, content: str, by: Staff, now: datetime) -> Campaign:
        """Record the campaign, each customer's delivery, each rep's task(s) and notice, in the caller's transaction."""
        campaign = Campaign(tag=audience.tag, content=content, created_by_id=by.id, status="sent", created_at=now)
        self.session.add(campaign)
        await self.session.flush()
        occasion, day = occasion_of(campaign.id), now.astimezone(self.timezone).date()
        outbox, keys = OutboxService(self.session), []
        for staff_id in sorted(audience.recipients):
            rep, recipients = audience.reps[staff_id], audience.recipients[staff_id]
            for part, start in enumerate(range(0, len(recipients), self.task_limit), start=1):
                chunk = recipients[start:start + self.task_limit]
                key = f"campaign:{campaign.id}:staff:{staff_id}" + (f":{part}" if part > 1 else "")
                keys.append(key)
                await outbox.enqueue(
                    idempotency_key=key, kind="msg_template", staff_id=staff_id,
                    payload={"chat_type": "single", "external_userid": [r.external_userid for r in chunk],
                             "sender": rep.userid, "text": {"content": content}})
                await self._record(chunk, occasion, day, key, staff_id, now)
            await outbox.enqueue(
                idempotency_key=f"campaign:{campaign.id}:notice:{staff_id}", kind="app_message", staff_id=staff_id,
                payload={"touser": rep.userid, "msgtype": "text", "text": {"content": render(
                    "campaigns.rep_notice", manager=by.name or by.userid, id=campaign.id, tag=audience.tag,
                    count=len(recipients), content=_excerpt(content, 60))}})
        campaign.summary = {"customers": audience.customers, "reps": len(audience.recipients), "tasks": keys,
                            "excluded": dict(audience.excluded)}
        return campaign

    async def recent(self, scope: Scope, limit: int = 10) -> list[tuple[Campaign, Progress]]:
        """The latest campaigns created by anyone in `scope` (admins: all), with where their customers stand."""
        stmt = select(Campaign).order_by(Campaign.id.desc()).limit(limit)
        if not scope.everyone:
            stmt = stmt.where(Campaign.created_by_id.in_(scope.owner_ids))
        campaigns = list((await self.session.scalars(stmt)).all())
        return [(c, _progress(await self._status_counts(c))) for c in campaigns]

    async def report(self, campaign_id: int, scope: Scope) -> CampaignReport | None:
        """Per rep: customers, delivered, waiting, failed with WeCom's reasons; None when not visible to `scope`."""
        campaign = await self.session.get(Campaign, campaign_id)
        if campaign is None or not (scope.everyone or campaign.created_by_id in scope.owner_ids):
            return None
        counts = await self._status_counts(campaign, by_rep=True)
        names = await self._failed_names(campaign)
        per_rep: dict[int | None, Counter[str]] = defaultdict(Counter)
        reasons: dict[int | None, Counter[str]] = defaultdict(Counter)
        for (staff_id, status, detail), count in counts.items():
            per_rep[staff_id][status] += count
            if status == "unsent":
                reasons[staff_id][detail] += count
        staff = {s.id: s for s in (await self.session.scalars(
            select(Staff).where(Staff.id.in_([i for i in per_rep if i is not None] + [campaign.created_by_id or 0]))))}
        reps = tuple(
            RepOutcome(rep=_staff_name(staff.get(staff_id)), progress=_progress(per_rep[staff_id]),
                       failures=tuple(Failure(reason, count, tuple(names.get((staff_id, reason), ())))
                                      for reason, count in reasons[staff_id].most_common()))
            for staff_id in sorted(per_rep, key=lambda i: (_staff_name(staff.get(i)), i or 0)))
        total = Counter()
        for status_counts in per_rep.values():
            total.update(status_counts)
        return CampaignReport(campaign, _staff_name(staff.get(campaign.created_by_id)), _progress(total), reps)

    async def _record(self, chunk: list[Recipient], occasion: str, day: date, key: str, staff_id: int,
                      now: datetime) -> None:
        """One delivery per customer; the campaign is new, so none of them can exist yet."""
        await self.session.execute(insert(CareDelivery), [
            {"customer_id": r.customer_id, "occasion": occasion, "occasion_date": day, "channel": TEMPLATE,
             "status": "queued", "outbox_key": key, "staff_id": staff_id, "wecom_msgid": "", "detail": "",
             "created_at": now, "updated_at": now}
            for r in chunk])

    async def _status_counts(self, campaign: Campaign, *, by_rep: bool = False) -> Counter:
        """Delivery counts by status (and rep and detail); looked up by task key, which is indexed."""
        columns = ((CareDelivery.staff_id, CareDelivery.status, CareDelivery.detail) if by_rep
                   else (CareDelivery.status,))
        rows = await self.session.execute(
            select(*columns, func.count())
            .where(CareDelivery.outbox_key.in_(campaign.summary.get("tasks") or []),
                   CareDelivery.occasion == occasion_of(campaign.id))
            .group_by(*columns))
        return Counter({tuple(row[:-1]) if by_rep else row[0]: row[-1] for row in rows})

    async def _failed_names(self, campaign: Campaign) -> dict[tuple[int | None, str], list[str]]:
        rows = await self.session.execute(
            select(CareDelivery.staff_id, CareDelivery.detail,
                   func.coalesce(func.nullif(Customer.name, ""), Customer.remark))
            .join(Customer, Customer.id == CareDelivery.customer_id)
            .where(CareDelivery.outbox_key.in_(campaign.summary.get("tasks") or []),
                   CareDelivery.occasion == occasion_of(campaign.id), CareDelivery.status == "unsent")
            .order_by(CareDelivery.id))
        names: dict[tuple[int | None, str], list[str]] = defaultdict(list)
        for staff_id, detail, name in rows:
            if len(names[(staff_id, detail)]) < NAMES_PER_REASON:
                names[(staff_id, detail)].append(name or "—")
        return names


def _exclusion(row, allowed: int) -> str:
    if row.care_opted_out_at is not None:
        return OPTED_OUT
    if row.lifecycle == "churned":
        return CHURNED
    if not row.contact:
        return NO_CONTACT
    if row.owner_id is None or not row.owner_active:
        return NO_OWNER
    if row.in_window >= allowed:
        return LIMIT
    return ""


def _progress(counts: Counter) -> Progress:
    return Progress(delivered=counts["confirmed"], failed=counts["unsent"],
                    pending=sum(counts[s] for s in OPEN_STATUSES))


def _staff_name(staff: Staff | None) -> str:
    return (staff.name or staff.userid) if staff else "—"


def _excerpt(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
