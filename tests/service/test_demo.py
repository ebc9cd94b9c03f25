"""The quickstart's first command: the scripted demo runs end to end and shows the product working,
with only the chat on screen (the service logs to a file it names), WeCom markdown drawn for a
terminal and times in the business time zone."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from scrm.demo.terminal import render_markdown


@pytest.mark.slow  # starts the demo in a process
def test_scripted_demo_imports_customers_and_answers_the_rep(tmp_path):
    result = subprocess.run(  # at the default log level: the service's INFO lines must not reach the terminal
        [sys.executable, "-m", "scrm.cli.main", "demo", "--script", "--port", "0"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "#1 赵磊 (华东精密机械有限公司) owner=zhangwei" in out  # imported through signed callbacks
    assert "查看客户名片" in out  # the generated help
    assert "【赵磊】华东精密机械有限公司" in out and "138****1001" in out  # the customer card, phone masked
    assert "客户群：华东客户交流群" in out  # the sample company's groups came in with its customers
    assert "[wecom_kf in] '你好，我想要一份新的报价单" in out  # the customer's 微信客服 message archived
    assert "analysis: negative" in out and "投诉" in out  # the complaint was analysed...
    assert "🤖 bot → wangfang:\n     新工单 T" in out and "工单号：T" in out  # ...routed to support, customer told
    assert (tmp_path / "data" / "demo.sqlite3").exists()

    # Only the chat: no log line on either stream; they are in the file the demo named.
    log = tmp_path / "data" / "demo.log"
    assert f"log goes to {log.relative_to(tmp_path)}" in out
    assert not re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|WARNING|DEBUG)", out + result.stderr, re.M)
    assert " INFO " in log.read_text(encoding="utf-8")
    # Markdown drawn for a terminal: no raw ** or > quote marks (the card is a WeCom markdown message).
    assert "**" not in re.sub(r"\d\*{4}", "", out)  # masked phones (138****1001) aside
    assert not re.search(r"^\s*> ", out, re.M) and "│ 负责人：张伟" in out
    # The record in Chinese, its times in the business zone (the tour runs now; UTC would be 8 h behind).
    assert "负责人 张伟" in out and "最近消息（Asia/Shanghai 时间）" in out and " UTC " not in out


def test_wecom_markdown_is_drawn_for_a_terminal():
    card = "**客户情绪**　负面 <font color=\"warning\">1</font>\n> 负责人：张伟\n[详情](https://x.cn/1)"
    assert render_markdown(card, colour=False) == "客户情绪　负面 1\n│ 负责人：张伟\n详情 <https://x.cn/1>"
    coloured = render_markdown("**粗** <font color=\"warning\">超时</font>", colour=True)
    assert coloured == "\033[1m粗\033[0m \033[33m超时\033[0m"
