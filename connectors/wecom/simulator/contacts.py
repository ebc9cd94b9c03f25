"""客户联系 endpoints: the reps with 客户联系, their contacts page by page, the corp tag catalogue.

Contacts live in `SimulatorState.external_contacts` in externalcontact/get's shape (one
`external_contact`, a `follow_user` entry per rep); batch/get_by_user answers one entry per
(contact, rep) pair with that rep's `follow_info`, which carries corp tag ids only.

`GeneratedContacts` stands in for a large company (100,000 contacts) without holding 100,000
dicts: each contact is built from its number when asked for, and only contacts something changed
are kept.

- get_follow_user_list  https://developer.work.weixin.qq.com/document/path/92571
- batch/get_by_user     https://developer.work.weixin.qq.com/document/path/92994
- get_corp_tag_list     https://developer.work.weixin.qq.com/document/path/92117
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from connectors.wecom.simulator.api import Api, ApiError, Reply, decode_cursor, encode_cursor, ok

CURSOR_PREFIX = "sim-contacts"  # batch/get_by_user cursors: one of another list is a bad cursor

if TYPE_CHECKING:
    from aiohttp import web

    from connectors.wecom.simulator.state import SimulatorState

# "userid_list … 最多支持100个"; "limit … 最大值100，默认值50，超过最大值时取最大值" (92994): a larger limit
# is capped, not refused; more than 100 userids is 40058 (invalid parameter), as WeCom answers it.
BATCH_USERIDS_MAX = 100
BATCH_LIMIT_MAX = 100
BATCH_LIMIT_DEFAULT = 50
CORP_TAG = 1  # follow_user tags of type 1 are corp tags (2 personal, 3 rule-group)


def follow_users(state: SimulatorState) -> list[str]:
    """The members with 客户联系: `state.customer_contact_users`, or every member when it is None."""
    if state.customer_contact_users is not None:
        return list(state.customer_contact_users)
    return list(state.staff)


def followed_by(contacts: MutableMapping[str, dict[str, Any]], userid: str) -> Sequence[str]:
    """The external_userids `userid` follows, in a stable order."""
    if isinstance(contacts, GeneratedContacts):
        return contacts.followed_by(userid)
    return [eid for eid, contact in contacts.items() if any(f.get("userid") == userid for f in contact["follow_user"])]


def _read(contacts: MutableMapping[str, dict[str, Any]], external_userid: str) -> dict[str, Any] | None:
    """A contact to answer with, without keeping a generated one (reading is not changing)."""
    if isinstance(contacts, GeneratedContacts):
        return contacts.read(external_userid)
    return contacts.get(external_userid)


def follow_info(follow: dict[str, Any]) -> dict[str, Any]:
    """externalcontact/get's follow_user entry as batch/get_by_user's follow_info: corp tag ids only."""
    info = {k: v for k, v in follow.items() if k != "tags"}
    info["tag_id"] = [t["tag_id"] for t in follow.get("tags") or [] if int(t.get("type", CORP_TAG)) == CORP_TAG]
    return info


def _get_follow_user_list(state: SimulatorState, _: web.Request, __: dict[str, Any]) -> Reply:
    return ok(follow_user=follow_users(state))


def _batch_get_by_user(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    userids = body.get("userid_list")
    if not isinstance(userids, list) or not userids or len(userids) > BATCH_USERIDS_MAX \
            or not all(isinstance(u, str) and u for u in userids):
        raise ApiError(40058)
    limit = body.get("limit", BATCH_LIMIT_DEFAULT)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ApiError(40058)
    limit = min(limit, BATCH_LIMIT_MAX)
    try:
        position = decode_cursor(str(body["cursor"]), CURSOR_PREFIX) if body.get("cursor") else 0
    except ValueError as exc:
        raise ApiError(40058) from exc
    # The answer is every requested rep's contacts one after another; the cursor is a position in it.
    entries: list[dict[str, Any]] = []
    offset, stop, more = 0, position + limit, False
    reachable = set(follow_users(state))
    for userid in dict.fromkeys(userids):
        if userid not in reachable:
            continue  # a member without 客户联系 (or outside the app's scope) adds nobody
        followed = followed_by(state.external_contacts, userid)
        if offset >= stop:
            if len(followed):
                more = True
                break
            continue
        for external_userid in followed[max(0, position - offset):stop - offset]:
            contact = _read(state.external_contacts, external_userid)
            follow = next((f for f in (contact or {}).get("follow_user", []) if f.get("userid") == userid), None)
            if follow is not None:  # gone since the listing was made: the position still counts
                entries.append({"external_contact": contact["external_contact"], "follow_info": follow_info(follow)})
        offset += len(followed)
        if offset > stop:
            more = True
            break
    return ok(external_contact_list=entries, next_cursor=encode_cursor(stop, CURSOR_PREFIX) if more else "")


def _get_corp_tag_list(state: SimulatorState, _: web.Request, body: dict[str, Any]) -> Reply:
    """No filter: every live group; `group_id` wins over `tag_id`; filtered answers show deletions too."""
    group_ids, tag_ids = body.get("group_id") or [], body.get("tag_id") or []
    if not isinstance(group_ids, list) or not isinstance(tag_ids, list):
        raise ApiError(40058)
    answer = []
    for group in state.corp_tag_groups:
        if group_ids:
            if group["group_id"] in group_ids:
                answer.append(group)
        elif tag_ids:
            tags = [t for t in group["tag"] if t["id"] in tag_ids]
            if tags:
                answer.append({**group, "tag": tags})
        elif not group.get("deleted"):
            answer.append({**group, "tag": [t for t in group["tag"] if not t.get("deleted")]})
    return ok(tag_group=answer)


APIS: dict[str, Api] = {
    "externalcontact/get_follow_user_list": Api("GET", _get_follow_user_list),
    "externalcontact/batch/get_by_user": Api("POST", _batch_get_by_user),
    "externalcontact/get_corp_tag_list": Api("POST", _get_corp_tag_list),
}


def tag_catalogue(tags: Sequence[dict[str, Any]], *, create_time: int = 1_690_000_000) -> list[dict[str, Any]]:
    """get_corp_tag_list's `tag_group` for the tags contacts carry ({group_name, tag_name, tag_id});
    each group's id is derived from its first tag's."""
    groups: dict[str, dict[str, Any]] = {}
    for tag in tags:
        group = groups.setdefault(tag["group_name"], {
            "group_id": "etGroup" + tag["tag_id"][2:14], "group_name": tag["group_name"], "create_time": create_time,
            "order": 0, "deleted": False, "tag": []})
        if all(t["id"] != tag["tag_id"] for t in group["tag"]):
            group["tag"].append({"id": tag["tag_id"], "name": tag["tag_name"], "create_time": create_time,
                                 "order": len(group["tag"]), "deleted": False})
    return list(groups.values())


def generate_company(state: SimulatorState, contacts: int, *, reps: int = 40) -> GeneratedContacts:
    """Replace the state's contacts with `contacts` generated ones over `reps` new sales reps
    (rep001 …, members with 客户联系 from then on), tagged from the state's tag catalogue."""
    userids = [f"rep{i:03d}" for i in range(1, reps + 1)]
    template = next(iter(state.staff.values()))
    for i, userid in enumerate(userids, 1):
        state.staff[userid] = {**template, "userid": userid, "name": f"销售{i:03d}", "mobile": f"1370000{i:04d}",
                               "email": f"{userid}@example.cn", "is_leader_in_dept": [0] * len(template["department"])}
    state.customer_contact_users = userids
    tags = [{"group_name": g["group_name"], "tag_name": t["name"], "tag_id": t["id"], "type": CORP_TAG}
            for g in state.corp_tag_groups for t in g["tag"]]
    state.external_contacts = GeneratedContacts(contacts, userids, tags=tags)
    return state.external_contacts


