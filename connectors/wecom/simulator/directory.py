"""The simulated address book (通讯录): departments, member ids, members; and the changes a test or the
demo makes to it, which WeCom then announces with change_contact callbacks (simulator.callbacks).

Shapes, limits and errcodes follow the official pages cited at each endpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.wecom.simulator.api import Api, ApiError, Reply, ok
from connectors.wecom.simulator.state import _page

if TYPE_CHECKING:
    from aiohttp import web

    from connectors.wecom.simulator.state import SimulatorState

# user/list_id: "limit 分页，预期请求的数据量，取值范围 1 ~ 10000"
# https://developer.work.weixin.qq.com/document/path/96067 (获取成员ID列表)
LIST_ID_MAX_LIMIT = 10_000
# What user/get no longer answers to apps created after 2022-06-20 ("不再返回以下字段：头像、性别、手机、邮箱、
# 企业邮箱、员工个人二维码、地址"): https://developer.work.weixin.qq.com/document/path/90196 (读取成员)
HIDDEN_MEMBER_FIELDS = ("avatar", "thumb_avatar", "gender", "mobile", "email", "biz_mail", "qr_code", "address")
# user/get status: 1 已激活, 2 已禁用, 4 未激活, 5 退出企业 (path/90196)
ACTIVE, DISABLED = 1, 2


def _department_list(state: SimulatorState, request: web.Request, _: dict[str, Any]) -> Reply:
    """The whole tree, or department `id` and everything below it; an unknown id is 60123.
    https://developer.work.weixin.qq.com/document/path/90208 (获取部门列表)"""
    raw = request.query.get("id")
    if not raw:
        return ok(department=[state.departments[d] for d in sorted(state.departments)])
    if not raw.isdigit() or int(raw) not in state.departments:
        raise ApiError(60123)
    wanted, frontier = {int(raw)}, [int(raw)]
    while frontier:
        parent = frontier.pop()
        children = [d for d, dept in state.departments.items() if dept["parentid"] == parent and d not in wanted]
        wanted.update(children)
        frontier.extend(children)
    return ok(department=[state.departments[d] for d in sorted(wanted)])


