"""What a WeCom callback or 微信客服 message means, as plain data the pipeline can act on.

The receiver stores the decrypted plaintext; workers call `normalize_callback` on it later.
Field names follow the WeCom docs (MsgId, FromUserName, Event, ChangeType, ...).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from config.templates import has, render

# Identity channel for a WeChat user as seen by this corp: the external_userid is the same
# whether they are a rep's external contact or write through 微信客服, so one channel links both.
EXTERNAL_CHANNEL = "wecom"


@dataclass(frozen=True)
class AppMessage:
    """An employee wrote to our app."""

    userid: str
    msg_id: str
    msg_type: str
    text: str
    sent_at: datetime
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ContactChange:
    """change_external_contact: a rep's external contact was added, edited, deleted, ..."""

    change_type: str
    userid: str
    external_userid: str
    sent_at: datetime
    meta: dict[str, Any] = field(default_factory=dict)
    state: str = ""  # the 「联系我」 code's state the customer came through (add events only)
    welcome_code: str = ""  # lets us greet the customer once, within 20 s (add events only)


@dataclass(frozen=True)
class ChatChange:
    """change_external_chat: a customer group (客户群) was created, changed or dismissed.

    https://developer.work.weixin.qq.com/document/path/92130 — ChangeType create / update / dismiss;
    an update's UpdateDetail is add_member, del_member, change_owner, change_name or change_notice,
    and member changes list the members' ids (MemChangeList) with the member version after them."""

    chat_id: str
    change_type: str
    sent_at: datetime
    update_detail: str = ""
    members: tuple[str, ...] = ()
    join_scene: int | None = None
    quit_scene: int | None = None
    member_version: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DirectoryChange:
    """change_contact: a member or department of the address book was created, changed or deleted.

    Callback URLs set up since 2022-08-15 carry only a member's UserID/Department or a department's
    Id/ParentId, so the rest is read back from WeCom.
    https://developer.work.weixin.qq.com/document/path/90970 (成员变更通知),
    https://developer.work.weixin.qq.com/document/path/90971 (部门变更通知)"""

    change_type: str  # create_user | update_user | delete_user | create_party | update_party | delete_party | update_tag
    sent_at: datetime
    userid: str = ""
    new_userid: str = ""  # update_user when the admin changed the member's userid
    party_id: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def about_member(self) -> bool:
        return self.change_type.endswith("_user")

    @property
    def about_department(self) -> bool:
        return self.change_type.endswith("_party")


@dataclass(frozen=True)
class TagChange:
    """change_external_tag: an admin created, renamed, deleted or reordered corp tags or tag groups.

    `tag_type` is "tag" or "tag_group"; `change_type` create | update | delete | shuffle. A shuffle
    names the group whose tags were reordered, or nothing when the groups themselves were; a
    规则组 tag carries `strategy_id`. Changes made through the API send no callback.
    https://developer.work.weixin.qq.com/document/path/92130 (事件格式 · 企业客户标签事件)"""

    change_type: str
    tag_type: str
    id: str
    sent_at: datetime
    strategy_id: str = ""


@dataclass(frozen=True)
class TransferFail:
    """change_external_contact / transfer_fail: a customer being handed to `userid` (the takeover rep)
    was not: `fail_reason` customer_refused or customer_limit_exceed (the rep's contacts are full).
    https://developer.work.weixin.qq.com/document/path/92130 (客户接替失败事件)"""

    userid: str
    external_userid: str
    fail_reason: str
    sent_at: datetime


@dataclass(frozen=True)
class KfWakeup:
    """kf_msg_or_event: new 微信客服 messages are waiting; pull them with this token."""

    token: str
    open_kfid: str
    sent_at: datetime


@dataclass(frozen=True)
class OtherCallback:
    """Anything else (menu clicks, enter_agent, types WeCom adds later): archived raw."""

    name: str
    sender: str
    sent_at: datetime
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class KfMessage:
    """One message from kf/sync_msg, customer-sent (origin 3), servicer-sent (5) or an event (4)."""

    msg_id: str
    open_kfid: str
    external_userid: str
    servicer_userid: str
    origin: int
    msg_type: str
    text: str
    sent_at: datetime
    meta: dict[str, Any]

    @property
    def from_customer(self) -> bool:
        return self.origin == 3


Callback = AppMessage | ContactChange | ChatChange | DirectoryChange | TagChange | TransferFail | KfWakeup | OtherCallback


def callback_dedup_key(fields: dict[str, Any]) -> str:
    """WeCom retries reuse MsgId for messages; events have none, so FromUserName + CreateTime
    (plus what distinguishes two events in the same second) identify them."""
    if fields.get("MsgId"):
        return f"wecom:msg:{fields['MsgId']}"
    if fields.get("Event") == "kf_msg_or_event":
        return f"wecom:kf:{fields.get('OpenKfId', '')}:{fields.get('Token', '')}"
    parts = [fields.get(k, "") for k in ("FromUserName", "CreateTime", "Event", "ChangeType", "UserID", "ExternalUserID")]
    if fields.get("Event") == "change_external_tag":  # two tags changed in one second differ only by these
        parts += [fields.get("TagType", ""), fields.get("Id", "")]
    if not any(parts):
        raise ValueError("callback has neither MsgId nor FromUserName/CreateTime/Event")
    if fields.get("Event") == "change_external_chat":  # several groups (or changes) can share a second
        parts += [fields.get(k, "") for k in ("ChatId", "UpdateDetail", "CurMemVer")]
    if fields.get("Event") == "change_contact":
        # An admin saving one member twice in a second sends two update_user callbacks that differ only in
        # what changed (Department, NewUserID, …; Id for departments), and WeCom's retry repeats the XML
        # as it was: the whole callback tells a second change from a retry (a byte-identical second
        # save cannot be told apart, and its read-back is the first's).
        parts.append(_fields_digest(fields))
    elif fields.get("Id"):
        parts.append(fields["Id"])
    return "wecom:event:" + ":".join(str(p) for p in parts)


