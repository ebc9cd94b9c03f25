"""What a user of the analysis notices: sentiment, tags, intents, tokens and keywords."""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

import nlp
from tests.nlp.opt_out_phrasings import LOOK_ALIKES, NATURAL, opt_out_phrasings
from nlp import COMPLAINT_THRESHOLD


@pytest.mark.parametrize(
    ("negative", "positive"),
    [("不满意", "满意"), ("不太好", "很好"), ("很不满意", "非常满意"), ("不好用", "很好用")],
)
def test_negation_flips_sentiment(negative, positive):
    assert nlp.analyze(negative).label == "negative"
    assert nlp.analyze(negative).sentiment < 0
    assert nlp.analyze(positive).label == "positive"
    assert nlp.analyze(positive).sentiment > 0


@pytest.mark.parametrize(
    "text", ["没问题", "没问题，就按这个来", "不贵，挺划算的", "一点也不贵", "不差", "还不错"]
)
def test_negated_negative_is_not_negative(text):
    assert nlp.analyze(text).label != "negative"


@pytest.mark.parametrize("text", ["太坑了吧", "不是很满意", "[发怒][发怒]", "失望😞", "又坏了😡"])
def test_chat_complaints_are_negative(text):
    assert nlp.analyze(text).label == "negative"


@pytest.mark.parametrize("text", ["👍👍", "[强][强]", "辛苦了🙏", "谢谢，很满意[玫瑰]"])
def test_chat_approval_is_positive(text):
    assert nlp.analyze(text).label == "positive"


@pytest.mark.parametrize(
    "text", ["在吗", "[微笑]", "收到", "好的👌", "什么时候发货", "订单号是20231015001"]
)
def test_small_talk_is_neither_negative_nor_complaint(text):
    result = nlp.analyze(text)
    assert result.label != "negative" or result.sentiment > -0.5
    assert not result.is_complaint
    assert result.intent("complaint") == 0.0


def test_refund_threat_is_a_complaint():
    result = nlp.analyze("不退款我就去12315投诉")
    assert result.label == "negative"
    assert {"投诉", "退款"} <= set(result.tags)
    assert result.intent("complaint") >= 0.9
    assert result.intent("refund") >= 0.8
    assert result.complaint_score >= COMPLAINT_THRESHOLD
    assert result.is_complaint


def test_mixed_language_price_complaint_is_tagged_price_sensitive():
    assert "价格敏感" in nlp.analyze("这个price有点高").tags
    assert "价格敏感" in nlp.analyze("能不能便宜点，预算有限").tags


@pytest.mark.parametrize("text", ["价格不贵", "你们价格不高"])
def test_negation_guard_stops_price_tag(text):
    assert "价格敏感" not in nlp.analyze(text).tags


def test_negation_guard_on_purchase_intent():
    assert "购买意向" in nlp.analyze("我想买两台").tags
    assert nlp.analyze("我想买两台").buying > 0.5
    assert "购买意向" not in nlp.analyze("我不想买了").tags
    assert nlp.analyze("我不想买了").buying < 0.5


def test_exception_phrase_stops_quality_tag():
    assert "质量问题" in nlp.analyze("这批货有质量问题").tags
    assert "质量问题" not in nlp.analyze("用了半年没有质量问题").tags


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("这个多少钱", "buying"),
        ("合同到期不续了，我们换一家", "churn_risk"),
        ("服务很专业，给你们点赞👍", "praise"),
        ("我要退货退款", "refund"),
        ("想买两台，怎么下单", "buying"),
    ],
)
def test_intents(text, intent):
    result = nlp.analyze(text)
    assert result.intent(intent) >= 0.5, result


def test_competitor_and_renewal_tags():
    tags = nlp.analyze("微盟那边续费比你们便宜").tags
    assert "竞品:微盟" in tags
    assert "续费" in tags


@pytest.mark.parametrize("word", ["报价单", "退款", "发票", "售后", "物流", "质量问题"])
def test_user_dictionary_keeps_domain_words_whole(word):
    assert word in nlp.analyze(f"麻烦把{word}的事情处理一下").tokens


def test_emoji_codes_and_product_codes_are_single_tokens():
    tokens = nlp.analyze("型号X200-Pro到了[强]👍").tokens
    assert "x200-pro" in tokens
    assert "[强]" in tokens
    assert "👍" in tokens


def test_full_width_input_is_folded():
    assert nlp.analyze("ＰＲＩＣＥ有点高，［发怒］").tokens[0] == "price"
    assert "[发怒]" in nlp.analyze("［发怒］").tokens


