"""The weekly digest carries a textcard that opens the 看板, when the pages' public origin is configured:
one per manager and admin, sent once however often the job runs, within WeCom's textcard limits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from config.settings import PageSettings, Settings
from crm_core.models import OutboxItem
from scheduler.jobs import build_jobs
from scheduler.runner import JobContext
from tests.support.chat import SHANGHAI as TZ
from tests.test_funnel import seed

MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=TZ)


def weekly(settings: Settings):
    return next(job for job in build_jobs(settings) if job.name == "digests.weekly").run


async def cards(sessions) -> dict[int, dict]:
    async with sessions() as session:
        rows = (await session.scalars(select(OutboxItem).order_by(OutboxItem.id))).all()
    return {row.staff_id: row.payload for row in rows if row.payload["msgtype"] == "textcard"}


async def test_the_weekly_digest_links_each_manager_to_the_dashboard_once(env):  # noqa: F811
    sessions, _ = env
    people = await seed(sessions)
    job = weekly(Settings(pages=PageSettings(base_url="https://scrm.example.com")))
    await job(JobContext(sessions, MONDAY, TZ))
    await job(JobContext(sessions, MONDAY, TZ))  # a second run (or a second scheduler) sends nothing twice

    sent = await cards(sessions)
    managers = {people[k].id for k in ("wang", "li", "boss")}
    assert set(sent) == managers  # 张伟 (a rep) gets no digest and no card
    card = sent[people["wang"].id]
    assert card["touser"] == "wangfang"
    textcard = card["textcard"]
    assert textcard["url"] == "https://scrm.example.com/h5/dashboard"
    assert textcard["title"] == "销售看板 · 11月30日 – 12月6日"
    assert textcard["description"] == (
        '<div class="gray">上周 11月30日 – 12月6日</div>'
        '<div class="normal">本月预测 106万，已赢单 0元（0 单）</div>'
        '<div class="highlight">漏斗转化、输单分布、目标达成与预测对比，打开看板查看</div>')
    assert textcard["btntxt"] == "看板"
    for payload in sent.values():  # 文本卡片消息: title <= 128 bytes, description <= 512, url <= 2048, button <= 4 chars
        t = payload["textcard"]
        assert len(t["title"].encode()) <= 128 and len(t["description"].encode()) <= 512
        assert len(t["url"].encode()) <= 2048 and len(t["btntxt"]) <= 4


async def test_without_a_public_origin_the_digest_has_no_link(env):  # noqa: F811
    sessions, _ = env
    await seed(sessions)
    await weekly(Settings())(JobContext(sessions, MONDAY, TZ))
    assert await cards(sessions) == {}
    async with sessions() as session:
        assert (await session.scalars(select(OutboxItem))).all()  # the markdown digests still went out
