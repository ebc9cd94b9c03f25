"""客户群 (customer groups) in the simulator: groupchat/list, groupchat/get, what a group looks like,
and the changes a rep's WeCom client makes to one (each followed by a change_external_chat
callback, see callbacks.CallbackSender.change_external_chat).

Shapes, paging and limits follow WeCom's docs for self-built apps:
- groupchat/list https://developer.work.weixin.qq.com/document/path/92120 — status_filter 0 (all) … 3,
  owner_filter.userid_list "最多100个", cursor, limit "取值范围 1 ~ 1000"; items {chat_id, status}.
- groupchat/get https://developer.work.weixin.qq.com/document/path/92122 — chat_id, need_name (0/1);
  group_chat {chat_id, name, owner, create_time, notice, member_list, admin_list, member_version};
  a member has userid, type (1 企业成员, 2 外部联系人), join_time, join_scene (1 直接邀请, 2 邀请链接,
  3 扫码), invitor {userid}, group_nickname, name (only with need_name=1), unionid (type 2, when the
  corp has bound a WeChat developer id).
Out-of-range parameters answer 40058; an unknown chat_id 40050 (全局错误码
https://developer.work.weixin.qq.com/document/path/90313).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from connectors.wecom.simulator.api import Api, ApiError, Reply, ok
from connectors.wecom.simulator.state import _page

if TYPE_CHECKING:
    from aiohttp import web

    from connectors.wecom.simulator.state import SimulatorState

LIST_LIMIT_MAX = 1000
OWNER_FILTER_MAX = 100
STAFF, EXTERNAL = 1, 2
JOIN_DIRECT, JOIN_LINK, JOIN_QR = 1, 2, 3
STATUS_NORMAL = 0


def member(userid: str, member_type: int, *, join_time: int, name: str, invitor: str = "",
           join_scene: int = JOIN_DIRECT, unionid: str = "", group_nickname: str = "") -> dict[str, Any]:
    """One member_list entry as groupchat/get answers with need_name=1."""
    entry: dict[str, Any] = {"userid": userid, "type": member_type, "join_time": join_time, "join_scene": join_scene,
                             "group_nickname": group_nickname, "name": name}
    if invitor:
        entry["invitor"] = {"userid": invitor}
    if member_type == EXTERNAL and unionid:
        entry["unionid"] = unionid
    return entry


def group_chat(chat_id: str, name: str, owner: str, create_time: int, members: list[dict[str, Any]], *,
               notice: str = "", admins: tuple[str, ...] = ()) -> dict[str, Any]:
    chat = {"chat_id": chat_id, "name": name, "owner": owner, "create_time": create_time, "notice": notice,
            "member_list": members, "admin_list": [{"userid": a} for a in admins], "status": STATUS_NORMAL}
    chat["member_version"] = _member_version(chat)
    return chat


def sample_groups() -> dict[str, dict[str, Any]]:
    """Three groups of the demo company: 张伟's 华东客户交流群 (赵磊, 孙丽 and 钱先生, a WeChat user met
    only in the group), 李娜's 绿源采购对接群, and 刘洋's 启明教育项目群."""
    groups = [
        group_chat("wrDemoEastChina00000000000000001", "华东客户交流群", "zhangwei", 1_705_000_000, [
            member("zhangwei", STAFF, join_time=1_705_000_000, name="张伟"),
            member("wmDemoZhaoLei0000000000000000001", EXTERNAL, join_time=1_705_000_100, name="赵磊",
                   invitor="zhangwei", unionid="ozDemoUnionZhaoLei00000000001"),
            member("wmDemoSunLi000000000000000000002", EXTERNAL, join_time=1_705_000_200, name="孙丽",
                   invitor="zhangwei", join_scene=JOIN_LINK),
            member("wmDemoQianSheng000000000000000009", EXTERNAL, join_time=1_705_000_300, name="钱先生",
                   join_scene=JOIN_QR, unionid="ozDemoUnionQian0000000000009", group_nickname="老钱"),
        ], notice="欢迎各位，报价与交期问题请直接在群里问", admins=("liuyang",)),
        group_chat("wrDemoLvYuan000000000000000000002", "绿源采购对接群", "lina", 1_706_000_000, [
            member("lina", STAFF, join_time=1_706_000_000, name="李娜"),
            member("wmDemoWuMin000000000000000000004", EXTERNAL, join_time=1_706_000_100, name="吴敏", invitor="lina"),
        ]),
        group_chat("wrDemoQiMing00000000000000000003", "启明教育项目群", "liuyang", 1_707_000_000, [
            member("liuyang", STAFF, join_time=1_707_000_000, name="刘洋"),
            member("zhangwei", STAFF, join_time=1_707_000_050, name="张伟", invitor="liuyang"),
            member("wmDemoLuoYan00000000000000000008", EXTERNAL, join_time=1_707_000_100, name="罗燕",
                   invitor="liuyang"),
        ]),
    ]
    return {g["chat_id"]: g for g in groups}


# -- what a rep does in the WeCom client (send the matching callback afterwards) -------------

def create_group(state: SimulatorState, chat_id: str, name: str, owner: str, members: list[dict[str, Any]]) -> None:
    state.group_chats[chat_id] = group_chat(chat_id, name, owner, int(state.now()),
                                            [member(owner, STAFF, join_time=int(state.now()), name=owner), *members])


def add_members(state: SimulatorState, chat_id: str, members: list[dict[str, Any]]) -> None:
    chat = state.group_chats[chat_id]
    present = {m["userid"] for m in chat["member_list"]}
    chat["member_list"] += [m for m in members if m["userid"] not in present]
    chat["member_version"] = _member_version(chat)


def remove_members(state: SimulatorState, chat_id: str, userids: list[str]) -> None:
    chat = state.group_chats[chat_id]
    chat["member_list"] = [m for m in chat["member_list"] if m["userid"] not in set(userids)]
    chat["member_version"] = _member_version(chat)


def change_owner(state: SimulatorState, chat_id: str, owner: str) -> None:
    state.group_chats[chat_id]["owner"] = owner


def rename(state: SimulatorState, chat_id: str, name: str) -> None:
    state.group_chats[chat_id]["name"] = name


def dismiss(state: SimulatorState, chat_id: str) -> None:
    """The owner dismisses the group: WeCom forgets it (groupchat/get answers 40050)."""
    del state.group_chats[chat_id]


def _member_version(chat: dict[str, Any]) -> str:
    return hashlib.md5("|".join(sorted(m["userid"] for m in chat["member_list"])).encode()).hexdigest()


# -- the API ---------------------------------------------------------------------------------

def _groupchat_list(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    limit = body.get("limit")
    if not isinstance(limit, int) or not 1 <= limit <= LIST_LIMIT_MAX:
        raise ApiError(40058)
    status_filter = body.get("status_filter", 0)
    if status_filter not in (0, 1, 2, 3):
        raise ApiError(40058)
    owners = (body.get("owner_filter") or {}).get("userid_list")
    if owners is not None and (not isinstance(owners, list) or len(owners) > OWNER_FILTER_MAX):
        raise ApiError(40058)
    rows = [{"chat_id": chat_id, "status": chat["status"]} for chat_id, chat in sorted(state.group_chats.items())
            if (owners is None or chat["owner"] in owners) and (status_filter == 0 or chat["status"] == status_filter)]
    try:
        page, next_cursor = _page(rows, body.get("cursor") or None, limit)
    except ValueError as exc:
        raise ApiError(40058) from exc
    return ok(group_chat_list=page, next_cursor=next_cursor)


def _groupchat_get(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    chat_id = body.get("chat_id")
    if not chat_id or not isinstance(chat_id, str):
        raise ApiError(40058)
    need_name = body.get("need_name", 0)
    if need_name not in (0, 1):
        raise ApiError(40058)
    chat = state.group_chats.get(chat_id)
    if chat is None:
        raise ApiError(40050)
    members = [m if need_name else {k: v for k, v in m.items() if k != "name"} for m in chat["member_list"]]
    return ok(group_chat={k: v for k, v in chat.items() if k != "status"} | {"member_list": members})


APIS: dict[str, Api] = {
    "externalcontact/groupchat/list": Api("POST", _groupchat_list),
    "externalcontact/groupchat/get": Api("POST", _groupchat_get),
}
