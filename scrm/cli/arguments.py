"""Argument types several `scrm` commands share, so each checks a value the same way and argparse
names the option in the error (standard library only: `--help` stays fast)."""

from __future__ import annotations

import argparse
from datetime import datetime, tzinfo


def iso_time(text: str) -> datetime:
    """`--since 2026-11-01` or `2026-11-01T08:30`: a date or time, read in the business time zone
    unless it names its own (see `in_zone`)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 date or time (e.g. 2026-11-01)") from None


def in_zone(moment: datetime | None, zone: tzinfo) -> datetime | None:
    """A time typed without a zone is the business zone's (SCRM_TIMEZONE), as a user means it."""
    return moment.replace(tzinfo=zone) if moment is not None and moment.tzinfo is None else moment
