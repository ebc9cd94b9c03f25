"""WeCom address-book and external-contact JSON, translated into the CRM's profile records."""

from __future__ import annotations

from typing import Any

from crm_core.customers import ContactProfile
from crm_core.staff import StaffProfile


def staff_profile(user: dict[str, Any]) -> StaffProfile:
    """From user/get. status: 1 active, 2 disabled, 4 not yet activated, 5 left the company."""
    return StaffProfile(
        userid=str(user.get("userid", "")),
        name=str(user.get("name", "")),
        department_ids=[int(d) for d in user.get("department", []) if str(d).isdigit()],
        position=str(user.get("position", "")),
        mobile=str(user.get("mobile", "")),
        active=int(user.get("status", 1) or 1) in (1, 4),
        is_leader=any(int(flag or 0) for flag in user.get("is_leader_in_dept", []) or []),
    )


def contact_profile(contact: dict[str, Any], *, userid: str, owner_staff_id: int | None) -> ContactProfile:
    """From externalcontact/get: the contact itself plus what *this* rep (userid) recorded."""
    external = contact.get("external_contact", {}) or {}
    follow = next((f for f in contact.get("follow_user", []) or [] if f.get("userid") == userid), {})
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
