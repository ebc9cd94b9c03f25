"""Deliver a `mark_tag` outbox row (crm_core.tag_push): the CRM's tag change on one rep's contact in WeCom.

Tags go by name in the row and by id to WeCom, looked up in the corp tag catalogue when the row is
sent. A tag WeCom lacks is created first with add_corp_tag in the configured group; if an earlier
attempt already created it (and then failed before it could keep the id), WeCom answers 40071 and
the catalogue is read again instead. Removing a tag WeCom never had needs no call. The rep's
follower record keeps the tag ids WeCom now has, so a later edit in the WeCom client is told apart. A rep who no
longer follows the customer (84061) has nothing to tag: the row is done.
https://developer.work.weixin.qq.com/document/path/92117 (add_corp_tag),
https://developer.work.weixin.qq.com/document/path/92118 (mark_tag)
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from connectors.wecom.errors import InvalidUserError, WeComError
from connectors.wecom.profiles import tag_groups
from crm_core.corp_tags import CorpTagService
from crm_core.db import utcnow
from crm_core.followers import FollowerService
from crm_core.models import OutboxItem

log = logging.getLogger(__name__)

TAG_NAME_EXISTS = 40071


class TagApi(Protocol):
    async def add_corp_tag(self, group_name: str, names: list[str]) -> dict[str, Any]: ...
    async def mark_tag(self, userid: str, external_userid: str, *, add: list[str] = (),
                       remove: list[str] = ()) -> dict[str, Any]: ...
    async def get_corp_tag_list(self, *, tag_ids: list[str] | None = None,
                                group_ids: list[str] | None = None) -> dict[str, Any]: ...


async def send_mark_tag(wecom: TagApi, session: AsyncSession, item: OutboxItem) -> dict[str, Any]:
    payload, catalogue = item.payload, CorpTagService(session)
    group = payload["group"]
    add_ids = await _ids(catalogue, payload["add"], group)
    missing = [name for name, tag_id in zip(payload["add"], add_ids) if tag_id is None]
    if missing:
        await _create(wecom, catalogue, group, missing)
        add_ids = await _ids(catalogue, payload["add"], group)
    remove_ids = [t for t in await _ids(catalogue, payload["remove"], None) if t is not None]
    add_ids = [t for t in add_ids if t is not None]
    response: dict[str, Any] = {}
    if add_ids or remove_ids:
        try:
            response = await wecom.mark_tag(payload["userid"], payload["external_userid"], add=add_ids,
                                            remove=remove_ids)
            follower = await FollowerService(session).get(item.customer_id, item.staff_id)
            if follower is not None:  # what the rep's contact now carries: a later WeCom edit is diffed against it
                follower.tag_ids = [t for t in dict.fromkeys([*follower.tag_ids, *add_ids]) if t not in remove_ids]
        except InvalidUserError as exc:
            log.info("mark_tag for %s: %s no longer follows them (%s); nothing to tag",
                     payload["external_userid"], payload["userid"], exc.errcode)
            response = {"errcode": exc.errcode}
    return {"status": "sent", "sent_at": utcnow(), "response": response, "last_error": ""}


async def _ids(catalogue: CorpTagService, names: list[str], group: str | None) -> list[str | None]:
    """Each name's live tag id: in the push group first (where this CRM creates them), else any group."""
    ids = []
    for name in names:
        tag_id = await catalogue.id_for(name, group=group) if group else None
        ids.append(tag_id or await catalogue.id_for(name))
    return ids


async def _create(wecom: TagApi, catalogue: CorpTagService, group: str, names: list[str]) -> None:
    try:
        answer = await wecom.add_corp_tag(group, names)
    except WeComError as exc:
        if exc.errcode != TAG_NAME_EXISTS:
            raise
        answer = await wecom.get_corp_tag_list()  # created by an earlier attempt: read the ids back
    else:
        answer = {"tag_group": [answer["tag_group"]]}
    groups, _, _ = tag_groups(answer)
    await catalogue.upsert(groups)
