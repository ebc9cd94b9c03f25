"""Corp tags written through the API: add_corp_tag and mark_tag (the catalogue itself is read in
simulator.contacts). As in WeCom, changes made through the API send no callback.

- add_corp_tag https://developer.work.weixin.qq.com/document/path/92117 (添加企业客户标签): a new tag in the
  group `group_id` names, or in the group called `group_name` (created when there is none); each tag
  name 1–30 characters; answers the group with its new tags.
- mark_tag https://developer.work.weixin.qq.com/document/path/92118 (编辑客户企业标签): `userid`'s contact
  `external_userid` gets `add_tag` and loses `remove_tag` ("add_tag和remove_tag不可同时为空").
Errcodes (全局错误码 https://developer.work.weixin.qq.com/document/path/90313): 40058 a missing or invalid
parameter, 40068 an unknown tag id, 40071 a tag name that exists in the group (or is too long),
60111 an unknown userid, 84061 not that rep's external contact.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from connectors.wecom.simulator.api import Api, ApiError, Reply, ok
from connectors.wecom.simulator.contacts import CORP_TAG

if TYPE_CHECKING:
    from aiohttp import web

    from connectors.wecom.simulator.state import SimulatorState

TAG_NAME_MAX = 30


def _add_corp_tag(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    tags = body.get("tag")
    if not isinstance(tags, list) or not tags or not all(isinstance(t, dict) and t.get("name") for t in tags):
        raise ApiError(40058)
    group_id, group_name = body.get("group_id"), body.get("group_name")
    if group_id:
        group = next((g for g in state.corp_tag_groups if g["group_id"] == group_id and not g.get("deleted")), None)
        if group is None:
            raise ApiError(40068)
    elif group_name:
        group = next((g for g in state.corp_tag_groups if g["group_name"] == group_name and not g.get("deleted")), None)
        if group is None:
            group = {"group_id": _id("etgroup", group_name), "group_name": str(group_name),
                     "create_time": int(state.now()), "order": 0, "deleted": False, "tag": []}
            state.corp_tag_groups.append(group)
    else:
        raise ApiError(40058)
    names = [str(t["name"]) for t in tags]
    existing = {t["name"] for t in group["tag"] if not t.get("deleted")}
    if any(len(n) > TAG_NAME_MAX or n in existing for n in names) or len(set(names)) != len(names):
        raise ApiError(40071)
    added = [{"id": _id("et", f"{group['group_id']}:{n}"), "name": n, "create_time": int(state.now()),
              "order": int(t.get("order", 0) or 0), "deleted": False} for n, t in zip(names, tags)]
    group["tag"].extend(added)
    return ok(tag_group={**{k: v for k, v in group.items() if k != "tag"}, "tag": added})


def _mark_tag(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    userid, external_userid = body.get("userid"), body.get("external_userid")
    add, remove = body.get("add_tag") or [], body.get("remove_tag") or []
    if not userid or not external_userid or not isinstance(add, list) or not isinstance(remove, list) \
            or not (add or remove):
        raise ApiError(40058)
    if userid not in state.staff:
        raise ApiError(60111)
    contact = state.external_contacts.get(external_userid)
    follow = next((f for f in (contact or {}).get("follow_user", []) if f["userid"] == userid), None)
    if follow is None:
        raise ApiError(84061)
    catalogue = {t["id"]: (g["group_name"], t["name"]) for g in state.corp_tag_groups if not g.get("deleted")
                 for t in g["tag"] if not t.get("deleted")}
    if any(tag_id not in catalogue for tag_id in (*add, *remove)):
        raise ApiError(40068)
    kept = [t for t in follow.get("tags") or [] if t.get("tag_id") not in set(remove) | set(add)]
    follow["tags"] = kept + [{"group_name": catalogue[t][0], "tag_name": catalogue[t][1], "tag_id": t, "type": CORP_TAG}
                             for t in dict.fromkeys(add)]
    state.external_contacts[external_userid] = contact  # a generated contact is kept once changed
    state.tag_marks.append({"userid": userid, "external_userid": external_userid, "add_tag": add, "remove_tag": remove})
    return ok()


def _id(prefix: str, seed: str) -> str:
    return prefix + hashlib.sha256(seed.encode()).hexdigest()[:24]


APIS: dict[str, Api] = {
    "externalcontact/add_corp_tag": Api("POST", _add_corp_tag),
    "externalcontact/mark_tag": Api("POST", _mark_tag),
}