def _user_list_id(state: SimulatorState, request: web.Request, body: dict[str, Any]) -> Reply:
    """One row per member and department (a member in two departments is listed twice), paged by
    `cursor`; `limit` outside 1..10000 or a cursor we never gave out is 40058. "仅支持通过“通讯录同步
    secret”调用": with the company's contacts secret set, another app's token gets 48002 (api forbidden).
    https://developer.work.weixin.qq.com/document/path/96067 (获取成员ID列表)"""
    if state.contacts_secret and not state.is_contacts_token(request.query.get("access_token")):
        raise ApiError(48002)
    limit = body.get("limit", LIST_ID_MAX_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= LIST_ID_MAX_LIMIT:
        raise ApiError(40058)
    rows = [{"userid": userid, "department": department}
            for userid in sorted(state.staff) for department in state.staff[userid].get("department", [])]
    try:
        page, next_cursor = _page(rows, str(body.get("cursor") or "") or None, limit)
    except ValueError as exc:
        raise ApiError(40058) from exc
    return ok(next_cursor=next_cursor, dept_user=page)


def _user_get(state: SimulatorState, request: web.Request, _: dict[str, Any]) -> Reply:
    """One member; 41009 without a userid, 60111 for one the directory does not have.
    https://developer.work.weixin.qq.com/document/path/90196 (读取成员)"""
    userid = request.query.get("userid")
    if not userid:
        raise ApiError(41009)
    user = state.staff.get(userid)
    if user is None:
        raise ApiError(60111)
    if state.hides_member_details:
        user = {k: v for k, v in user.items() if k not in HIDDEN_MEMBER_FIELDS}
    return ok(**user)


def _tag_list(state: SimulatorState, _: web.Request, __: dict[str, Any]) -> Reply:
    """Every member tag (通讯录标签): taglist of tagid and tagname.
    https://developer.work.weixin.qq.com/document/path/90216 (获取标签列表)"""
    return ok(taglist=[{"tagid": t, "tagname": state.member_tags[t]["tagname"]} for t in sorted(state.member_tags)])


def _tag_get(state: SimulatorState, request: web.Request, _: dict[str, Any]) -> Reply:
    """One tag's members (userlist: userid, name) and departments (partylist); an unknown tag is 40068.
    https://developer.work.weixin.qq.com/document/path/90213 (获取标签成员)"""
    raw = request.query.get("tagid", "")
    if not raw.isdigit() or int(raw) not in state.member_tags:
        raise ApiError(40068)
    tag = state.member_tags[int(raw)]
    members = [u for u in tag["userlist"] if u in state.staff]
    return ok(tagname=tag["tagname"], userlist=[{"userid": u, "name": state.staff[u]["name"]} for u in members],
              partylist=list(tag["partylist"]))


APIS: dict[str, Api] = {
    "department/list": Api("GET", _department_list),
    "user/list_id": Api("POST", _user_list_id),
    "user/get": Api("GET", _user_get),
    "tag/list": Api("GET", _tag_list),
    "tag/get": Api("GET", _tag_get),
}


# -- what happens in the company's WeCom admin console (tests and the demo call these) --------------

def hire(state: SimulatorState, userid: str, name: str, department: list[int], *, position: str = "",
         leader_in: tuple[int, ...] = ()) -> dict[str, Any]:
    """A new member joins; send create_user afterwards (CallbackSender.change_contact)."""
    state.staff[userid] = {
        "userid": userid, "name": name, "department": list(department), "order": [0] * len(department),
        "position": position, "mobile": "", "gender": "0", "email": "", "status": ACTIVE,
        "is_leader_in_dept": [1 if d in leader_in else 0 for d in department], "direct_leader": [],
        "avatar": "", "telephone": "", "alias": "", "main_department": department[0] if department else 1,
    }
    return state.staff[userid]


def move(state: SimulatorState, userid: str, department: list[int], *, leader_in: tuple[int, ...] = ()) -> None:
    """A member changes departments, or leads different ones; send update_user afterwards."""
    user = state.staff[userid]
    user.update(department=list(department), order=[0] * len(department),
                is_leader_in_dept=[1 if d in leader_in else 0 for d in department],
                main_department=department[0] if department else 1)
    for dept in state.departments.values():
        if userid in dept.get("department_leader", []) and dept["id"] not in leader_in:
            dept["department_leader"] = [u for u in dept["department_leader"] if u != userid]


def disable(state: SimulatorState, userid: str) -> None:
    """The admin disables a member's account (status 2); send update_user afterwards."""
    state.staff[userid]["status"] = DISABLED


def leave(state: SimulatorState, userid: str) -> None:
    """The member leaves the company and is deleted from the directory; send delete_user afterwards.
    Their customers stay behind as unassigned (get_unassigned_list) until someone inherits them."""
    state.transfer_book.member_leaves(state, userid)
    for dept in state.departments.values():
        dept["department_leader"] = [u for u in dept.get("department_leader", []) if u != userid]


def add_department(state: SimulatorState, department_id: int, name: str, *, parent_id: int = 1) -> None:
    """A new department; send create_party afterwards."""
    state.departments[department_id] = {"id": department_id, "name": name, "name_en": "", "parentid": parent_id,
                                        "order": 0, "department_leader": []}


def remove_department(state: SimulatorState, department_id: int) -> None:
    """WeCom deletes only empty departments; send delete_party afterwards."""
    if any(department_id in user.get("department", []) for user in state.staff.values()):
        raise ValueError(f"department {department_id} still has members")
    del state.departments[department_id]


def tag(state: SimulatorState, tag_id: int, name: str, *, userids: tuple[str, ...] = (),
        departments: tuple[int, ...] = ()) -> None:
    """An admin tags members and whole departments (or retags them); send update_tag afterwards
    (simulator.callbacks.build_plaintext_update_tag)."""
    state.member_tags[tag_id] = {"tagid": tag_id, "tagname": name, "userlist": list(userids),
                                 "partylist": list(departments)}
