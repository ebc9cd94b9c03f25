"""`scrm demo`: the whole product on one machine, with the WeCom simulator standing in for Tencent.

Starts the simulator and the service (SQLite, in-process Redis) on loopback, brings in the
sample company's customers through real signed callbacks, then lets you chat as a sales rep or
as a customer, in the terminal or in the browser console (/demo/, scrm.demo.console), and shows
the bot's replies and what got archived.

The demo keeps its own clock (DemoClock): wall time plus an offset the visitor can move forward.
The simulator and the schedule both read it, so "快进到次日 09:00" runs the 09:00 jobs and the
greetings they queue arrive at once instead of tomorrow morning.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import shlex
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

from aiohttp import web
from sqlalchemy import and_, func, or_, select, update

from config.settings import PageSettings, Settings, WeComSettings
from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import CallbackSender
from connectors.wecom.simulator.sample_data import sample_state
from connectors.wecom.simulator.server import SimulatorAccessLogger, create_simulator_app
from connectors.wecom.simulator.state import SimulatorState
from crm_core.audit import AuditService
from crm_core.birthdays import Birthday
from crm_core.db import utcnow
from crm_core.followups import FollowUpService
from crm_core.models import Customer, FollowUp, InboxItem, Message, OutboxItem, Staff
from scheduler.jobs import build_jobs
from scheduler.runner import ScheduledJob, Scheduler
from scrm import keys
from scrm.app import create_app, service_jobs, stop_tasks
from scrm.demo.console import CONSOLE, add_console
from scrm.demo.terminal import log_to_file, record_lines, render_markdown
from scrm.delivery.sender import message_text
from scrm.queue_worker import wake_idle

log = logging.getLogger(__name__)

DEMO_API_TOKEN = "demo-token"
ROLES_EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "roles.example.toml"
TICKET_ROUTING = Path(__file__).with_name("ticket_routing.toml")  # the sample company's support agents
# No `scheduler` role: the demo runs the schedule itself, on the demo clock.
DEMO_ROLES = frozenset({"web", "worker"})
TICK_SECONDS = 20.0
SETTLE_HORIZON = timedelta(seconds=1)

# What the sample company has coming, so that moving the clock shows something: a customer who
# agreed to care messages and has a birthday the day after the demo starts, and a follow-up the
# rep let slip the day before.
BIRTHDAY_CUSTOMER = "周杰"
BIRTHDAY_YEAR = 1988  # a leap year, so any day of the year is a valid birthday
OVERDUE_FOLLOWUP = ("zhangwei", "孙丽", "把新品报价单发给孙总")

HELP = """Type a line to send it as the current persona. Commands:
  /rep USERID        chat as a staff member (zhangwei, lina, wangfang, liuyang, chenjing)
  /customer NAME     chat as a customer through 微信客服 (e.g. /customer 赵磊)
  /record NAME       show a customer's record and latest messages
  /customers         list archived customers
  /help              this text
  /quit              stop the demo"""

TOUR = [
    ("rep", "zhangwei", "帮助"),
    ("rep", "zhangwei", "查 赵磊"),
    ("customer", "赵磊", "你好，我想要一份新的报价单，这周能发给我吗？"),
    ("customer", "赵磊", "上次的货用了两天就坏了，不给退款我就去12315投诉"),
    ("rep", "zhangwei", "查 华东"),
    ("rep", "zhangwei", "我的客户 热度"),
    ("record", "赵磊", ""),
]


class DemoClock:
    """Wall time plus an offset that only grows: the visitor fast-forwards, nobody rewinds."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return utcnow() + self.offset

    def timestamp(self) -> float:
        return self.now().timestamp()

    def move_to(self, at: datetime) -> None:
        self.offset = max(self.offset, at - utcnow())


@dataclass(frozen=True)
class ClockPreset:
    """A button of the console's 快进时间 bar: where it moves the clock, and what to look for there."""

    key: str
    label: str
    hint: str
    target: datetime


@dataclass(frozen=True)
class Exchange:
    """What one chat line caused: the messages WeCom (the simulator) delivered, and the archive rows."""

    sent: list[dict]
    archived: list[Message]


