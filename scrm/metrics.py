"""Prometheus metrics for one app, recorded at the composition layer.

Each app owns its `CollectorRegistry` (tests build many apps in one process, and a global
registry would refuse the second). The connectors, bot, worker and scheduler code take plain
observer callbacks; only this module knows Prometheus. Labels are small fixed sets (results,
outbox kinds, error class names, command and job names), never user ids.

Queue depth and inbox lag are read from the database when /metrics is scraped, so they are
right however many worker processes share the queues.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.db import utcnow
from crm_core.models import QUEUE_ACTIVE_STATUSES, InboxItem, OutboxItem
from scheduler.runner import JobContext, ScheduledJob

log = logging.getLogger(__name__)

CALLBACK_RESULTS = ("accepted", "duplicate", "bad_signature", "stale", "bad_request", "unavailable")
ACKED = frozenset({"accepted", "duplicate"})
# Rows still owed work or an operator's attention; done/sent rows are history and not counted
# at scrape time (that would scan the whole table), the *_total counters cover them.
DEPTH_STATUSES = (*QUEUE_ACTIVE_STATUSES, "parked")
OUTBOX_KINDS = ("app_message", "kf_message", "msg_template")

FAST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
NLP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    """Every metric the service exposes, with the observer callbacks that feed them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.callbacks = Counter("scrm_callbacks", "WeCom callbacks received, by result", ["result"], registry=r)
        self.callback_ack = Histogram(
            "scrm_callback_ack_seconds", "Time to store and ack a valid WeCom callback (WeCom retries after 5 s)",
            buckets=FAST_BUCKETS, registry=r,
        )
        self.inbox_processed = Counter(
            "scrm_inbox_processed", "Inbox rows processed, by result (done, retry, parked, lost)", ["result"], registry=r
        )
        self.inbox_failures = Counter(
            "scrm_inbox_failures", "Failed inbox processing attempts, by exception class", ["error"], registry=r
        )
        self.outbox_sends = Counter(
            "scrm_outbox_sends", "Outbox send attempts, by kind and result (sent, retry, parked, lost)",
            ["kind", "result"], registry=r,
        )
        self.outbox_failures = Counter(
            "scrm_outbox_send_failures", "Failed outbox send attempts, by kind and exception class",
            ["kind", "error"], registry=r,
        )
        self.queue_items = Gauge(
            "scrm_queue_items", "Inbox and outbox rows by status (pending, processing, parked), read at scrape time",
            ["queue", "status"], registry=r,
        )
        self.inbox_lag = Gauge(
            "scrm_inbox_lag_seconds", "Age of the oldest inbox row not yet processed (0 when none), read at scrape time",
            registry=r,
        )
        self.database_up = Gauge(
            "scrm_database_up", "1 when the scrape-time queue query succeeded, 0 when the database did not answer",
            registry=r,
        )
        self.command_seconds = Histogram(
            "scrm_bot_command_seconds", "Bot command handling time, by command name", ["command"],
            buckets=FAST_BUCKETS, registry=r,
        )
        self.analysis_seconds = Histogram(
            "scrm_nlp_analysis_seconds", "NLP analysis time per customer message (inline or in a thread)", ["mode"],
            buckets=NLP_BUCKETS, registry=r,
        )
        self.job_runs = Counter(
            "scrm_scheduler_runs", "Scheduled job runs, by job and status (done, failed)", ["job", "status"], registry=r
        )
        self.job_last_success = Gauge(
            "scrm_scheduler_last_success_timestamp_seconds", "Unix time the job last finished without error",
            ["job"], registry=r,
        )
        for result in CALLBACK_RESULTS:
            self.callbacks.labels(result=result)
        for kind in OUTBOX_KINDS:
            self.outbox_sends.labels(kind=kind, result="sent")

    def observe_callback(self, result: str, seconds: float) -> None:
        self.callbacks.labels(result=result).inc()
        if result in ACKED:
            self.callback_ack.observe(seconds)

    def queue_observer(self, queue: str) -> Callable[[Any, str, BaseException | None], None]:
        """The QueueWorker `on_outcome` callback for the inbox or the outbox."""

        def observe(row: Any, result: str, error: BaseException | None) -> None:
            if queue == "outbox":
                self.outbox_sends.labels(kind=row.kind, result=result).inc()
                if error is not None:
                    self.outbox_failures.labels(kind=row.kind, error=type(error).__name__).inc()
            else:
                self.inbox_processed.labels(result=result).inc()
                if error is not None:
                    self.inbox_failures.labels(error=type(error).__name__).inc()

        return observe

    def observe_command(self, command: str, seconds: float) -> None:
        self.command_seconds.labels(command=command).observe(seconds)

    def observe_analysis(self, mode: str, seconds: float) -> None:
        self.analysis_seconds.labels(mode=mode).observe(seconds)

    def instrument_job(self, job: ScheduledJob) -> ScheduledJob:
        """The same job, counting its runs; the scheduler package stays free of Prometheus."""
        run = job.run

        async def counted(ctx: JobContext) -> str:
            try:
                summary = await run(ctx)
            except Exception:
                self.job_runs.labels(job=job.name, status="failed").inc()
                raise
            self.job_runs.labels(job=job.name, status="done").inc()
            self.job_last_success.labels(job=job.name).set(time.time())
            return summary

        return dataclasses.replace(job, run=counted)

    async def refresh_queues(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Depth by status and inbox lag: one query per queue, on the (status, available_at) index."""
        try:
            async with sessions() as session:
                inbox = await _queue_stats(session, InboxItem, InboxItem.received_at)
                outbox = await _queue_stats(session, OutboxItem, OutboxItem.created_at)
        except Exception as exc:
            log.warning("metrics: queue depth query failed: %r", exc)
            self.database_up.set(0)
            return
        self.database_up.set(1)
        for queue, stats in (("inbox", inbox), ("outbox", outbox)):
            for status in DEPTH_STATUSES:
                self.queue_items.labels(queue=queue, status=status).set(stats.get(status, (0, None))[0])
        oldest = [since for status, (_, since) in inbox.items() if status in QUEUE_ACTIVE_STATUSES and since is not None]
        self.inbox_lag.set(max(0.0, (utcnow() - min(oldest)).total_seconds()) if oldest else 0.0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def _queue_stats(
    session: AsyncSession, model: type[InboxItem] | type[OutboxItem], since_column: Any
) -> dict[str, tuple[int, Any]]:
    rows = await session.execute(
        select(model.status, func.count(), func.min(since_column))
        .where(model.status.in_(DEPTH_STATUSES))
        .group_by(model.status)
    )
    return {status: (count, oldest) for status, count, oldest in rows}


def metrics_routes(metrics: Metrics, sessions: Callable[[], async_sessionmaker[AsyncSession]]) -> list[web.RouteDef]:
    """GET /metrics in the Prometheus text format; `sessions` is read per scrape (it opens at startup).

    Unauthenticated like /healthz: the labels hold no personal data. Keep it off the public
    internet at the reverse proxy (only /wecom/callback needs to be reachable by WeCom).
    """

    async def view(request: web.Request) -> web.Response:
        await metrics.refresh_queues(sessions())
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return [web.get("/metrics", view)]
