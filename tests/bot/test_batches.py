"""Chat lines claimed together share one transaction; none of that may show in the replies.

A rep's follow-up (`2` after a numbered list) must find the list whether it was made in an earlier
batch, earlier in the same batch, or in a batch that was rolled back because another rep's line
failed. And the failing line fails alone: the others are answered once.
"""

from __future__ import annotations

from sqlalchemy import event, select

from crm_core.models import InboxItem
from scrm import keys


async def claim_once(chat) -> None:
    """One worker takes every due row in one claim, as under load; then the replies go out."""
    await run_one_batch(chat)
    await send_replies(chat)


async def run_one_batch(chat) -> None:
    """One claim whose rows share one transaction. The worker cuts a batch after `batch_seconds`
    (20 ms on SQLite), which a busy machine can reach after any row; these tests are about what
    happens inside one batch, so the cut is put out of reach rather than raced."""
    worker = chat.service.app[keys.INBOX_WORKERS][0]
    worker.batch_seconds = float("inf")
    await worker.run_once()


async def send_replies(chat) -> None:
    for worker in chat.service.app[keys.OUTBOX_WORKERS]:
        await worker.drain()


async def inbox_rows(chat) -> dict[str, InboxItem]:
    async with chat.service.sessions() as session:
        return {row.dedup_key: row for row in (await session.scalars(select(InboxItem))).all()}


async def two_zhangsans(chat) -> None:
    await chat.say("zhangwei", "新客户 张三 13900000001 甲公司")
    await chat.say("zhangwei", "新客户 章三 13900000002 乙公司")


async def test_a_failing_line_fails_alone_and_the_rest_of_its_batch_is_answered_once(chat):
    await chat.say("zhangwei", "帮助")
    await chat.service.stop_background_workers()
    chat.service.sim.fail_next("user/get", errcode=-1, times=100)  # lina is new: her profile cannot be read
    await chat.service.wecom.text("zhangwei", "帮助", msg_id=71_001)
    await chat.service.wecom.text("lina", "帮助", msg_id=71_002)
    await chat.service.wecom.text("zhangwei", "我的客户", msg_id=71_003)
    before = len(chat.replies("zhangwei"))
    await run_one_batch(chat)
    rows = await inbox_rows(chat)
    assert [rows[f"wecom:msg:{i}"].status for i in (71_001, 71_002, 71_003)] == ["done", "pending", "done"]
    assert rows["wecom:msg:71002"].attempts == 1 and "system busy" in rows["wecom:msg:71002"].last_error
    await send_replies(chat)
    assert len(chat.replies("zhangwei")[before:]) == 2
    assert chat.replies("lina") == []


async def test_a_number_picks_from_a_list_made_earlier_in_the_same_batch(chat):
    await two_zhangsans(chat)
    await chat.service.stop_background_workers()
    await chat.service.wecom.text("zhangwei", "查 zhangsan", msg_id=72_001)
    await chat.service.wecom.text("zhangwei", "2", msg_id=72_002)
    before = len(chat.replies("zhangwei"))
    await claim_once(chat)
    listing, card = chat.replies("zhangwei")[before:]
    assert "找到 2 位" in listing
    assert "【章三】乙公司" in card


async def test_a_rolled_back_batch_leaves_the_list_for_the_number_to_pick_from(chat):
    await two_zhangsans(chat)
    assert "找到 2 位" in await chat.ask("zhangwei", "查 zhangsan")
    await chat.service.stop_background_workers()
    chat.service.sim.fail_next("user/get", errcode=-1, times=100)
    await chat.service.wecom.text("zhangwei", "2", msg_id=73_001)  # runs, then its batch is rolled back
    await chat.service.wecom.text("lina", "帮助", msg_id=73_002)  # fails: the batch is undone
    before = len(chat.replies("zhangwei"))
    await claim_once(chat)
    [card] = chat.replies("zhangwei")[before:]
    assert "【章三】乙公司" in card


async def test_reps_picking_in_the_same_batch_each_pick_from_their_own_list(chat):
    await two_zhangsans(chat)
    await chat.say("lina", "新客户 李四 13900000003 丙公司")
    await chat.say("lina", "新客户 李斯 13900000004 丁公司")
    assert "找到 2 位" in await chat.ask("zhangwei", "查 zhangsan")
    assert "找到 2 位" in await chat.ask("lina", "查 lisi")
    await chat.service.stop_background_workers()
    await chat.service.wecom.text("lina", "2", msg_id=74_001)
    await chat.service.wecom.text("zhangwei", "2", msg_id=74_002)
    before = {rep: len(chat.replies(rep)) for rep in ("zhangwei", "lina")}
    await claim_once(chat)
    [zhangwei_card] = chat.replies("zhangwei")[before["zhangwei"]:]
    [lina_card] = chat.replies("lina")[before["lina"]:]
    assert "【章三】乙公司" in zhangwei_card
    assert "【李斯】丁公司" in lina_card


async def test_a_batch_from_many_reps_looks_its_senders_up_once(chat):
    reps = ["zhangwei", "lina", "wangfang", "liuyang", "chenjing"]
    for rep in reps:
        await chat.ask(rep, "帮助")  # known and synced from now on
    await chat.service.stop_background_workers()
    for i, rep in enumerate(reps):
        await chat.service.wecom.text(rep, "我的待办", msg_id=75_000 + i)
    statements: list[str] = []
    engine = chat.service.app[keys.ENGINE].sync_engine
    record = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", record)
    try:
        await claim_once(chat)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert all(len(chat.replies(rep)) == 2 for rep in reps)
    staff_reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "FROM staff" in s]
    assert len(staff_reads) == 1, staff_reads
