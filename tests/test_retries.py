"""The one retry protocol (scrm.retries): each kind of failure gets its one answer."""

from __future__ import annotations

import pytest

from connectors.wecom.chat_archive import ArchiveKeyError
from connectors.wecom.errors import error_for
from scrm.delivery.send_limits import DeferredSend
from scrm.ingest.webhook import InvalidWebhookItemError
from scrm.retries import backoff, decide


def test_not_yet_waits_as_long_as_asked_without_using_an_attempt():
    retry = decide(DeferredSend("member limit reached", 42.0), failures=1)
    assert (retry.after, retry.uses_attempt, retry.expected) == (42.0, False, True)


@pytest.mark.parametrize("error", [InvalidWebhookItemError("unreadable"), ArchiveKeyError("no key for version 2"),
                                   error_for(40001, "invalid credential", "message/send"),
                                   error_for(60111, "userid not found", "message/send")])
def test_what_retrying_cannot_fix_gives_up_at_once(error):
    retry = decide(error, failures=1)
    assert retry.gives_up and retry.uses_attempt and retry.expected


def test_wecom_throttling_waits_wecoms_interval_spread_a_little_and_uses_an_attempt():
    retry = decide(error_for(45009, "api freq out of limit", "message/send"), failures=3)
    assert 60.0 <= retry.after <= 75.0 and retry.uses_attempt and retry.expected


def test_wecom_unreachable_backs_off_and_an_unexpected_error_is_logged_with_its_traceback():
    assert decide(error_for(-2, "timeout", "message/send"), failures=3).after == 4.0
    unexpected = decide(KeyError("touser"), failures=2)
    assert (unexpected.after, unexpected.uses_attempt, unexpected.expected) == (2.0, True, False)


def test_backoff_doubles_up_to_its_cap():
    assert [backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(30) == 300.0 and backoff(30, cap=60.0) == 60.0
