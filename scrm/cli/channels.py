"""`scrm channels create NAME [--group G] [--welcome TEXT] [--users u1,u2]` and `scrm channels list`.

Unlike the chat command, the CLI asks WeCom for the 「联系我」 code itself and waits for it: the
channel is committed only together with the code, so a refused code leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from config.settings import load_settings, require_wecom


def register(sub: argparse._SubParsersAction) -> None:
    channels = sub.add_parser("channels", help="channel QR codes (渠道活码): create and list")
    actions = channels.add_subparsers(dest="channels_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a channel and its WeCom 「联系我」 QR code")
    create.add_argument("name", help="channel name, 1-30 characters (e.g. 展会2026)")
    create.add_argument("--group", default="", help="sales group from config/sales_groups.toml; its members get the customers")
    create.add_argument("--users", default="", help="comma-separated WeCom userids instead of (or narrowing) the group's members")
    create.add_argument("--welcome", default="", help="welcome message (欢迎语) for customers who scan it (default: the template)")
    create.set_defaults(func=cmd_create)
    listing = actions.add_parser("list", help="every channel with its state, reps, customers and QR link")
    listing.set_defaults(func=cmd_list)


def cmd_create(args: argparse.Namespace) -> int:
    import aiohttp

    from connectors.wecom.client import WeComClient
    from connectors.wecom.errors import WeComError
    from crm_core.channels import ChannelError, ChannelService, UnknownGroupError, contact_way_body
    from crm_core.db import create_engine, session_factory
    from scrm.resources import open_redis, prepare_schema

    settings = load_settings(toml_path=args.config)
    require_wecom(settings)
    users = [u.strip() for u in args.users.split(",") if u.strip()]

    async def run() -> int:
        engine = create_engine(settings.database_url)
        redis = open_redis(settings)
        try:
            await prepare_schema(engine, settings)
            async with aiohttp.ClientSession() as http, session_factory(engine)() as session:
                wecom = WeComClient(http, api_base=settings.wecom.api_base, corp_id=settings.wecom.corp_id,
                                    secret=settings.wecom.secret, redis=redis)
                service = ChannelService(session)
                try:
                    channel = await service.create(args.name, group=args.group, users=users, welcome=args.welcome)
                    answer = await wecom.add_contact_way(contact_way_body(channel))
                except UnknownGroupError as exc:
                    print(f"no sales group {exc.group!r}; config/sales_groups.toml has: {', '.join(exc.known)}", file=sys.stderr)
                    return 1
                except (ChannelError, ValueError) as exc:
                    print(f"cannot create channel {args.name!r}: {exc}", file=sys.stderr)
                    return 1
                except WeComError as exc:
                    print(f"WeCom refused the QR code (nothing was saved): {exc}", file=sys.stderr)
                    return 1
                await service.qr_code_ready(channel.id, config_id=answer["config_id"], qr_code=answer.get("qr_code", ""))
                await session.commit()
                print(f"channel {channel.name} (state {channel.state}) for {service.reps_text(channel)}")
                print(f"QR code: {channel.qr_code}")
                return 0
        finally:
            await redis.aclose()
            await engine.dispose()

    return asyncio.run(run())


def cmd_list(args: argparse.Namespace) -> int:
    from sqlalchemy import func, select

    from crm_core.channels import ChannelService
    from crm_core.db import create_engine, session_factory
    from crm_core.models import Customer
    from scrm.resources import prepare_schema

    settings = load_settings(toml_path=args.config)

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            await prepare_schema(engine, settings)
            async with session_factory(engine)() as session:
                service = ChannelService(session)
                channels = await service.all()
                counts = dict((await session.execute(
                    select(Customer.source_channel_id, func.count()).group_by(Customer.source_channel_id))).all())
                for c in channels:
                    status = "active" if c.active else "stopped"
                    print(f"{c.state}\t{c.name}\t{status}\t{service.reps_text(c)}\tcustomers={counts.get(c.id, 0)}\t"
                          f"{c.qr_code or '(no QR code yet)'}")
                if not channels:
                    print("no channels yet (scrm channels create NAME --group GROUP)")
        finally:
            await engine.dispose()

    asyncio.run(run())
    return 0
