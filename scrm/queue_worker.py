"""The loop that drains a durable queue (inbox or outbox): claim, process, finish or fail.

Work and "done" commit together: a row is marked finished in the transaction that did its work.
An exception rolls the work back; what happens next (wait without using an attempt, back off and
retry, or park the row now) is scrm.retries' decision, the one place retry rules live.

A processor with a `batchable(row)` method lets consecutive rows it admits share one transaction
(one BEGIN, one lease check, one COMMIT instead of one each per row: most of a chat message's
cost); its `prepare_batch(session, rows)`, if it has one, loads what those rows share in one go
first. If anything in such a batch fails, the batch is rolled back as a whole and its rows are
processed again one at a time, so a bad row still fails alone, with its own error and attempts.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any, Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core import work_queue
from crm_core.db import utcnow
from crm_core.after_commit import run_after_commit
from crm_core.work_queue import QueueRow
from scrm import retries

log = logging.getLogger(__name__)

# process(session, row) -> column values to set when finishing (e.g. {"status": "done"})
Processor = Callable[[AsyncSession, Any], Awaitable[dict[str, Any]]]
# (row, result, exception or None) after each attempt, for metrics; result is the finished
# status ("done", "sent"), "retry", "parked" or "lost" (another worker holds the lease now)
OutcomeCallback = Callable[[Any, str, BaseException | None], None]


class QueueWorker:
    def __init__(
        self,
        name: str,
        model: type[QueueRow],
        sessions: async_sessionmaker[AsyncSession],
        process: Processor,
        *,
        max_attempts: int,
        lease_seconds: float = 60.0,
        batch_size: int = 20,
        batch_seconds: float = 0.2,
        idle_interval: float = 0.5,
        on_parked: Callable[[Any, str], Awaitable[None]] | None = None,
        on_outcome: OutcomeCallback | None = None,
    ):
        self.name = name
        self.model = model
        self.sessions = sessions
        self.process = process
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self.idle_interval = idle_interval
        self.on_parked = on_parked
        self.on_outcome = on_outcome
        self.worker_id = f"{name}-{uuid.uuid4().hex[:10]}"
        self.wakeup = asyncio.Event()
        self.waiting = False  # in the idle wait between claims that found nothing
        # The workers sharing this queue in this process (see wake_idle); a full claim wakes one of them.
        self.crew: Sequence[QueueWorker] = (self,)
        self.stopping = asyncio.Event()
        # Rows are still leased to us whose outcome could not be recorded (the database went away
        # mid-row); the next claim hands them back first, instead of leaving them for the lease.
        self.stranded = False

    def notify(self) -> None:
        """Called by producers in this process so new rows are picked up without waiting a poll."""
        self.wakeup.set()

    def stop(self) -> None:
        """Finish the rows in hand, then return: cancelling mid-transaction can strand a connection."""
        self.stopping.set()
        self.wakeup.set()

    async def run(self) -> None:
        log.info("%s started", self.worker_id)
        outage = False
        while not self.stopping.is_set():
            # Cleared before the claim, not after it: a notify() or stop() that comes while the claim
            # runs then cuts the idle wait short instead of being wiped out by it.
            self.wakeup.clear()
            try:
                handled = await self.run_once()
                if outage:
                    log.warning("%s: the database and Redis answer again; carrying on", self.worker_id)
                    outage = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not retries.is_outage(exc):
                    log.exception("%s: claiming failed; retrying", self.worker_id)
                elif not outage:  # once per outage, not once a second
                    log.warning("%s: the database or Redis is unreachable (%r); retrying every second", self.worker_id, exc)
                    outage = True
                handled = 0
                await asyncio.sleep(1.0)
            if handled == 0:
                self.waiting = True
                try:
                    await asyncio.wait_for(self.wakeup.wait(), timeout=self.idle_interval)
                except TimeoutError:
                    pass
                finally:
                    self.waiting = False

    async def run_once(self) -> int:
        """Claim and process one batch; returns how many rows were claimed."""
        async with self.sessions() as session:
            if self.stranded:
                released = await work_queue.release(session, self.model, self.worker_id)
                self.stranded = False
                log.warning("%s: took back %d %s row(s) left in hand when the connection failed", self.worker_id,
                            released, self.model.__tablename__)
            rows = await work_queue.claim(
                session, self.model, worker_id=self.worker_id, limit=self.batch_size, lease_seconds=self.lease_seconds
            )
        if not rows:
            return 0
        if len(rows) == self.batch_size:  # more may be due: a colleague claims them while this batch runs
            wake_idle([worker for worker in self.crew if worker is not self])
        done = asyncio.Event()
        keeper = asyncio.create_task(self._keep_leased([row.id for row in rows], done))
        try:
            await self._process_claimed(rows)
        finally:
            done.set()
            await keeper
        return len(rows)

    async def _process_claimed(self, rows: list[QueueRow]) -> None:
        for run in self._runs(rows):
            while len(run) > 1:
                committed = await self._handle_together(run)
                if not committed:
                    break
                run = run[committed:]
            for row in run:
                if self.stranded:  # the database is gone: the rest wait for `release`, not a lease
                    return
                await self._handle(row)

    async def _keep_leased(self, ids: list[int], done: asyncio.Event) -> None:
        """Renew the lease on the claimed rows not finished yet, every half lease, until `done`: the last
        rows of a slow batch (WeCom throttling the sends before them) must not be claimed by another
        worker while they wait their turn here, or a reply would go out twice."""
        while True:
            try:
                await asyncio.wait_for(done.wait(), timeout=self.lease_seconds / 2)
                return
            except TimeoutError:
                pass
            try:
                async with self.sessions() as session:
                    await work_queue.extend(session, self.model, ids, self.worker_id, lease_seconds=self.lease_seconds)
            except Exception as exc:  # the rows' own processing meets the same outage and deals with it
                log.warning("%s: could not renew the lease on %d %s row(s): %r", self.worker_id, len(ids),
                            self.model.__tablename__, exc)

    def _runs(self, rows: list[QueueRow]) -> list[list[QueueRow]]:
        """Claimed rows in order, grouped into runs that may share a transaction."""
        batchable = getattr(self.process, "batchable", None)
        runs: list[tuple[list[QueueRow], bool]] = []
        for row in rows:
            together = batchable is not None and batchable(row)
            if together and runs and runs[-1][1]:
                runs[-1][0].append(row)
            else:
                runs.append(([row], together))
        return [run for run, _ in runs]

    async def _handle_together(self, rows: list[QueueRow]) -> int:
        """Process the first rows in one transaction, for at most `batch_seconds` (on SQLite the
        transaction holds the only connection, which callback acks wait for); returns how many were
        committed, 0 (nothing kept) if any of them failed or a lease was lost."""
        finished: list[tuple[int, dict[str, Any]]] = []
        try:
            async with self.sessions() as session:
                deadline = time.monotonic() + self.batch_seconds
                prepare = getattr(self.process, "prepare_batch", None)
                if prepare is not None:
                    await prepare(session, rows)
                for row in rows:
                    finished.append((row.id, await self.process(session, row)))
                    if time.monotonic() >= deadline:
                        break
                if not await work_queue.finish_many(session, self.model, self.worker_id, finished):
                    await session.rollback()
                    return 0
                await session.commit()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("%s: a batch of %d %s failed (%r); processing them one at a time", self.worker_id, len(rows),
                     self.model.__tablename__, exc)
            return 0
        for row, (_, values) in zip(rows, finished):
            self._report(row, str(values.get("status", "done")), None)
        await run_after_commit(session)
        return len(finished)

    async def drain(self, *, max_rounds: int = 1000) -> None:
        """Process until nothing is due (tests, CLI one-shots)."""
        for _ in range(max_rounds):
            if await self.run_once() == 0:
                return

    async def _handle(self, row: QueueRow) -> None:
        try:
            await self._attempt(row)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stranded = True
            log.warning("%s: could not record the outcome of %s %s (%r); it is taken back once the database answers",
                        self.worker_id, self.model.__tablename__, row.id, exc)

    async def _attempt(self, row: QueueRow) -> None:
        try:
            async with self.sessions() as session:
                values = await self.process(session, row)
                if await work_queue.finish(session, self.model, row.id, self.worker_id, **values):
                    await session.commit()
                    self._report(row, str(values.get("status", "done")), None)
                    await run_after_commit(session)
                else:
                    await session.rollback()
                    self._report(row, "lost", None)
                    log.warning("%s: lost the lease on %s %s; its new holder finishes it", self.worker_id, self.model.__tablename__, row.id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            retry = retries.decide(exc, row.attempts)
            if not retry.uses_attempt:
                async with self.sessions() as session:
                    await work_queue.defer(session, self.model, row.id, self.worker_id, retry_in=retry.after,
                                           reason=f"{type(exc).__name__}: {exc}", now=utcnow())
                self._report(row, "deferred", None)
                log.warning("%s: %s %s deferred %.0f s: %r", self.worker_id, self.model.__tablename__, row.id,
                            retry.after, exc)
                return
            log.warning(
                "%s: %s %s failed (attempt %s): %r", self.worker_id, self.model.__tablename__, row.id, row.attempts, exc,
                exc_info=not retry.expected,
            )
            async with self.sessions() as session:
                status = await work_queue.fail(
                    session, self.model, row.id, self.worker_id,
                    error=f"{type(exc).__name__}: {exc}",
                    max_attempts=0 if retry.gives_up else self.max_attempts,
                    retry_in=retry.after or 0.0,
                    now=utcnow(),
                )
            self._report(row, "retry" if status == "pending" else status, exc)
            if status == "parked":
                log.error("%s: parked %s %s after %s attempt(s): %r", self.worker_id, self.model.__tablename__, row.id, row.attempts, exc)
                if self.on_parked is not None:
                    try:
                        await self.on_parked(row, f"{type(exc).__name__}: {exc}")
                    except Exception:
                        log.exception("%s: could not report parked %s %s", self.worker_id, self.model.__tablename__, row.id)

    def _report(self, row: QueueRow, result: str, error: BaseException | None) -> None:
        if self.on_outcome is not None:
            self.on_outcome(row, result, error)



def wake_idle(workers: Sequence[QueueWorker]) -> None:
    """New rows are due: wake one idle worker, which claims them (up to its batch; a full claim wakes
    the next). Waking every one of the four PostgreSQL inbox workers cost three empty claims, a
    transaction each, per message, beside the one doing the work. None idle: all are told, so one
    whose claim just came back empty looks again instead of sleeping out its poll."""
    for worker in workers:
        if worker.waiting and not worker.wakeup.is_set():
            worker.notify()
            return
    for worker in workers:
        worker.notify()
