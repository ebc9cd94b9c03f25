"""Training and evaluation: reproducible, better than chance, the issue's measures printed."""

import argparse
import csv
import gzip
import json
import random

import pytest

import nlp
from nlp import cli, resources
from nlp.analyzer import TextPipeline
from nlp.corpora import (
    kdconv_examples,
    read_reviews,
    seed_examples,
    split_reviews,
    extract_kdconv,
)
from nlp.evaluate import binary_scores, expected_calibration_error, read_customer_set
from nlp.model import COLUMNS, MessageModel
from nlp.train import train
from scrm.bench import commands as bench_commands

SAMPLE = 3000


@pytest.fixture(scope="module")
def pipeline():
    return TextPipeline(resources.config_dir())


@pytest.fixture(scope="module")
def small_model(tmp_path_factory, reviews_path, pipeline):
    out = tmp_path_factory.mktemp("model") / "model.tsv.gz"
    model = train(reviews_path, out, pipeline, sample=SAMPLE, progress=lambda _: None)
    return model, out


def test_split_is_fixed_and_disjoint(reviews_path):
    reviews = read_reviews(reviews_path)
    train_a, held_a = split_reviews(reviews)
    train_b, held_b = split_reviews(reviews)
    assert held_a == held_b and train_a == train_b
    assert len(held_a) == len(reviews) // 10
    assert len(train_a) + len(held_a) == len(reviews)
    assert {id(r) for r in train_a}.isdisjoint(id(r) for r in held_a)


@pytest.mark.slow
def test_small_training_run_separates_the_classes(small_model, pipeline):
    model, _ = small_model
    assert model.meta["examples"]["sentiment"] > SAMPLE
    for text, label in [("非常满意，谢谢", 2), ("质量太差了，失望", 0), ("请问几点开门", 1)]:
        f = pipeline.featurize(text)
        sentiment = model.predict(f.feats, f.lex).sentiment
        assert max(range(3), key=sentiment.__getitem__) == label, (text, sentiment)


@pytest.mark.slow
def test_training_is_reproducible_and_saved_model_loads(small_model, tmp_path, reviews_path, pipeline):
    model, out = small_model
    again = tmp_path / "again.tsv.gz"
    train(reviews_path, again, pipeline, sample=SAMPLE, progress=lambda _: None)
    assert again.read_bytes() == out.read_bytes()
    loaded = MessageModel.load(out)
    assert len(loaded.weights) == len(model.weights)
    assert loaded.calibration.temperature > 0
    f = pipeline.featurize("非常满意")
    saved, fitted = loaded.predict(f.feats, f.lex), model.predict(f.feats, f.lex)
    assert saved.sentiment == pytest.approx(fitted.sentiment, abs=0.01)  # weights kept to 3 digits
    assert saved.complaint == pytest.approx(fitted.complaint, abs=0.01)


def test_a_model_of_another_version_is_refused_with_what_to_do(tmp_path):
    old = tmp_path / "old.tsv.gz"
    with gzip.open(old, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"bias": 0.1, "features": 3}) + "\n满意\t1.2\n")
    with pytest.raises(ValueError, match="scrm nlp train"):
        MessageModel.load(old)


def test_shipped_model_is_small_and_sensible(pipeline):
    path = resources.model_path()
    assert path.stat().st_size < 3_000_000
    model = MessageModel.load(path)
    assert list(model.meta["sources"]) == ["kdconv", "reviews", "seed"]
    neg, neu = COLUMNS.index("negative"), COLUMNS.index("neutral")
    assert model.weights["?q"][neu] > model.weights["?q"][neg]
    satisfied = pipeline.featurize("很满意")
    negative, _, positive = model.predict(satisfied.feats, satisfied.lex).sentiment
    assert positive > negative
    broken = pipeline.featurize("太失望了，才用两天就坏了")
    assert model.predict(broken.feats, broken.lex).complaint > 0.5


def test_training_corpora_are_labelled_and_disjoint_from_the_evaluation_set():
    seed = seed_examples()
    kdconv = kdconv_examples()
    assert len(seed) >= 400 and len(kdconv) > 10_000
    assert {e.sentiment for e in seed} == {"negative", "neutral", "positive"}
    assert sum(e.buying for e in kdconv if e.buying) > 100  # price questions
    evaluation = {m.text for path in (resources.DEFAULT_CUSTOMER_EVAL, resources.SECOND_CUSTOMER_EVAL)
                  for m in read_customer_set(path)}
    assert evaluation.isdisjoint(e.text for e in seed)
    assert evaluation.isdisjoint(e.text for e in kdconv)


