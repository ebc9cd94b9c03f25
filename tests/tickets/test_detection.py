"""Ticket creation on the labelled set tests/data/complaints.csv (see tests/data/COMPLAINTS.md).

Measures exactly the decision the pipeline makes: the stored NLP analysis of a customer message,
then the ticket policy's verdict. The `dev` rows were in view while the keyword lists in
config/tickets.toml were written; the `holdout` rows were written afterwards and never tuned on.
Print the numbers with `python -m tests.tickets.test_detection`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import nlp
from crm_core.ticket_policy import default_policy

DATA = Path(__file__).resolve().parent.parent / "data" / "complaints.csv"
TARGET_PRECISION = 0.9
TARGET_RECALL = 0.85


@dataclass(frozen=True)
class Score:
    true_pos: int
    false_pos: int
    false_neg: int
    true_neg: int
    misses: list[tuple[str, str]]  # (expected label, text)

    @property
    def precision(self) -> float:
        return self.true_pos / max(self.true_pos + self.false_pos, 1)

    @property
    def recall(self) -> float:
        return self.true_pos / max(self.true_pos + self.false_neg, 1)


def measure(split: str | None = None, path: Path = DATA) -> Score:
    """Precision and recall of ticket creation on one split (`dev`, `holdout`) or on every row."""
    policy = default_policy()
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    misses = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if split is not None and row["split"] != split:
                continue
            expected = row["label"] == "complaint"
            got = policy.verdict(row["text"], nlp.analyze(row["text"]).to_dict()) is not None
            counts[("t" if got == expected else "f") + ("p" if got else "n")] += 1
            if got != expected:
                misses.append((row["label"], row["text"]))
    return Score(counts["tp"], counts["fp"], counts["fn"], counts["tn"], misses)


def test_the_labelled_set_is_big_and_balanced_enough():
    with DATA.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    labels = [r["label"] for r in rows]
    assert len(rows) >= 300 and set(labels) == {"complaint", "not_complaint"}
    assert min(labels.count("complaint"), labels.count("not_complaint")) >= 120
    assert len({r["industry"] for r in rows}) >= 10
    assert len({r["text"] for r in rows}) == len(rows)
    assert {r["split"] for r in rows} == {"dev", "holdout"}


def test_ticket_creation_meets_the_targets():
    for split in (None, "holdout"):
        score = measure(split)
        assert score.precision >= TARGET_PRECISION, (split, score.misses)
        assert score.recall >= TARGET_RECALL, (split, score.misses)


if __name__ == "__main__":
    for name in ("dev", "holdout", None):
        result = measure(name)
        total = result.true_pos + result.false_pos + result.false_neg + result.true_neg
        print(f"{name or 'all'}: {total} messages, tp={result.true_pos} fp={result.false_pos} fn={result.false_neg} "
              f"tn={result.true_neg}, precision {result.precision:.3f}, recall {result.recall:.3f}")
        if name is not None:
            for label, text in result.misses:
                print(f"  wrong ({'should open' if label == 'complaint' else 'should not open'}): {text}")
