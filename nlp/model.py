"""The message model: linear heads over nlp.features, stored as a plain weight table.

Three heads share one feature table: 3-class sentiment (negative / neutral / positive, a
multinomial logistic regression), complaint and buying (binary logistic regressions). Each
feature row holds its five weights, so scoring a message is one dictionary lookup per feature
and a few additions: no numpy or scikit-learn at run time (training, nlp.train, needs them).
Probabilities are calibrated after training (a temperature for sentiment, Platt scaling for the
binary heads) on examples the fit did not see, so 0.8 means roughly "four times in five".
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp.features import LEXICON_FEATURE

SENTIMENT_LABELS = ("negative", "neutral", "positive")
# Column order of the weight rows.
COLUMNS = ("negative", "neutral", "positive", "complaint", "buying")
_WIDTH = len(COLUMNS)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True, slots=True)
class Calibration:
    temperature: float = 1.0  # sentiment logits are divided by it
    complaint: tuple[float, float] = (1.0, 0.0)  # Platt (a, b): p = sigmoid(a * z + b)
    buying: tuple[float, float] = (1.0, 0.0)


@dataclass(frozen=True, slots=True)
class Prediction:
    sentiment: tuple[float, float, float]  # calibrated P(negative), P(neutral), P(positive)
    complaint: float
    buying: float


class MessageModel:
    """Weights per feature for every head; a feature the table lacks weighs nothing."""

    def __init__(
        self,
        weights: dict[str, tuple[float, ...]],
        bias: tuple[float, ...],
        calibration: Calibration,
        meta: dict[str, Any],
    ) -> None:
        self.weights = weights
        self.bias = bias
        self.calibration = calibration
        self.meta = meta
        self._lex = weights.get(LEXICON_FEATURE, (0.0,) * _WIDTH)

    def logits(self, feats: set[str], lex: float) -> list[float]:
        """Raw scores of every column before calibration."""
        total = [b + lex * w for b, w in zip(self.bias, self._lex, strict=True)]
        get = self.weights.get
        for feat in feats:
            row = get(feat)
            if row is not None:
                a, b, c, d, e = row
                total[0] += a
                total[1] += b
                total[2] += c
                total[3] += d
                total[4] += e
        return total

    def predict(self, feats: set[str], lex: float) -> Prediction:
        z = self.logits(feats, lex)
        cal = self.calibration
        scaled = [v / cal.temperature for v in z[:3]]
        top = max(scaled)
        exps = [math.exp(v - top) for v in scaled]
        norm = sum(exps)
        return Prediction(
            sentiment=(exps[0] / norm, exps[1] / norm, exps[2] / norm),
            complaint=_sigmoid(cal.complaint[0] * z[3] + cal.complaint[1]),
            buying=_sigmoid(cal.buying[0] * z[4] + cal.buying[1]),
        )

    def contributions(self, feats: set[str], column: str) -> list[tuple[float, str]]:
        """(weight, feature) of the features that push one column up, strongest first."""
        index = COLUMNS.index(column)
        get = self.weights.get
        found = []
        for feat in feats:
            row = get(feat)
            if row is not None and row[index] > 0:
                found.append((row[index], feat))
        return sorted(found, reverse=True)

    @classmethod
    def load(cls, path: Path) -> MessageModel:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            header = json.loads(fh.readline())
            if header.get("columns") != list(COLUMNS):
                raise ValueError(
                    f"{path} is not a message model of this version (columns "
                    f"{header.get('columns')}); retrain it with `scrm nlp train`"
                )
            weights = {}
            for line in fh:
                feature, *values = line.rstrip("\n").split("\t")
                weights[feature] = tuple(float(v) for v in values)
        cal = header["calibration"]
        calibration = Calibration(
            float(cal["temperature"]), tuple(cal["complaint"]), tuple(cal["buying"])
        )
        return cls(weights, tuple(header["bias"]), calibration, header["meta"])

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        cal = self.calibration
        header = {
            "columns": list(COLUMNS),
            "bias": [round(b, 6) for b in self.bias],
            "calibration": {
                "temperature": round(cal.temperature, 6),
                "complaint": [round(v, 6) for v in cal.complaint],
                "buying": [round(v, 6) for v in cal.buying],
            },
            "meta": self.meta,
        }
        # No name or mtime in the gzip header: retraining on the same data gives identical bytes.
        with open(path, "wb") as raw, gzip.GzipFile("", "wb", fileobj=raw, mtime=0) as gz:
            gz.write((json.dumps(header, ensure_ascii=False, sort_keys=True) + "\n").encode())
            for feature in sorted(self.weights):
                row = "\t".join(f"{w:.3g}" for w in self.weights[feature])
                gz.write(f"{feature}\t{row}\n".encode())
