"""`scrm api-token issue|list|revoke`: tokens that let a tool use the JSON API as one staff member.

Only the arguments are declared at import; each command imports the database code when it runs."""

from __future__ import annotations

import argparse
import asyncio


def register(sub: argparse._SubParsersAction) -> None:
    tokens = sub.add_parser("api-token", help="API tokens that act for one staff member, within their data scope")
    actions = tokens.add_subparsers(dest="api_token_command", metavar="ACTION", required=True)
    issue = actions.add_parser("issue", help="issue a token for a staff member (shown once)")
    issue.add_argument("userid", help="the staff member's WeCom userid")
    issue.add_argument("--label", default="", help="what the token is for, e.g. 'sidebar'")
    issue.set_defaults(func=cmd_issue)
    listing = actions.add_parser("list", help="live tokens: id, staff member, label, last use")
    listing.add_argument("--all", action="store_true", help="include revoked tokens")
    listing.set_defaults(func=cmd_list)
    revoke = actions.add_parser("revoke", help="stop a token from working")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(func=cmd_revoke)


def cmd_issue(args: argparse.Namespace) -> int:
    from crm_core.api_tokens import ApiTokenService
    from crm_core.staff import StaffService
    from scrm.resources import CliError, with_session

    async def work(session):
        staff = await StaffService(session).get_by_userid(args.userid)
        if staff is None:
            raise CliError(f"no staff member has the WeCom userid {args.userid!r}; they appear once they have "
                           "written to the app or been synced")
        if not staff.active:
            raise CliError(f"{args.userid} is not active in WeCom; a token for them would not work")
        issued = await ApiTokenService(session).issue(staff, label=args.label)
        await session.commit()
        return issued

    issued = asyncio.run(with_session(args.config, work))
    print(f"token {issued.id} for {issued.staff.userid} ({issued.staff.role}); keep it now, it is not shown again:")
    print(issued.token)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from crm_core.api_tokens import ApiTokenService
    from scrm.resources import with_session

    rows = asyncio.run(with_session(args.config, lambda session: ApiTokenService(session).list(include_revoked=args.all)))
    for token, staff in rows:
        used = f"{token.last_used_at:%Y-%m-%d %H:%M}Z" if token.last_used_at else "never used"
        state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "live"
        print(f"{token.id:>5}  {staff.userid:<16} {staff.role:<8} {token.label or '-':<16} {used:<18} {state}")
    if not rows:
        print("no API tokens; `scrm api-token issue USERID` makes one")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from crm_core.api_tokens import ApiTokenService, UnknownTokenError
    from scrm.resources import CliError, with_session

    async def work(session) -> None:
        await ApiTokenService(session).revoke(args.id)
        await session.commit()

    try:
        asyncio.run(with_session(args.config, work))
    except UnknownTokenError as exc:
        raise CliError(str(exc)) from None
    print(f"token {args.id} revoked")
    return 0
