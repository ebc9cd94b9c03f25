"""Evaluation of the analysis (`scrm nlp eval`): the numbers issue #17 sets targets for.

Sets (tests/data/README.md says how each was made and that none was used for training):

- customer_eval.csv: customer messages labelled for 3-class sentiment, complaint, buying and
  opt-out; reported as 3-class accuracy, the share of neutral messages labelled negative,
  complaint recall with false complaints on neutral messages, buying and opt-out recall with
  their false alarms on messages that are neither, and the calibration error (ECE) of the
  complaint and buying confidences;
- ood_reviews.csv: reviews of services and products outside the training categories, binary
  macro-F1 (negative vs positive);
- the held-out 10 % of the training review file, binary macro-F1.

SnowNLP, when installed (the `test`/`train` extras), runs on the same texts in the same run:
its score below 0.5 is negative for the binary sets; for the 3-class set its score is read as
negative below 0.4, positive above 0.6 and neutral between (it has no neutral class itself, nor
complaint, buying or opt-out).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nlp.analyzer import Analysis
from nlp.corpora import Review

SNOWNLP_NEUTRAL_BAND = (0.4, 0.6)
ECE_BINS = 10


@dataclass(frozen=True, slots=True)
class CustomerMessage:
    text: str
    sentiment: str
    complaint: int
    buying: int
    opt_out: int


def read_customer_set(path: Path) -> list[CustomerMessage]:
    with open(path, encoding="utf-8", newline="") as fh:
        return [
            CustomerMessage(
                r["text"], r["sentiment"], int(r["complaint"]), int(r["buying"]), int(r["opt_out"])
            )
            for r in csv.DictReader(fh)
        ]


def read_labelled_reviews(path: Path) -> list[Review]:
    """A review set with `label` positive/negative (and a `domain` column)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return [
            Review(r.get("domain", ""), 1 if r["label"] == "positive" else 0, r["text"])
            for r in csv.DictReader(fh)
        ]


@dataclass(frozen=True, slots=True)
class Binary:
    n: int
    accuracy: float
    macro_f1: float
    neg_precision: float
    neg_recall: float


def binary_scores(truth: Sequence[int], predicted: Sequence[int]) -> Binary:
    """Binary metrics with 0 = negative, 1 = positive."""
    pairs = list(zip(truth, predicted, strict=True))
    f1s = []
    precision = recall = 0.0
    for cls in (0, 1):
        tp = sum(1 for t, p in pairs if t == cls and p == cls)
        fp = sum(1 for t, p in pairs if t != cls and p == cls)
        fn = sum(1 for t, p in pairs if t == cls and p != cls)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
        if cls == 0:
            precision, recall = prec, rec
    accuracy = sum(1 for t, p in pairs if t == p) / len(pairs) if pairs else 0.0
    return Binary(len(pairs), accuracy, sum(f1s) / 2, precision, recall)


def _share(items: Sequence[bool]) -> float | None:
    return sum(items) / len(items) if items else None


def expected_calibration_error(confidences: Sequence[float], truth: Sequence[int]) -> float:
    """Mean |confidence - observed rate| over equal-width bins, weighted by bin size."""
    bins: list[list[tuple[float, int]]] = [[] for _ in range(ECE_BINS)]
    for c, t in zip(confidences, truth, strict=True):
        bins[min(int(c * ECE_BINS), ECE_BINS - 1)].append((c, t))
    total = len(confidences)
    return sum(
        len(b) / total * abs(sum(c for c, _ in b) / len(b) - sum(t for _, t in b) / len(b))
        for b in bins
        if b
    )


@dataclass(frozen=True, slots=True)
class CustomerReport:
    """The issue's targets on the customer set; None where a system has no such output."""

    n: int
    accuracy: float
    neutral_as_negative: float
    question_as_negative: float
    complaint_recall: float | None
    false_complaints: float | None
    buying_recall: float | None
    false_buying: float | None
    opt_out_recall: float | None
    false_opt_out: float | None
    complaint_ece: float | None
    buying_ece: float | None


def _is_question(text: str) -> bool:
    stripped = text.rstrip()
    return stripped.endswith(("?", "？", "吗", "呢")) or "请问" in text


