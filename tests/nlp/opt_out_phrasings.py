"""Opt-out requests generated from the parts Chinese builds them from, so the tests cover the
grammar rather than a list of sentences (the issue's own examples are kept out of the tests'
inputs by building, not listing): a softener, a stop word, who to, a verb of sending, what is
sent, a closing; a wish not to receive any more; the subscription words; a blocking threat."""

from __future__ import annotations

from itertools import product

SOFTENERS = ("", "麻烦", "请", "拜托", "以后", "你们以后", "求你们")
STOPS = ("别再", "不要再", "不用再", "别", "不要", "请勿", "不要老是", "别天天")
TO_ME = ("", "给我")
SENDS = ("发", "推送", "群发", "发消息", "发短信", "推", "打扰我", "发广告", "推销")
WHAT = ("", "这些", "这种消息", "广告", "活动")
CLOSINGS = ("", "了", "了！", "，谢谢", "，很烦", "。")

WISH_OPENERS = ("", "我", "本人")
WISHES = ("不想再收到", "不希望再收到", "不要再让我收到", "拒绝接收", "不想再看到")
WISH_WHAT = ("你们的消息", "你们的推送", "这些广告", "此类信息", "任何营销短信")

SUBSCRIPTION = ("帮我退订", "我要退订", "取消订阅", "取消订阅吧", "请取消推送", "把推送关掉", "关闭消息通知",
                "退订，谢谢", "TD")
BLOCKING = ("再发我就拉黑你们", "拉黑了", "我要把你们拉黑", "把我从名单里删掉", "屏蔽你们")


def opt_out_phrasings() -> list[str]:
    sends = []
    for soft, stop, to_me, send, what, close in product(SOFTENERS, STOPS, TO_ME, SENDS, WHAT, CLOSINGS):
        if send in ("打扰我", "推销") and (to_me or what):
            continue  # 给我打扰我, 打扰我广告: not Chinese
        if send in ("发消息", "发短信", "发广告") and what not in ("", "这些"):
            continue
        sends.append(f"{soft}{stop}{to_me}{send}{what}{close}")
    wishes = [f"{who}{wish}{what}" for who, wish, what in product(WISH_OPENERS, WISHES, WISH_WHAT)]
    return sorted(set(sends)) + wishes + list(SUBSCRIPTION) + list(BLOCKING)


def sample(phrasings: list[str], count: int) -> list[str]:
    """An even spread of `count` of them, the same every run."""
    step = max(1, len(phrasings) // count)
    return phrasings[::step][:count]
