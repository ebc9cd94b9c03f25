"""Moving customers between reps: one customer, or every customer of a departing rep, through WeCom.

WeCom keeps who follows a customer, so a handover is WeCom's own transfer (离职继承 for a rep who
left, 在职继承 between reps on the job), and the CRM follows only what WeCom accepted:

    start        the handover and each customer are stored (queued); each ≤ 100 customers become one
                 outbox row ("customer_transfer", key handover:{id}:batch:{n}), sent by scrm.delivery
    started      WeCom's per-customer answer: waiting (it runs for up to 24 h) or failed at once
    outcome      from transfer_result or a transfer_fail callback: taken (what the leaving rep held of
                 the customer moves now: owner, open follow-ups, open deals, the follower row),
                 refused by the customer, or failed (the takeover rep is full, the 90-day limit, …)
    settle       once nobody is waiting: one summary to whoever asked, and a notice to the new rep

Customers WeCom does not know as the leaving rep's contacts (imported, or a kf-only customer) have no
transfer to wait for and move in the CRM at once. Every step is audit-logged per customer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from config.templates import render
from crm_core.audit import AuditService
from crm_core.db import utcnow
from crm_core.models import (Customer, CustomerFollower, CustomerIdentity, Deal, FollowUp, Handover, HandoverCustomer,
                             Staff)
from crm_core.outbox import OutboxService

WECOM_CHANNEL = "wecom"  # connectors.wecom.inbound.EXTERNAL_CHANNEL (crm_core does not import connectors)
RESIGNED, ONJOB = "resigned", "onjob"
QUEUED, WAITING, TAKEN, REFUSED, FAILED = "queued", "waiting", "taken", "refused", "failed"
OPEN_STATES = (QUEUED, WAITING)
BATCH = 100  # "最多一次转移100个客户" (document/path/96331, 96325)
TRANSFER_KIND = "customer_transfer"  # the outbox kind scrm.delivery.handovers sends
# WeCom's per-customer errcodes on a transfer call (document/path/90313), as the summary explains them.
IN_PROGRESS_ERRCODE = 40129  # 当前客户正在转接中: our own earlier call got through (a retry after a crash)
NO_ANSWER = -1  # WeCom's answer did not name the customer
GAVE_UP = -2  # WeCom stayed busy or unreachable through every attempt (connectors.wecom.errors.UNAVAILABLE_ERRCODE)
REASON_BY_ERRCODE = {
    40128: "limit_90_days",  # 客户转接过于频繁（90个自然日内，在职成员的每位客户仅可被转接2次）
    40131: "not_followed",  # handover_userid 并不是外部联系人的跟进人
    40096: "not_followed",  # 不合法的外部联系人userid
    40097: "not_departed",  # 该成员尚未离职 (the whole call)
    40003: "not_a_member",  # 无效的UserID: not (any more) in the directory (the whole call)
    GAVE_UP: "wecom_unavailable",
}
# transfer_result status -> outcome (document/path/96333): 1 接替完毕, 3 客户拒绝, 4 接替成员客户达到上限, 5 无接替记录
NO_RECORD = 5
NO_RESULT_AFTER = timedelta(days=3)  # WeCom decides within 24 hours ("待24小时后自动接替")
OUTCOME_BY_STATUS = {1: (TAKEN, ""), 3: (REFUSED, "refused"), 4: (FAILED, "takeover_full"),
                     NO_RECORD: (FAILED, "no_record")}
# transfer_fail callbacks' FailReason (document/path/92130)
REASON_BY_FAIL = {"customer_refused": (REFUSED, "refused"), "customer_limit_exceed": (FAILED, "takeover_full")}


@dataclass(frozen=True)
class HandoverResult:
    customers: int
    follow_ups: int
    deals: int


@dataclass(frozen=True)
class HandoverStarted:
    """What `start` did: customers handed to WeCom, moved in the CRM at once, or already on their way."""

    handover_id: int | None
    sent: int
    moved: HandoverResult
    already: int


@dataclass(frozen=True)
class TransferBatch:
    """One queued transfer call: who hands over to whom, and the customers still to send."""

    handover: Handover
    customers: list[HandoverCustomer]

    @property
    def resigned(self) -> bool:
        return self.handover.kind == RESIGNED


class HandoverService:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def start(self, leaving: Staff | None, receiving: Staff, *, by: Staff, customer: Customer | None = None,
                    message: str = "") -> HandoverStarted:
        """Hand `customer` (or every customer `leaving` owns or follows in WeCom) to `receiving`, in the
        caller's transaction. A customer nobody owns has nobody in WeCom to inherit from, and moves in
        the CRM at once; a contact `leaving` shares with a rep who owns it keeps its owner, only
        `leaving`'s relation (and what `leaving` owned of it) moves."""
        if customer is not None:
            ids = owned = [customer.id]
        else:
            owned = list((await self.session.scalars(
                select(Customer.id).where(Customer.owner_id == leaving.id).order_by(Customer.id))).all())
            followed = (await self.session.scalars(
                select(CustomerFollower.customer_id).where(CustomerFollower.staff_id == leaving.id,
                                                           CustomerFollower.removed_at.is_(None))
                .order_by(CustomerFollower.customer_id))).all()
            ids = sorted(set(owned) | set(followed))
        running = set((await self.session.scalars(
            select(HandoverCustomer.customer_id).where(HandoverCustomer.customer_id.in_(ids),
                                                       HandoverCustomer.state.in_(OPEN_STATES)))).all()) if ids else set()
        ids = [i for i in ids if i not in running]
        in_wecom = await self._wecom_contacts(ids, leaving) if ids and leaving is not None else {}
        crm_only = [i for i in ids if i not in in_wecom and i in set(owned)]
        moved = await self._move(crm_only, leaving.id if leaving else None, receiving, by=by)
        if not in_wecom or leaving is None:
            return HandoverStarted(None, 0, moved, len(running))
        handover = Handover(kind=ONJOB if leaving.active else RESIGNED, from_staff_id=leaving.id,
                            to_staff_id=receiving.id, by_staff_id=by.id, message=message if leaving.active else "")
        self.session.add(handover)
        await self.session.flush()
        audit, outbox = AuditService(self.session), OutboxService(self.session)
        for position, (customer_id, external_userid) in enumerate(in_wecom.items()):
            self.session.add(HandoverCustomer(handover_id=handover.id, customer_id=customer_id,
                                              external_userid=external_userid, batch=position // BATCH, state=QUEUED))
            audit.record(actor=by.userid, action="customer.handover_requested", customer_id=customer_id,
                         detail=f"handover={handover.id} kind={handover.kind} from_staff={leaving.id} to_staff={receiving.id}")
        for batch in range((len(in_wecom) + BATCH - 1) // BATCH):
            await outbox.enqueue(idempotency_key=f"handover:{handover.id}:batch:{batch}", kind=TRANSFER_KIND,
                                 payload={"handover_id": handover.id, "batch": batch}, staff_id=by.id)
        return HandoverStarted(handover.id, len(in_wecom), moved, len(running))

    async def batch(self, handover_id: int, batch: int) -> TransferBatch | None:
        """The customers of one transfer call that WeCom has not answered for yet."""
        handover = await self.session.get(Handover, handover_id)
        if handover is None:
            return None
        rows = (await self.session.scalars(
            select(HandoverCustomer).where(HandoverCustomer.handover_id == handover_id, HandoverCustomer.batch == batch,
                                           HandoverCustomer.state == QUEUED).order_by(HandoverCustomer.id))).all()
        return TransferBatch(handover, list(rows))

    async def started(self, batch: TransferBatch, errcodes: dict[str, int]) -> None:
        """Record WeCom's answer to a transfer call: 0 (or "already in progress") waits for the outcome,
        anything else failed for that customer."""
        audit = AuditService(self.session)
        for row in batch.customers:
            errcode = errcodes.get(row.external_userid, NO_ANSWER)  # WeCom answers for each; one it skipped failed
            if errcode in (0, IN_PROGRESS_ERRCODE):
                row.state = WAITING
            else:
                row.state, row.errcode, row.reason = FAILED, errcode, REASON_BY_ERRCODE.get(errcode, "error")
                audit.record(actor="wecom", action="customer.handover_failed", customer_id=row.customer_id,
                             detail=f"handover={batch.handover.id} errcode={errcode}")
        await self.settle_if_done(batch.handover)

    async def give_up(self, handover_id: int, batch: int) -> None:
        """The transfer call could not be made however often it was tried: its customers failed, and
        the summary tells the asker to send 转交 again later."""
        queued = await self.batch(handover_id, batch)
        if queued is not None:
            await self.started(queued, {row.external_userid: GAVE_UP for row in queued.customers})

    async def waiting_handovers(self, limit: int = 100) -> list[Handover]:
        """Handovers with customers whose outcome WeCom has not given yet, oldest first."""
        waiting = exists().where(HandoverCustomer.handover_id == Handover.id, HandoverCustomer.state == WAITING)
        return list((await self.session.scalars(
            select(Handover).where(Handover.settled_at.is_(None), waiting).order_by(Handover.id).limit(limit))).all())

    async def outcomes(self, handover: Handover, statuses: dict[str, int], now: datetime | None = None) -> int:
        """Apply transfer_result (external_userid -> status) to the handover's waiting customers;
        returns how many reached their outcome. Status 2 (still waiting) changes nothing; a customer
        WeCom has no result for long after its 24 hours is taken as 5 (无接替记录), so nothing waits forever."""
        stale = (now or utcnow()) - handover.created_at > NO_RESULT_AFTER
        rows = (await self.session.scalars(_locked(self.session,
            select(HandoverCustomer).where(HandoverCustomer.handover_id == handover.id,
                                           HandoverCustomer.state == WAITING).order_by(HandoverCustomer.id)))).all()
        decided = 0
        for row in rows:
            outcome = OUTCOME_BY_STATUS.get(statuses.get(row.external_userid, NO_RECORD if stale else 0))
            if outcome is not None:
                await self._decide(handover, row, *outcome)
                decided += 1
        await self.settle_if_done(handover)
        return decided

    async def transfer_failed(self, takeover: Staff, external_userid: str, fail_reason: str) -> int:
        """A transfer_fail callback: the customer refused `takeover`, or `takeover` has no room.
        WeCom names the takeover rep, not the handover, so every waiting handover of that customer
        to that rep is decided (there is at most one: a customer in transfer cannot be sent again)."""
        state, reason = REASON_BY_FAIL.get(fail_reason, (FAILED, "error"))
        rows = (await self.session.execute(_locked(self.session,
            select(HandoverCustomer, Handover).join(Handover, Handover.id == HandoverCustomer.handover_id)
            .where(HandoverCustomer.external_userid == external_userid, HandoverCustomer.state == WAITING,
                   Handover.to_staff_id == takeover.id).order_by(HandoverCustomer.id)))).all()
        for row, handover in rows:
            await self._decide(handover, row, state, reason)
            await self.settle_if_done(handover)
        return len(rows)

    async def settle_if_done(self, handover: Handover) -> bool:
        """Once no customer is queued or waiting: the summary to whoever asked and the new rep's notice, once."""
        if handover.settled_at is not None:
            return False
        if self.session.bind.dialect.name == "postgresql":
            # Two deciders of the last two customers would each still see the other's as waiting, and
            # neither would settle: the handover's row lock makes the second one read after the first.
            if await self.session.scalar(select(Handover.settled_at).where(Handover.id == handover.id)
                                         .with_for_update()) is not None:
                return False
        rows = (await self.session.execute(
            select(HandoverCustomer.state, HandoverCustomer.reason).where(HandoverCustomer.handover_id == handover.id))).all()
        if any(state in OPEN_STATES for state, _ in rows):
            return False
        handover.settled_at = utcnow()
        counts = Counter(state for state, _ in rows)
        reasons = Counter(reason for state, reason in rows if state != TAKEN)
        leaving, receiving = _name(handover.from_staff), _name(handover.to_staff)
        summary = render("handover.summary", leaving=leaving, receiving=receiving, taken=counts[TAKEN],
                         refused=counts[REFUSED], failed=counts[FAILED])
        if reasons["limit_90_days"]:
            summary += render("handover.summary_limit_90_days", count=reasons["limit_90_days"])
        if reasons["not_departed"]:  # the CRM took the rep for departed; WeCom still has them on the job
            summary += render("handover.summary_not_departed", leaving=leaving)
        if reasons["not_a_member"]:
            summary += render("handover.summary_not_a_member", leaving=leaving, receiving=receiving)
        if reasons["wecom_unavailable"]:
            summary += render("handover.summary_wecom_unavailable", count=reasons["wecom_unavailable"],
                              leaving=leaving, receiving=receiving)
        if reasons["no_record"]:
            summary += render("handover.summary_no_record", count=reasons["no_record"], leaving=leaving)
        if reasons["takeover_full"]:
            summary += render("handover.summary_takeover_full", count=reasons["takeover_full"], receiving=receiving)
        if counts[REFUSED] and handover.kind == ONJOB:  # on the job, a refusing customer stays with the rep
            summary += render("handover.summary_refused_kept", leaving=leaving)
        outbox = OutboxService(self.session)
        await outbox.enqueue(idempotency_key=f"handover:{handover.id}:summary", kind="app_message",
                             payload=_text(handover.by_staff.userid, summary), staff_id=handover.by_staff_id)
        if counts[TAKEN] and handover.to_staff_id != handover.by_staff_id:
            await outbox.enqueue(idempotency_key=f"handover:{handover.id}:receiver", kind="app_message",
                                 payload=_text(handover.to_staff.userid, render(
                                     "handover.receiver_notice", by=_name(handover.by_staff), leaving=leaving,
                                     customers=counts[TAKEN])), staff_id=handover.to_staff_id)
        AuditService(self.session).record(actor="wecom", action="handover.settled",
                                          detail=f"handover={handover.id} taken={counts[TAKEN]} refused={counts[REFUSED]} failed={counts[FAILED]}")
        return True

    async def _decide(self, handover: Handover, row: HandoverCustomer, state: str, reason: str) -> None:
        row.state, row.reason = state, reason
        if state == TAKEN:
            receiving = handover.to_staff
            await self._move([row.customer_id], handover.from_staff_id, receiving, by=handover.by_staff,
                             only_from=True)
            await self._follow(row.customer_id, handover.from_staff_id, receiving.id)
        else:
            AuditService(self.session).record(actor="wecom", action="customer.handover_failed",
                                              customer_id=row.customer_id,
                                              detail=f"handover={handover.id} state={state} reason={reason}")

    async def _follow(self, customer_id: int, from_id: int, to_id: int) -> None:
        """WeCom moved the relation (with the rep's remark and tags): the follower rows say so too."""
        now = utcnow()
        rows = {f.staff_id: f for f in (await self.session.scalars(select(CustomerFollower).where(
            CustomerFollower.customer_id == customer_id, CustomerFollower.staff_id.in_((from_id, to_id))))).all()}
        before = rows.get(from_id)
        if before is not None:
            before.removed_at = now
        after = rows.get(to_id)
        if after is None:
            after = CustomerFollower(customer_id=customer_id, staff_id=to_id, remark_mobiles=[], tag_ids=[])
            self.session.add(after)
        after.removed_at, after.synced_at, after.added_at = None, now, now
        if before is not None:
            after.remark, after.remark_mobiles, after.tag_ids = before.remark, list(before.remark_mobiles), list(before.tag_ids)

    async def _wecom_contacts(self, customer_ids: list[int], leaving: Staff) -> dict[int, str]:
        """customer id -> external_userid, for the customers WeCom has as `leaving`'s contacts."""
        rows = (await self.session.execute(
            select(CustomerIdentity.customer_id, CustomerIdentity.external_id)
            .join(CustomerFollower, CustomerFollower.customer_id == CustomerIdentity.customer_id)
            .where(CustomerIdentity.customer_id.in_(customer_ids), CustomerIdentity.channel == WECOM_CHANNEL,
                   CustomerFollower.staff_id == leaving.id, CustomerFollower.removed_at.is_(None))
            .order_by(CustomerIdentity.customer_id))).all()
        return {customer_id: external_id for customer_id, external_id in rows}

    async def _move(self, customer_ids: list[int], from_id: int | None, to: Staff, *, by: Staff,
                    only_from: bool = False) -> HandoverResult:
        """The CRM side: owner, open follow-ups and open deals change in one go, one audit row each.
        `only_from`: only what `from_id` holds moves (a shared contact's other owner keeps theirs)."""
        moved = HandoverResult(0, 0, 0)
        audit = AuditService(self.session)
        for start in range(0, len(customer_ids), 500):  # keep IN lists well under driver limits
            chunk = customer_ids[start:start + 500]
            customers = await self.session.execute(
                update(Customer).where(Customer.id.in_(chunk), *_held(Customer, from_id, only_from))
                .values(owner_id=to.id).execution_options(synchronize_session="fetch"))
            follow_ups = await self.session.execute(
                update(FollowUp).where(FollowUp.customer_id.in_(chunk), FollowUp.status == "open",
                                       *_held(FollowUp, from_id, only_from)).values(owner_id=to.id))
            deals = await self.session.execute(
                update(Deal).where(Deal.customer_id.in_(chunk), Deal.status == "open",
                                   *_held(Deal, from_id, only_from)).values(owner_id=to.id))
            moved = HandoverResult(moved.customers + customers.rowcount, moved.follow_ups + follow_ups.rowcount,
                                   moved.deals + deals.rowcount)
            for customer_id in chunk:
                audit.record(actor=by.userid, action="customer.handover", customer_id=customer_id,
                             detail=f"from_staff={from_id} to_staff={to.id}")
        return moved


def _held(model, from_id: int | None, only_from: bool) -> tuple:
    return (model.owner_id == from_id,) if only_from else ()


def _locked(session: AsyncSession, stmt):
    """Lock the waiting rows (PostgreSQL): a second scheduler, or a transfer_fail callback handled at the
    same moment, waits and then finds them decided, so no customer is moved or counted twice."""
    return stmt.with_for_update(of=HandoverCustomer) if session.bind.dialect.name == "postgresql" else stmt


def _name(staff: Staff) -> str:
    return staff.name or staff.userid


def _text(userid: str, content: str) -> dict:
    return {"touser": userid, "msgtype": "text", "text": {"content": content}}