def _on_clock(job: ScheduledJob, clock: DemoClock) -> ScheduledJob:
    """Jobs that read the wall clock themselves (care: is the run late?) read the demo clock instead."""
    if "clock" in inspect.signature(job.run).parameters:
        return replace(job, run=functools.partial(job.run, clock=clock.now))
    return job


def latest_fire(job: ScheduledJob, after: datetime, until: datetime, settings: Settings) -> datetime | None:
    """The job's last scheduled time in (after, until]: a jump over several runs runs it once, as
    the service does when it comes back from downtime."""
    trigger, latest = job.trigger(settings.tz), None
    fire = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    while fire is not None and fire <= until:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return latest


class Demo:
    def __init__(self, app: web.Application, sim: SimulatorState, clock: DemoClock):
        self.app, self.sim, self.clock = app, sim, clock
        self.sender: CallbackSender | None = None  # set by connect(), once the service listens
        self.persona = ("rep", "zhangwei")
        self.msg_id = int(time.time()) * 1000
        self.lock = asyncio.Lock()  # one exchange or clock move at a time, from the terminal or the browser
        self.started_at = clock.now()
        self.scheduled_until = self.started_at
        self.scheduler: Scheduler | None = None

    @property
    def settings(self) -> Settings:
        return self.app[keys.SETTINGS]

    def sessions(self):
        return self.app[keys.SESSIONS]()

    def connect(self, service_url: str) -> None:
        crypto = CallbackCrypto(self.sim.callback_token, self.sim.encoding_aes_key, self.sim.corp_id)
        self.sender = CallbackSender(self.app[keys.HTTP], f"{service_url}/wecom/callback", crypto,
                                     corp_id=self.sim.corp_id, agent_id=str(self.sim.agent_id))

    async def schedule_ctx(self, app: web.Application) -> AsyncIterator[None]:
        """The schedule on the demo clock: a tick every TICK_SECONDS runs whatever fell due since the last."""
        jobs = build_jobs(self.settings, service_jobs(app[keys.WECOM], self.settings))
        self.scheduler = Scheduler([_on_clock(job, self.clock) for job in jobs], app[keys.SESSIONS], app[keys.REDIS],
                                   self.settings.tz, clock=self.clock.now)
        stopping = asyncio.Event()

        async def keep_time() -> None:
            while not stopping.is_set():
                try:
                    await asyncio.wait_for(stopping.wait(), timeout=TICK_SECONDS)
                except TimeoutError:
                    try:
                        async with self.lock:
                            await self.run_due_jobs()
                    except Exception:
                        log.exception("demo clock tick failed; trying again at the next tick")

        task = asyncio.create_task(keep_time(), name="demo-clock")
        yield
        stopping.set()
        await stop_tasks({task})

    async def run_due_jobs(self) -> list[str]:
        """Run each job whose scheduled time passed on the demo clock since the last look, oldest
        first, then let out the messages held for a time that has now come. Caller holds the lock."""
        until = self.clock.now()
        due = sorted(((fire, name) for name, job in self.scheduler.jobs.items()
                      if (fire := latest_fire(job, self.scheduled_until, until, self.settings)) is not None))
        ran = [name for fire, name in due if await self.scheduler.run_job(name, fire) is not None]
        self.scheduled_until = until
        await self.release_held()
        return ran

    async def release_held(self) -> None:
        """Outbox rows held until a moment the demo clock has passed (quiet hours, or a job's own
        "not before now", read on the demo clock) are due now. The workers compare with the wall
        clock, so the demo moves those rows to it."""
        now, until = utcnow(), self.clock.now()
        async with self.sessions() as session:
            released = (await session.execute(
                update(OutboxItem)
                .where(OutboxItem.status == "pending", OutboxItem.available_at > now, OutboxItem.available_at <= until)
                .values(available_at=now)
            )).rowcount
            await session.commit()
        if released:
            wake_idle(self.app[keys.OUTBOX_WORKERS])

    async def advance(self, to: datetime) -> list[str]:
        """Move the clock to `to`, run what fell due, and wait until the messages are out."""
        async with self.lock:
            self.clock.move_to(to)
            self.sim.transfer_book.settle(self.sim, due_only=True)  # WeCom's 24 hours for 转交 passed
            ran = await self.run_due_jobs()
            await self.wait_until_settled()
        return ran

    def presets(self) -> list[ClockPreset]:
        """+1 hour, the next day's 08:30, 09:00 and 18:00 (counted from the day the demo started), +1 day."""
        tz, now = self.settings.tz, self.clock.now()
        next_day = self.started_at.astimezone(tz).date() + timedelta(days=1)

        def on_next_day(hour: int, minute: int) -> datetime:
            return datetime.combine(next_day, clock_time(hour, minute), tzinfo=tz)

        return [
            ClockPreset("hour", "+1 小时", "到点的跟进提醒", now + timedelta(hours=1)),
            ClockPreset("morning", "次日 08:30", "销售的晨间待办", on_next_day(8, 30)),
            ClockPreset("nine", "次日 09:00", f"{BIRTHDAY_CUSTOMER}的生日祝福", on_next_day(9, 0)),
            ClockPreset("evening", "次日 18:00", "主管日报", on_next_day(18, 0)),
            ClockPreset("day", "+1 天", "工单超时升级", now + timedelta(days=1)),
        ]

    async def wait_until_settled(self, timeout: float = 15.0) -> None:
        """Poll the queues (the workers run in the background) until nothing due is left to do.
        Rows held for later (quiet hours, retry backoff) do not count; "due" reaches a second
        ahead so a row enqueued while the query runs is not mistaken for a held one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = utcnow() + SETTLE_HORIZON
            async with self.sessions() as session:
                busy = 0
                for model in (InboxItem, OutboxItem):
                    busy += await session.scalar(select(func.count()).select_from(model).where(or_(
                        model.status == "processing", and_(model.status == "pending", model.available_at <= now))))
            if not busy:
                return
            await asyncio.sleep(0.05)
        print("  (still working in the background...)")

    async def seed(self) -> None:
        """The sample company already has customers and customer groups in WeCom: they come in as on
        a real first start."""
        from scrm.ingest.context import IngestContext
        from scrm.sync.customers import sync_on_first_start
        from scrm.sync.directory import role_map
        from scrm.sync.groups import sync_groups_on_first_start

        sessions, wecom, roles = self.app[keys.SESSIONS], self.app[keys.WECOM], role_map(self.settings)
        await sync_on_first_start(sessions, wecom, roles=roles)
        await sync_groups_on_first_start(sessions, wecom,
                                         IngestContext(wecom=wecom, timezone=self.settings.tz, roles=roles).staff)
        await self.wait_until_settled()
        await self.plant_upcoming()

    async def plant_upcoming(self) -> None:
        """What the sample company has coming (see BIRTHDAY_CUSTOMER), written as a rep would have
        recorded it: a birthday with consent, and yesterday's follow-up, already reminded."""
        tz = self.settings.tz
        today = self.started_at.astimezone(tz).date()
        birthday = today + timedelta(days=1)
        rep_userid, customer_name, text = OVERDUE_FOLLOWUP
        async with self.sessions() as session:
            celebrant = await session.scalar(select(Customer).where(Customer.name == BIRTHDAY_CUSTOMER))
            celebrant.birthday = Birthday(birthday.month, birthday.day, year=BIRTHDAY_YEAR)
            celebrant.care_consent = True
            AuditService(session).record(actor="demo", action="customer.care_consent", customer_id=celebrant.id,
                                         detail="off -> on (sample data: birthday and consent)")
            rep = await session.scalar(select(Staff).where(Staff.userid == rep_userid))
            customer = await session.scalar(select(Customer).where(Customer.name == customer_name))
            planted = await session.scalar(select(FollowUp.id).where(
                FollowUp.customer_id == customer.id, FollowUp.text == text, FollowUp.status == "open"))
            if planted is None:  # not yet, or --keep-data kept the last run's
                due = datetime.combine(today - timedelta(days=1), clock_time(16, 0), tzinfo=tz)
                follow_up = await FollowUpService(session).add(customer, rep, due, text, at=due - timedelta(days=2))
                follow_up.reminded_at = due
            await session.commit()

    def customer_id_for(self, name: str) -> str | None:
        return next((k for k, c in self.sim.external_contacts.items() if c["external_contact"]["name"] == name), None)

    async def exchange(self, kind: str, who: str, text: str) -> Exchange:
        """Send one line as a staff member (`rep`, by userid: an app message callback) or a customer
        (`customer`, by external_userid: a 微信客服 message and its kf_msg_or_event callback), and
        wait until the service has answered. Raises RuntimeError when the callback is refused."""
        async with self.lock:
            app_before, kf_before = len(self.sim.sent_app_messages), len(self.sim.sent_kf_messages)
            async with self.sessions() as session:
                last_id = await session.scalar(select(func.max(Message.id))) or 0
            self.msg_id += 1
            if kind == "rep":
                status, _ = await self.sender.text(who, text, msg_id=self.msg_id)
            else:
                kfid = next(iter(self.sim.kf_accounts))
                token = self.sim.kf_customer_writes(kfid, who, text)
                status, _ = await self.sender.kf_msg_or_event(token, kfid)
            if status != 200:
                raise RuntimeError(f"the service answered HTTP {status}")
            await self.wait_until_settled()
            sent = self.sim.sent_app_messages[app_before:] + self.sim.sent_kf_messages[kf_before:]
            async with self.sessions() as session:
                archived = (await session.scalars(select(Message).where(Message.id > last_id).order_by(Message.id))).all()
        return Exchange(sent, list(archived))

    async def say(self, text: str) -> None:
        kind, who = self.persona
        try:
            exchange = await self.exchange(kind, who if kind == "rep" else self.customer_id_for(who), text)
        except RuntimeError as exc:
            print(f"  ! {exc}")
            return
        for message in exchange.sent:
            body = render_markdown(message_text(message), colour=sys.stdout.isatty())
            print(f"  🤖 bot → {message.get('touser') or message.get('external_userid')}:")
            print("     " + body.replace("\n", "\n     "))
        for message in exchange.archived:
            text = render_markdown(message.text, colour=False) if message.msg_type == "markdown" else message.text
            print(f"  🗄  archived #{message.id} [{message.channel} {message.direction}] {text[:60]!r}"
                  + (f" → customer #{message.customer_id}" if message.customer_id else ""))
            if message.analysis:
                a = message.analysis
                print(f"      analysis: {a['label']} ({a['sentiment']:+.2f})  tags {', '.join(a['tags']) or '-'}"
                      f"  intents {', '.join(f'{k} {v:.2f}' for k, v in a['intents'].items()) or '-'}")

    async def show_record(self, name: str) -> None:
        """The record the browser console shows, as text: Chinese labels, times in the business zone."""
        async with self.sessions() as session:
            customer_id = await session.scalar(select(Customer.id).where(Customer.name == name))
        if customer_id is None:
            print(f"  没有叫「{name}」的客户")
            return
        record = await self.app[CONSOLE].record(customer_id)
        print("\n".join(record_lines(record, self.settings.timezone)))

    async def list_customers(self) -> None:
        async with self.sessions() as session:
            for c in (await session.scalars(select(Customer).order_by(Customer.id))).all():
                print(f"  #{c.id} {c.name} ({c.company}) owner={c.owner.userid if c.owner else '-'}")

    async def handle(self, line: str) -> bool:
        """One line of input; False means quit."""
        if not line.startswith("/"):
            if line.strip():
                await self.say(line.strip())
            return True
        command, *args = shlex.split(line) or ["/help"]
        if command == "/quit":
            return False
        if command == "/rep" and args and args[0] in self.sim.staff:
            self.persona = ("rep", args[0])
        elif command == "/customer" and args and self.customer_id_for(args[0]):
            self.persona = ("customer", args[0])
        elif command == "/record" and args:
            await self.show_record(args[0])
        elif command == "/customers":
            await self.list_customers()
        else:
            print(HELP)
        return True

    async def tour(self) -> None:
        for kind, who, text in TOUR:
            if kind == "record":
                print(f"\n── record of {who} ──")
                await self.show_record(who)
                continue
            self.persona = (kind, who)
            print(f"\n{who} ({'sales rep' if kind == 'rep' else 'customer via 微信客服'}): {text}")
            await self.say(text)

    async def chat(self) -> None:
        print(HELP)
        while True:
            prompt = f"\n[{self.persona[1]} as {self.persona[0]}] > "
            try:
                line = await asyncio.to_thread(input, prompt)
            except EOFError:
                return
            if not await self.handle(line):
                return


