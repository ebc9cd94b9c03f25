"""A clock tests move instead of sleeping."""

from __future__ import annotations


class Clock:
    """The simulator's clock, moved by tests instead of sleeping."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds
