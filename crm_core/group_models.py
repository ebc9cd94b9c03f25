"""Customer groups (客户群): WeCom's external group chats, their owner rep and members.

A member is kept by WeCom's own id (a staff userid, or a customer's external_userid) and unionid,
not by a customer id: a WeChat user met only in a group becomes a customer when they are, or
later become, one of our external contacts, and the link is made then by that id (crm_core.groups).
A member who leaves keeps their row with `left_at`, so a digest can count who joined and who left.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_core.db import Base, UTCDateTime, utcnow
from crm_core.models import BigId, Staff

STAFF_MEMBER, EXTERNAL_MEMBER = 1, 2  # groupchat/get member_list.type


class CustomerGroup(Base):
    __tablename__ = "customer_groups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128), default="", index=True)
    owner_userid: Mapped[str] = mapped_column(String(64), default="")
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True, index=True)
    notice: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[int] = mapped_column(Integer, default=0)  # groupchat/list: 0 normal, 1-3 owner resigned/inherited
    member_version: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # WeCom's create_time
    dismissed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    owner: Mapped[Staff | None] = relationship(lazy="joined")


class CustomerGroupMember(Base):
    __tablename__ = "customer_group_members"
    __table_args__ = (
        UniqueConstraint("group_id", "member_id", name="uq_customer_group_member"),
        Index("ix_customer_group_members_member_id", "member_id"),
        Index("ix_customer_group_members_unionid", "unionid"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("customer_groups.id", ondelete="CASCADE"))
    member_id: Mapped[str] = mapped_column(String(128))  # staff userid (type 1) or external_userid (type 2)
    member_type: Mapped[int] = mapped_column(Integer)
    unionid: Mapped[str] = mapped_column(String(64), default="")
    name: Mapped[str] = mapped_column(String(128), default="")
    group_nickname: Mapped[str] = mapped_column(String(128), default="")
    join_scene: Mapped[int] = mapped_column(Integer, default=0)
    invitor: Mapped[str] = mapped_column(String(64), default="")
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
