"""A company changes tags, intents and words by editing config/nlp/, without code."""

import shutil

import pytest

from nlp import resources
from nlp.analyzer import Analyzer
from nlp.rules import RuleError, RuleSet, load_rules
from nlp.text import normalise


@pytest.fixture()
def config_copy(tmp_path):
    target = tmp_path / "nlp"
    shutil.copytree(resources.config_dir(), target)
    return target


def test_edited_rules_file_adds_a_tag_and_a_word(config_copy):
    with open(config_copy / "tags.toml", "a", encoding="utf-8") as fh:
        fh.write('\n[[rule]]\ntag = "竞品:某品牌"\nkeywords = ["某品牌", "BrandX"]\n')
    with open(config_copy / "userdict.txt", "a", encoding="utf-8") as fh:
        fh.write("智能锁芯\n")
    analyzer = Analyzer(config_copy, resources.model_path())
    result = analyzer.analyze("brandx的智能锁芯比你们便宜")
    assert "竞品:某品牌" in result.tags
    assert "智能锁芯" in result.tokens


def test_bad_regex_is_reported_with_its_entry(config_copy):
    with open(config_copy / "tags.toml", "a", encoding="utf-8") as fh:
        fh.write('\n[[rule]]\ntag = "坏规则"\nregex = ["(未闭合"]\n')
    with pytest.raises(RuleError, match="坏规则"):
        Analyzer(config_copy, resources.model_path())


def test_rule_without_keywords_is_rejected():
    with pytest.raises(RuleError, match="keywords"):
        load_rules([{"tag": "空"}], "tag", "tag", "tags.toml")


def _rules(**entry):
    return RuleSet(load_rules([{"tag": "t", **entry}], "tag", "tag", "test"), ["不", "没有"])


def test_negation_guard_only_when_asked():
    guarded = _rules(keywords=["投诉"], guard=True)
    unguarded = _rules(keywords=["投诉"])
    assert not guarded.matches("我没有投诉")
    assert unguarded.matches("我没有投诉")
    assert guarded.matches("不处理我就投诉")  # 不 negates 处理, not 投诉


def test_keywords_are_case_and_width_insensitive():
    rules = _rules(keywords=["Refund"])
    assert rules.matches(normalise("please REFUND me"))
    assert rules.matches(normalise("ｒｅｆｕｎｄ"))


def test_overlapping_keywords_from_different_rules_all_hit():
    rules = RuleSet(
        load_rules(
            [{"tag": "a", "keywords": ["退款"]}, {"tag": "b", "keywords": ["退款单"]}],
            "tag",
            "tag",
            "test",
        ),
        [],
    )
    assert [r.name for r in rules.matches("退款单号")] == ["a", "b"]


def test_named_parts_build_a_grammar_and_quantifiers_are_left_alone():
    rules = _rules(regex=["{stop}{again}{0,2}{send}", "x{2}"],
                   parts={"stop": "别|不要", "again": "再|总", "send": "发|推{more}", "more": "送"})
    assert rules.matches("别再再推送")
    assert rules.matches("不要发")
    assert rules.matches("xx") and not rules.matches("x")
    assert not rules.matches("别说")
    with pytest.raises(RuleError, match="unknown part"):
        _rules(regex=["{nope}"])
    with pytest.raises(RuleError, match="too deep"):
        _rules(regex=["{a}"], parts={"a": "{a}"})


def test_unless_cancels_a_hit_only_within_its_sentence():
    rules = _rules(keywords=["别打电话"], unless=["再打"])
    assert not rules.matches("别打电话，我在开会，下午再打")
    assert rules.matches("下午再打也行。以后别打电话")
    assert rules.matches("别打电话了")