def test_keywords_drop_stop_words_and_filler():
    result = nlp.analyze("嗯嗯好的，那个报价单麻烦发我一下，物流也帮我查查")
    assert "报价单" in result.keywords
    assert "物流" in result.keywords
    for filler in ("嗯嗯", "好的", "那个", "一下", "麻烦"):
        assert filler not in result.keywords


def test_long_pasted_text_is_analysed_quickly():
    text = "收到货发现包装破损，联系客服一直没人回复，要求退款。" * 400  # ~10,000 characters
    result = nlp.analyze(text)
    assert result.label == "negative"
    assert "退款" in result.tags
    assert 0 < len(result.keywords) <= 10


def test_empty_text():
    result = nlp.analyze("")
    assert result.tokens == ()
    assert result.label == "neutral"
    assert result.complaint_score == 0.0
    assert result.buying == 0.0 and result.opt_out == 0.0 and result.signals == ()


def test_to_dict_is_json_serialisable_and_complete():
    result = nlp.analyze("不退款我就去12315投诉")
    data = json.loads(json.dumps(result.to_dict(), ensure_ascii=False))
    assert set(data) == {
        "tokens",
        "keywords",
        "tags",
        "sentiment",
        "label",
        "intents",
        "complaint_score",
        "probabilities",
        "buying",
        "opt_out",
        "signals",
    }
    assert sum(data["probabilities"].values()) == pytest.approx(1.0, abs=0.01)
    assert data["intents"]["complaint"] == result.intent("complaint")
    assert -1.0 <= data["sentiment"] <= 1.0
    with pytest.raises(AttributeError):
        result.label = "positive"


def test_load_is_idempotent_and_thread_safe():
    with ThreadPoolExecutor(max_workers=4) as pool:
        instances = list(pool.map(lambda _: nlp.load(), range(8)))
    assert all(instance is instances[0] for instance in instances)


def test_concurrent_analysis_matches_sequential():
    texts = ["太坑了吧", "非常满意", "这个price有点高", "不退款我就去12315投诉"] * 25
    sequential = nlp.analyze_many(texts)
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(nlp.analyze, texts))
    assert parallel == sequential


async def test_analyze_batch_runs_off_the_event_loop():
    results = await asyncio.gather(nlp.analyze_batch(["满意", "不满意"]), asyncio.sleep(0))
    assert [r.label for r in results[0]] == ["positive", "negative"]


@pytest.mark.parametrize("text", ["退订", "td。", "ＴＤ", "不想再收到这种祝福了", "关掉你们的推送",
                                  "把我从你们的名单里删了", "别每天给我打电话推销"])
def test_opt_out_in_any_words(text):
    assert nlp.analyze(text).is_opt_out, text


def test_natural_opt_outs_are_opt_outs():
    missed = [text for text in NATURAL if not nlp.analyze(text).is_opt_out]
    assert missed == [], f"{len(missed)} of {len(NATURAL)} missed"


def test_look_alikes_written_for_development_are_not_opt_outs():
    taken = [text for text in LOOK_ALIKES if nlp.analyze(text).is_opt_out]
    assert taken == [], f"{len(taken)} of {len(LOOK_ALIKES)} taken for opt-outs"


def test_every_generated_way_of_saying_stop_is_an_opt_out():
    """The grammar, not a list: every phrasing built from its parts (tests/nlp/opt_out_phrasings.py)."""
    phrasings = opt_out_phrasings()
    assert len(phrasings) > 10_000
    missed = [text for text in phrasings if not nlp.analyze(text).is_opt_out]
    assert missed == [], f"{len(missed)} missed, e.g. {missed[:10]}"


@pytest.mark.parametrize(
    "text",
    ["我要退订单", "怎么取消订阅的会员自动续费", "不要再发错货了", "先别发，我地址要改", "你好", "",
     "不用发票", "不用了，谢谢", "不用联系快递了，已经拿到了", "现在别打电话，我在开会", "别再推迟交货了",
     "以后就不用发了吗", "别打电话，微信上说就行", "我被拉黑了吗", "帮我退订明天的机票", "特别烦人的是包装",
     "你们的快递员态度太差了，我说了不要再发到公司，结果又送到公司去了，这已经是第三次了，请给我一个说法"],
)
def test_look_alikes_are_not_opt_outs(text):
    assert not nlp.analyze(text).is_opt_out, text


@pytest.mark.parametrize("text", ["能不能开专票", "会不会很难安装", "要不要提前预约"])
def test_a_not_a_question_is_one_word_and_neutral(text):
    result = nlp.analyze(text)
    assert text[:3] in result.tokens
    assert result.label == "neutral"
    assert not result.is_complaint


def test_a_plain_negation_is_not_taken_for_a_question():
    result = nlp.analyze("我不会再买了")
    assert "不会" in result.tokens
    assert result.label == "negative"
    assert not result.is_buying
