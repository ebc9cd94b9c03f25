"""Two saves of one member's profile in the same second are two changes, and WeCom's retry is one.

change_contact events carry no MsgId, so the inbox tells a retry from a new event by its contents; an
admin who moves a member and at once moves them again sends two update_user callbacks with one CreateTime.
"""

from __future__ import annotations

import time

from sqlalchemy import func, select

from connectors.wecom.simulator import directory as company
from connectors.wecom.simulator.callbacks import build_plaintext_change_contact
from crm_core.models import InboxItem, Message
from scrm import keys
from tests.support.chat import sync_directory


async def callbacks_held(chat) -> tuple[int, int]:
    async with chat.service.sessions() as session:
        inbox = await session.scalar(select(func.count()).select_from(InboxItem))
        archived = await session.scalar(select(func.count()).select_from(Message).where(
            Message.msg_type == "event:change_contact:update_user"))
    return inbox, archived


async def test_a_second_save_in_the_same_second_is_applied_and_a_retry_is_not_a_second_change(chat):
    await sync_directory(chat.service.app[keys.SESSIONS], chat.service.sim)
    second = int(time.time())
    company.move(chat.service.sim, "wangfang", [2])
    first_save = build_plaintext_change_contact(chat.service.sim.corp_id, "update_user", userid="wangfang",
                                                department=[2], create_time=second)
    assert (await chat.service.wecom.raw(first_save))[0] == 200
    await chat.service.settle()
    assert (await chat.staff("wangfang")).department_ids == [2]

    company.move(chat.service.sim, "wangfang", [3])  # the admin corrects it within the same second
    second_save = build_plaintext_change_contact(chat.service.sim.corp_id, "update_user", userid="wangfang",
                                                 department=[3], create_time=second)
    assert (await chat.service.wecom.raw(second_save))[0] == 200
    assert (await chat.service.wecom.raw(second_save))[0] == 200  # WeCom retries the same XML
    assert (await chat.service.wecom.raw(first_save))[0] == 200  # and a late retry of the first
    await chat.service.settle()
    assert (await chat.staff("wangfang")).department_ids == [3]
    assert await callbacks_held(chat) == (2, 2)
