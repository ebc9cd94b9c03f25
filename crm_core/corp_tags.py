"""WeCom corp tags (企业客户标签): the company's tag groups and tags, as WeCom last told us.

WeCom hands out only tag ids on a contact (externalcontact/batch/get_by_user's `follow_info.tag_id`),
so the CRM keeps the catalogue to name them: filled from externalcontact/get_corp_tag_list and kept
current by change_external_tag callbacks. A tag WeCom deleted stays here marked `deleted`, so an old
id still has a name in history; lookups by name see live tags only.
https://developer.work.weixin.qq.com/document/path/92117 (管理企业标签 · 获取企业标签库)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Boolean, Integer, String, cast, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.db import Base, UTCDateTime, utcnow
from crm_core.models import Customer, CustomerFollower


class CorpTagGroup(Base):
    __tablename__ = "corp_tag_groups"

    group_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # WeCom's group_id
    name: Mapped[str] = mapped_column(String(64), default="")
    order: Mapped[int] = mapped_column(Integer, default=0)  # WeCom: the larger, the earlier
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CorpTag(Base):
    __tablename__ = "corp_tags"

    tag_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # WeCom's tag id
    group_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    order: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@dataclass(frozen=True)
class TagInfo:
    """One tag of a group, free of the wire format."""

    tag_id: str
    name: str
    order: int = 0
    created_at: datetime | None = None


@dataclass(frozen=True)
class TagGroupInfo:
    """One tag group and its live tags, as get_corp_tag_list answers it."""

    group_id: str
    name: str
    order: int = 0
    created_at: datetime | None = None
    tags: list[TagInfo] = field(default_factory=list)


def customer_tag_names(followers: Iterable[CustomerFollower], names: dict[str, str]) -> list[str]:
    """A customer's corp tags by name: every current follower's, in follower order, each once."""
    current = sorted((f for f in followers if f.removed_at is None), key=lambda f: f.staff_id)
    return list(dict.fromkeys(names.get(tag_id, tag_id) for f in current for tag_id in f.tag_ids))


class CorpTagService:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def replace_all(self, groups: Iterable[TagGroupInfo], *, at: datetime | None = None) -> int:
        """The whole catalogue as WeCom has it now: what it lists is live, anything else deleted."""
        groups = list(groups)
        await self.upsert(groups, at=at)
        live_groups = {g.group_id for g in groups}
        live_tags = {t.tag_id for g in groups for t in g.tags}
        # An empty NOT IN is true in SQLAlchemy: an empty catalogue marks everything deleted.
        await self.session.execute(update(CorpTagGroup).where(CorpTagGroup.group_id.not_in(live_groups))
                                   .values(deleted=True))
        await self.session.execute(update(CorpTag).where(CorpTag.tag_id.not_in(live_tags)).values(deleted=True))
        return len(live_tags)

    async def upsert(self, groups: Iterable[TagGroupInfo], *, at: datetime | None = None) -> None:
        """Create or refresh these groups and their tags (a partial answer: the rest stays as it is)."""
        now = at or utcnow()
        groups = list(groups)
        if not groups:
            return
        known_groups = {g.group_id: g for g in (await self.session.scalars(
            select(CorpTagGroup).where(CorpTagGroup.group_id.in_([g.group_id for g in groups])))).all()}
        tag_ids = [t.tag_id for g in groups for t in g.tags]
        known_tags = {t.tag_id: t for t in (await self.session.scalars(
            select(CorpTag).where(CorpTag.tag_id.in_(tag_ids)))).all()} if tag_ids else {}
        for info in groups:
            row = known_groups.get(info.group_id) or CorpTagGroup(group_id=info.group_id)
            row.name, row.order, row.created_at = info.name, info.order, info.created_at or row.created_at
            row.deleted, row.synced_at = False, now
            self.session.add(row)
            for tag in info.tags:
                tag_row = known_tags.get(tag.tag_id) or CorpTag(tag_id=tag.tag_id)
                tag_row.group_id, tag_row.name, tag_row.order = info.group_id, tag.name, tag.order
                tag_row.created_at = tag.created_at or tag_row.created_at
                tag_row.deleted, tag_row.synced_at = False, now
                self.session.add(tag_row)
        await self.session.flush()

    async def mark_deleted(self, ids: Iterable[str], *, groups: bool) -> int:
        """WeCom deleted these tags (or groups, with every tag in them)."""
        ids = list(ids)
        if not ids:
            return 0
        if groups:
            await self.session.execute(update(CorpTag).where(CorpTag.group_id.in_(ids)).values(deleted=True))
            result = await self.session.execute(
                update(CorpTagGroup).where(CorpTagGroup.group_id.in_(ids)).values(deleted=True))
        else:
            result = await self.session.execute(update(CorpTag).where(CorpTag.tag_id.in_(ids)).values(deleted=True))
        return result.rowcount or 0

    async def names(self, tag_ids: Iterable[str] | None = None) -> dict[str, str]:
        """tag id -> name, deleted tags included (an id on an old contact still reads as a name);
        every tag when `tag_ids` is None."""
        stmt = select(CorpTag.tag_id, CorpTag.name)
        if tag_ids is not None:
            ids = list(dict.fromkeys(tag_ids))
            if not ids:
                return {}
            stmt = stmt.where(CorpTag.tag_id.in_(ids))
        return {tag_id: name for tag_id, name in (await self.session.execute(stmt)).all()}

    async def id_for(self, name: str, *, group: str | None = None) -> str | None:
        """The live tag called `name` (in the group named `group`, when given); the earliest-ordered
        group wins when two groups have a tag of that name."""
        stmt = (select(CorpTag.tag_id).join(CorpTagGroup, CorpTagGroup.group_id == CorpTag.group_id)
                .where(CorpTag.name == name, CorpTag.deleted.is_(False), CorpTagGroup.deleted.is_(False))
                .order_by(CorpTagGroup.order.desc(), CorpTagGroup.group_id, CorpTag.tag_id).limit(1))
        if group is not None:
            stmt = stmt.where(CorpTagGroup.name == group)
        return await self.session.scalar(stmt)

    async def tag_ids_of_group(self, group_id: str) -> list[str]:
        return list((await self.session.scalars(select(CorpTag.tag_id).where(CorpTag.group_id == group_id)
                                                .order_by(CorpTag.tag_id))).all())

    async def group_of(self, tag_id: str) -> CorpTagGroup | None:
        return await self.session.scalar(
            select(CorpTagGroup).join(CorpTag, CorpTag.group_id == CorpTagGroup.group_id).where(CorpTag.tag_id == tag_id))

    async def group_by_name(self, name: str) -> CorpTagGroup | None:
        return await self.session.scalar(select(CorpTagGroup).where(CorpTagGroup.name == name,
                                                                    CorpTagGroup.deleted.is_(False)))

    async def groups(self) -> list[tuple[CorpTagGroup, list[CorpTag]]]:
        """Live groups with their live tags, in WeCom's display order (larger `order` first)."""
        groups = (await self.session.scalars(select(CorpTagGroup).where(CorpTagGroup.deleted.is_(False))
                                             .order_by(CorpTagGroup.order.desc(), CorpTagGroup.group_id))).all()
        tags = (await self.session.scalars(select(CorpTag).where(CorpTag.deleted.is_(False))
                                           .order_by(CorpTag.order.desc(), CorpTag.tag_id))).all()
        by_group: dict[str, list[CorpTag]] = {}
        for tag in tags:
            by_group.setdefault(tag.group_id, []).append(tag)
        return [(group, by_group.get(group.group_id, [])) for group in groups]

    async def retag_customers(self, tag_ids: Iterable[str], *, removed: bool) -> int:
        """After tags were renamed (or, `removed`, deleted: WeCom takes them off every contact too),
        the customers carrying them read their tags by the new names. Returns how many changed."""
        ids = set(tag_ids)
        if not ids:
            return 0
        text = cast(CustomerFollower.tag_ids, String)
        carrying = (await self.session.scalars(select(CustomerFollower).where(
            or_(*(text.like(f'%"{tag_id}"%') for tag_id in sorted(ids)))))).all()
        customer_ids = {f.customer_id for f in carrying if ids & set(f.tag_ids)}
        if not customer_ids:
            return 0
        if removed:
            for follower in carrying:
                if ids & set(follower.tag_ids):
                    follower.tag_ids = [t for t in follower.tag_ids if t not in ids]
        followers: dict[int, list[CustomerFollower]] = {}
        for follower in (await self.session.scalars(select(CustomerFollower).where(
                CustomerFollower.customer_id.in_(sorted(customer_ids))))).all():
            followers.setdefault(follower.customer_id, []).append(follower)
        names = await self.names({t for fs in followers.values() for f in fs for t in f.tag_ids})
        changed = 0
        for customer in (await self.session.scalars(select(Customer).where(Customer.id.in_(sorted(customer_ids))))).all():
            tags = customer_tag_names(followers.get(customer.id, []), names)
            if tags != list(customer.wecom_tags or []):
                customer.wecom_tags, changed = tags, changed + 1
        return changed