@dataclass(frozen=True)
class RunningDemo:
    demo: Demo
    service_url: str
    simulator_url: str
    db_path: Path

    @property
    def console_url(self) -> str:
        return f"{self.service_url}/demo/"


class PortBusyError(OSError):
    """The service's port is taken; the message says how to pick a free one."""


@asynccontextmanager
async def running_demo(*, port: int = 8080, keep_data: bool = False,
                       data_dir: Path = Path("data")) -> AsyncIterator[RunningDemo]:
    """The simulator and the service with the browser console, listening on loopback and seeded
    with the sample company; everything is stopped on exit."""
    db_path = data_dir / "demo.sqlite3"
    if not keep_data:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    clock = DemoClock()
    sim = sample_state(now=clock.timestamp)
    sim_runner = web.AppRunner(create_simulator_app(sim), access_log_class=SimulatorAccessLogger)
    await sim_runner.setup()
    try:
        await web.TCPSite(sim_runner, "127.0.0.1", 0).start()
        sim_url = f"http://127.0.0.1:{sim_runner.addresses[0][1]}"
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{db_path}",
            api_token=DEMO_API_TOKEN,
            data_dir=data_dir,
            roles_file=ROLES_EXAMPLE,
            ticket_routing_file=TICKET_ROUTING,
            wecom=WeComSettings(corp_id=sim.corp_id, secret=sim.secret, agent_id=str(sim.agent_id),
                                token=sim.callback_token, aes_key=sim.encoding_aes_key, api_base=f"{sim_url}/cgi-bin/",
                                oauth_url=f"{sim_url}/connect/oauth2/authorize"),
            # the pages log in through the simulator's OAuth and talk to its JS-SDK double
            pages=PageSettings(jssdk_urls=(f"{sim_url}/sim/jssdk/jweixin.js",)),
        )
        app = create_app(settings, DEMO_ROLES, clock=clock.now)
        demo = Demo(app, sim, clock)
        app.cleanup_ctx.append(demo.schedule_ctx)
        add_console(app, demo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            try:
                await web.TCPSite(runner, "127.0.0.1", port).start()
            except OSError as exc:
                raise PortBusyError(
                    f"Port {port} is busy ({exc.strerror}); try `scrm demo --port 0` for a free one.") from exc
            service_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            demo.connect(service_url)
            app[keys.DISPATCHER].page_base_url = service_url  # 我的客户 links to the sidebar
            await demo.seed()
            yield RunningDemo(demo, service_url, sim_url, db_path)
        finally:
            await runner.cleanup()
    finally:
        await sim_runner.cleanup()


async def run_demo(*, port: int = 8080, scripted: bool = False, keep_data: bool = False, data_dir: Path = Path("data")) -> int:
    print("Bringing in the sample company's existing WeCom customers (the first-start customer sync)...")
    try:
        log_path = log_to_file(data_dir / "demo.log")  # the terminal shows the chat only
        print(f"The service's log goes to {log_path} (tail -f it to watch).")
        async with running_demo(port=port, keep_data=keep_data, data_dir=data_dir) as running:
            demo = running.demo
            print(f"SCRM demo: service {running.service_url}  (API: curl -H 'Authorization: Bearer {DEMO_API_TOKEN}' "
                  f"{running.service_url}/api/v1/customers)\n           WeCom simulator {running.simulator_url}  "
                  f"data {running.db_path}\n           browser console {running.console_url}")
            await demo.list_customers()
            if scripted or not sys.stdin.isatty():
                await demo.tour()
            else:
                await demo.chat()
    except PortBusyError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0
