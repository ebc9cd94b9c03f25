"""`scrm demo`: the whole product on one machine, with the WeCom simulator standing in for Tencent.

Starts the simulator and the service (SQLite, in-process Redis) on loopback, brings in the
sample company's customers through real signed callbacks, then lets you chat as a sales rep or
as a customer and shows the bot's replies and what got archived.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy import func, select

from config.settings import Settings, WeComSettings
from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import CallbackSender
from connectors.wecom.simulator.sample_data import sample_state
from connectors.wecom.simulator.server import SimulatorAccessLogger, create_simulator_app
from connectors.wecom.simulator.state import SimulatorState
from crm_core.models import Customer, InboxItem, Message, OutboxItem
from scrm import keys
from scrm.app import create_app
from scrm.sender import message_text

DEMO_API_TOKEN = "demo-token"
ROLES_EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "roles.example.toml"

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
    ("record", "赵磊", ""),
]


class Demo:
    def __init__(self, app: web.Application, sim: SimulatorState, sender: CallbackSender):
        self.app, self.sim, self.sender = app, sim, sender
        self.persona = ("rep", "zhangwei")
        self.msg_id = int(time.time()) * 1000

    def sessions(self):
        return self.app[keys.SESSIONS]()

    async def wait_until_settled(self, timeout: float = 15.0) -> None:
        """Poll the queues (the workers run in the background) until nothing is left to do."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with self.sessions() as session:
                busy = await session.scalar(
                    select(func.count()).select_from(InboxItem).where(InboxItem.status.in_(("pending", "processing")))
                ) + await session.scalar(
                    select(func.count()).select_from(OutboxItem).where(OutboxItem.status.in_(("pending", "processing")))
                )
            if not busy:
                return
            await asyncio.sleep(0.05)
        print("  (still working in the background...)")

    async def seed(self) -> None:
        for external_userid, contact in self.sim.external_contacts.items():
            for follow in contact.get("follow_user", []):
                await self.sender.change_external_contact("add_external_contact", follow["userid"], external_userid)
        await self.wait_until_settled()

    def customer_id_for(self, name: str) -> str | None:
        return next((k for k, c in self.sim.external_contacts.items() if c["external_contact"]["name"] == name), None)

    async def say(self, text: str) -> None:
        kind, who = self.persona
        app_before, kf_before = len(self.sim.sent_app_messages), len(self.sim.sent_kf_messages)
        async with self.sessions() as session:
            last_id = await session.scalar(select(func.max(Message.id))) or 0
        self.msg_id += 1
        if kind == "rep":
            status, _ = await self.sender.text(who, text, msg_id=self.msg_id)
        else:
            kfid = next(iter(self.sim.kf_accounts))
            token = self.sim.kf_customer_writes(kfid, self.customer_id_for(who), text)
            status, _ = await self.sender.kf_msg_or_event(token, kfid)
        if status != 200:
            print(f"  ! the service answered HTTP {status}")
            return
        await self.wait_until_settled()
        sent = self.sim.sent_app_messages[app_before:] + self.sim.sent_kf_messages[kf_before:]
        for message in sent:
            body = message_text(message)
            print(f"  🤖 bot → {message.get('touser') or message.get('external_userid')}:")
            print("     " + body.replace("\n", "\n     "))
        async with self.sessions() as session:
            archived = (await session.scalars(select(Message).where(Message.id > last_id).order_by(Message.id))).all()
        for message in archived:
            print(f"  🗄  archived #{message.id} [{message.channel} {message.direction}] {message.text[:60]!r}"
                  + (f" → customer #{message.customer_id}" if message.customer_id else ""))
            if message.analysis:
                a = message.analysis
                print(f"      analysis: {a['label']} ({a['sentiment']:+.2f})  tags {', '.join(a['tags']) or '-'}"
                      f"  intents {', '.join(f'{k} {v:.2f}' for k, v in a['intents'].items()) or '-'}")

    async def show_record(self, name: str) -> None:
        async with self.sessions() as session:
            customer = await session.scalar(select(Customer).where(Customer.name == name))
            if customer is None:
                print(f"  no customer named {name}")
                return
            messages = (await session.scalars(
                select(Message).where(Message.customer_id == customer.id).order_by(Message.id.desc()).limit(10)
            )).all()
        owner = customer.owner.name if customer.owner else "-"
        mood = f"{customer.sentiment_score:+.2f}" if customer.sentiment_score is not None else "-"
        topics = ", ".join(f"{tag}×{v['count']}" for tag, v in (customer.tag_counts or {}).items()) or "-"
        print(f"  #{customer.id} {customer.name} | {customer.company} | owner {owner} | {customer.lifecycle} | "
              f"tags {', '.join(customer.wecom_tags) or '-'} | mood {mood} | topics {topics}")
        for m in reversed(messages):
            print(f"    {m.sent_at:%Y-%m-%d %H:%M} UTC [{m.channel} {m.direction}] {m.text[:70]}")

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


async def run_demo(*, port: int = 8080, scripted: bool = False, keep_data: bool = False, data_dir: Path = Path("data")) -> int:
    db_path = data_dir / "demo.sqlite3"
    if not keep_data:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    sim = sample_state()
    sim_runner = web.AppRunner(create_simulator_app(sim), access_log_class=SimulatorAccessLogger)
    await sim_runner.setup()
    sim_site = web.TCPSite(sim_runner, "127.0.0.1", 0)
    await sim_site.start()
    sim_url = f"http://127.0.0.1:{sim_runner.addresses[0][1]}"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{db_path}",
        api_token=DEMO_API_TOKEN,
        data_dir=data_dir,
        roles_file=ROLES_EXAMPLE,
        wecom=WeComSettings(corp_id=sim.corp_id, secret=sim.secret, agent_id=str(sim.agent_id), token=sim.callback_token,
                            aes_key=sim.encoding_aes_key, api_base=f"{sim_url}/cgi-bin/"),
    )
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except OSError as exc:
        await runner.cleanup()
        await sim_runner.cleanup()
        print(f"Port {port} is busy ({exc.strerror}); try `scrm demo --port 0` for a free one.", file=sys.stderr)
        return 1
    service_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with aiohttp.ClientSession() as http:
            crypto = CallbackCrypto(sim.callback_token, sim.encoding_aes_key, sim.corp_id)
            sender = CallbackSender(http, f"{service_url}/wecom/callback", crypto, corp_id=sim.corp_id, agent_id=str(sim.agent_id))
            demo = Demo(runner.app, sim, sender)
            print(f"SCRM demo: service {service_url}  (API: curl -H 'Authorization: Bearer {DEMO_API_TOKEN}' "
                  f"{service_url}/api/v1/customers)\n           WeCom simulator {sim_url}  data {db_path}")
            print("Importing the sample company's customers through signed WeCom callbacks...")
            await demo.seed()
            await demo.list_customers()
            if scripted or not sys.stdin.isatty():
                await demo.tour()
            else:
                await demo.chat()
    finally:
        await runner.cleanup()
        await sim_runner.cleanup()
    return 0
