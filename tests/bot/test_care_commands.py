"""生日 / 合同 / 关怀 through the real callback endpoint: what the care and renewal jobs will read.

The clock is fixed at Wednesday 2026-11-18 10:00 Shanghai (tests/bot/conftest.py).
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import select, update

from crm_core.birthdays import Birthday
from crm_core.models import AuditEntry, Customer
from tests.bot.test_commands import audit_actions

OPTED_OUT_AT = datetime(2026, 10, 1, 2, 0, tzinfo=timezone.utc)  # 2026-10-01 10:00 in Shanghai
NO_CONSENT_HINT = "提示：赵磊还未同意接收关怀消息，生日当天不会发送祝福；客户同意后请发送「关怀 赵磊 开启」。"


async def opt_out(chat, name: str) -> None:
    """What the pipeline records when the customer unsubscribes themselves (crm_core.care.withdraw_consent)."""
    async with chat.service.sessions() as session:
        await session.execute(update(Customer).where(Customer.name == name).values(care_opted_out_at=OPTED_OUT_AT))
        await session.commit()


async def audit_details(chat, action: str) -> list[str]:
    async with chat.service.sessions() as session:
        stmt = select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        return [f"{a.actor} {a.detail}" for a in (await session.scalars(stmt)).all()]


async def test_birthday_solar_and_lunar_is_confirmed_shown_and_removed(chat):
    await chat.onboard("赵磊")
    assert await chat.ask("zhangwei", "生日 赵磊 3月2日") == f"已记录赵磊的生日：3月2日\n{NO_CONSENT_HINT}"
    assert (await chat.customer("赵磊")).birthday == Birthday(3, 2)
    lunar = await chat.ask("zhangwei", "生日 赵磊 农历三月初二")
    assert lunar.splitlines()[0] == "已记录赵磊的生日：农历三月初二（下次是 2027年4月8日）"
    assert (await chat.customer("赵磊")).birthday == Birthday(3, 2, lunar=True)
    assert "农历闰四月十五（下次是 2027年5月20日）" in await chat.ask("zhangwei", "生日 赵磊 农历闰四月十五")
    assert "农历腊月廿三（下次是 2027年1月30日）" in await chat.ask("zhangwei", "生日 赵磊 阴历腊月廿三")
    assert (await chat.ask("zhangwei", "birthday zl 1990-03-02")).startswith("已记录赵磊的生日：1990年3月2日\n")
    assert await chat.ask("zhangwei", "生日 赵磊") == "赵磊的生日：1990年3月2日（下次是 2027年3月2日，还有 104 天）"
    assert await chat.ask("zhangwei", "生日 赵磊 删除") == "已删除赵磊的生日（原为 1990年3月2日）。"
    assert (await chat.customer("赵磊")).birthday is None
    assert "还没有记录赵磊的生日" in await chat.ask("zhangwei", "生日 赵磊")
    zhao = await chat.customer("赵磊")
    assert (await audit_actions(chat, zhao.id)).count("customer.birthday") == 6
    assert (await audit_details(chat, "customer.birthday"))[-1] == "zhangwei 1990年3月2日 -> -"


async def test_birthday_today_and_the_consent_hint_follow_the_customer(chat):
    await chat.onboard("赵磊")
    await chat.say("zhangwei", "关怀 赵磊 开启")
    assert await chat.ask("zhangwei", "生日 赵磊 11月18日") == "已记录赵磊的生日：11月18日"  # consented: no hint
    assert await chat.ask("zhangwei", "生日 赵磊") == "赵磊的生日：11月18日，就是今天！"
    await opt_out(chat, "赵磊")
    assert (await chat.ask("zhangwei", "生日 赵磊 3月2日")).endswith("提示：赵磊已退订关怀消息，生日当天不会发送祝福。")


async def test_invalid_birthdays_get_examples_and_change_nothing(chat):
    await chat.onboard("赵磊")  # the WeCom description says 生日: 1985-03-12
    for text in ("2月30日", "农历十三月初一", "下个月", "2030-01-01", "3月"):
        reply = await chat.ask("zhangwei", f"生日 赵磊 {text}")
        assert reply.startswith(f"没看懂生日「{text}」，未做修改。") and "农历三月初二" in reply, reply
    assert (await chat.customer("赵磊")).birthday == Birthday(3, 12, year=1985)
    assert await audit_details(chat, "customer.birthday") == []


async def test_a_number_picks_whose_birthday_it_is(chat):
    await chat.say("zhangwei", "新客户 张三 13900000001 甲公司")
    await chat.say("zhangwei", "新客户 章三 13900000002 乙公司")
    assert "找到 2 位" in await chat.ask("zhangwei", "生日 zs 农历三月初二")
    assert (await chat.ask("zhangwei", "2")).startswith("已记录章三的生日：农历三月初二")
    assert (await chat.customer("章三")).birthday == Birthday(3, 2, lunar=True)
    assert (await chat.customer("张三")).birthday is None


async def test_contract_end_is_confirmed_with_the_renewal_reminder(chat):
    await chat.onboard("赵磊")
    assert await chat.ask("zhangwei", "合同 赵磊 2027-06-30") == \
        "已记录赵磊的合同到期日：2027年6月30日（周三），到期前 7 天会提醒您续约。"
    assert (await chat.customer("赵磊")).contract_ends_on == date(2027, 6, 30)
    assert "2027年7月1日（周四）" in await chat.ask("zhangwei", "合同 赵磊 2027年7月1日")
    assert "2027年6月30日" in await chat.ask("zhangwei", "contract zl 6月30日")  # the next 6月30日
    assert await chat.ask("zhangwei", "合同 赵磊 11月20日") == \
        "已记录赵磊的合同到期日：2026年11月20日（周五），只剩 2 天了，请尽快跟进续约。"
    assert await chat.ask("zhangwei", "合同 赵磊") == "赵磊的合同到期日：2026年11月20日（还有 2 天）"
    assert await chat.ask("zhangwei", "合同 赵磊 删除") == "已删除赵磊的合同到期日（原为 2026年11月20日），不会再提醒续约。"
    assert (await chat.customer("赵磊")).contract_ends_on is None
    assert "还没有记录赵磊的合同到期日" in await chat.ask("zhangwei", "合同 赵磊")
    assert await audit_details(chat, "customer.contract") == [
        "zhangwei - -> 2027-06-30", "zhangwei 2027-06-30 -> 2027-07-01", "zhangwei 2027-07-01 -> 2027-06-30",
        "zhangwei 2027-06-30 -> 2026-11-20", "zhangwei 2026-11-20 -> -"]


async def test_invalid_or_past_contract_dates_change_nothing(chat):
    await chat.onboard("赵磊")
    await chat.say("zhangwei", "合同 赵磊 2027-06-30")
    assert (await chat.ask("zhangwei", "合同 赵磊 6月31日")).startswith("没看懂到期日「6月31日」，未做修改。可以这样写：2027-06-30")
    assert "没看懂到期日「明年吧」" in await chat.ask("zhangwei", "合同 赵磊 明年吧")
    assert "没看懂到期日" in await chat.ask("zhangwei", "合同 赵磊 2027-06-30 续两年")
    assert await chat.ask("zhangwei", "合同 赵磊 2025-06-30") == "「2025-06-30」已经过去了，未做修改。请写合同将来的到期日，如 2027-06-30。"
    assert (await chat.customer("赵磊")).contract_ends_on == date(2027, 6, 30)
    assert len(await audit_details(chat, "customer.contract")) == 1


async def test_care_consent_is_recorded_shown_and_withdrawn(chat):
    await chat.onboard("赵磊")
    assert "赵磊还未同意接收关怀消息" in await chat.ask("zhangwei", "关怀 赵磊")
    assert await chat.ask("zhangwei", "关怀 赵磊 开启") == "已记录赵磊同意接收关怀消息，之后会收到生日和节日祝福。"
    zhao = await chat.customer("赵磊")
    assert zhao.care_consent and zhao.may_receive_care
    assert "无需重复开启" in await chat.ask("zhangwei", "care zl on")
    assert await chat.ask("zhangwei", "关怀 赵磊") == "赵磊已同意接收关怀消息，会收到生日和节日祝福。"
    assert await chat.ask("zhangwei", "care zl off") == "已关闭赵磊的关怀消息，之后不会再发送生日和节日祝福。"
    assert not (await chat.customer("赵磊")).may_receive_care
    assert "格式不对" in await chat.ask("zhangwei", "关怀 赵磊 也许")
    assert await audit_details(chat, "customer.care_consent") == ["zhangwei off -> on", "zhangwei on -> off"]


async def test_a_customer_who_unsubscribed_is_not_resubscribed_by_a_rep_alone(chat):
    await chat.onboard("赵磊")
    await chat.say("zhangwei", "关怀 赵磊 开启")
    await opt_out(chat, "赵磊")
    assert await chat.ask("zhangwei", "关怀 赵磊") == "赵磊已于 2026-10-01 自己退订了关怀消息，不会再收到生日和节日祝福。"
    refused = await chat.ask("zhangwei", "关怀 赵磊 开启")
    assert refused.startswith("赵磊已于 2026-10-01 自己退订了关怀消息，未做修改：只有客户本人再次同意后才能恢复。")
    assert "「关怀 赵磊 开启 客户已同意」" in refused
    assert "格式不对" in await chat.ask("zhangwei", "关怀 赵磊 开启 应该没问题")
    zhao = await chat.customer("赵磊")
    assert zhao.care_opted_out_at == OPTED_OUT_AT and not zhao.may_receive_care
    resubscribed = await chat.ask("zhangwei", "关怀 赵磊 开启 客户已同意")
    assert resubscribed.startswith("已恢复赵磊的关怀消息（客户再次同意，原退订于 2026-10-01）") and "审计日志" in resubscribed
    zhao = await chat.customer("赵磊")
    assert zhao.care_opted_out_at is None and zhao.may_receive_care
    assert (await audit_details(chat, "customer.care_consent"))[-1] == \
        "zhangwei opted out 2026-10-01 -> on (rep confirmed the customer agreed again)"


async def test_changes_stay_within_the_reps_data_scope(chat):
    await chat.onboard("赵磊", "吴敏", "何军")  # 吴敏's WeCom description gives 1992-11-23
    for line in ("生日 吴敏 3月2日", "合同 吴敏 2027-06-30", "关怀 吴敏 开启", "生日 吴敏"):
        assert "没有找到与「吴敏」相关的客户" in await chat.ask("zhangwei", line), line
    wu = await chat.customer("吴敏")
    assert (wu.birthday, wu.contract_ends_on, wu.care_consent) == (Birthday(11, 23, year=1992), None, False)
    assert await audit_details(chat, "customer.view_denied") == ["zhangwei q='吴敏'"] * 4
    assert "已记录吴敏同意接收关怀消息" in await chat.ask("liuyang", "关怀 吴敏 开启")  # manager of 李娜's department
    assert "无权使用「合同」" in await chat.ask("wangfang", "合同 何军 2027-06-30")  # support: renewals are sales'
    assert "已记录何军的生日" in await chat.ask("wangfang", "生日 何军 5月1日")


async def test_help_comes_from_the_declarations(chat):
    listing = await chat.ask("zhangwei", "帮助")
    assert "回复「更多」" not in listing  # every command a rep may use fits one message
    assert "· 生日 <客户> [日期|删除]" in listing and "· 合同 <客户> [到期日|删除]" in listing and "· 关怀 <客户> [开启|关闭]" in listing
    detail = await chat.ask("zhangwei", "帮助 生日")
    assert detail == ("生日 <客户> [日期|删除]，如：生日 张三 农历三月初二\n"
                      "记录或查看客户生日（支持农历），用于生日祝福\n别名：birthday、bday\n可用角色：所有人")
    assert "可用角色：销售、主管、管理员" in await chat.ask("zhangwei", "help contract")
    assert "查看或记录客户是否同意接收关怀消息" in await chat.ask("zhangwei", "帮助 care")
    assert "合同" not in await chat.ask("wangfang", "帮助") + await chat.ask("wangfang", "更多")


async def test_the_card_shows_care_status_and_contract_end(chat):
    await chat.onboard("赵磊")
    card = await chat.ask("zhangwei", "查 赵磊")
    assert "> 关怀：未同意\n" in card and "合同到期" not in card
    await chat.say("zhangwei", "关怀 赵磊 开启")
    await chat.say("zhangwei", "合同 赵磊 2027-06-30")
    assert "> 关怀：已同意　合同到期：2027-06-30\n" in await chat.ask("zhangwei", "查 赵磊")
    await opt_out(chat, "赵磊")
    assert "> 关怀：已退订　合同到期：2027-06-30\n" in await chat.ask("zhangwei", "查 赵磊")
