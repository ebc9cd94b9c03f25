"""Brings back what became of care messages sent as WeCom group-send tasks (issues #6, #7).

add_msg_template only hands the rep a task; the customer gets nothing until the rep confirms it in
群发助手, and WeCom forgets the task after about a week. This scheduler job asks WeCom for each open
template delivery (get_groupmsg_task: did the rep send? get_groupmsg_send_result: did the customer
get it?) and lets crm_core.care_sync record the outcome and remind a rep once.

WeCom is asked between transactions: a run reads a batch, closes its session, asks WeCom, then
writes the outcomes in one short transaction, so no lock is held during HTTP. A rate limit or an
unreachable WeCom ends the asking for this run; the next run picks up where it stands.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Protocol

from connectors.wecom.errors import WeComError
from crm_core.care_sync import (
    CONFIRM,
    DELIVERED,
    GIVE_UP,
    GONE,
    NOT_FRIEND,
    PENDING,
    RECEIVE_LIMIT,
    REMIND,
    WAIT,
    CareSyncService,
    GroupSendPolicy,
    OpenTask,
    TaskReport,
    decide,
)
from scheduler.runner import JobContext, JobFunc

log = logging.getLogger(__name__)

BATCH = 100
INVALID_MSGID = 41047  # 无效的企业群发消息id: WeCom no longer has the task (cancelled or expired)
TASK_SENT = 2  # get_groupmsg_task status: 0 未发送, 2 已发送
RESULTS = {0: PENDING, 1: DELIVERED, 2: NOT_FRIEND, 3: RECEIVE_LIMIT}  # get_groupmsg_send_result status


class GroupSendApi(Protocol):
    async def groupmsg_task_list(self, msgid: str) -> list[dict[str, Any]]: ...
    async def groupmsg_send_list(self, msgid: str, userid: str) -> list[dict[str, Any]]: ...


def make_group_send_sync_job(
    wecom: GroupSendApi,
    *,
    keep_for: timedelta = timedelta(days=7),
    remind_after: timedelta = timedelta(hours=4),
) -> JobFunc:
    """The scheduler job: settle open template deliveries and remind reps who have not confirmed."""
    policy = GroupSendPolicy(keep_for=keep_for, remind_after=remind_after)

    async def sync_group_sends(ctx: JobContext) -> str:
        counts: Counter[str] = Counter()
        checked, errors, wecom_down, after_id = 0, 0, False, 0
        to_remind: list[OpenTask] = []
        answers: dict[tuple[str, str], list[dict[str, Any]] | WeComError] = {}
        seen_errors: set[WeComError] = set()
        while True:
            async with ctx.sessions() as session:
                tasks = await CareSyncService(session).open_tasks(after_id=after_id, limit=BATCH)
            if not tasks:
                break
            after_id = tasks[-1].delivery_id
            decisions = []
            for task in tasks:
                report = None
                if task.msgid and task.recipients and not wecom_down:
                    try:
                        report = await _report(wecom, task, answers)
                    except WeComError as exc:
                        if exc.errcode == INVALID_MSGID:
                            report = TaskReport(rep_sent=False, result=GONE)
                        elif exc not in seen_errors:  # a shared task's error counts and logs once
                            seen_errors.add(exc)
                            errors += 1
                            wecom_down = exc.retryable
                            log.warning("group-send sync: delivery %s (msgid %s): %s", task.delivery_id, task.msgid, exc)
                decision = decide(task, report, now=ctx.now, policy=policy, tz=ctx.timezone)
                decisions.append((task, decision))
                counts[decision.action] += 1
                if decision.action == REMIND:
                    to_remind.append(task)
            checked += len(tasks)
            async with ctx.sessions() as session:
                await CareSyncService(session).settle(decisions)
                await session.commit()
        async with ctx.sessions() as session:
            messages, reps = await CareSyncService(session).remind(to_remind, policy)
            await session.commit()
        summary = (f"{checked} group-send task(s) checked: {counts[CONFIRM]} confirmed, {counts[GIVE_UP]} unsent, "
                   f"{counts[WAIT] + counts[REMIND]} still open; {messages} reminder(s) queued for {reps} rep(s)")
        if errors:
            summary += f"; {errors} WeCom error(s)" + (", WeCom unavailable, rest left for the next run"
                                                        if wecom_down else "")
        return summary

    return sync_group_sends


async def _report(wecom: GroupSendApi, task: OpenTask,
                  answers: dict[tuple[str, str], list[dict[str, Any]] | WeComError]) -> TaskReport:
    """Ask whether the rep sent the task and, if so, what the delivery's customer got.

    A campaign task is shared by one delivery per customer, so each answer (or error) is kept for
    the run in `answers` and WeCom is asked once per task and rep, not once per customer."""
    task_list = await _asked(answers, (task.msgid, ""), lambda: wecom.groupmsg_task_list(task.msgid))
    rep_task = next((t for t in task_list if t.get("userid") == task.rep_userid), None)
    if rep_task is None or rep_task.get("status") != TASK_SENT:
        return TaskReport(rep_sent=False)
    send_list = await _asked(answers, (task.msgid, task.rep_userid),
                             lambda: wecom.groupmsg_send_list(task.msgid, task.rep_userid))
    results = [r for r in send_list if r.get("external_userid") in task.recipients]
    delivered = [r for r in results if r.get("status") == 1]
    if delivered:
        sent_at = delivered[0].get("send_time") or rep_task.get("send_time")
        return TaskReport(rep_sent=True, result=DELIVERED,
                          sent_at=datetime.fromtimestamp(sent_at, timezone.utc) if sent_at else None)
    outcomes = [RESULTS.get(r.get("status"), PENDING) for r in results]
    failures = [o for o in outcomes if o in (NOT_FRIEND, RECEIVE_LIMIT)]
    if failures and len(failures) == len(outcomes):
        return TaskReport(rep_sent=True, result=failures[0])
    return TaskReport(rep_sent=True)


async def _asked(answers: dict[tuple[str, str], list[dict[str, Any]] | WeComError], key: tuple[str, str],
                 ask: Callable[[], Awaitable[list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """WeCom's answer for `key`, asked the first time only; an error is remembered and raised again."""
    if key not in answers:
        try:
            answers[key] = await ask()
        except WeComError as exc:
            answers[key] = exc
    answer = answers[key]
    if isinstance(answer, WeComError):
        raise answer
    return answer
