"""WeCom's group-send receive limit as configured (config/group_sends.toml): the window a moment
falls in and how many messages it allows, per https://developer.work.weixin.qq.com/document/path/92135."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from config.policies import PolicyError, load_policy
from crm_core.group_send_limits import ReceiveLimit, default_limit

CHINA = ZoneInfo("Asia/Shanghai")


def test_the_shipped_rule_is_wecoms_default_as_many_as_the_month_has_days():
    assert default_limit() == ReceiveLimit("month_days")


@pytest.mark.parametrize(
    ("rule", "at", "start", "allowed"),
    [
        ("month_days", datetime(2026, 2, 14, 12, tzinfo=CHINA), datetime(2026, 2, 1, tzinfo=CHINA), 28),
        ("month_days", datetime(2026, 11, 30, 20, tzinfo=ZoneInfo("UTC")), datetime(2026, 12, 1, tzinfo=CHINA), 31),
        ("week_7", datetime(2026, 11, 22, 23, tzinfo=CHINA), datetime(2026, 11, 16, tzinfo=CHINA), 7),
        ("day_1", datetime(2026, 11, 18, 23, 59, tzinfo=CHINA), datetime(2026, 11, 18, tzinfo=CHINA), 1),
    ],
)
def test_each_rule_counts_its_own_window_in_china_time(rule, at, start, allowed):
    assert ReceiveLimit(rule).window(at) == (start, allowed)


def test_an_unknown_rule_stops_the_service_naming_the_file(tmp_path):
    path = tmp_path / "group_sends.toml"
    path.write_text('[receive_limit]\nrule = "4_a_month"\n', encoding="utf-8")
    with pytest.raises(PolicyError, match="group_sends.toml.*month_days, week_7, day_1"):
        load_policy(path, ReceiveLimit.from_toml)
