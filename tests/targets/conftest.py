"""The sample company with its directory synced (departments have names) and two deals won on
2026-11-18 through chat: 张伟 30万 (赵磊), 李娜 10万 (吴敏). 销售部 (2) is 张伟, 李娜 and 刘洋 (the
manager of 销售部 and 客户服务部); 陈静 (admin) is alone in 行政部 (4)."""

from __future__ import annotations

import pytest

from scrm import keys
from tests.support.chat import Chat, sync_directory


async def win(chat: Chat, rep: str, customer: str, budget: str) -> None:
    assert "预算" in await chat.ask(rep, f"阶段 {customer} 报价谈判")
    assert budget in await chat.ask(rep, budget)
    assert "恭喜" in await chat.ask(rep, f"赢单 {customer}")


@pytest.fixture
async def team(chat: Chat) -> Chat:
    await sync_directory(chat.service.app[keys.SESSIONS], chat.service.sim)
    await chat.onboard("赵磊", "吴敏")
    await win(chat, "zhangwei", "赵磊", "30万")
    await win(chat, "lina", "吴敏", "10万")
    return chat
