"""`scrm bench nlp`: start-up time, resident memory and single-thread analysis throughput."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from itertools import cycle, islice

# Typical inbound lines: greetings, acknowledgements, complaints, questions, emoji, codes.
SAMPLE_MESSAGES = [
    "在吗",
    "好的👌",
    "[微笑]",
    "[发怒][发怒]",
    "太坑了吧",
    "不是很满意",
    "还行吧",
    "不退款我就去12315投诉",
    "这个price有点高",
    "收到，谢谢！",
    "发个报价单给我",
    "型号X200-Pro的库存还有吗",
    "等了一个星期还没发货",
    "客服一直不回消息，什么态度",
    "质量问题你们到底管不管",
    "发票抬头写公司名称",
    "没问题，就按这个来",
    "服务很到位[强]",
    "合同到期不续了，服务太差",
    "我想了解一下你们的产品",
    "物流信息一直不更新，到底发没发",
    "续费价格比去年贵了一倍，不合理",
    "谢谢老师，孩子进步很大",
    "今天能发吗",
    "辛苦了🙏",
    "系统很好用，同事都说方便",
    "订单号是20231015001",
    "再不处理我就曝光你们",
    "能不能便宜点，预算有限",
    "技术支持响应很及时",
]


def _rss_mb() -> float:
    """Current resident set size; Linux /proc, else the peak from getrusage."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rate(func: Callable[[str], object], texts: list[str]) -> float:
    started = time.perf_counter()
    for text in texts:
        func(text)
    return len(texts) / (time.perf_counter() - started)


def _cpu_rate(func: Callable[[str], object], texts: list[str]) -> float:
    """Texts per second of this process's CPU time: what one core does, even on a busy machine
    where other processes take the core away part of the wall-clock time."""
    started = time.process_time()
    for text in texts:
        func(text)
    return len(texts) / max(time.process_time() - started, 1e-9)


def run(short_count: int, long_count: int, out: Callable[[str], None]) -> dict[str, float]:
    import nlp

    rss_before = _rss_mb()
    started = time.perf_counter()
    analyzer = nlp.load()
    startup = time.perf_counter() - started
    rss_loaded = _rss_mb()

    short = list(islice(cycle(SAMPLE_MESSAGES), short_count))
    paragraph = "，".join(SAMPLE_MESSAGES)
    long_text = (paragraph + "。") * (2000 // len(paragraph) + 2)
    long = [long_text[i % 50 :][:2000] for i in range(long_count)]
    _rate(analyzer.analyze, short[:200])  # warm caches

    tokenize = analyzer.tokenizer.tokenize
    results = {
        "startup_s": startup,
        "rss_before_load_mb": rss_before,
        "rss_after_load_mb": rss_loaded,
        "nlp_state_mb": rss_loaded - rss_before,
        "jieba_tokenize_short_per_s": _rate(tokenize, short),
        "analyze_short_per_s": _rate(analyzer.analyze, short),
        "analyze_short_per_cpu_s": _cpu_rate(analyzer.analyze, short),
        "analyze_long_per_s": _rate(analyzer.analyze, long),
        "rss_after_bench_mb": _rss_mb(),
    }
    avg_short = sum(map(len, short)) / len(short)
    out(f"start-up (load dictionary, rules, model): {results['startup_s']:.2f} s")
    out(
        f"resident memory: {rss_before:.0f} MB before load, {rss_loaded:.0f} MB after "
        f"(NLP state {results['nlp_state_mb']:.0f} MB), "
        f"{results['rss_after_bench_mb']:.0f} MB after bench"
    )
    out(
        f"tokenise only, short texts (avg {avg_short:.1f} chars): "
        f"{results['jieba_tokenize_short_per_s']:,.0f} texts/s"
    )
    out(
        f"analyze, short texts ({short_count}, one call each, one thread): "
        f"{results['analyze_short_per_s']:,.0f} texts/s, "
        f"{results['analyze_short_per_cpu_s']:,.0f} per CPU-second"
    )
    out(
        f"analyze, long texts ({long_count} x 2,000 chars): "
        f"{results['analyze_long_per_s']:,.1f} texts/s"
    )
    return results


def cmd_bench(args: argparse.Namespace) -> int:
    run(args.short, args.long, print)
    return 0
