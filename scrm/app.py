"""The application factory: one `create_app(settings, roles)` for every way the service runs.

Each resource opens and closes in its own cleanup context, in dependency order. Roles decide
what a process does: `web` serves the callbacks (WeCom, JSON webhook) and API, `worker` drains the inbox and outbox,
`scheduler` runs timed jobs. Every process serves /healthz and /readyz.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import AsyncIterator

import aiohttp
from aiohttp import web

import nlp
from bot import build_dispatcher
from config.settings import Settings
from connectors.webhook import WebhookReceiver
from connectors.wecom.client import WeComClient
from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.receiver import CallbackReceiver
from crm_core.db import create_engine, session_factory, utcnow
from crm_core.models import InboxItem, OutboxItem
from scheduler.jobs import build_jobs
from scheduler.runner import JobFunc, Scheduler
from scrm import keys
from scrm.ingest import wakeups
from connectors.wecom.inbound import (AppMessage, ChatChange, ContactChange, DirectoryChange, KfWakeup, TagChange,
                                     TransferFail)
from scrm.ingest.analysis import MessageAnalysis
from scrm.ingest.chat_archive import ChatArchiveMessages
from scrm.ingest.context import IngestContext
from scrm.ingest.directory_changes import DirectoryChanges
from scrm.ingest.corp_tags import TagChanges
from scrm.ingest.external_contacts import ContactChanges
from scrm.ingest.kf import KfMessages, KfWakeups
from scrm.ingest.staff_messages import StaffMessages
from crm_core.ticket_policy import load_ticket_policy
from scrm.ingest.transfer_failures import TransferFailures
from scrm.ingest.ticket_intake import TicketIntake
from scrm.ingest.wecom_callbacks import WeComCallbacks
from scrm.ingest.customer_groups import ChatChanges
from scrm.ingest.webhook import WebhookMessages
from scrm.http.api import api_routes, health_routes
from scrm.ingest.chat_archive_puller import build_chat_archive_puller
from scrm.ingest.group_commit import GroupCommitInbox
from scrm.http.request_ids import request_id_middleware
from scrm.metrics import Metrics, metrics_routes
from scrm.ingest.pipeline import Pipeline
from scrm.queue_worker import QueueWorker, wake_idle
from scrm.ingest.buying_signal import BuyingSignal
from scrm.ingest.care_optout import CareOptOut
from scrm.delivery.group_sends import make_group_send_sync_job
from scrm.sync.customers import make_customer_sync_job, sync_on_first_start
from scrm.sync.groups import make_group_sync_job, sync_groups_on_first_start
from scrm.delivery.handovers import make_handover_follow_job
from scrm.http.tickets import ticket_routes
from scrm.http import pages
from scrm.http.pages import dashboard as dashboard_page
from scrm.http.pages import sidebar
from scrm.http.pages.identity import page_secret
from scrm.resources import open_redis, prepare_schema
from scrm.delivery.send_limits import MemberSendLimit
from scrm.delivery.sender import OutboxSender, undeliverable_notifier
from scrm.sync.directory import DirectorySync, directory_for, directory_sync_job, role_map

log = logging.getLogger(__name__)

ALL_ROLES = frozenset({"web", "worker", "scheduler"})

def create_app(settings: Settings, roles: frozenset[str] = ALL_ROLES, *,
               clock: Callable[[], datetime] = utcnow) -> web.Application:
    """`clock`: the one "now" of the chat bot (the demo passes its fast-forwarding clock)."""
    unknown = roles - ALL_ROLES
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(sorted(unknown))}; choose from web, worker, scheduler")
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[request_id_middleware, error_middleware])
    app[keys.SETTINGS] = settings
    app[keys.ROLES] = roles
    app[keys.CLOCK] = clock
    app[keys.INBOX_WORKERS] = []
    app[keys.OUTBOX_WORKERS] = []
    app[keys.WAKEUP_SENDER] = uuid.uuid4().hex.encode()
    app[keys.METRICS] = Metrics()
    app[keys.TICKETS] = load_ticket_policy(settings.ticket_routing_file)
    app.cleanup_ctx.extend([database_ctx, redis_ctx, http_ctx, wecom_ctx])
    if "worker" in roles:
        app.cleanup_ctx.append(workers_ctx)
        if settings.archive.configured:
            app.cleanup_ctx.append(chat_archive_ctx)
        if settings.wecom.configured and settings.sync_on_first_start:
            app.cleanup_ctx.append(first_sync_ctx)
    if "scheduler" in roles:
        app.cleanup_ctx.append(scheduler_ctx)
    app.add_routes(health_routes())
    app.add_routes(metrics_routes(app[keys.METRICS], lambda: app[keys.SESSIONS]))
    if "web" in roles:
        app.add_routes(api_routes())
        app.add_routes(ticket_routes())
        app.cleanup_ctx.append(pages_ctx)
        app.add_routes(pages.routes())
        app.add_routes(sidebar.routes())
        app.add_routes(dashboard_page.routes())
        if settings.wecom.configured or settings.webhook.secrets:
            app.cleanup_ctx.append(inbox_writer_ctx)
        app.add_routes(WebhookReceiver(settings.webhook.channels, _accept_into_inbox(app),
                                       max_body_bytes=settings.max_body_bytes).routes())
        if settings.wecom.configured:
            crypto = CallbackCrypto(settings.wecom.token, settings.wecom.aes_key, settings.wecom.corp_id)
            app.add_routes(CallbackReceiver(crypto, _accept_into_inbox(app), app[keys.METRICS].observe_callback).routes())
    return app


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Expected HTTP errors pass through; anything else is logged once with an id the caller can quote."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        error_id = uuid.uuid4().hex[:12]
        log.exception("unhandled error %s on %s %s", error_id, request.method, request.path)
        return web.json_response({"error": "internal error", "error_id": error_id}, status=500)


def _accept_into_inbox(app: web.Application):
    async def accept(dedup_key: str, source: str, payload: str) -> bool:
        created = await app[keys.INBOX_WRITER].accept(dedup_key, source, payload)
        if created:
            wake_idle(app[keys.INBOX_WORKERS])
        return created

    return accept


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    engine = create_engine(settings.database_url)
    await prepare_schema(engine, settings)
    app[keys.ENGINE] = engine
    app[keys.SESSIONS] = session_factory(engine)
    yield
    await engine.dispose()


async def inbox_writer_ctx(app: web.Application) -> AsyncIterator[None]:
    redis = app[keys.REDIS]
    shared = bool(app[keys.SETTINGS].redis_url)  # other processes may hold the workers
    channel, sender = wakeups.channel(redis, app[keys.SETTINGS].wecom.corp_id), app[keys.WAKEUP_SENDER]
    writer = GroupCommitInbox(app[keys.SESSIONS],
                              on_new_rows=(lambda: wakeups.announce(redis, channel, sender)) if shared else None)
    app[keys.INBOX_WRITER] = writer
    yield
    await writer.close()


async def pages_ctx(app: web.Application) -> AsyncIterator[None]:
    """The H5 pages' cookie-signing secret: SCRM_PAGE_SECRET, or the install's generated one."""
    settings = app[keys.SETTINGS]
    app[keys.PAGE_SECRET] = page_secret(settings)
    if not settings.pages.secret and settings.redis_url:
        log.warning("SCRM_PAGE_SECRET is unset: web processes on other hosts will not accept this one's page sessions")
    yield


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    redis = open_redis(app[keys.SETTINGS])
    app[keys.REDIS] = redis
    yield
    await redis.aclose()


async def http_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(raise_for_status=False) as http:
        app[keys.HTTP] = http
        yield


async def wecom_ctx(app: web.Application) -> AsyncIterator[None]:
    wecom = app[keys.SETTINGS].wecom
    app[keys.WECOM] = WeComClient(
        app[keys.HTTP], api_base=wecom.api_base, corp_id=wecom.corp_id, secret=wecom.secret, redis=app[keys.REDIS]
    )
    yield


def build_pipeline(app: web.Application) -> Pipeline:
    """The ingest pipeline: every inbox source, and what the product does when a customer writes.

    The reactions run in this order, inside the message's transaction (scrm.ingest.context): the
    analysis first, because the opt-out and ticket checks read its result."""
    settings, metrics = app[keys.SETTINGS], app[keys.METRICS]
    dispatcher = build_dispatcher(settings.tz, app[keys.REDIS], clock=app[keys.CLOCK],
                                  commands_per_minute=settings.bot_commands_per_minute, ticket_policy=app[keys.TICKETS],
                                  page_base_url=settings.pages.base_url)
    dispatcher.observe_command = metrics.observe_command
    app[keys.DISPATCHER] = dispatcher
    context = IngestContext(
        wecom=app[keys.WECOM],
        timezone=settings.tz,
        roles=role_map(settings),
        reactions=[MessageAnalysis(observe=metrics.observe_analysis), CareOptOut(), BuyingSignal(),
                   TicketIntake(settings.tz, app[keys.TICKETS])],
    )
    callbacks = WeComCallbacks({
        AppMessage: StaffMessages(context, on_staff_message=dispatcher),
        ContactChange: ContactChanges(context),
        ChatChange: ChatChanges(context),
        DirectoryChange: DirectoryChanges(directory_for(settings, app[keys.WECOM])),
        TagChange: TagChanges(context),
        TransferFail: TransferFailures(context),
        KfWakeup: KfWakeups(context),
    })
    return Pipeline(context, [callbacks, KfMessages(context), ChatArchiveMessages(context), WebhookMessages(context)])


async def workers_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, sessions = app[keys.SETTINGS], app[keys.SESSIONS]
    # Load the NLP state now, off the event loop: loaded lazily, the first customer message would
    # stall this process for about a second (and escape `scrm serve`'s freeze of start-up objects).
    await asyncio.to_thread(nlp.load)
    pipeline = build_pipeline(app)
    await asyncio.to_thread(app[keys.DISPATCHER].understanding.load)  # its jieba, off the event loop too
    for reaction in pipeline.context.reactions:
        if isinstance(reaction, TicketIntake):
            await reaction.check_at_start(sessions)
    # SQLite has one connection: a long worker transaction would hold callback acks back, so its
    # transactions stay short. PostgreSQL overlaps several workers' round trips.
    sqlite = settings.database_url.startswith("sqlite")
    concurrency, batch_size, batch_seconds = (1, 20, 0.02) if sqlite else (4, 50, 0.2)
    inbox = [
        QueueWorker("inbox", InboxItem, sessions, pipeline, max_attempts=settings.inbox_max_attempts,
                    lease_seconds=settings.worker_lease_seconds, batch_size=batch_size,
                    batch_seconds=batch_seconds,
                    on_outcome=app[keys.METRICS].queue_observer("inbox"))
        for _ in range(concurrency)
    ]
    outbox = [
        QueueWorker("outbox", OutboxItem, sessions, OutboxSender(app[keys.WECOM], settings.wecom.agent_id or "0",
                                                                 MemberSendLimit(app[keys.REDIS])),
                    max_attempts=settings.outbox_max_attempts, lease_seconds=settings.worker_lease_seconds,
                    on_parked=undeliverable_notifier(sessions), on_outcome=app[keys.METRICS].queue_observer("outbox"))
    ]
    for worker in inbox:
        worker.crew = inbox
    pipeline.context.on_new_inbox_rows = lambda: wake_idle(inbox)
    pipeline.context.on_new_outbox_rows = lambda: wake_idle(outbox)
    app[keys.INBOX_WORKERS].extend(inbox)
    app[keys.OUTBOX_WORKERS].extend(outbox)
    tasks = {asyncio.create_task(w.run(), name=w.worker_id) for w in (*inbox, *outbox)}
    stopping = asyncio.Event()
    listener = None
    if settings.redis_url:  # web processes announce new inbox rows (scrm.ingest.wakeups)
        channel = wakeups.channel(app[keys.REDIS], settings.wecom.corp_id)
        listener = asyncio.create_task(wakeups.listen(app[keys.REDIS], channel, pipeline.context.on_new_inbox_rows,
                                                      stopping, own=app[keys.WAKEUP_SENDER]),
                                       name="inbox-wakeups")
        tasks.add(listener)
    app[keys.WORKER_TASKS] = tasks
    yield
    stopping.set()
    for worker in (*inbox, *outbox):
        worker.stop()
    if listener is not None:  # it holds no work, only a read of up to a second: no reason to wait that out
        listener.cancel()
    await stop_tasks(tasks)


async def chat_archive_ctx(app: web.Application) -> AsyncIterator[None]:
    """The 会话存档 puller: stages archived chats into the inbox and wakes this process's workers."""
    puller = build_chat_archive_puller(app[keys.SETTINGS], app[keys.HTTP], app[keys.REDIS], app[keys.SESSIONS],
                                       on_new_rows=lambda: wake_idle(app[keys.INBOX_WORKERS]))
    app[keys.CHAT_ARCHIVE_PULLER] = puller
    task = asyncio.create_task(puller.run(), name="chat-archive")
    yield
    puller.stop()
    await stop_tasks({task})
    puller.close()


