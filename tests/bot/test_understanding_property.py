"""No write read from a free sentence happens without a confirmation: over thousands of generated
sentences through the understanding layer, and a sample of them through the real chat endpoint.

A sentence is "free" when it does not start with a command word (after 帮我 / 请): then only a
command that just shows something may run at once; every note, follow-up, stage or tag waits
for the rep's 1/是, and anything the bot is unsure about is a numbered question."""

from __future__ import annotations

import random
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot import build_dispatcher
from bot.understanding.names import Names
from bot.understanding.reader import PUNCTUATION
from crm_core.models import CustomerTag, Deal, FollowUp, Note, Staff
from scrm import keys

NOW = datetime(2026, 11, 18, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
LEADS = ["", "", "帮我", "麻烦", "请", "我", "给", "你好，", "嗯 "]
TIMES = ["", "", "明天", "后天下午3点", "下周一", "周五前", "三天后", "今天", "月底", "明天下午", "13月5日", "昨天"]
ACTIONS = ["提醒我", "记一条", "记一下", "回访", "跟进", "加个VIP标签", "去掉VIP标签", "签了", "已经签约了", "打电话", "发报价",
           "备注", "记录", "看看", "电话", "怎么样了", "标签", "阶段", "赢单", "输单", "待办", "生日", "合同", "关怀", "转交",
           "约了周五见面", "客户要报价", "说价格太高", "的资料", "跟近", "差", "群发", "工单"]
TAILS = ["", "", "。", "吧", "吗", "！", " 带样品", "报价谈判", "意向", "农历三月初二"]


def sentences(names: list[str], count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    made = []
    while len(made) < count:
        pieces = [rng.choice(names), rng.choice(TIMES), *rng.sample(ACTIONS, rng.randint(1, 3)), rng.choice(TAILS)]
        rng.shuffle(pieces)
        made.append(rng.choice(LEADS) + "".join(pieces))
    return made


def led_by_command_word(dispatcher, line: str) -> bool:
    """The line starts with a declared command name or alias, after the lexicon's lead filler and greetings."""
    lexicon = dispatcher.understanding.lexicon
    rest = line.strip()
    while True:
        stripped = rest.lstrip("".join(PUNCTUATION))
        for lead in sorted({*lexicon.lead, *lexicon.greetings}, key=len, reverse=True):
            if stripped.casefold().startswith(lead):
                stripped = stripped[len(lead):]
                break
        if stripped == rest:
            break
        rest = stripped
    return any(rest.casefold().startswith(name) for name in dispatcher.by_name)


def test_a_free_sentence_runs_only_reads_and_confirms_every_write(fake_redis):
    dispatcher = build_dispatcher(ZoneInfo("Asia/Shanghai"), fake_redis)
    understanding, reads = dispatcher.understanding, dispatcher.understanding.lexicon.reads
    rep = Staff(userid="zhangwei", name="张伟", role="sales")
    colleague = Staff(userid="lina", name="李娜", role="sales")
    names = Names(frozenset({"张三", "赵磊", "李娜"}), {"李娜": [colleague]})
    checked = confirmed = asked = 0
    for line in sentences(["张三", "赵磊", "李娜", "王五", "13800131001", "尾号1001"], 4000, seed=16):
        if led_by_command_word(dispatcher, line):
            continue
        checked += 1
        understood = understanding.decide(understanding.reader.sentence(line, names, NOW), rep, NOW)
        if understood.run:
            assert dispatcher.find(understood.run.partition(" ")[0]).name in reads, (line, understood.run)
        if understood.state.get("confirm"):
            confirmed += 1
            assert understood.state["confirm"] in understood.reply, line  # the rep sees what would be saved
        if understood.state.get("choices"):
            asked += 1
            assert all(option.get("line", "") in understood.reply for option in understood.state["choices"])
    assert checked > 2000 and confirmed > 200 and asked > 100  # the generator reaches every outcome


@pytest.fixture
def fake_redis():
    from fakeredis import FakeAsyncRedis

    return FakeAsyncRedis()


async def write_counts(chat) -> tuple[int, ...]:
    async with chat.service.sessions() as session:
        return tuple([await session.scalar(select(func.count()).select_from(m)) for m in (Note, FollowUp, Deal, CustomerTag)])


async def test_no_generated_sentence_writes_through_the_endpoint_until_confirmed(chat):
    await chat.onboard("赵磊", "孙丽", "吴敏", "郑浩")
    dispatcher = chat.service.app[keys.DISPATCHER]
    for rep, names, seed in (("zhangwei", ["赵磊", "孙丽"], 1), ("lina", ["吴敏", "郑浩"], 2)):
        lines = [line for line in sentences(names, 200, seed) if not led_by_command_word(dispatcher, line)][:26]
        confirmations = 0
        for line in lines:
            reply = await chat.ask(rep, line)
            assert await write_counts(chat) == (0, 0, 0, 0), (line, reply)
            confirmations += "回复「1」或「是」确认" in reply
        assert confirmations >= 3, rep  # the sample reached writes, and each one waited
    assert "记 吴敏 客户要报价" in await chat.ask("lina", "给吴敏记一条 客户要报价")
    await chat.say("lina", "是")
    assert await write_counts(chat) == (1, 0, 0, 0)  # the answer is what saves it