def test_kdconv_extract_marks_questions_answered_with_a_ticket_price(tmp_path):
    source = tmp_path / "KdConv" / "data" / "travel"
    source.mkdir(parents=True)
    dialogue = {"messages": [
        {"message": "故宫要门票吗？"},
        {"message": "要，60元。", "attrs": [{"name": "故宫", "attrname": "门票", "attrvalue": "60元"}]},
        {"message": "几点开门？"},
        {"message": "8:30。", "attrs": [{"name": "故宫", "attrname": "开放时间", "attrvalue": "8:30"}]},
    ]}
    (source / "dev.json").write_text(json.dumps([dialogue], ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "extract.tsv.gz"
    assert extract_kdconv(tmp_path / "KdConv", out) == 4
    examples = {e.text: e for e in kdconv_examples(out)}
    assert examples["故宫要门票吗?".replace("?", "？")].buying == 1
    assert examples["几点开门？"].buying == 0
    assert examples["8:30。"].buying is None
    assert all(e.sentiment == "neutral" for e in examples.values())


def test_binary_metrics():
    result = binary_scores([0, 0, 1, 1], [0, 1, 1, 1])
    assert result.accuracy == 0.75
    assert result.neg_precision == 1.0
    assert result.neg_recall == 0.5
    assert result.macro_f1 == pytest.approx((2 / 3 + 0.8) / 2)


def test_calibration_error():
    assert expected_calibration_error([0.9, 0.9, 0.1, 0.1], [1, 1, 0, 0]) == pytest.approx(0.1)
    assert expected_calibration_error([0.5, 0.5], [1, 0]) == pytest.approx(0.0)


def test_evaluation_sets_are_large_enough_and_labelled():
    second = read_customer_set(resources.SECOND_CUSTOMER_EVAL)
    assert len(second) >= 150 and len({m.text for m in second}) == len(second)
    assert sum(m.complaint for m in second) >= 30 and sum(m.buying for m in second) >= 30
    messages = read_customer_set(resources.DEFAULT_CUSTOMER_EVAL)
    assert len(messages) >= 250
    assert len({m.text for m in messages}) == len(messages)
    assert {m.sentiment for m in messages} == {"negative", "neutral", "positive"}
    assert sum(m.complaint for m in messages) >= 50
    assert sum(m.buying for m in messages) >= 50
    assert sum(m.opt_out for m in messages) >= 15


@pytest.mark.parametrize("path", [resources.DEFAULT_CUSTOMER_EVAL, resources.SECOND_CUSTOMER_EVAL],
                         ids=lambda p: p.name)
def test_shipped_model_meets_the_targets_on_the_customer_sets(analyzer, path):
    """Development numbers (see benchmarks/NLP.md); a regression guard, not the yardstick."""
    from nlp.evaluate import customer_report

    messages = read_customer_set(path)
    analyses = [analyzer.analyze(m.text) for m in messages]
    report = customer_report(messages, [a.label for a in analyses], analyses)
    assert report.accuracy >= 0.80
    assert report.neutral_as_negative <= 0.05
    assert report.complaint_recall >= 0.85 and report.false_complaints <= 0.02
    assert report.buying_recall >= 0.70 and report.false_buying <= 0.05
    assert report.opt_out_recall >= 0.9 and report.false_opt_out <= 0.01


def _run(argv):
    parser = argparse.ArgumentParser(prog="scrm")
    commands = parser.add_subparsers(required=True)
    cli.register(commands)
    bench_commands.register(commands)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture()
def small_reviews(tmp_path, reviews_path):
    rows = random.Random(7).sample(read_reviews(reviews_path), 400)
    path = tmp_path / "reviews.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["cat", "label", "review"])
        writer.writerows((r.category, r.label, r.text) for r in rows)
    return path


@pytest.mark.slow  # trains a model
def test_cli_eval_prints_the_issue_measures_with_snownlp_beside(small_reviews, capsys):
    pytest.importorskip("snownlp")
    assert _run(["nlp", "eval", "--data", str(small_reviews)]) == 0
    out = capsys.readouterr().out
    for measure in ("3-class accuracy", "neutral labelled negative", "complaint recall",
                    "false complaints on neutral", "buying recall", "opt-out recall", "ECE"):
        assert measure in out
    assert "out-of-domain reviews" in out and "reviews held-out (40)" in out
    assert "SnowNLP" in out and "macroF1" in out


@pytest.mark.slow  # trains a model
def test_cli_train_writes_a_loadable_model(small_reviews, tmp_path, capsys):
    out = tmp_path / "m.tsv.gz"
    assert _run(["nlp", "train", "--data", str(small_reviews), "--out", str(out), "--sample", "300"]) == 0
    assert MessageModel.load(out).meta["examples"]["sentiment"] > 300
    assert "saved" in capsys.readouterr().out


def test_cli_train_reports_missing_data(tmp_path, capsys):
    assert _run(["nlp", "train", "--data", str(tmp_path / "nope.csv.gz")]) == 2
    assert "not found" in capsys.readouterr().out
    assert _run(["nlp", "train", "--kdconv", str(tmp_path)]) == 2
    assert "no KdConv data" in capsys.readouterr().out


def test_cli_analyze(capsys):
    assert _run(["nlp", "analyze", "不退款我就去12315投诉"]) == 0
    out = capsys.readouterr().out
    assert "投诉" in out and "退款" in out and "-> complaint" in out
    assert _run(["nlp", "analyze", "--json", "谢谢，很满意[玫瑰]"]) == 0
    assert '"label": "positive"' in capsys.readouterr().out


def test_cli_bench_reports_throughput_and_memory(capsys):
    assert _run(["bench", "nlp", "--short", "300", "--long", "3"]) == 0
    out = capsys.readouterr().out
    assert "texts/s" in out and "resident memory" in out and "start-up" in out
    assert nlp.load() is nlp.load()