async def first_sync_ctx(app: web.Application) -> AsyncIterator[None]:
    """A fresh install pulls the company's WeCom without being asked, in the background: start-up and
    health checks do not wait for it. The directory comes first (DirectorySync.first_start), so the
    existing customers that follow find their reps (scrm.sync.customers.sync_on_first_start), and
    the customer groups find their members (scrm.sync.groups.sync_groups_on_first_start)."""
    sessions, wecom, settings = app[keys.SESSIONS], app[keys.WECOM], app[keys.SETTINGS]
    roles = role_map(settings)
    directory = DirectorySync(directory_for(settings, wecom), sessions)
    stopping = asyncio.Event()

    async def first_sync() -> None:
        await directory.first_start(stopping)
        if not stopping.is_set():
            report = await sync_on_first_start(sessions, wecom, roles=roles)
            if report is not None:
                log.info("first customer sync: %s", report.summary())
        if not stopping.is_set():
            staff = IngestContext(wecom=wecom, timezone=settings.tz, roles=roles).staff
            groups = await sync_groups_on_first_start(sessions, wecom, staff)
            if groups is not None:
                log.info("first customer group sync: %s", groups.summary())

    task = asyncio.create_task(first_sync(), name="first-sync")
    app[keys.FIRST_SYNC] = task
    yield
    stopping.set()
    await stop_tasks({task})