def _fields_digest(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def normalize_callback(fields: dict[str, Any]) -> Callback:
    sent_at = _from_epoch(fields.get("CreateTime"))
    msg_type = str(fields.get("MsgType", ""))
    if msg_type == "event":
        event = str(fields.get("Event", ""))
        if event == "change_external_contact" and fields.get("ChangeType") == "transfer_fail":
            return TransferFail(userid=str(fields.get("UserID", "")), external_userid=str(fields.get("ExternalUserID", "")),
                                fail_reason=str(fields.get("FailReason", "")), sent_at=sent_at)
        if event == "change_external_contact":
            return ContactChange(
                change_type=str(fields.get("ChangeType", "")),
                userid=str(fields.get("UserID", "")),
                external_userid=str(fields.get("ExternalUserID", "")),
                sent_at=sent_at,
                meta=_flat(fields),
                state=str(fields.get("State", "") or ""),
                welcome_code=str(fields.get("WelcomeCode", "") or ""),
            )
        if event == "change_external_chat":
            return _chat_change(fields, sent_at)
        if event == "change_contact":
            party = str(fields.get("Id", "") or "")
            return DirectoryChange(
                change_type=str(fields.get("ChangeType", "")),
                sent_at=sent_at,
                userid=str(fields.get("UserID", "") or ""),
                new_userid=str(fields.get("NewUserID", "") or ""),
                party_id=int(party) if party.isdigit() else None,
                meta=_flat(fields),
            )
        if event == "change_external_tag":
            return TagChange(change_type=str(fields.get("ChangeType", "")), tag_type=str(fields.get("TagType", "")),
                             id=str(fields.get("Id", "") or ""), sent_at=sent_at,
                             strategy_id=str(fields.get("StrategyId", "") or ""))
        if event == "kf_msg_or_event":
            return KfWakeup(token=str(fields.get("Token", "")), open_kfid=str(fields.get("OpenKfId", "")), sent_at=sent_at)
        return OtherCallback(name=f"event:{event}", sender=str(fields.get("FromUserName", "")), sent_at=sent_at, meta=_flat(fields))
    if msg_type and fields.get("MsgId"):
        return AppMessage(
            userid=str(fields.get("FromUserName", "")),
            msg_id=str(fields["MsgId"]),
            msg_type=msg_type,
            text=_app_message_text(msg_type, fields),
            sent_at=sent_at,
            meta=_flat(fields),
        )
    return OtherCallback(name=msg_type or "unknown", sender=str(fields.get("FromUserName", "")), sent_at=sent_at, meta=_flat(fields))


def _chat_change(fields: dict[str, Any], sent_at: datetime) -> ChatChange:
    members = [str(v) for k, v in fields.items() if k == "MemChangeList.Item" or k.startswith("MemChangeList.Item#")]
    return ChatChange(
        chat_id=str(fields.get("ChatId", "")),
        change_type=str(fields.get("ChangeType", "")),
        sent_at=sent_at,
        update_detail=str(fields.get("UpdateDetail", "") or ""),
        members=tuple(members),
        join_scene=_int_or_none(fields.get("JoinScene")),
        quit_scene=_int_or_none(fields.get("QuitScene")),
        member_version=str(fields.get("CurMemVer", "") or ""),
        meta=_flat(fields),
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def normalize_kf_message(msg: dict[str, Any]) -> KfMessage:
    msg_type = str(msg.get("msgtype", ""))
    body = msg.get(msg_type) if isinstance(msg.get(msg_type), dict) else {}
    if msg_type == "text":
        text = str(body.get("content", ""))
    elif msg_type == "event":
        text = placeholder("event", name=body.get("event_type", ""))
    else:
        text = placeholder(msg_type, **_placeholder_values(body))
    return KfMessage(
        msg_id=str(msg.get("msgid", "")),
        open_kfid=str(msg.get("open_kfid", "") or body.get("open_kfid", "")),
        external_userid=str(msg.get("external_userid", "") or body.get("external_userid", "")),
        servicer_userid=str(msg.get("servicer_userid", "") or body.get("servicer_userid", "")),
        origin=int(msg.get("origin", 0) or 0),
        msg_type=msg_type,
        text=text,
        sent_at=_from_epoch(msg.get("send_time")),
        meta=body,
    )


def kf_message_json(msg: dict[str, Any]) -> str:
    return json.dumps(msg, ensure_ascii=False, sort_keys=True)


def placeholder(msg_type: str, **values: Any) -> str:
    key = f"message_placeholders.{msg_type}"
    if not has(key):
        return render("message_placeholders.unknown", msg_type=msg_type)
    defaults = {"name": "", "label": "", "title": ""}
    return render(key, **{**defaults, **values}).strip()


def _app_message_text(msg_type: str, fields: dict[str, Any]) -> str:
    if msg_type == "text":
        return str(fields.get("Content", ""))
    return placeholder(msg_type, **_placeholder_values({k.lower(): v for k, v in fields.items()}))


def _placeholder_values(body: dict[str, Any]) -> dict[str, str]:
    return {
        "name": str(body.get("name", "") or body.get("filename", "")),
        "label": str(body.get("label", "") or body.get("name", "")),
        "title": str(body.get("title", "")),
    }


def _flat(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in ("ToUserName",)}


def _from_epoch(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(timezone.utc)