class GeneratedContacts(MutableMapping[str, dict[str, Any]]):
    """`count` contacts spread over `reps` round robin; every `shared_every`-th contact is also
    followed by the next rep. Contact n is built from n when asked for; one taken through
    `__getitem__` (to change it: a new follower, say) is kept from then on, so the change sticks.
    The API answers through `read`, which keeps nothing."""

    def __init__(self, count: int, reps: Sequence[str], *, shared_every: int = 10,
                 tags: Sequence[dict[str, Any]] = (), start_time: int = 1_600_000_000):
        self.count, self.reps, self.shared_every = count, list(reps), shared_every
        self.tags, self.start_time = list(tags), start_time
        self._changed: dict[str, dict[str, Any]] = {}
        self._removed: set[str] = set()
        self._by_rep: dict[str, array] = {userid: array("l") for userid in self.reps}
        for n in range(count):
            for userid in self._followers_of(n):
                self._by_rep[userid].append(n)

    def followed_by(self, userid: str) -> Sequence[str]:
        return _Ids(self, self._by_rep.get(userid, array("l")))

    def external_userid(self, n: int) -> str:
        return f"wmGen{n:027d}"  # 32 characters, like WeCom's

    def build(self, n: int) -> dict[str, Any]:
        external_userid = self.external_userid(n)
        if external_userid in self._changed:
            return self._changed[external_userid]
        tag = [self.tags[n % len(self.tags)]] if self.tags else []
        return {
            "external_contact": {"external_userid": external_userid, "name": f"客户{n}", "type": 1,
                                 "gender": n % 3, "avatar": "", "unionid": f"oGen{n:024d}"},
            "follow_user": [{"userid": userid, "remark": f"客户{n}-{userid}", "description": "",
                             "createtime": self.start_time + n * 60 + k, "tags": tag, "remark_corp_name": "",
                             "remark_mobiles": [f"139{n:08d}"], "oper_userid": userid, "add_way": 1,
                             "state": ""} for k, userid in enumerate(self._followers_of(n))],
        }

    def _followers_of(self, n: int) -> list[str]:
        first = self.reps[n % len(self.reps)]
        if self.shared_every and len(self.reps) > 1 and n % self.shared_every == 0:
            return [first, self.reps[(n + 1) % len(self.reps)]]
        return [first]

    def _number(self, external_userid: str) -> int | None:
        if not external_userid.startswith("wmGen") or not external_userid[5:].isdigit():
            return None
        n = int(external_userid[5:])
        return n if n < self.count and external_userid not in self._removed else None

    def read(self, external_userid: str) -> dict[str, Any] | None:
        """The contact as it is now, built afresh unless something changed it; None when absent."""
        if external_userid in self._changed:
            return self._changed[external_userid]
        n = self._number(external_userid)
        return None if n is None else self.build(n)

    def __getitem__(self, external_userid: str) -> dict[str, Any]:
        if external_userid in self._changed:
            return self._changed[external_userid]
        n = self._number(external_userid)
        if n is None:
            raise KeyError(external_userid)
        contact = self._changed[external_userid] = self.build(n)
        return contact

    def __setitem__(self, external_userid: str, contact: dict[str, Any]) -> None:
        self._changed[external_userid] = contact
        self._removed.discard(external_userid)

    def __delitem__(self, external_userid: str) -> None:
        self[external_userid]  # KeyError when absent
        self._changed.pop(external_userid, None)
        self._removed.add(external_userid)

    def __iter__(self) -> Iterator[str]:
        for n in range(self.count):
            external_userid = self.external_userid(n)
            if external_userid not in self._removed:
                yield external_userid
        yield from (k for k in self._changed if self._number(k) is None)

    def __len__(self) -> int:
        return self.count - len(self._removed) + sum(1 for k in self._changed if self._number(k) is None)


class _Ids(Sequence[str]):
    """A rep's contact numbers read as external_userids, without building a list of strings."""

    def __init__(self, contacts: GeneratedContacts, numbers: array):
        self._contacts, self._numbers = contacts, numbers

    def __len__(self) -> int:
        return len(self._numbers)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self._contacts.external_userid(n) for n in self._numbers[index]]
        return self._contacts.external_userid(self._numbers[index])