async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    jobs = [app[keys.METRICS].instrument_job(job)
            for job in build_jobs(settings, service_jobs(app[keys.WECOM], settings))]
    scheduler = Scheduler(jobs, app[keys.SESSIONS], app[keys.REDIS], settings.tz)
    task = asyncio.create_task(scheduler.run_forever(), name="scheduler")
    yield
    scheduler.stop()
    await stop_tasks({task})


def service_jobs(wecom: WeComClient, settings: Settings) -> dict[str, JobFunc]:
    """The scheduled jobs that call WeCom themselves (scheduler.jobs.SERVICE_JOB_NAMES)."""
    return {"care.group_send_sync": make_group_send_sync_job(wecom),
            "directory.sync": directory_sync_job(directory_for(settings, wecom)),
            "customers.sync": make_customer_sync_job(wecom, role_map(settings)),
            "handovers.follow_results": make_handover_follow_job(wecom),
            "groups.sync": make_group_sync_job(wecom, lambda ctx: IngestContext(
                wecom=wecom, timezone=ctx.timezone, roles=role_map(settings)).staff)}


async def stop_tasks(tasks: set[asyncio.Task], grace: float = 15.0) -> None:
    """Wait for loops that were asked to stop; cancel only what overruns the grace period."""
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=grace)
    for task in late:
        log.warning("%s did not stop within %.0f s; cancelling it", task.get_name(), grace)
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
