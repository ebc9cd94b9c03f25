"""How many group messages (企业群发) WeCom lets one customer receive, and over which window.

WeCom drops a confirmed group message for a customer already at the limit (send_result status 3),
so a campaign leaves such customers out beforehand and says how many. The rule is the company's
群发规则 in WeCom, mirrored in config/group_sends.toml:
https://developer.work.weixin.qq.com/document/path/92135 (updated 2025-11-17) — "每位客户/每个客户群每月
最多可接收条数为当月天数 … 可在企业微信-群发助手-设置群发规则中调整为每周接收七条或每天接收一条".
Windows are natural days, weeks (Monday first) and months in China time.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from config.policies import shipped_policy

MONTH_DAYS, WEEK_7, DAY_1 = "month_days", "week_7", "day_1"
RULES = (MONTH_DAYS, WEEK_7, DAY_1)
WECOM_TIMEZONE = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class ReceiveLimit:
    rule: str = MONTH_DAYS

    @classmethod
    def from_toml(cls, raw: dict[str, Any]) -> ReceiveLimit:
        rule = str(raw["receive_limit"]["rule"])
        if rule not in RULES:
            raise ValueError(f"receive_limit.rule {rule!r} is not one of {', '.join(RULES)}")
        return cls(rule)

    def window(self, now: datetime) -> tuple[datetime, int]:
        """The start of the window `now` falls in (aware, China time) and how many messages it allows."""
        local = now.astimezone(WECOM_TIMEZONE)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.rule == DAY_1:
            return day, 1
        if self.rule == WEEK_7:
            return day - timedelta(days=day.weekday()), 7
        return day.replace(day=1), calendar.monthrange(day.year, day.month)[1]


default_limit = shipped_policy("group_sends.toml", ReceiveLimit.from_toml)
