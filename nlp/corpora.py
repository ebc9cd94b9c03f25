"""The training corpora, read into one shape: labelled examples for the message model.

Three sources (tests/data/README.md has their origin, licence and how each is used):

- product reviews (../shared/datasets/sentiment/online_shopping_9_cats.csv.gz): positive and
  negative sentiment; a negative review reports something that went wrong with a purchase, so
  it is also an example of a complaint, and a positive one of a message that is not;
- KdConv (Apache-2.0, an extract ships in nlp/training_data/): people asking each other about
  films, music and sights and answering from a knowledge base. Their questions and factual
  answers are what neutral chat looks like; a question whose answer the dataset's annotators
  grounded in a sight's ticket price (`门票`) is a price inquiry;
- nlp/training_data/chat_seed.csv: customer messages written for this project in the
  industries the product serves, labelled on all three tasks.

Each example says only what its source knows (None for a task it does not label): a review is
written after the purchase, so it is not a buying message; a knowledge-base answer is neither
a buying message nor not one.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nlp.resources import PACKAGE_DIR

TRAINING_DATA_DIR = PACKAGE_DIR / "training_data"
KDCONV_EXTRACT = TRAINING_DATA_DIR / "kdconv_utterances.tsv.gz"
CHAT_SEED = TRAINING_DATA_DIR / "chat_seed.csv"

SENTIMENTS = ("negative", "neutral", "positive")
SPLIT_SEED = 20240601
HELD_OUT_FRACTION = 0.1
# KdConv's knowledge base names a sight's ticket price with this attribute.
_PRICE_ATTRIBUTE = "门票"


@dataclass(frozen=True, slots=True)
class Review:
    category: str
    label: int  # 1 positive, 0 negative
    text: str


@dataclass(frozen=True, slots=True)
class Example:
    """One training text; a task the source says nothing about is None."""

    text: str
    source: str  # reviews:<category>, kdconv:<domain>, seed
    sentiment: str | None  # negative / neutral / positive
    complaint: int | None
    buying: int | None


def read_reviews(path: Path) -> list[Review]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        return [
            Review(row["cat"], int(row["label"]), row["review"])
            for row in csv.DictReader(fh)
            if row["review"] and row["review"].strip()
        ]


def split_reviews(reviews: list[Review]) -> tuple[list[Review], list[Review]]:
    """The fixed, seeded train/held-out split that every eval reports on."""
    order = list(range(len(reviews)))
    random.Random(SPLIT_SEED).shuffle(order)
    cut = int(len(order) * HELD_OUT_FRACTION)
    return [reviews[i] for i in sorted(order[cut:])], [reviews[i] for i in sorted(order[:cut])]


def review_examples(reviews: Iterable[Review]) -> list[Example]:
    return [
        Example(
            r.text,
            f"reviews:{r.category}",
            "positive" if r.label else "negative",
            0 if r.label else 1,
            0,
        )
        for r in reviews
    ]


def extract_kdconv(kdconv_dir: Path, out: Path) -> int:
    """Write the utterances this project uses from a KdConv checkout (data/<domain>/*.json).

    Kept: every utterance, with its domain, whether it is the asking side (no knowledge
    attached) and whether the next turn answers it from a ticket price. Returns the row count.
    """
    rows: list[tuple[str, str, str, str]] = []
    for path in sorted(kdconv_dir.glob("data/*/*.json")):
        if path.name.startswith("kb_"):
            continue
        domain = path.parent.name
        for dialogue in json.loads(path.read_text(encoding="utf-8")):
            messages = dialogue["messages"]
            for i, message in enumerate(messages):
                text = " ".join(message["message"].split())
                if not text:
                    continue
                asks = "attrs" not in message
                following = messages[i + 1] if i + 1 < len(messages) else {}
                price = asks and any(
                    a.get("attrname") == _PRICE_ATTRIBUTE for a in following.get("attrs", ())
                )
                rows.append((domain, "ask" if asks else "answer", "1" if price else "0", text))
    rows = sorted(set(rows))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as raw, gzip.GzipFile("", "wb", fileobj=raw, mtime=0) as gz:
        gz.write(b"domain\trole\tprice\ttext\n")
        for row in rows:
            gz.write(("\t".join(row) + "\n").encode())
    return len(rows)


def kdconv_examples(path: Path = KDCONV_EXTRACT) -> list[Example]:
    """Neutral chat; price questions are buying examples, other questions are not.

    Answers are statements of fact, so they say nothing about buying either way.
    """
    examples = []
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            asks = row["role"] == "ask"
            examples.append(
                Example(
                    row["text"],
                    f"kdconv:{row['domain']}",
                    "neutral",
                    0,
                    int(row["price"]) if asks else None,
                )
            )
    return examples


def seed_examples(path: Path = CHAT_SEED) -> list[Example]:
    with open(path, encoding="utf-8", newline="") as fh:
        return [
            Example(row["text"], "seed", row["sentiment"], int(row["complaint"]), int(row["buying"]))
            for row in csv.DictReader(fh)
        ]
