"""群发 / campaign: a manager's message to the customers with a CRM tag, and how it went.

`群发 标签:VIP 双十二活动，全场八折` answers with a preview (customers per rep, who is left out and
why) and asks for 确认; the confirmation is the sender's next line, kept in the short-lived
conversation state like a pick-by-number, so a campaign never goes out from a single mistyped
line. `群发 标签:VIP … 确认` skips the question for those who know what they are doing. The same
tag and text again within 10 minutes is answered as already sent. `群发 列表` lists recent
campaigns, `群发 C12` shows each rep's task and each customer's outcome as the group-send sync
records it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from bot.replies import Listing, NeedsAnswer, Refusal
from bot.router import Arg, CommandContext, Router, UsageError
from config.templates import render
from crm_core.campaigns import CONTENT_LIMIT_BYTES, EXCLUSIONS, Audience, CampaignService

router = Router("campaigns")

CAMPAIGN_ROLES = frozenset({"manager", "admin"})
CONFIRM_WORDS = frozenset({"确认", "确定", "confirm", "yes"})
LIST_WORDS = frozenset({"列表", "list"})
REPS_IN_PREVIEW = 5
_TAG = re.compile(r"^(?:标签|tag)[:：](?P<tag>.{1,64})$", re.IGNORECASE)
_CAMPAIGN = re.compile(r"^C(?P<id>\d{1,12})$", re.IGNORECASE)


@dataclass(frozen=True)
class ByTag:
    tag: str


@dataclass(frozen=True)
class CampaignRef:
    id: int


def target(word: str) -> ByTag | CampaignRef | Literal["list"]:
    """标签:VIP (or tag:VIP), C12, or 列表."""
    if word.casefold() in LIST_WORDS:
        return "list"
    if match := _TAG.match(word):
        return ByTag(match["tag"])
    if match := _CAMPAIGN.match(word):
        return CampaignRef(int(match["id"]))
    raise ValueError(f"not a campaign target: {word!r}")


@router.command("群发", aliases=("campaign", "campaigns"), roles=CAMPAIGN_ROLES,
                args=[Arg("target", convert=target), Arg("content", rest=True, optional=True)],
                usage="群发 标签:<标签> <内容> | 群发 列表 | 群发 C<编号>，如：群发 标签:VIP 双十二活动，全场八折")
async def campaign(ctx: CommandContext, target: ByTag | CampaignRef | Literal["list"], content: str) -> str | Listing:
    """给带某个标签的客户群发消息，或查看群发进度"""
    service = CampaignService(ctx.session, ctx.timezone)
    if isinstance(target, ByTag):
        return await _send(ctx, service, target.tag, content)
    if content:
        raise UsageError("nothing follows 列表 or a campaign number")
    if isinstance(target, CampaignRef):
        return await _report(ctx, service, target.id)
    return await _list(ctx, service)


async def _send(ctx: CommandContext, service: CampaignService, tag: str, content: str) -> str:
    content, confirmed = _without_confirmation(content)
    if not content:
        raise UsageError("missing content")
    if "confirm" in ctx.answers:
        if ctx.answers["confirm"].casefold() not in CONFIRM_WORDS:
            return render("campaigns.bot.cancelled")
        confirmed = True
    size = len(content.encode("utf-8"))
    if size > CONTENT_LIMIT_BYTES:
        raise Refusal("campaigns.bot.too_long", size=size)
    if earlier := await service.just_sent(tag, content, ctx.staff, ctx.now):
        minutes = max(1, math.ceil((ctx.now - earlier.created_at).total_seconds() / 60))
        return render("campaigns.bot.just_sent", id=earlier.id, tag=tag, minutes=minutes)
    audience = await service.audience(tag, await ctx.scope(), ctx.now)
    if not audience.customers:
        if not audience.excluded:
            return render("campaigns.bot.nobody", tag=tag)
        return render("campaigns.bot.nobody_reachable", tag=tag, excluded=_excluded(audience.excluded))
    if not confirmed:
        raise NeedsAnswer("confirm", render(
            "campaigns.bot.preview", tag=tag, customers=audience.customers, reps=len(audience.recipients),
            per_rep=_per_rep(audience), excluded=_excluded(audience.excluded), content=content))
    created = await service.launch(audience, content, ctx.staff, ctx.now)
    ctx.audit("campaign.create", detail=f"C{created.id} tag={tag!r} customers={audience.customers} "
                                        f"tasks={len(created.summary['tasks'])} excluded={dict(audience.excluded)}")
    return render("campaigns.bot.launched", id=created.id, customers=audience.customers,
                  tasks=len(created.summary["tasks"]), reps=len(audience.recipients),
                  excluded=_excluded(audience.excluded))


async def _list(ctx: CommandContext, service: CampaignService) -> str | Listing:
    recent = await service.recent(await ctx.scope())
    if not recent:
        return render("campaigns.bot.list_none")
    lines = [render("campaigns.bot.list_line", id=c.id, when=ctx.local(c.created_at, "%m-%d %H:%M"), tag=c.tag,
                    customers=p.customers, delivered=p.delivered, failed=p.failed, pending=p.pending,
                    content=_excerpt(c.content, 20))
             for c, p in recent]
    return Listing(render("campaigns.bot.list_header"), lines, render("campaigns.bot.list_footer"))


async def _report(ctx: CommandContext, service: CampaignService, campaign_id: int) -> str | Listing:
    report = await service.report(campaign_id, await ctx.scope())
    if report is None:
        return render("campaigns.bot.not_found", id=campaign_id)
    c, total = report.campaign, report.progress
    ctx.audit("campaign.view", detail=f"C{c.id}")
    head = render("campaigns.bot.report_header", id=c.id, tag=c.tag, when=ctx.local(c.created_at, "%m-%d %H:%M"),
                  creator=report.creator, content=_excerpt(c.content, 60), customers=total.customers,
                  delivered=total.delivered, failed=total.failed, pending=total.pending)
    lines = []
    for rep in report.reps:
        p = rep.progress
        task = "task_confirmed" if p.delivered else "task_waiting" if p.pending else "task_closed"
        lines.append(render("campaigns.bot.report_rep", rep=rep.rep, customers=p.customers,
                            task=render(f"campaigns.bot.{task}"), delivered=p.delivered, failed=p.failed,
                            pending=p.pending))
        lines += [render("campaigns.bot.report_failure", count=f.count, reason=f.reason,
                         names="、".join(f.names) + ("…" if f.count > len(f.names) else ""))
                  for f in rep.failures]
    excluded = {k: v for k, v in (c.summary.get("excluded") or {}).items() if v}
    footer = render("campaigns.bot.report_excluded", reasons=_reasons(excluded)) if excluded else ""
    return Listing(head, lines, footer)


def _without_confirmation(content: str) -> tuple[str, bool]:
    """`… 确认` at the end of the line is the go-ahead, not part of the message."""
    text, _, last = content.rpartition(" ")
    if text and last.casefold() in CONFIRM_WORDS:
        return text, True
    return content, False


def _per_rep(audience: Audience) -> str:
    counts = sorted(((len(r), audience.reps[staff_id]) for staff_id, r in audience.recipients.items()),
                    key=lambda pair: (-pair[0], pair[1].id))
    names = "、".join(render("campaigns.bot.per_rep", rep=rep.name or rep.userid, count=count)
                     for count, rep in counts[:REPS_IN_PREVIEW])
    if len(counts) > REPS_IN_PREVIEW:
        return render("campaigns.bot.per_rep_more", names=names, reps=len(counts))
    return names


def _excluded(excluded) -> str:
    if not any(excluded.values()):
        return render("campaigns.bot.excluded_none")
    return render("campaigns.bot.excluded", reasons=_reasons(excluded))


def _reasons(excluded) -> str:
    return "、".join(render(f"campaigns.excluded.{reason}", count=excluded[reason])
                    for reason in EXCLUSIONS if excluded.get(reason))


def _excerpt(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
