"""Message NLP: tokens, keywords, rule tags, sentiment and intents for chat text.

`analyze(text)` is a pure function of the text and the loaded configuration. The state (jieba
dictionary with the user words, rules, sentiment model) is loaded once per process by `load()`,
which `analyze` calls lazily; after loading it is read-only, so any thread may call `analyze`.
One short message takes well under a millisecond; for batches from async code use
`analyze_batch`, which runs the work in a thread so the event loop stays responsive.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nlp import resources

if TYPE_CHECKING:
    from nlp.analyzer import BUYING_THRESHOLD, COMPLAINT_THRESHOLD, OPT_OUT_THRESHOLD, Analysis, Analyzer, Intent

__all__ = [
    "BUYING_THRESHOLD",
    "COMPLAINT_THRESHOLD",
    "OPT_OUT_THRESHOLD",
    "Analysis",
    "Intent",
    "analyze",
    "analyze_batch",
    "analyze_many",
    "load",
]

_LAZY = frozenset({"BUYING_THRESHOLD", "COMPLAINT_THRESHOLD", "OPT_OUT_THRESHOLD", "Analysis", "Analyzer", "Intent"})


def __getattr__(name: str) -> Any:
    """nlp.analyzer (jieba and the rules) is imported on first use, not with the package: `scrm
    --help` and the nlp CLI's argument parser import `nlp` without analysing anything."""
    if name in _LAZY:
        from nlp import analyzer

        return getattr(analyzer, name)
    raise AttributeError(f"module 'nlp' has no attribute {name!r}")


_lock = threading.Lock()
_analyzer: Analyzer | None = None


def load() -> Analyzer:
    """Load the NLP state once (about a second); later calls return the same instance."""
    global _analyzer
    if _analyzer is None:
        with _lock:
            if _analyzer is None:
                from nlp.analyzer import Analyzer

                _analyzer = Analyzer(resources.config_dir(), resources.model_path())
    return _analyzer


def analyze(text: str) -> Analysis:
    return load().analyze(text)


def analyze_many(texts: Iterable[str]) -> list[Analysis]:
    analyzer = load()
    return [analyzer.analyze(t) for t in texts]


async def analyze_batch(texts: list[str]) -> list[Analysis]:
    """analyze_many off the event loop, for re-indexing and bulk imports."""
    return await asyncio.to_thread(analyze_many, texts)
