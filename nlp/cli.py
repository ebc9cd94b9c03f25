"""`scrm nlp …` subcommands; the main CLI calls register."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nlp import resources


def register(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Adds `scrm nlp …`; returns the group so the service can add commands that need the database."""
    parser = subparsers.add_parser("nlp", help="message analysis: try, train and evaluate")
    commands = parser.add_subparsers(dest="nlp_command", required=True)

    analyze = commands.add_parser("analyze", help="print the analysis of one line of text")
    analyze.add_argument("text")
    analyze.add_argument("--json", action="store_true", help="print the stored JSON form")
    analyze.set_defaults(func=cmd_analyze)

    train = commands.add_parser("train", help="retrain the sentiment model from the review file")
    train.add_argument(
        "--data",
        type=Path,
        help="reviews .csv.gz (default: $SCRM_SENTIMENT_DATA "
        "or ../shared/datasets/sentiment/online_shopping_9_cats.csv.gz)",
    )
    train.add_argument("--out", type=Path, help="model file (default: the one shipped in nlp/)")
    train.add_argument("--sample", type=int, help="train on a seeded subsample of this size")
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser("eval", help="accuracy/F1 on held-out reviews and chat lines")
    evaluate.add_argument("--data", type=Path, help="reviews .csv.gz (default as for train)")
    evaluate.add_argument(
        "--chat",
        type=Path,
        help="labelled chat lines .csv (default: tests/data/chat_sentiment.csv)",
    )
    evaluate.add_argument("--no-snownlp", action="store_true", help="skip the SnowNLP comparison")
    evaluate.set_defaults(func=cmd_eval)
    return commands


def cmd_analyze(args: argparse.Namespace) -> int:
    import nlp

    analyzer = nlp.load()
    result = analyzer.analyze(args.text)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
        return 0
    print(f"tokens:          {' / '.join(result.tokens)}")
    print(f"keywords:        {', '.join(result.keywords) or '-'}")
    print(f"tags:            {', '.join(result.tags) or '-'}")
    model, lexicon = analyzer.sentiment_parts(args.text)
    print(
        f"sentiment:       {result.sentiment:+.3f} ({result.label}; "
        f"model {model:+.2f}, chat lexicon {lexicon:+.2f})"
    )
    intents = ", ".join(f"{i.name} {i.confidence:.2f}" for i in result.intents)
    print(f"intents:         {intents or '-'}")
    flag = "  -> complaint" if result.is_complaint else ""
    print(f"complaint_score: {result.complaint_score:.2f}{flag}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from nlp.analyzer import text_pipeline
    from nlp.train import train

    data = args.data or resources.train_data_path()
    if not data.exists():
        print(f"training data not found: {data} (use --data or SCRM_SENTIMENT_DATA)")
        return 2
    tokenizer, lexicon = text_pipeline(resources.config_dir())
    train(data, args.out or resources.model_path(), tokenizer, lexicon, sample=args.sample)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import nlp
    from nlp.train import evaluate, read_chat_set, read_reviews, split

    data = args.data or resources.train_data_path()
    chat_path = args.chat or resources.DEFAULT_CHAT_DATA
    for path in (data, chat_path):
        if not path.exists():
            print(f"evaluation data not found: {path}")
            return 2
    _, held_out = split(read_reviews(data))
    chat = read_chat_set(chat_path)
    analyzer = nlp.load()
    rows = evaluate(lambda t: analyzer.analyze(t).sentiment, held_out, chat, name="scrm nlp")
    snownlp = None if args.no_snownlp else _snownlp()
    if snownlp is not None:
        rows += evaluate(lambda t: snownlp(t).sentiments - 0.5, held_out, chat, name="SnowNLP")
    print(
        f"{'set':28} {'system':9} {'n':>5} {'acc':>6} {'macroF1':>8} {'negP':>6} {'negR':>6} "
        f"{'texts/s':>8}"
    )
    for set_name, system, s, rate in sorted(rows, key=lambda r: r[0]):
        print(
            f"{set_name:28} {system:9} {s.n:5d} {s.accuracy:6.3f} {s.macro_f1:8.3f} "
            f"{s.neg_precision:6.3f} {s.neg_recall:6.3f} {rate:8.0f}"
        )
    labelled = [(label, analyzer.analyze(text).label) for label, text in chat]
    correct = sum(1 for truth, got in labelled if truth == got)
    print(
        f"chat 3-class label accuracy (positive/neutral/negative): "
        f"{correct / len(labelled):.3f} on {len(labelled)} lines"
    )
    if snownlp is None and not args.no_snownlp:
        print("SnowNLP not installed: no comparison")
    return 0


def _snownlp():
    try:
        from snownlp import SnowNLP
    except ImportError:
        return None
    return SnowNLP
