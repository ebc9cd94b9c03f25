"""`scrm inbox|outbox failed` and `scrm inbox|outbox retry ID`: what was given up on, and why.

Rows are parked after their attempts are used up (or at once for errors retrying cannot fix);
an operator reads the error, fixes the cause, and gives the row a fresh set of attempts.
"""

from __future__ import annotations

import argparse
import asyncio

QUEUES = ("inbox", "outbox")


def register(sub: argparse._SubParsersAction) -> None:
    for name in QUEUES:
        queue = sub.add_parser(name, help=f"parked {name} rows: list and retry")
        actions = queue.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)
        failed = actions.add_parser("failed", help=f"list parked {name} rows with their last error")
        failed.add_argument("--limit", type=int, default=100)
        failed.set_defaults(func=cmd_failed, queue=name)
        retry = actions.add_parser("retry", help="give a parked row a fresh set of attempts")
        retry.add_argument("id", type=int)
        retry.set_defaults(func=cmd_retry, queue=name)


def cmd_failed(args: argparse.Namespace) -> int:
    from crm_core.inbox import InboxService
    from crm_core.outbox import OutboxService
    from scrm.delivery.sender import message_text, recipient_of
    from scrm.resources import with_session

    async def work(session) -> None:
        if args.queue == "outbox":
            rows = await OutboxService(session).failed(args.limit)
            for row in rows:
                print(f"#{row.id} {row.kind} to {recipient_of(row.payload)} after {row.attempts} attempt(s): {row.last_error}")
                print(f"    {message_text(row.payload)[:70]!r}")
        else:
            rows = await InboxService(session).parked(args.limit)
            for row in rows:
                print(f"#{row.id} {row.source} {row.dedup_key} after {row.attempts} attempt(s): {row.last_error}")
        if not rows:
            print(f"no parked {args.queue} rows")

    asyncio.run(with_session(args.config, work))
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from crm_core import work_queue
    from crm_core.models import InboxItem, OutboxItem
    from scrm.resources import with_session

    async def work(session) -> bool:
        return await work_queue.requeue(session, {"inbox": InboxItem, "outbox": OutboxItem}[args.queue], args.id)

    if asyncio.run(with_session(args.config, work)):
        print(f"{args.queue} #{args.id} will be tried again by the next worker")
        return 0
    print(f"{args.queue} #{args.id} is not parked (see `scrm {args.queue} failed`)")
    return 1
