"""Customers from chat: the card, quick-create with duplicate detection, my customers, tags."""

from __future__ import annotations

import re

from bot.formatting import customer_card, customer_line, display_name, heat_text, when_text
from bot.replies import Listing, NeedsPick, Refusal, Reply
from bot.router import Arg, CommandContext, Router
from config.templates import render
from crm_core.customer_view import customer_view
from crm_core.customers import CustomerService
from crm_core.errors import DuplicateCustomerError
from crm_core.models import Customer
from crm_core.search_keys import phone_digits
from crm_core.tags import TagService

router = Router("customers")

WRITERS = frozenset({"sales", "manager", "admin"})
MY_CUSTOMERS_LIMIT = 200
BY_HEAT_WORDS = frozenset({"热度", "heat", "score"})
_PHONE = re.compile(r"\+?[\d\-]{7,20}")


def phone_number(word: str) -> str:
    """A phone as typed (dashes allowed); 7 to 15 digits."""
    if not _PHONE.fullmatch(word) or not 7 <= len(phone_digits(word)) <= 15:
        raise ValueError("not a phone number")
    return word


def tag_changes(text: str) -> tuple[list[str], list[str]]:
    """`+VIP -价格敏感 重点` → (["VIP", "重点"], ["价格敏感"]); a bare word adds."""
    add, remove = [], []
    for word in text.split():
        sign, name = (word[0], word[1:]) if word[0] in "+-" else ("+", word)
        if not name or len(name) > 64:
            raise ValueError(f"bad tag {word!r}")
        (add if sign == "+" else remove).append(name)
    return add, remove


@router.command("查", aliases=("lookup", "search", "查询"), args=[Arg("customer", customer=True, rest=True)],
                usage="查 <姓名/拼音/电话或尾号/公司>")
async def lookup(ctx: CommandContext, customer: Customer) -> Reply:
    """查看客户名片"""
    ctx.audit("customer.view", customer.id)
    return Reply(customer_card(await customer_view(ctx.session, customer, ctx.stages), ctx.timezone), markdown=True)


@router.command("新客户", aliases=("new", "新建客户"), roles=WRITERS,
                args=[Arg("name"), Arg("phone", convert=phone_number), Arg("company", rest=True, optional=True)],
                usage="新客户 <姓名> <手机号> [公司]")
async def new_customer(ctx: CommandContext, name: str, phone: str, company: str) -> str:
    """快速新建客户（同电话或同名同公司会提示已有客户）"""
    customers = CustomerService(ctx.session)
    try:
        customer = await customers.create(name=name[:128], phone=phone, company=company[:128], owner_id=ctx.staff.id, at=ctx.now)
    except DuplicateCustomerError as exc:
        scope = await ctx.scope()
        visible = [c for c in exc.existing if scope.allows(c)]
        if visible:
            raise NeedsPick(name, visible, len(visible), line=f"查 {name}",
                            header=render("bot.duplicate_header", name=name[:30])) from exc
        # A rep may learn that a colleague has this customer (so no duplicate is made), not who.
        raise Refusal("bot.duplicate_elsewhere", audit=("customer.duplicate_hidden", exc.existing[0].id, "")) from exc
    ctx.audit("customer.create", customer.id)
    return render("bot.customer_created", name=customer.name, company=customer.company or render("bot.none_value"))


def by_heat(word: str) -> bool:
    """`我的客户 热度`: the warmest leads first instead of the latest contact."""
    if word.casefold() not in BY_HEAT_WORDS:
        raise ValueError(f"not a sort order: {word!r}")
    return True


@router.command("我的客户", aliases=("mine", "我的"), args=[Arg("by_heat", optional=True, convert=by_heat)],
                usage="我的客户 [热度]")
async def my_customers(ctx: CommandContext, by_heat: bool | str) -> Listing | str:
    """我负责的客户，按最近联系排序；加「热度」按热度从高到低"""
    customers = await CustomerService(ctx.session).owned_by(ctx.staff.id, by_heat=bool(by_heat), limit=MY_CUSTOMERS_LIMIT)
    if not customers:
        return render("bot.mine_none")
    none = render("bot.none_value")
    if by_heat:
        lines = [render("bot.heat.mine_line", index=i, line=customer_line(c, none), heat=heat_text(c.lead_score))
                 for i, c in enumerate(customers, start=1)]
    else:
        never = render("bot.never_contacted")
        lines = [render("bot.mine_line", index=i, line=customer_line(c, none),
                        last=when_text(c.last_contact_at, ctx.timezone) if c.last_contact_at else never)
                 for i, c in enumerate(customers, start=1)]
    ctx.audit("customer.list_mine", detail=f"count={len(customers)}" + (" by=heat" if by_heat else ""))
    header = render("bot.heat.mine_header" if by_heat else "bot.mine_header", count=len(customers))
    if ctx.page_base_url:  # a text message's content may carry <a href> links (message/send, document/path/90236)
        header = f"{header}\n{render('pages.chat.mine_link', url=f'{ctx.page_base_url}/h5/sidebar?view=mine')}"
    return Listing(header, lines)


@router.command("标签", aliases=("tag", "tags"),
                args=[Arg("customer", customer=True), Arg("changes", rest=True, optional=True, convert=tag_changes)],
                usage="标签 <客户> +标签 -标签")
async def tag(ctx: CommandContext, customer: Customer, changes: tuple[list[str], list[str]] | str) -> str:
    """给客户加减标签（+加 -减），不带参数则查看"""
    tags = TagService(ctx.session)
    if not changes:
        names = await tags.names(customer.id)
        shown = "、".join(dict.fromkeys([*customer.wecom_tags, *names])) or render("bot.none_value")
        return render("bot.tags_now", name=display_name(customer), tags=shown)
    add, remove = changes
    names = await tags.change(customer, ctx.staff, add=add, remove=remove)
    ctx.audit("customer.tags", customer.id, f"add={add} remove={remove}")
    return render("bot.tags_changed", name=display_name(customer), tags="、".join(names) or render("bot.none_value"))
