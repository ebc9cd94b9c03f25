"""The quickstart's first command: the scripted demo runs end to end and shows the product working."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # starts the demo in a process


def test_scripted_demo_imports_customers_and_answers_the_rep(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "scrm.cli.main", "--log-level", "WARNING", "demo", "--script", "--port", "0"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "#1 赵磊 (华东精密机械有限公司) owner=zhangwei" in out  # imported through signed callbacks
    assert "查看客户名片" in out  # the generated help
    assert "【赵磊】华东精密机械有限公司" in out and "138****1001" in out  # the customer card, phone masked
    assert "[wecom_kf in] '你好，我想要一份新的报价单" in out  # the customer's 微信客服 message archived
    assert "analysis: negative" in out and "投诉" in out  # the complaint was analysed...
    assert "🤖 bot → wangfang:\n     新工单 T" in out and "工单号：T" in out  # ...routed to support, customer told
    assert (tmp_path / "data" / "demo.sqlite3").exists()
