"""A company's existing WeCom contacts written into the CRM, a page at a time, in few statements.

Each page of externalcontact/batch/get_by_user (≤ 100 follow entries) becomes: one lookup of the
contacts' identities, one insert of the customers new to the CRM (and of their identities), one
read of the customers and one of their followers, then plain attribute changes flushed together.
A contact two reps share is one customer with two followers; the owner follows
crm_core.followers.choose_owner, so the sync and the change_external_contact callbacks agree.

The sync never deletes a customer. The only thing it ends is a follower relation, and only after
a run that paged every rep to the end (`end_unseen_relations`), for relations WeCom no longer lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from datetime import datetime

from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import lazyload

from crm_core.channels import attribute
from crm_core.corp_tags import customer_tag_names
from crm_core.customers import ContactProfile, CustomerService
from crm_core.followers import FollowerProfile, choose_owner, refresh
from crm_core.lifecycle import LifecycleService
from crm_core.models import ContactChannel, Customer, CustomerFollower, CustomerIdentity
from crm_core.search_keys import name_keys


@dataclass(frozen=True)
class SyncedContact:
    """One follow entry: the contact as WeCom describes them, and what this rep recorded."""

    external_userid: str
    contact: ContactProfile  # name, company, gender, unionid; remark, description, phones of this rep
    follower: FollowerProfile


@dataclass(frozen=True)
class Rep:
    """A rep the sync covers, read once per run."""

    id: int
    userid: str
    active: bool


@dataclass
class PageOutcome:
    entries: int = 0
    created: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (external_userid, error)


class CustomerSync:
    """Applies pages of follow entries; the caller owns the transaction (page + cursor commit together)."""

    def __init__(self, session: AsyncSession, *, channel: str, reps: dict[str, Rep], tag_names: dict[str, str]):
        self.session = session
        self.channel = channel  # the identity channel of WeCom external_userids
        self.reps = reps
        self.tag_names = tag_names
        self._reps_by_id = {rep.id: rep for rep in reps.values()}

    async def apply_page(self, entries: Sequence[SyncedContact], *, at: datetime) -> PageOutcome:
        outcome = PageOutcome(entries=len(entries))
        usable: list[SyncedContact] = []
        for entry in entries:
            if not entry.external_userid:
                outcome.failed.append(("", "follow entry without external_userid"))
            elif entry.follower.userid not in self.reps:
                outcome.failed.append((entry.external_userid, f"rep {entry.follower.userid!r} is not being synced"))
            else:
                usable.append(entry)
        if not usable:
            return outcome
        by_contact: dict[str, list[SyncedContact]] = {}
        for entry in usable:
            by_contact.setdefault(entry.external_userid, []).append(entry)
        customer_ids, outcome.created = await self._ensure_customers(by_contact, at)
        customers = {c.id: c for c in (await self.session.scalars(
            select(Customer).options(lazyload(Customer.owner), lazyload(Customer.identities))
            .where(Customer.id.in_(list(customer_ids.values()))))).all()}
        followers: dict[int, dict[int, CustomerFollower]] = {}
        for follower in (await self.session.scalars(select(CustomerFollower).where(
                CustomerFollower.customer_id.in_(list(customer_ids.values()))))).all():
            followers.setdefault(follower.customer_id, {})[follower.staff_id] = follower
        channels = await self._channels({e.follower.state for e in usable if e.follower.state})
        self._new_followers: list[CustomerFollower] = []
        for external_userid, group in by_contact.items():
            customer = customers[customer_ids[external_userid]]
            await self._apply_contact(customer, group, followers.setdefault(customer.id, {}), channels, at)
        if self._new_followers:
            columns = [c.key for c in CustomerFollower.__table__.columns if c.key != "id"]
            await self.session.execute(insert(CustomerFollower), [
                {name: getattr(f, name) for name in columns} for f in self._new_followers])
        await self.session.flush()
        return outcome

    async def apply_isolated(self, entries: Sequence[SyncedContact], *, at: datetime) -> PageOutcome:
        """The same page one contact at a time, each in a savepoint: after a page failed as a whole,
        the contacts that fail on their own are reported and the others still land."""
        outcome = PageOutcome(entries=len(entries))
        by_contact: dict[str, list[SyncedContact]] = {}
        for entry in entries:
            by_contact.setdefault(entry.external_userid, []).append(entry)
        for external_userid, group in by_contact.items():
            try:
                async with self.session.begin_nested():
                    one = await self.apply_page(group, at=at)
            except Exception as exc:  # noqa: BLE001 - reported with the contact's id, the page goes on
                outcome.failed.append((external_userid, f"{type(exc).__name__}: {exc}"[:200]))
                continue
            outcome.created += one.created
            outcome.failed.extend(one.failed)
        return outcome

    async def end_unseen_relations(self, staff_ids: Iterable[int], *, run_started_at: datetime, at: datetime,
                                   keep_external_ids: Iterable[str] = ()) -> int:
        """After a complete run: relations of the synced reps that the run did not see are over in
        WeCom (a deletion whose callback never arrived). Contacts that failed to load are kept."""
        kept = list(dict.fromkeys(keep_external_ids))
        conditions = [CustomerFollower.staff_id.in_(list(staff_ids)), CustomerFollower.removed_at.is_(None),
                      CustomerFollower.synced_at < run_started_at]
        if kept:
            conditions.append(CustomerFollower.customer_id.not_in(
                select(CustomerIdentity.customer_id).where(CustomerIdentity.channel == self.channel,
                                                           CustomerIdentity.external_id.in_(kept))))
        touched = set((await self.session.scalars(select(CustomerFollower.customer_id).where(and_(*conditions)))).all())
        result = await self.session.execute(update(CustomerFollower).where(and_(*conditions)).values(removed_at=at)
                                            .execution_options(synchronize_session=False))
        await self._churn_unfollowed(touched, at)
        return result.rowcount or 0

    async def _churn_unfollowed(self, customer_ids: set[int], at: datetime) -> None:
        """A customer nobody of ours follows any more has left, as when the deletion's callback
        arrives (scrm.ingest.external_contacts); no alert: the deletion is old news by now."""
        if not customer_ids:
            return
        followed = set((await self.session.scalars(select(CustomerFollower.customer_id).where(
            CustomerFollower.customer_id.in_(customer_ids), CustomerFollower.removed_at.is_(None)))).all())
        lifecycle = LifecycleService(self.session)
        for customer in (await self.session.scalars(select(Customer).where(
                Customer.id.in_(customer_ids - followed)).order_by(Customer.id))).all():
            await lifecycle.churn(customer, at=at)

    async def _ensure_customers(self, by_contact: dict[str, list[SyncedContact]], at: datetime) -> tuple[dict[str, int], int]:
        """external_userid -> customer id for every contact of the page, creating the new ones in one
        insert. A customer created meanwhile by a callback wins its identity; our extra row goes."""
        ids = list(by_contact)
        known = dict((await self.session.execute(
            select(CustomerIdentity.external_id, CustomerIdentity.customer_id)
            .where(CustomerIdentity.channel == self.channel, CustomerIdentity.external_id.in_(ids)))).all())
        new = [i for i in ids if i not in known]
        if not new:
            return known, 0
        rows = []
        for external_userid in new:  # with what Customer's validators keep in step with the name
            name = by_contact[external_userid][0].contact.name
            pinyin, initials = name_keys(name)
            rows.append({"name": name, "name_pinyin": pinyin, "name_initials": initials, "created_at": at,
                         "updated_at": at})
        if self.session.bind.dialect.name == "sqlite":
            # One multi-row INSERT: SQLite hands out rowids in ascending order within a statement, so
            # the sorted ids are the rows' (SQLAlchemy's ordered executemany would fall back to a
            # statement per row here).
            created = sorted((await self.session.execute(_customer_insert(len(new)), {
                f"{column}_{n}": value for n, row in enumerate(rows) for column, value in row.items()})).scalars())
        else:  # PostgreSQL: batched in parameter order by SQLAlchemy (insertmanyvalues)
            created = list((await self.session.execute(
                insert(Customer).returning(Customer.id, sort_by_parameter_order=True), rows)).scalars())
        dialect = self.session.bind.dialect.name
        won = set((await self.session.execute(_identity_insert(dialect, len(new)), {
            **{f"customer_id_{n}": c for n, c in enumerate(created)},
            **{f"external_id_{n}": i for n, i in enumerate(new)},
            **{f"created_at_{n}": at for n in range(len(new))}, "channel": self.channel})).scalars().all())
        lost = [c for i, c in zip(new, created) if i not in won]
        if lost:
            await self.session.execute(delete(Customer).where(Customer.id.in_(lost)))
            known.update(dict((await self.session.execute(
                select(CustomerIdentity.external_id, CustomerIdentity.customer_id)
                .where(CustomerIdentity.channel == self.channel,
                       CustomerIdentity.external_id.in_([i for i in new if i not in won])))).all()))
        known.update({i: c for i, c in zip(new, created) if i in won})
        return known, len(won)

    async def _channels(self, states: set[str]) -> dict[str, ContactChannel]:
        if not states:
            return {}
        rows = await self.session.scalars(select(ContactChannel).where(ContactChannel.state.in_(sorted(states)),
                                                                       ContactChannel.active.is_(True)))
        return {c.state: c for c in rows.all()}

    async def _apply_contact(self, customer: Customer, entries: list[SyncedContact],
                             followers: dict[int, CustomerFollower], channels: dict[str, ContactChannel],
                             at: datetime) -> None:
        for entry in entries:
            rep = self.reps[entry.follower.userid]
            follower = followers.get(rep.id)
            if follower is None:  # kept out of the session: written with the page's other new relations at once
                follower = followers[rep.id] = CustomerFollower(customer_id=customer.id, staff_id=rep.id)
                self._new_followers.append(follower)
            refresh(follower, entry.follower, at)
            channel = channels.get(entry.follower.state)
            if channel is not None:
                attribute(customer, channel)  # first touch wins; a customer with a source keeps it
        current = [f for f in followers.values() if f.removed_at is None]
        by_id = self._reps_by_id
        following = {by_id[f.staff_id].userid: (f.added_at.timestamp() if f.added_at else 0.0)
                     for f in current if f.staff_id in by_id}
        owner = by_id.get(customer.owner_id) if customer.owner_id is not None else None
        chosen = choose_owner((owner.userid, owner.active) if owner is not None else None, following)
        owner_rep = self.reps.get(chosen) if chosen is not None else None
        source = next((e for e in entries if owner_rep is not None and e.follower.userid == owner_rep.userid), entries[0])
        profile = replace(source.contact, tags=[], owner_staff_id=owner_rep.id if owner_rep is not None else None)
        await CustomerService(self.session).apply_profile(customer, profile, at=at)
        customer.wecom_tags = customer_tag_names(current, self.tag_names)


_NEW_CUSTOMER_COLUMNS = ("name", "name_pinyin", "name_initials", "created_at", "updated_at")


@cache
def _customer_insert(rows: int):
    """INSERT … VALUES (…) × rows RETURNING id, built once per size: a multi-row statement is
    compiled afresh for every new object, which for 100 rows costs more than running it."""
    return insert(Customer.__table__).values([{c: bindparam(f"{c}_{n}") for c in _NEW_CUSTOMER_COLUMNS} for n in range(rows)]) \
        .returning(Customer.__table__.c.id)


@cache
def _identity_insert(dialect: str, rows: int):
    """The identities of `rows` new customers; one a callback created meanwhile keeps its own."""
    table = CustomerIdentity.__table__  # Core, not the ORM's bulk insert: the parameters are one statement's
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return statement.values([{"customer_id": bindparam(f"customer_id_{n}"), "channel": bindparam("channel"),
                              "external_id": bindparam(f"external_id_{n}"), "created_at": bindparam(f"created_at_{n}")}
                             for n in range(rows)]) \
        .on_conflict_do_nothing(index_elements=["channel", "external_id"]).returning(table.c.external_id)
