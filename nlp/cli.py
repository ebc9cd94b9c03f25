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

    train = commands.add_parser("train", help="retrain the message model from the training corpora")
    train.add_argument(
        "--data",
        type=Path,
        help="reviews .csv.gz (default: $SCRM_SENTIMENT_DATA "
        "or ../shared/datasets/sentiment/online_shopping_9_cats.csv.gz)",
    )
    train.add_argument("--out", type=Path, help="model file (default: the one shipped in nlp/)")
    train.add_argument("--sample", type=int, help="train on a seeded subsample of this size")
    train.add_argument(
        "--kdconv",
        type=Path,
        help="a KdConv checkout: rebuild nlp/training_data/kdconv_utterances.tsv.gz from it first",
    )
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser(
        "eval", help="the issue #17 measures on the labelled sets, SnowNLP beside"
    )
    evaluate.add_argument("--data", type=Path, help="reviews .csv.gz (default as for train)")
    evaluate.add_argument(
        "--customers",
        type=Path,
        action="append",
        help="labelled customer messages .csv, may be repeated "
        "(default: tests/data/customer_eval.csv and tests/data/customer_eval_2.csv)",
    )
    evaluate.add_argument(
        "--ood",
        type=Path,
        help="out-of-domain reviews .csv (default: tests/data/ood_reviews.csv)",
    )
    evaluate.add_argument("--no-snownlp", action="store_true", help="skip the SnowNLP comparison")
    evaluate.set_defaults(func=cmd_eval)
    return commands


def cmd_analyze(args: argparse.Namespace) -> int:
    import nlp

    result = nlp.load().analyze(args.text)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
        return 0
    negative, neutral, positive = result.probabilities
    print(f"tokens:          {' / '.join(result.tokens)}")
    print(f"keywords:        {', '.join(result.keywords) or '-'}")
    print(f"tags:            {', '.join(result.tags) or '-'}")
    print(
        f"sentiment:       {result.label} {result.sentiment:+.3f} "
        f"(negative {negative:.2f}, neutral {neutral:.2f}, positive {positive:.2f})"
    )
    intents = ", ".join(f"{i.name} {i.confidence:.2f}" for i in result.intents)
    print(f"intents:         {intents or '-'}")
    flag = "  -> complaint" if result.is_complaint else ""
    signals = f" ({', '.join(result.signals)})" if result.signals else ""
    print(f"complaint_score: {result.complaint_score:.2f}{flag}{signals}")
    print(f"buying:          {result.buying:.2f}{'  -> buying signal' if result.is_buying else ''}")
    print(f"opt_out:         {result.opt_out:.2f}{'  -> opt-out' if result.is_opt_out else ''}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from nlp.analyzer import TextPipeline
    from nlp.corpora import KDCONV_EXTRACT, extract_kdconv
    from nlp.train import train

    data = args.data or resources.train_data_path()
    if not data.exists():
        print(f"training data not found: {data} (use --data or SCRM_SENTIMENT_DATA)")
        return 2
    if args.kdconv is not None:
        if not any(args.kdconv.glob("data/*/*.json")):
            print(f"no KdConv data under {args.kdconv} (expected data/<domain>/<split>.json)")
            return 2
        rows = extract_kdconv(args.kdconv, KDCONV_EXTRACT)
        print(f"extracted {rows:,} KdConv utterances to {KDCONV_EXTRACT}")
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print('training needs scikit-learn: pip install -e ".[train]"')
        return 2
    pipeline = TextPipeline(resources.config_dir())
    train(data, args.out or resources.model_path(), pipeline, sample=args.sample)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import nlp
    from nlp.corpora import read_reviews, split_reviews
    from nlp.evaluate import (
        customer_report,
        format_customer,
        format_reviews,
        read_customer_set,
        read_labelled_reviews,
        review_rows,
        snownlp_label,
    )

    data = args.data or resources.train_data_path()
    customer_paths = args.customers or [resources.DEFAULT_CUSTOMER_EVAL, resources.SECOND_CUSTOMER_EVAL]
    ood_path = args.ood or resources.DEFAULT_OOD_REVIEWS
    for path in (data, *customer_paths, ood_path):
        if not path.exists():
            print(f"evaluation data not found: {path}")
            return 2
    analyzer = nlp.load()
    snownlp = None if args.no_snownlp else _snownlp()
    for customers_path in customer_paths:
        messages = read_customer_set(customers_path)
        analyses = [analyzer.analyze(m.text) for m in messages]
        reports = {"scrm nlp": customer_report(messages, [a.label for a in analyses], analyses)}
        if snownlp is not None:
            labels = [snownlp_label(snownlp(m.text).sentiments) for m in messages]
            reports["SnowNLP"] = customer_report(messages, labels, None)
        print("\n".join(format_customer(reports, _shown(customers_path))))
        print()
    _, held_out = split_reviews(read_reviews(data))
    review_sets = {
        f"out-of-domain reviews ({ood_path.name})": read_labelled_reviews(ood_path),
        f"reviews held-out ({len(held_out)})": held_out,
    }
    # Positive when the model finds positive more likely than negative.
    rows = review_rows(review_sets, "scrm nlp", lambda t: analyzer.analyze(t).sentiment >= 0)
    if snownlp is not None:
        rows += review_rows(review_sets, "SnowNLP", lambda t: snownlp(t).sentiments >= 0.5)
    print("\n".join(format_reviews(rows)))
    if snownlp is None and not args.no_snownlp:
        print('SnowNLP not installed (pip install -e ".[train]"): no comparison')
    return 0


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(resources.REPO_ROOT))
    except ValueError:
        return str(path)


def _snownlp():
    try:
        from snownlp import SnowNLP
    except ImportError:
        return None
    return SnowNLP
