"""After 快进时间 the demo's chat lives on the demo clock: follow-up times, note timestamps, the
due list and the card all read it, not the wall clock (the app's one clock, keys.CLOCK)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from crm_core.models import Customer, Note
from scrm.delivery.sender import message_text
from scrm.demo.world import running_demo


async def say(demo, text: str) -> str:
    exchange = await demo.exchange("rep", "zhangwei", text)
    [reply] = [message_text(m) for m in exchange.sent if m.get("touser") == "zhangwei"]
    return reply


async def test_chat_after_fast_forward_uses_the_demo_clock(tmp_path):
    async with running_demo(port=0, data_dir=tmp_path / "data") as running:
        demo = running.demo
        tz = demo.settings.tz
        await demo.advance(demo.clock.now() + timedelta(days=3))
        today = demo.clock.now().astimezone(tz)
        tomorrow = (today + timedelta(days=1)).date()

        follow_up = await say(demo, "跟进 孙丽 明天 带样品")
        assert f"时间：{tomorrow:%Y-%m-%d} 09:00" in follow_up, follow_up
        asked = await say(demo, "明天下午提醒我给孙丽打电话")  # read from a sentence: confirmed first
        assert f"跟进 孙丽 {tomorrow:%Y-%m-%d} 14:00 打电话" in asked, asked
        assert f"{tomorrow:%Y-%m-%d} 14:00" in await say(demo, "是")

        noted = await say(demo, "记 孙丽 聊了新方案")
        assert f"（{today:%m-%d} " in noted, noted
        async with demo.sessions() as session:
            sun = await session.scalar(select(Customer).where(Customer.name == "孙丽"))
            note = await session.scalar(select(Note).where(Note.customer_id == sun.id, Note.text == "聊了新方案"))
        assert note.created_at >= today - timedelta(minutes=5) and sun.last_contact_at == note.created_at

        card = await say(demo, "查 孙丽")
        assert f"最近联系：{today:%Y-%m-%d}" in card and f"> {today:%m-%d} " in card, card  # the note, on the demo clock

        await demo.advance(demo.clock.now() + timedelta(days=2))
        todo = await say(demo, "我的待办")
        assert "【已逾期】" in todo and f"{tomorrow:%m-%d} 09:00 孙丽：带样品" in todo, todo
        assert "已逾期 3 条" in todo, todo  # the sample's overdue one and both of today's, on the demo clock
