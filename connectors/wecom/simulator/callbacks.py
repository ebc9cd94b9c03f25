"""Sends what WeCom sends to a callback URL: plaintext XML, encrypted and signed.

Plaintext layouts follow the WeCom docs for a self-built app: 接收消息 (text, image,
voice, location), 客户联系 events (``Event=change_external_contact`` with ``ChangeType``;
third-party suites get ``InfoType`` instead, which this service does not use) and
微信客服 ``kf_msg_or_event`` (carries only Token and OpenKfId; the message itself must be
fetched with kf/sync_msg).
"""

from __future__ import annotations

import secrets
import time

import aiohttp
from defusedxml.ElementTree import fromstring

from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.state import Scan, SimulatorState

CHANGE_TYPES = frozenset({
    "add_external_contact",
    "edit_external_contact",
    "add_half_external_contact",
    "del_external_contact",
    "del_follow_user",
    "transfer_fail",
})


def _cdata(value: str) -> str:
    """CDATA section that survives a literal ``]]>`` in the value."""
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _xml(fields: list[tuple[str, str | int | float | None]]) -> str:
    """``<xml>`` with strings in CDATA and numbers bare, as WeCom writes them; None is left out."""
    parts = []
    for name, value in fields:
        if value is None:
            continue
        text = _cdata(value) if isinstance(value, str) else str(value)
        parts.append(f"<{name}>{text}</{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


def _msg_id() -> int:
    return secrets.randbits(62)


def build_plaintext_text(corp_id: str, agent_id: str, from_user: str, content: str, *,
                         msg_id: int | None = None, create_time: int | None = None) -> str:
    """A staff member's text message to the app."""
    return _xml([
        ("ToUserName", corp_id), ("FromUserName", from_user), ("CreateTime", create_time or int(time.time())),
        ("MsgType", "text"), ("Content", content), ("MsgId", msg_id or _msg_id()), ("AgentID", int(agent_id)),
    ])


def build_plaintext_image(corp_id: str, agent_id: str, from_user: str, pic_url: str, media_id: str, *,
                          msg_id: int | None = None, create_time: int | None = None) -> str:
    """A staff member's picture."""
    return _xml([
        ("ToUserName", corp_id), ("FromUserName", from_user), ("CreateTime", create_time or int(time.time())),
        ("MsgType", "image"), ("PicUrl", pic_url), ("MediaId", media_id), ("MsgId", msg_id or _msg_id()),
        ("AgentID", int(agent_id)),
    ])


def build_plaintext_voice(corp_id: str, agent_id: str, from_user: str, media_id: str, *, fmt: str = "amr",
                          msg_id: int | None = None, create_time: int | None = None) -> str:
    """A staff member's voice note."""
    return _xml([
        ("ToUserName", corp_id), ("FromUserName", from_user), ("CreateTime", create_time or int(time.time())),
        ("MsgType", "voice"), ("MediaId", media_id), ("Format", fmt), ("MsgId", msg_id or _msg_id()),
        ("AgentID", int(agent_id)),
    ])


def build_plaintext_location(corp_id: str, agent_id: str, from_user: str, latitude: float, longitude: float,
                             label: str, *, scale: int = 15, msg_id: int | None = None,
                             create_time: int | None = None) -> str:
    """A staff member's shared location (Location_X is the latitude)."""
    return _xml([
        ("ToUserName", corp_id), ("FromUserName", from_user), ("CreateTime", create_time or int(time.time())),
        ("MsgType", "location"), ("Location_X", latitude), ("Location_Y", longitude), ("Scale", scale),
        ("Label", label), ("MsgId", msg_id or _msg_id()), ("AgentID", int(agent_id)),
    ])


def build_plaintext_change_external_contact(
    corp_id: str, change_type: str, userid: str, external_userid: str, *,
    state: str | None = None, welcome_code: str | None = None, fail_reason: str | None = None,
    create_time: int | None = None,
) -> str:
    """A 客户联系 event: a customer added, edited, deleted, or a transfer that failed."""
    if change_type not in CHANGE_TYPES:
        raise ValueError(f"unknown ChangeType {change_type!r}")
    if change_type == "transfer_fail" and not fail_reason:
        raise ValueError("transfer_fail needs a fail_reason (customer_refused or customer_limit_exceed)")
    adding = change_type in ("add_external_contact", "add_half_external_contact")
    return _xml([
        ("ToUserName", corp_id), ("FromUserName", "sys"), ("CreateTime", create_time or int(time.time())),
        ("MsgType", "event"), ("Event", "change_external_contact"), ("ChangeType", change_type),
        ("UserID", userid), ("ExternalUserID", external_userid),
        ("State", state if adding else None), ("WelcomeCode", welcome_code if adding else None),
        ("FailReason", fail_reason if change_type == "transfer_fail" else None),
    ])


CHAT_CHANGE_TYPES = frozenset({"create", "update", "dismiss"})
CHAT_UPDATE_DETAILS = frozenset({"add_member", "del_member", "change_owner", "change_name", "change_notice"})


def build_plaintext_change_external_chat(
    corp_id: str, chat_id: str, change_type: str, *, update_detail: str | None = None,
    members: list[str] = (), join_scene: int = 0, quit_scene: int = 0, last_version: str = "",
    current_version: str = "", create_time: int | None = None,
) -> str:
    """A 客户群 event: created, changed (UpdateDetail) or dismissed.

    https://developer.work.weixin.qq.com/document/path/92130 (客户群创建/变更/解散事件): an update
    names what changed; add_member carries JoinScene (0 邀请入群, 3 扫码入群), del_member QuitScene
    (0 自己退群, 1 被移出); both carry MemChangeCnt, MemChangeList (the members' ids) and the member
    versions before and after."""
    if change_type not in CHAT_CHANGE_TYPES:
        raise ValueError(f"unknown ChangeType {change_type!r}")
    if (change_type == "update") != (update_detail is not None):
        raise ValueError("an update needs an UpdateDetail, and only an update has one")
    if update_detail is not None and update_detail not in CHAT_UPDATE_DETAILS:
        raise ValueError(f"unknown UpdateDetail {update_detail!r}")
    moving = update_detail in ("add_member", "del_member")
    xml = _xml([
        ("ToUserName", corp_id), ("FromUserName", "sys"), ("CreateTime", create_time or int(time.time())),
        ("MsgType", "event"), ("Event", "change_external_chat"), ("ChatId", chat_id), ("ChangeType", change_type),
        ("UpdateDetail", update_detail),
        ("JoinScene", join_scene if update_detail == "add_member" else None),
        ("QuitScene", quit_scene if update_detail == "del_member" else None),
        ("MemChangeCnt", len(members) if moving else None),
        ("LastMemVer", last_version if moving else None), ("CurMemVer", current_version if moving else None),
    ])
    if not moving:
        return xml
    items = "".join(f"<Item>{_cdata(m)}</Item>" for m in members)
    return xml.removesuffix("</xml>") + f"<MemChangeList>{items}</MemChangeList></xml>"


# 通讯录变更 (change_contact) kinds: members https://developer.work.weixin.qq.com/document/path/90970,
# departments https://developer.work.weixin.qq.com/document/path/90971.
CONTACT_CHANGE_TYPES = frozenset({"create_user", "update_user", "delete_user", "create_party", "update_party",
                                  "delete_party"})


def build_plaintext_change_contact(corp_id: str, change_type: str, *, userid: str | None = None,
                                   new_userid: str | None = None, department: list[int] | None = None,
                                   party_id: int | None = None, parent_id: int | None = None,
                                   create_time: int | None = None) -> str:
    """An address-book event as callback URLs configured since 2022-08-15 get it: a member's UserID
    (NewUserID when it was renamed) and Department, a department's Id and ParentId; everything else
    is read back with user/get and department/list."""
    if change_type not in CONTACT_CHANGE_TYPES:
        raise ValueError(f"unknown change_contact ChangeType {change_type!r}")
    member = change_type.endswith("_user")
    if member and not userid:
        raise ValueError(f"{change_type} needs the member's userid")
    if not member and party_id is None:
        raise ValueError(f"{change_type} needs the department's id")
    return _xml([
        ("ToUserName", corp_id), ("FromUserName", "sys"), ("CreateTime", create_time or int(time.time())),
        ("MsgType", "event"), ("Event", "change_contact"), ("ChangeType", change_type),
        ("UserID", userid if member else None),
        ("NewUserID", new_userid if change_type == "update_user" else None),
        ("Department", ",".join(str(d) for d in department) if member and department is not None else None),
        ("Id", party_id if not member else None),
        ("ParentId", str(parent_id) if not member and parent_id is not None else None),
    ])


TAG_CHANGE_TYPES = frozenset({"create", "update", "delete", "shuffle"})


def build_plaintext_change_external_tag(corp_id: str, change_type: str, tag_type: str, tag_or_group_id: str, *,
                                        strategy_id: str | None = None, create_time: int | None = None) -> str:
    """企业客户标签 create/update/delete/shuffle: an admin changed the catalogue in WeCom.
    https://developer.work.weixin.qq.com/document/path/92130 (事件格式)"""
    if change_type not in TAG_CHANGE_TYPES:
        raise ValueError(f"unknown ChangeType {change_type!r}")
    if tag_type not in ("tag", "tag_group"):
        raise ValueError(f"unknown TagType {tag_type!r}")
    return _xml([
        ("ToUserName", corp_id), ("FromUserName", "sys"), ("CreateTime", create_time or int(time.time())),
        ("MsgType", "event"), ("Event", "change_external_tag"),
        ("Id", tag_or_group_id), ("TagType", tag_type), ("ChangeType", change_type), ("StrategyId", strategy_id),
    ])


def build_plaintext_kf_msg_or_event(corp_id: str, token: str, open_kfid: str, *,
                                    create_time: int | None = None) -> str:
    """The 微信客服 wake-up: "there is something new, sync with this Token"."""
    return _xml([
        ("ToUserName", corp_id), ("CreateTime", create_time or int(time.time())), ("MsgType", "event"),
        ("Event", "kf_msg_or_event"), ("Token", token), ("OpenKfId", open_kfid),
    ])


def build_plaintext_update_tag(corp_id: str, tag_id: int, *, add_users: list[str] = (), del_users: list[str] = (),
                               create_time: int | None = None) -> str:
    """change_contact update_tag: a member tag's members changed; the tag is read back with tag/get.
    https://developer.work.weixin.qq.com/document/path/96304 (标签变更通知)"""
    return _xml([
        ("ToUserName", corp_id), ("FromUserName", "sys"), ("CreateTime", create_time or int(time.time())),
        ("MsgType", "event"), ("Event", "change_contact"), ("ChangeType", "update_tag"), ("TagId", tag_id),
        ("AddUserItems", ",".join(add_users) or None), ("DelUserItems", ",".join(del_users) or None),
    ])


class CallbackSender:
    """POSTs encrypted, signed callbacks to the service's callback URL like WeCom does."""

    def __init__(self, http: aiohttp.ClientSession, callback_url: str, crypto: CallbackCrypto, *,
                 corp_id: str, agent_id: str) -> None:
        self._http = http
        self._url = callback_url
        self._crypto = crypto
        self._corp_id = corp_id
        self._agent_id = str(agent_id)

    async def text(self, from_user: str, content: str, *, msg_id: int | None = None,
                   create_time: int | None = None) -> tuple[int, str]:
        return await self.raw(build_plaintext_text(self._corp_id, self._agent_id, from_user, content,
                                                   msg_id=msg_id, create_time=create_time))

    async def image(self, from_user: str, pic_url: str, media_id: str, *, msg_id: int | None = None,
                    create_time: int | None = None) -> tuple[int, str]:
        return await self.raw(build_plaintext_image(self._corp_id, self._agent_id, from_user, pic_url, media_id,
                                                    msg_id=msg_id, create_time=create_time))

    async def voice(self, from_user: str, media_id: str, *, msg_id: int | None = None,
                    create_time: int | None = None) -> tuple[int, str]:
        return await self.raw(build_plaintext_voice(self._corp_id, self._agent_id, from_user, media_id,
                                                    msg_id=msg_id, create_time=create_time))

    async def location(self, from_user: str, latitude: float, longitude: float, label: str, *,
                       msg_id: int | None = None, create_time: int | None = None) -> tuple[int, str]:
        return await self.raw(build_plaintext_location(self._corp_id, self._agent_id, from_user, latitude,
                                                       longitude, label, msg_id=msg_id, create_time=create_time))

    async def change_external_contact(self, change_type: str, userid: str, external_userid: str, *,
                                      state: str | None = None, welcome_code: str | None = None,
                                      fail_reason: str | None = None) -> tuple[int, str]:
        return await self.raw(build_plaintext_change_external_contact(
            self._corp_id, change_type, userid, external_userid,
            state=state, welcome_code=welcome_code, fail_reason=fail_reason,
        ))

    async def change_contact(self, change_type: str, *, userid: str | None = None, new_userid: str | None = None,
                             department: list[int] | None = None, party_id: int | None = None,
                             parent_id: int | None = None, create_time: int | None = None) -> tuple[int, str]:
        """An address-book change (create_user, update_user, delete_user, create_party, …); make it in the
        simulator first (simulator.directory: hire, move, disable, leave, add_department). Two identical events of
        one member in the same second look like one retried event: give the second a later create_time."""
        return await self.raw(build_plaintext_change_contact(
            self._corp_id, change_type, userid=userid, new_userid=new_userid, department=department,
            party_id=party_id, parent_id=parent_id, create_time=create_time))

    async def customer_scans(self, sim: SimulatorState, config_id: str, name: str, **contact: str) -> Scan:
        """A WeChat user scans a 「联系我」 code: the contact appears in ``sim`` and WeCom sends
        add_external_contact with the code's State and a fresh WelcomeCode. ``contact``: userid,
        external_userid, corp_name, description (see ``SimulatorState.customer_scans``)."""
        scan = sim.customer_scans(config_id, name, **contact)
        await self.change_external_contact("add_external_contact", scan.userid, scan.external_userid,
                                           state=scan.state, welcome_code=scan.welcome_code)
        return scan

    async def change_external_chat(self, chat_id: str, change_type: str, *, update_detail: str | None = None,
                                   members: list[str] = (), join_scene: int = 0, quit_scene: int = 0,
                                   last_version: str = "", current_version: str = "",
                                   create_time: int | None = None) -> tuple[int, str]:
        """A 客户群 change; change the group in the simulator first (simulator.groups)."""
        return await self.raw(build_plaintext_change_external_chat(
            self._corp_id, chat_id, change_type, update_detail=update_detail, members=list(members),
            join_scene=join_scene, quit_scene=quit_scene, last_version=last_version,
            current_version=current_version, create_time=create_time))

    async def change_external_tag(self, change_type: str, tag_type: str, tag_or_group_id: str, *,
                                  strategy_id: str | None = None) -> tuple[int, str]:
        return await self.raw(build_plaintext_change_external_tag(self._corp_id, change_type, tag_type,
                                                                  tag_or_group_id, strategy_id=strategy_id))

    async def kf_msg_or_event(self, token: str, open_kfid: str) -> tuple[int, str]:
        return await self.raw(build_plaintext_kf_msg_or_event(self._corp_id, token, open_kfid))

    async def raw(self, plaintext: str) -> tuple[int, str]:
        """Encrypt and POST any plaintext; returns (HTTP status, body text)."""
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
        body, signature = self._crypto.encrypt_callback(plaintext, timestamp=timestamp, nonce=nonce,
                                                        agent_id=self._agent_id)
        params = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}
        async with self._http.post(self._url, params=params, data=body.encode(),
                                   headers={"Content-Type": "text/xml"}) as resp:
            return resp.status, await resp.text()

    async def verify_url(self, echo: str) -> tuple[int, str]:
        """WeCom's URL check: GET with an encrypted echostr; the answer must be ``echo``."""
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
        body, signature = self._crypto.encrypt_callback(echo, timestamp=timestamp, nonce=nonce)
        echostr = fromstring(body).findtext("Encrypt")
        params = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce, "echostr": echostr}
        async with self._http.get(self._url, params=params) as resp:
            return resp.status, await resp.text()
