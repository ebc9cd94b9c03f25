"""Training and evaluation: reproducible, better than chance, metrics printed."""

import argparse
import csv
import gzip
import random

import pytest

import nlp
from nlp import cli, resources
from nlp.sentiment import SentimentModel
from nlp.train import featurize, read_chat_set, read_reviews, score, split, train
from scrm.bench import commands as bench_commands

SAMPLE = 3000


@pytest.fixture(scope="module")
def small_model(tmp_path_factory, reviews_path, analyzer):
    out = tmp_path_factory.mktemp("model") / "sentiment.tsv.gz"
    model = train(
        reviews_path,
        out,
        analyzer.tokenizer,
        analyzer.lexicon,
        sample=SAMPLE,
        progress=lambda _: None,
    )
    return model, out


def test_split_is_fixed_and_disjoint(reviews_path):
    reviews = read_reviews(reviews_path)
    train_a, held_a = split(reviews)
    train_b, held_b = split(reviews)
    assert held_a == held_b
    assert len(held_a) == len(reviews) // 10
    assert len(train_a) + len(held_a) == len(reviews)
    assert {id(r) for r in train_a}.isdisjoint(id(r) for r in held_a)
    assert train_a == train_b


@pytest.mark.slow
def test_small_training_run_beats_chance_on_held_out(small_model, reviews_path, analyzer):
    model, out = small_model
    assert model.meta["examples"] == SAMPLE
    _, held_out = split(read_reviews(reviews_path))
    held_out = random.Random(1).sample(held_out, 600)
    feats = featurize((r.text for r in held_out), analyzer.tokenizer, analyzer.lexicon)
    predicted = [1 if model.logit(f) >= 0 else 0 for f in feats]
    result = score([r.label for r in held_out], predicted)
    assert result.accuracy > 0.8
    assert result.macro_f1 > 0.8


@pytest.mark.slow
def test_training_is_reproducible_and_saved_model_loads(
    small_model, tmp_path, reviews_path, analyzer
):
    model, out = small_model
    again = tmp_path / "again.tsv.gz"
    train(
        reviews_path,
        again,
        analyzer.tokenizer,
        analyzer.lexicon,
        sample=SAMPLE,
        progress=lambda _: None,
    )
    assert again.read_bytes() == out.read_bytes()
    loaded = SentimentModel.load(out)
    assert loaded.bias == pytest.approx(model.bias, abs=1e-3)
    assert len(loaded.weights) == len(model.weights)
    assert loaded.weights["满意"] > 0 > loaded.weights["!满意"]


def test_shipped_model_is_small_and_sensible():
    path = resources.model_path()
    assert path.stat().st_size < 3_000_000
    model = SentimentModel.load(path)
    assert model.weights["满意"] > 0 > model.weights["失望"]
    assert model.meta["data"] == "online_shopping_9_cats.csv.gz"


def test_score_metrics():
    result = score([0, 0, 1, 1], [0, 1, 1, 1])
    assert result.accuracy == 0.75
    assert result.neg_precision == 1.0
    assert result.neg_recall == 0.5
    assert result.macro_f1 == pytest.approx((2 / 3 + 0.8) / 2)


def test_chat_set_is_large_enough_and_labelled():
    chat = read_chat_set(resources.DEFAULT_CHAT_DATA)
    assert len(chat) >= 300
    assert {label for label, _ in chat} == {"positive", "neutral", "negative"}
    assert len({text for _, text in chat}) == len(chat)


def test_model_meets_target_on_chat_set(analyzer):
    chat = [(lab, t) for lab, t in read_chat_set(resources.DEFAULT_CHAT_DATA) if lab != "neutral"]
    predicted = [1 if analyzer.analyze(t).sentiment >= 0 else 0 for _, t in chat]
    result = score([1 if lab == "positive" else 0 for lab, _ in chat], predicted)
    assert result.macro_f1 >= 0.88


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


def test_cli_eval_prints_metrics_for_both_sets(small_reviews, capsys):
    assert _run(["nlp", "eval", "--data", str(small_reviews), "--no-snownlp"]) == 0
    out = capsys.readouterr().out
    for column in ("acc", "macroF1", "negP", "negR"):
        assert column in out
    assert "reviews held-out (40)" in out
    assert "chat short messages" in out
    assert "3-class label accuracy" in out


def test_cli_train_writes_a_loadable_model(small_reviews, tmp_path, capsys):
    out = tmp_path / "m.tsv.gz"
    assert _run(["nlp", "train", "--data", str(small_reviews), "--out", str(out)]) == 0
    assert SentimentModel.load(out).meta["examples"] == 360
    assert "saved" in capsys.readouterr().out


def test_cli_train_reports_missing_data(tmp_path, capsys):
    assert _run(["nlp", "train", "--data", str(tmp_path / "nope.csv.gz")]) == 2
    assert "not found" in capsys.readouterr().out


def test_cli_analyze(capsys):
    assert _run(["nlp", "analyze", "不退款我就去12315投诉"]) == 0
    out = capsys.readouterr().out
    assert "投诉" in out and "退款" in out and "-> complaint" in out
    assert _run(["nlp", "analyze", "--json", "好的👌"]) == 0
    assert '"label": "positive"' in capsys.readouterr().out


def test_cli_bench_reports_throughput_and_memory(capsys):
    assert _run(["bench", "nlp", "--short", "300", "--long", "3"]) == 0
    out = capsys.readouterr().out
    assert "texts/s" in out and "resident memory" in out and "start-up" in out
    assert nlp.load() is nlp.load()
