"""errcode -> exception type, and which ones a caller may retry."""

from __future__ import annotations

import pytest

from connectors.wecom.errors import (
    InvalidUserError,
    KfWindowClosedError,
    RateLimitedError,
    TokenExpiredError,
    WeComError,
    WeComUnavailableError,
    error_for,
)


@pytest.mark.parametrize(
    ("errcode", "kind", "retryable"),
    [
        (40014, TokenExpiredError, True),
        (42001, TokenExpiredError, True),
        (40082, TokenExpiredError, True),
        (45009, RateLimitedError, True),
        (45033, RateLimitedError, True),
        (-1, RateLimitedError, True),
        (60111, InvalidUserError, False),
        (84061, InvalidUserError, False),
        (81013, InvalidUserError, False),
        (95001, KfWindowClosedError, False),
        (95002, KfWindowClosedError, False),
        (95018, KfWindowClosedError, False),
        (-2, WeComUnavailableError, True),
        (40001, WeComError, False),
    ],
)
def test_error_for_picks_type_and_retryability(errcode: int, kind: type[WeComError], retryable: bool) -> None:
    error = error_for(errcode, "msg", "message/send")
    assert type(error) is kind
    assert (error.errcode, error.errmsg, error.api, error.retryable) == (errcode, "msg", "message/send", retryable)
    assert "message/send" in str(error) and str(errcode) in str(error)


def test_rate_limited_retry_after() -> None:
    assert error_for(45009, "", "x").retry_after == 60.0  # type: ignore[attr-defined]
    assert RateLimitedError(-1, "", "x", retry_after=2.5).retry_after == 2.5