def customer_report(
    messages: Sequence[CustomerMessage],
    labels: Sequence[str],
    analyses: Sequence[Analysis] | None,
) -> CustomerReport:
    """Scores of one system's labels (and, for ours, full analyses) on the customer set."""
    pairs = list(zip(messages, labels, strict=True))
    neutral = [(m, lab) for m, lab in pairs if m.sentiment == "neutral"]
    questions = [(m, lab) for m, lab in neutral if _is_question(m.text)]
    accuracy = sum(1 for m, lab in pairs if m.sentiment == lab) / len(pairs)
    report = {
        "n": len(pairs),
        "accuracy": accuracy,
        "neutral_as_negative": _share([lab == "negative" for _, lab in neutral]) or 0.0,
        "question_as_negative": _share([lab == "negative" for _, lab in questions]) or 0.0,
    }
    keys = ("complaint_recall", "false_complaints", "buying_recall", "false_buying",
            "opt_out_recall", "false_opt_out", "complaint_ece", "buying_ece")
    if analyses is None:
        return CustomerReport(**report, **dict.fromkeys(keys))
    rows = list(zip(messages, analyses, strict=True))
    plain_neutral = [(m, a) for m, a in rows if m.sentiment == "neutral" and not m.complaint]
    return CustomerReport(
        **report,
        complaint_recall=_share([a.is_complaint for m, a in rows if m.complaint]),
        false_complaints=_share([a.is_complaint for _, a in plain_neutral]),
        buying_recall=_share([a.is_buying for m, a in rows if m.buying]),
        false_buying=_share([a.is_buying for m, a in rows if not m.buying]),
        opt_out_recall=_share([a.is_opt_out for m, a in rows if m.opt_out]),
        false_opt_out=_share([a.is_opt_out for m, a in rows if not m.opt_out]),
        complaint_ece=expected_calibration_error(
            [a.complaint_score for _, a in rows], [m.complaint for m, _ in rows]
        ),
        buying_ece=expected_calibration_error(
            [a.buying for _, a in rows], [m.buying for m, _ in rows]
        ),
    )


def snownlp_label(score: float) -> str:
    low, high = SNOWNLP_NEUTRAL_BAND
    return "negative" if score < low else "positive" if score > high else "neutral"


@dataclass(frozen=True, slots=True)
class ReviewRow:
    set_name: str
    system: str
    scores: Binary
    rate: float  # texts per second, eval loop included


def review_rows(
    sets: dict[str, Sequence[Review]], system: str, is_positive: Callable[[str], bool]
) -> list[ReviewRow]:
    rows = []
    for name, reviews in sets.items():
        started = time.perf_counter()
        predicted = [1 if is_positive(r.text) else 0 for r in reviews]
        rate = len(reviews) / max(time.perf_counter() - started, 1e-9)
        rows.append(ReviewRow(name, system, binary_scores([r.label for r in reviews], predicted), rate))
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:5.1f} %"


def format_customer(reports: dict[str, CustomerReport], source: str = "tests/data/customer_eval.csv") -> list[str]:
    first = next(iter(reports.values()))
    lines = [f"customer messages ({first.n} lines, {source})"]
    lines.append(f"{'':36}" + "".join(f"{name:>12}" for name in reports))
    measures = [
        ("3-class accuracy", "accuracy"),
        ("neutral labelled negative", "neutral_as_negative"),
        ("  of them questions", "question_as_negative"),
        ("complaint recall", "complaint_recall"),
        ("false complaints on neutral", "false_complaints"),
        ("buying recall", "buying_recall"),
        ("false buying on others", "false_buying"),
        ("opt-out recall", "opt_out_recall"),
        ("false opt-out on others", "false_opt_out"),
        ("complaint confidence ECE", "complaint_ece"),
        ("buying confidence ECE", "buying_ece"),
    ]
    for title, attr in measures:
        cells = "".join(f"{_pct(getattr(r, attr)):>12}" for r in reports.values())
        lines.append(f"{title:36}{cells}")
    return lines


def format_reviews(rows: Sequence[ReviewRow]) -> list[str]:
    lines = [
        f"{'set':40} {'system':9} {'n':>5} {'acc':>6} {'macroF1':>8} {'negP':>6} {'negR':>6} "
        f"{'texts/s':>8}"
    ]
    for r in sorted(rows, key=lambda r: (r.set_name, r.system)):
        s = r.scores
        lines.append(
            f"{r.set_name:40} {r.system:9} {s.n:5d} {s.accuracy:6.3f} {s.macro_f1:8.3f} "
            f"{s.neg_precision:6.3f} {s.neg_recall:6.3f} {r.rate:8.0f}"
        )
    return lines
