"""Typed keys for everything the application holds; one place to see what a request can reach."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import aiohttp
from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.dispatcher import Dispatcher
from config.settings import Settings
from connectors.wecom.client import WeComClient
from crm_core.ticket_policy import TicketPolicy
from scrm.ingest.chat_archive_puller import ChatArchivePuller
from scrm.ingest.group_commit import GroupCommitInbox
from scrm.metrics import Metrics
from scrm.queue_worker import QueueWorker

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
REDIS = web.AppKey("redis", Redis)
HTTP = web.AppKey("http", aiohttp.ClientSession)
WECOM = web.AppKey("wecom", WeComClient)
INBOX_WORKERS = web.AppKey("inbox_workers", list[QueueWorker])
OUTBOX_WORKERS = web.AppKey("outbox_workers", list[QueueWorker])
ROLES = web.AppKey("roles", frozenset[str])
INBOX_WRITER = web.AppKey("inbox_writer", GroupCommitInbox)
WORKER_TASKS = web.AppKey("worker_tasks", set[asyncio.Task])
METRICS = web.AppKey("metrics", Metrics)
CHAT_ARCHIVE_PULLER = web.AppKey("chat_archive_puller", ChatArchivePuller)
TICKETS = web.AppKey("tickets", TicketPolicy)  # config/tickets.toml with this deployment's routing
DISPATCHER = web.AppKey("dispatcher", Dispatcher)  # the bot, in worker processes
FIRST_SYNC = web.AppKey("first_sync", asyncio.Task)  # a fresh install's first sync of its WeCom (worker role)
CLOCK = web.AppKey("clock", Callable[[], datetime])  # "now" for the bot and whatever reads time for a rep (the demo moves it)
PAGE_SECRET = web.AppKey("page_secret", str)  # signs the H5 pages' session cookies (scrm.http.pages.identity)
# This app's name on the new-inbox-rows channel (scrm.ingest.wakeups): its own workers, woken
# directly, skip its announcements.
WAKEUP_SENDER = web.AppKey("wakeup_sender", bytes)
