"""Corp tags both ways, through chat, callbacks and the outbox sender against the simulator: a tag
set or removed with `标签` lands on the contact in the rep's WeCom (created with add_corp_tag in the
configured group when WeCom lacks it), exactly once even when WeCom fails in between; a tag changed
in the WeCom client reaches the CRM through edit_external_contact and is not sent back; CRM-only
tags stay in the CRM (config/corp_tags.toml)."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select

from connectors.wecom.simulator.callbacks import build_plaintext_change_external_contact
from crm_core.models import OutboxItem
from crm_core.tags import TagService
from scheduler.runner import JobContext
from scrm import keys
from scrm.app import service_jobs
from scrm.cli import main as cli
from tests.support.chat import Chat
from tests.support.service import external_id, use_service_env


def wecom_tags(chat: Chat, name: str, userid: str = "zhangwei") -> set[str]:
    """The corp tags `userid` sees on the customer in their WeCom client (the simulator's state)."""
    sim = chat.service.sim
    follow = next(f for f in sim.external_contacts[external_id(sim, name)]["follow_user"] if f["userid"] == userid)
    return {t["tag_name"] for t in follow.get("tags") or []}


async def crm_tags(chat: Chat, name: str) -> set[str]:
    customer = await chat.customer(name)
    async with chat.service.sessions() as session:
        return set(await TagService(session).names(customer.id))


async def pushes(chat: Chat) -> int:
    async with chat.service.sessions() as session:
        return await session.scalar(select(func.count()).select_from(OutboxItem).where(OutboxItem.kind == "mark_tag"))


async def company_with_catalogue(chat: Chat) -> None:
    """The sample customers, and WeCom's tag catalogue as the nightly customer sync keeps it."""
    await chat.onboard()
    app, tz = chat.service.app, chat.service.settings.tz
    await service_jobs(app[keys.WECOM], chat.service.settings)["customers.sync"](
        JobContext(app[keys.SESSIONS], chat.now.astimezone(tz), tz))
    await chat.service.settle()


async def test_a_tag_set_in_chat_reaches_the_reps_wecom_and_a_missing_one_is_created_first(chat):
    await company_with_catalogue(chat)
    assert wecom_tags(chat, "孙丽") == {"普通客户", "意向客户"}

    reply = await chat.ask("zhangwei", "标签 孙丽 +重要客户 +展会客户 +重点跟进")
    assert "重要客户" in reply and "展会客户" in reply
    assert wecom_tags(chat, "孙丽") == {"普通客户", "意向客户", "重要客户", "展会客户"}  # 重点跟进 stays CRM-only
    crm_group = next(g for g in chat.service.sim.corp_tag_groups if g["group_name"] == "CRM 标签")
    assert [t["name"] for t in crm_group["tag"]] == ["展会客户"]  # 重要客户 was WeCom's own already
    assert len(chat.service.sim.tag_marks) == 1

    await chat.ask("zhangwei", "标签 孙丽 -展会客户 -重点跟进")
    assert wecom_tags(chat, "孙丽") == {"普通客户", "意向客户", "重要客户"}
    assert len(chat.service.sim.tag_marks) == 2
    assert await chat.ask("zhangwei", "标签 孙丽 +重点跟进") and len(chat.service.sim.tag_marks) == 2


async def test_a_tag_changed_in_the_wecom_client_reaches_the_crm_and_is_not_sent_back(chat):
    await company_with_catalogue(chat)
    await chat.ask("zhangwei", "标签 孙丽 +展会客户")
    sent, marks = await pushes(chat), len(chat.service.sim.tag_marks)

    # In the WeCom client 张伟 takes 展会客户 off 孙丽 and puts 已成交 on; WeCom sends edit_external_contact.
    sim = chat.service.sim
    follow = next(f for f in sim.external_contacts[external_id(sim, "孙丽")]["follow_user"] if f["userid"] == "zhangwei")
    follow["tags"] = [t for t in follow["tags"] if t["tag_name"] != "展会客户"] + [
        {"group_name": "客户阶段", "tag_name": "已成交", "tag_id": "etDemoStage003", "type": 1}]
    await chat.service.wecom.change_external_contact("edit_external_contact", "zhangwei", external_id(sim, "孙丽"))
    await chat.service.settle()

    assert "已成交" in await crm_tags(chat, "孙丽") and "展会客户" not in await crm_tags(chat, "孙丽")
    assert (await pushes(chat), len(sim.tag_marks)) == (sent, marks)  # nothing went back to WeCom
    assert wecom_tags(chat, "孙丽") == {"普通客户", "意向客户", "已成交"}

    # 张伟 clears every tag in WeCom: the card no longer shows any of them.
    follow["tags"] = []
    await chat.service.wecom.raw(build_plaintext_change_external_contact(  # a second later: another event
        sim.corp_id, "edit_external_contact", "zhangwei", external_id(sim, "孙丽"), create_time=int(time.time()) + 1))
    await chat.service.settle()
    card_tags = next(line for line in (await chat.ask("zhangwei", "查 孙丽")).splitlines() if line.startswith("> 标签："))
    assert card_tags == "> 标签：—" and (await pushes(chat), len(sim.tag_marks)) == (sent, marks)


async def test_a_tag_change_is_sent_once_even_when_wecom_fails_in_between(chat):
    await company_with_catalogue(chat)
    await chat.service.stop_background_workers()  # the test steps the sender through the failure itself
    sim = chat.service.sim
    sim.fail_next("externalcontact/mark_tag", errcode=45033)  # the new tag is created, then marking fails
    await chat.service.wecom.text("zhangwei", "标签 孙丽 +老客户转介绍", msg_id=95_001)
    await chat.service.settle_past_backoffs()  # the failed row waits out its back-off, then goes again

    assert "老客户转介绍" in wecom_tags(chat, "孙丽")
    crm_group = next(g for g in sim.corp_tag_groups if g["group_name"] == "CRM 标签")
    assert [t["name"] for t in crm_group["tag"]] == ["老客户转介绍"]  # created once, found again on the retry
    assert len(sim.tag_marks) == 1
    async with chat.service.sessions() as session:
        [row] = (await session.scalars(select(OutboxItem).where(OutboxItem.kind == "mark_tag"))).all()
    assert (row.status, row.attempts) == ("sent", 2)


async def test_a_tag_an_import_adds_reaches_wecom_too(chat, backend, monkeypatch, tmp_path):
    await company_with_catalogue(chat)
    use_service_env(monkeypatch, chat.service)
    sheet = tmp_path / "customers.csv"
    sheet.write_text("姓名,手机,标签\n孙丽,13800131002,展会客户\n", encoding="utf-8")

    assert await asyncio.to_thread(cli.main, ["--log-level", "WARNING", "import", "customers", str(sheet)]) == 0
    await chat.service.settle()
    assert "展会客户" in await crm_tags(chat, "孙丽") and "展会客户" in wecom_tags(chat, "孙丽")
