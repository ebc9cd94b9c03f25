"""Where the NLP data lives and how it is read.

Company-editable files sit in `config/nlp/` (override with `SCRM_NLP_CONFIG_DIR`); the trained
message model ships inside this package (override with `SCRM_NLP_MODEL`), beside the training
corpora it ships (nlp/training_data/). The review file is outside the repository, in the shared
datasets folder (override with `SCRM_SENTIMENT_DATA`). The evaluation sets are in tests/data/.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent

DEFAULT_CONFIG_DIR = REPO_ROOT / "config" / "nlp"
DEFAULT_MODEL_PATH = PACKAGE_DIR / "message_model.tsv.gz"
DEFAULT_TRAIN_DATA = (
    REPO_ROOT.parent / "shared" / "datasets" / "sentiment" / "online_shopping_9_cats.csv.gz"
)
DATA_DIR = REPO_ROOT / "tests" / "data"
DEFAULT_CUSTOMER_EVAL = DATA_DIR / "customer_eval.csv"
DEFAULT_OOD_REVIEWS = DATA_DIR / "ood_reviews.csv"


def config_dir() -> Path:
    return Path(os.environ.get("SCRM_NLP_CONFIG_DIR") or DEFAULT_CONFIG_DIR)


def model_path() -> Path:
    return Path(os.environ.get("SCRM_NLP_MODEL") or DEFAULT_MODEL_PATH)


def train_data_path() -> Path:
    return Path(os.environ.get("SCRM_SENTIMENT_DATA") or DEFAULT_TRAIN_DATA)


def read_toml(name: str, directory: Path | None = None) -> dict[str, Any]:
    with open((directory or config_dir()) / name, "rb") as fh:
        return tomllib.load(fh)


def read_word_list(name: str, directory: Path | None = None) -> list[str]:
    """One entry per line; `#` starts a comment line; blank lines ignored."""
    path = (directory or config_dir()) / name
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            words.append(line)
    return words


def fingerprint() -> str:
    """Which model and rules an analysis came from: a hash of the model file and the config files,
    so a re-index knows whether a checkpoint it finds was made with the same ones."""
    import hashlib

    digest = hashlib.sha256(model_path().read_bytes())
    for path in sorted(p for p in config_dir().iterdir() if p.is_file()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
