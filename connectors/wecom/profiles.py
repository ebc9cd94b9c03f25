"""WeCom address-book and external-contact JSON, translated into the CRM's profile records."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from crm_core.corp_tags import TagGroupInfo, TagInfo
from crm_core.customer_sync import SyncedContact
from crm_core.customers import ContactProfile
from crm_core.directory import DepartmentProfile
from crm_core.followers import FollowerProfile
from crm_core.groups import GroupMemberProfile, GroupProfile
from crm_core.staff import StaffProfile


def staff_profile(user: dict[str, Any]) -> StaffProfile:
    """From user/get (https://developer.work.weixin.qq.com/document/path/90196). status: 1 active,
    2 disabled, 4 not yet activated, 5 left the company. Apps created since 2022-06-20 get no mobile,
    gender, email or avatar, and some no name or status: what is missing stays empty (or active)."""
    return StaffProfile(
        userid=str(user.get("userid", "")),
        name=str(user.get("name", "")),
        department_ids=[int(d) for d in user.get("department", []) if str(d).isdigit()],
        position=str(user.get("position", "")),
        mobile=str(user.get("mobile", "")),
        active=int(user.get("status", 1) or 1) in (1, 4),
        is_leader=any(int(flag or 0) for flag in user.get("is_leader_in_dept", []) or []),
    )


def department_profile(department: dict[str, Any]) -> DepartmentProfile:
    """From department/list (https://developer.work.weixin.qq.com/document/path/90208); the root's
    parentid is 0. Apps without the name's authorisation get no name: the id stands in for it."""
    department_id = int(department["id"])
    parent = int(department.get("parentid") or 0)
    return DepartmentProfile(id=department_id, name=str(department.get("name") or department_id),
                             parent_id=parent or None)


def contact_profile(contact: dict[str, Any], *, userid: str, owner_staff_id: int | None) -> ContactProfile:
    """From externalcontact/get: the contact itself plus what *this* rep (userid) recorded."""
    external = contact.get("external_contact", {}) or {}
    follow = follow_entry(contact, userid)
    return ContactProfile(
        name=str(external.get("name", "")),
        company=str(external.get("corp_full_name") or external.get("corp_name") or follow.get("remark_corp_name", "")),
        gender=int(external.get("gender", 0) or 0),
        unionid=str(external.get("unionid", "")),
        remark=str(follow.get("remark", "")),
        description=str(follow.get("description", "")),
        phones=[str(m) for m in follow.get("remark_mobiles", []) or [] if m],
        tags=[str(t.get("tag_name", "")) for t in follow.get("tags", []) or [] if t.get("tag_name")],
        owner_staff_id=owner_staff_id if follow else None,
    )


def follower_profile(follow: dict[str, Any]) -> FollowerProfile:
    """One rep's relation to a contact: an entry of externalcontact/get's `follow_user`, or
    externalcontact/batch/get_by_user's `follow_info`. The first carries `tags` (objects, type 1 are
    corp tags), the second only `tag_id` (corp tag ids).
    https://developer.work.weixin.qq.com/document/path/92114 (获取客户详情),
    https://developer.work.weixin.qq.com/document/path/92994 (批量获取客户详情)."""
    if "tag_id" in follow:
        tag_ids = [str(t) for t in follow.get("tag_id") or [] if t]
    else:
        tag_ids = [str(t.get("tag_id")) for t in follow.get("tags") or [] if t.get("tag_id") and int(t.get("type", 1) or 1) == 1]
    created = int(follow.get("createtime") or 0)
    return FollowerProfile(
        userid=str(follow.get("userid", "")),
        remark=str(follow.get("remark", "")),
        description=str(follow.get("description", "")),
        remark_corp_name=str(follow.get("remark_corp_name", "")),
        remark_mobiles=[str(m) for m in follow.get("remark_mobiles") or [] if m],
        tag_ids=tag_ids,
        added_at=datetime.fromtimestamp(created, timezone.utc) if created else None,
        add_way=int(follow.get("add_way") or 0),
        state=str(follow.get("state", "")),
        oper_userid=str(follow.get("oper_userid", "")),
    )


def follow_entry(contact: dict[str, Any], userid: str) -> dict[str, Any]:
    """This rep's entry in externalcontact/get's follow_user ({} when they do not follow the contact)."""
    return next((f for f in contact.get("follow_user", []) or [] if f.get("userid") == userid), {})


def group_profile(group_chat: dict[str, Any]) -> GroupProfile:
    """From externalcontact/groupchat/get's ``group_chat`` (document/path/92122)."""
    return GroupProfile(
        chat_id=str(group_chat.get("chat_id", "")),
        name=str(group_chat.get("name", "")),
        owner_userid=str(group_chat.get("owner", "")),
        created_at=_epoch(group_chat.get("create_time")),
        notice=str(group_chat.get("notice", "") or ""),
        member_version=str(group_chat.get("member_version", "") or ""),
        members=tuple(
            GroupMemberProfile(
                member_id=str(m.get("userid", "")),
                member_type=int(m.get("type", 0) or 0),
                joined_at=_epoch(m.get("join_time")),
                unionid=str(m.get("unionid", "") or ""),
                name=str(m.get("name", "") or ""),
                group_nickname=str(m.get("group_nickname", "") or ""),
                join_scene=int(m.get("join_scene", 0) or 0),
                invitor=str((m.get("invitor") or {}).get("userid", "")),
            )
            for m in group_chat.get("member_list") or [] if m.get("userid")
        ),
    )


def synced_contact(entry: dict[str, Any]) -> SyncedContact:
    """One entry of externalcontact/batch/get_by_user's `external_contact_list`: the contact and one
    rep's `follow_info`. https://developer.work.weixin.qq.com/document/path/92994"""
    external = entry.get("external_contact") or {}
    follow = entry.get("follow_info") or {}
    follower = follower_profile(follow)
    return SyncedContact(
        external_userid=str(external.get("external_userid", "")),
        contact=ContactProfile(
            name=str(external.get("name", "")),
            company=str(external.get("corp_full_name") or external.get("corp_name") or follower.remark_corp_name),
            gender=int(external.get("gender", 0) or 0),
            unionid=str(external.get("unionid", "") or ""),
            remark=follower.remark,
            description=follower.description,
            phones=list(follower.remark_mobiles),
        ),
        follower=follower,
    )


def tag_groups(answer: dict[str, Any]) -> tuple[list[TagGroupInfo], list[str], list[str]]:
    """externalcontact/get_corp_tag_list's `tag_group`: (live groups with their live tags, deleted
    group ids, deleted tag ids). Deletions are listed only in answers filtered by id.
    https://developer.work.weixin.qq.com/document/path/92117"""
    groups: list[TagGroupInfo] = []
    deleted_groups: list[str] = []
    deleted_tags: list[str] = []
    for group in answer.get("tag_group") or []:
        group_id = str(group.get("group_id", ""))
        if not group_id:
            continue
        if group.get("deleted"):
            deleted_groups.append(group_id)
            continue
        tags = []
        for tag in group.get("tag") or []:
            if tag.get("deleted"):
                deleted_tags.append(str(tag.get("id", "")))
            elif tag.get("id"):
                tags.append(TagInfo(tag_id=str(tag["id"]), name=str(tag.get("name", "")), order=int(tag.get("order") or 0),
                                    created_at=_epoch(tag.get("create_time"))))
        groups.append(TagGroupInfo(group_id=group_id, name=str(group.get("group_name", "")),
                                   order=int(group.get("order") or 0), created_at=_epoch(group.get("create_time")),
                                   tags=tags))
    return groups, deleted_groups, deleted_tags


def _epoch(value: Any) -> datetime | None:
    seconds = int(value or 0)
    return datetime.fromtimestamp(seconds, timezone.utc) if seconds else None
