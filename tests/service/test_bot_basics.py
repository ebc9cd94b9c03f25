"""The bot answers staff through the outbox: one reply per message, whatever WeCom retries."""

from __future__ import annotations

from tests.support.service import external_id

from bot.dispatcher import clean_line
from bot.formatting import mask_phone
from bot.replies import fit_text



def replies_to(service, userid: str) -> list[str]:
    return [m[m["msgtype"]]["content"] for m in service.sim.sent_app_messages if m["touser"] == userid]


async def test_lookup_shows_a_masked_card_and_replies_exactly_once(service):
    await service.wecom.change_external_contact("add_external_contact", "zhangwei", external_id(service.sim, "赵磊"))
    await service.settle()
    for _ in range(3):  # WeCom retrying the same message
        await service.wecom.text("zhangwei", "查 赵磊", msg_id=5001)
    await service.settle()
    [reply] = replies_to(service, "zhangwei")
    assert "【赵磊】华东精密机械有限公司" in reply
    assert "138****1001" in reply and "13800131001" not in reply
    assert "负责人：张伟" in reply


async def test_the_same_answer_twice_reaches_the_rep_twice(service):
    """WeCom's duplicate check compares the request JSON: two replies with the same text must
    still differ, or WeCom would silently drop the second."""
    for msg_id in (5301, 5302):
        await service.wecom.text("zhangwei", "帮助", msg_id=msg_id)
        await service.settle()
    first, second = replies_to(service, "zhangwei")
    assert first == second and service.sim.dropped_app_messages == []


async def test_sales_reps_only_find_their_own_customers(service):
    await service.wecom.change_external_contact("add_external_contact", "lina", external_id(service.sim, "吴敏"))
    await service.settle()
    await service.wecom.text("zhangwei", "lookup 吴敏", msg_id=5101)
    await service.wecom.text("liuyang", "查 吴敏", msg_id=5102)  # a department leader: manager
    await service.settle()
    assert "没有找到" in replies_to(service, "zhangwei")[0]
    assert "【吴敏】" in replies_to(service, "liuyang")[0]


async def test_help_unknown_and_malformed_commands_get_friendly_replies(service):
    lines = ["帮助", "飞到月球", "查", "SELECT * FROM customers; --", "🙂🙂🙂", "查 " + "张" * 5000]
    for msg_id, line in enumerate(lines, start=5201):
        await service.wecom.text("zhangwei", line, msg_id=msg_id)
        await service.settle()
    help_text, unknown, usage, sql, emoji, long = replies_to(service, "zhangwei")
    assert "查 <姓名/拼音/电话或尾号/公司>" in help_text and "帮助 命令" in help_text  # aliases: in 帮助 查
    assert "没有「飞到月球」这个命令" in unknown
    assert usage.startswith("格式不对") and "查 <姓名/拼音/电话或尾号/公司>" in usage
    assert "这个命令" in sql and "这个命令" in emoji
    assert "没有找到" in long and len(long.encode()) <= 2048


def test_helpers_for_chat_text():
    assert clean_line("查\u3000张三\x00 ") == "查 张三"
    assert mask_phone("13800135678") == "138****5678"
    assert mask_phone("") == ""
    text = fit_text("字" * 1000)
    assert len(text.encode()) <= 2048 and text.endswith("…")
