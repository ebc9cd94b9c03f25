"""`scrm bench understanding`: what reading a free chat line costs, per line, in-process.

Times the understanding layer alone (bot/understanding: jieba cut, time phrase, reading against
the declared commands, the decision) over the lines reps type, with the names a line mentions
already known: the names query is one indexed `IN` and is timed end to end by `scrm bench lookup`
(its unspaced / sentence / bare rows). Also reports the one-off cost of building the tokenizer.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from scrm.bench.processes import percentile

NAMES = ("张三", "李四", "赵磊", "孙丽", "欧阳娜娜", "王芳")
LINES = ("查{n}", "查一下{n}", "帮我查下{n}的资料", "看看{n}", "{n}怎么样了", "{n}电话", "尾号8000的客户", "{n}",
         "跟进{n} 后天 发报价", "记一下：{n} 约了周五见面", "给{n}记一条 客户要报价", "给{n}加个VIP标签",
         "明天下午提醒我给{n}打电话", "下周一回访{n}", "{n}已经签了", "我今天要跟进谁", "今天有什么待办",
         "我的客户有哪些", "怎么用", "你好", "跟近{n} 明天", "差 {n}", "{n}明天来签合同", "飞到月球",
         "周五下午两三点带样品去{n}那里，顺便聊一下续约的事情")


def cmd_understanding(args: argparse.Namespace) -> int:
    from fakeredis import FakeAsyncRedis  # build_dispatcher wants a Redis; nothing is sent to it

    from bot import build_dispatcher
    from bot.understanding.names import Names
    from crm_core.models import Staff

    tz = ZoneInfo("Asia/Shanghai")
    started = time.perf_counter()
    dispatcher = build_dispatcher(tz, FakeAsyncRedis())
    dispatcher.understanding.load()
    load_seconds = time.perf_counter() - started
    gc.collect()
    gc.freeze()  # as `scrm serve` does after start-up (scrm.cli.serve.freeze_startup_objects)
    understanding = dispatcher.understanding
    rep = Staff(userid="bench", name="销售", role="sales")
    names = Names(frozenset(NAMES))
    now = datetime(2026, 11, 18, 10, 0, tzinfo=tz)
    rng = random.Random(args.seed)
    lines = [rng.choice(LINES).format(n=rng.choice(NAMES)) for _ in range(args.lines)]
    timings = []
    for line in lines:
        begin = time.perf_counter()
        understanding.decide(understanding.reader.sentence(line, names, now), rep, now)
        timings.append(time.perf_counter() - begin)
    print(f"tokenizer and lexicon built in {load_seconds:.2f} s (once per process, off the event loop)")
    print(f"{len(lines)} lines ({len(LINES)} shapes): p50 {1000 * percentile(timings, 50):.2f} ms  "
          f"p99 {1000 * percentile(timings, 99):.2f} ms  max {1000 * max(timings):.2f} ms  "
          f"({len(lines) / sum(timings):,.0f} lines/s)")
    return 0
