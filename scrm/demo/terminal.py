"""How the terminal demo looks: only the chat on screen (the service's log goes to a file), WeCom
markdown drawn for a terminal, and a customer's record as the browser console shows it (Chinese
labels, the business time zone, the phone masked)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

BOLD, DIM, RESET = "\033[1m", "\033[2m", "\033[0m"
# WeCom markdown (app messages, https://developer.work.weixin.qq.com/document/path/90236): headings,
# **bold**, [links](url), `code`, > quotes and three font colours:
# info green, comment grey, warning orange.
FONT_COLOURS = {"info": "\033[32m", "comment": "\033[90m", "warning": "\033[33m"}

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_FONT = re.compile(r'<font\s+color\s*=\s*"?(\w+)"?\s*>(.*?)</font>', re.S)
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*)$")
_QUOTE = re.compile(r"^>\s?(.*)$")


def render_markdown(text: str, *, colour: bool) -> str:
    """WeCom markdown as a terminal shows it: **bold** and headings bold, `> ` quotes as a bar,
    <font color> in its colour, [text](url) as text <url>; plain text without colour."""

    def style(code: str, inner: str) -> str:
        return f"{code}{inner}{RESET}" if colour else inner

    lines = []
    for line in text.splitlines():
        heading, quote = _HEADING.match(line), _QUOTE.match(line)
        if heading:
            line = style(BOLD, heading.group(1))
        elif quote:
            line = style(DIM, "│") + " " + quote.group(1)
        line = _BOLD.sub(lambda m: style(BOLD, m.group(1)), line)
        line = _FONT.sub(lambda m: style(FONT_COLOURS.get(m.group(1), ""), m.group(2)), line)
        line = _LINK.sub(lambda m: f"{m.group(1)} <{m.group(2)}>", line)
        lines.append(line)
    return "\n".join(lines)


def log_to_file(path: Path) -> Path:
    """Send every log record to `path` instead of the terminal, keeping the configured format and level."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    handler = logging.FileHandler(path, encoding="utf-8")
    if root.handlers and root.handlers[0].formatter is not None:
        handler.setFormatter(root.handlers[0].formatter)
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    return path


def record_lines(record: dict[str, Any], timezone: str) -> list[str]:
    """scrm.demo.console.record_json's record as lines of text."""
    topics = "、".join(f"{t['tag']}×{t['count']}" for t in record["topics"]) or "-"
    lines = [
        f"  #{record['id']} {record['name']} | {record['company'] or '-'} | 负责人 {record['owner'] or '-'} | "
        f"{record['lifecycle']} | 热度 {record['lead_score']} | 电话 {record['phone'] or '-'}",
        f"  标签 {'、'.join(record['tags']) or '-'} | 情绪 {record['mood']} | 话题 {topics} | 关怀 {record['care']}",
    ]
    if record["next_follow_up"]:
        lines.append(f"  下次跟进 {record['next_follow_up']['due']} {record['next_follow_up']['text']}")
    for ticket in record["open_tickets"]:
        lines.append(f"  工单 {ticket['number']} {ticket['category']} {ticket['priority']} {ticket['status']}"
                     f" → {ticket['assignee'] or '未分配'}")
    lines.append(f"  最近消息（{timezone} 时间）:")
    for m in record["messages"]:
        arrow = "←" if m["direction"] == "in" else "→"
        lines.append(f"    {m['at']} {arrow} [{m['channel']}] {' '.join(m['text'].split())[:70]}")
    return lines
