"""`scrm bench lookup`: customer lookups from chat against 100k–1M synthetic customers.

Fills an empty database with realistic Chinese names, companies and phone numbers (or reuses
one already filled to the same size), runs `scrm serve --roles web,worker` as its own process
against an in-process WeCom simulator, then sends `查 <query>` callbacks one at a time from admins in turn
(scope: every customer, the widest search) and times each from the POST until its reply row is
in the outbox (the row's created_at, stamped in the transaction that commits it, minus the POST's
start; both clocks are this machine's). Queries are a random customer's full name, its pinyin initials and
its phone's last four digits, then the name again as reps type it without the command syntax (查张三,
帮我查下张三的资料, a bare 张三), which adds the understanding layer (bot/understanding) to the path. A
`帮助` row measures the same path without a customer search.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy import delete, func, insert, select

from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import build_plaintext_text
from connectors.wecom.simulator.sample_data import sample_state
from connectors.wecom.simulator.server import SimulatorAccessLogger, create_simulator_app
from crm_core.db import create_engine, session_factory
from crm_core.migrate import refresh_statistics, upgrade
from crm_core.models import Customer, InboxItem, OutboxItem, Staff
from crm_core.search_keys import name_keys, phone_tail
from scrm.bench.processes import free_port, percentile, wait_healthy

# Lookups come from many admins (scope: every customer, the widest search), in turn, as a company's
# traffic does: from one member, the replies would pass WeCom's 30 app messages a minute to a member
# and the outbox would spend the run re-deferring hundreds of them beside the timed path.
BENCH_ADMINS = [f"bench_admin_{i}" for i in range(100)]
REPS = 50
# Lifecycle stages of customers still in touch, roughly as a B2B sales book looks (crm_core.lifecycle).
ACTIVE_STAGES = (("prospect", 45), ("interested", 25), ("customer", 20), ("loyal", 7), ("churned", 3))
# Common surnames first: the weights below make 王/李/张 as frequent as they are in life.
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟"
            "谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
GIVEN = ("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚英华玉萍红玲芬燕彬鹏辉斌宇浩凯健俊帆旭宁婷雪琳晶欣怡佳悦思雨涵轩晨阳博"
         "文诺馨然琪建国志海春梅秋菊新民永刚立峰岩坤鑫波亮蕾倩颖瑶慧琴云飞龙凤琦璐蓉")
CITIES = ("华东", "华南", "上海", "杭州", "苏州", "南京", "宁波", "合肥", "无锡", "常州", "温州", "嘉兴", "绍兴", "金华", "台州",
          "广州", "深圳", "东莞", "佛山", "厦门", "福州", "青岛", "济南", "天津", "北京", "武汉", "长沙", "成都", "重庆", "西安")
WORDS = ("精密", "恒达", "云帆", "绿源", "海兴", "晨光", "启明", "宏图", "鼎盛", "华瑞", "金桥", "信达", "远航", "同创", "汇通",
         "锦程", "嘉禾", "天成", "博远", "中联", "新锐", "盛世", "永泰", "联合", "东方", "润泽", "正和", "万达", "星河", "明德")
TRADES = ("机械", "电子", "贸易", "食品", "物流", "文化传媒", "教育", "科技", "化工", "建材", "纺织", "医疗器械", "汽车配件",
          "包装", "五金", "家具", "服饰", "环保", "能源", "软件")
SUFFIXES = ("有限公司", "有限公司", "股份有限公司", "集团有限公司", "贸易商行")
MOBILE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155", "158", "159",
                   "166", "176", "177", "180", "181", "182", "186", "187", "188", "189", "199")
KINDS = ("name", "initials", "phone_tail")
# The same names typed the way reps talk (bot/understanding): each line's reply is the card or the pick list.
SPOKEN = {"unspaced": "查{}", "sentence": "帮我查下{}的资料", "bare": "{}"}
FLOOR = "帮助"  # the same path with no customer search: what callback, queues and outbox cost alone


def cmd_lookup(args: argparse.Namespace) -> int:
    return asyncio.run(run_lookup(args))


def synthetic_customers(count: int, owner_ids: list[int], rng: random.Random, now: datetime):
    """Batches of customer rows; names, companies and phones drawn like real ones (duplicates included)."""
    surname_weights = [1 / (rank + 1) ** 0.8 for rank in range(len(SURNAMES))]
    batch: list[dict] = []
    for _ in range(count):
        given = "".join(rng.choices(GIVEN, k=rng.choice((1, 2, 2, 2))))
        name = rng.choices(SURNAMES, surname_weights)[0] + given
        phone = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
        company = rng.choice(CITIES) + rng.choice(WORDS) + rng.choice(TRADES) + rng.choice(SUFFIXES)
        pinyin, initials = name_keys(name)
        contacted = now - timedelta(minutes=rng.randrange(365 * 24 * 60)) if rng.random() < 0.8 else None
        # Quiet for 90 days: mostly already dormant; recently in touch: a warm-ish lead score.
        quiet_days = (now - contacted).days if contacted else None
        stage = "prospect" if contacted is None else rng.choices(*zip(*ACTIVE_STAGES))[0]
        if quiet_days is not None and quiet_days > 90 and stage != "churned" and rng.random() < 0.9:
            stage = "dormant"
        score = round(rng.betavariate(2, 4) * 100) if quiet_days is not None and quiet_days < 30 else 0
        born = rng.random() < 0.7  # most have a birthday on file, a fifth of those lunar (as people give them)
        lunar = born and rng.random() < 0.2
        batch.append({
            "birthday_calendar": ("lunar" if lunar else "solar") if born else "",
            "birthday_month": rng.randint(1, 12) if born else None,
            "birthday_day": rng.randint(1, 29 if lunar else 28) if born else None,
            "birthday_leap": False, "birthday_year": rng.randint(1950, 2000) if born else None,
            "care_consent": rng.random() < 0.6,
            "contract_ends_on": (now + timedelta(days=rng.randrange(365))).date() if rng.random() < 0.25 else None,
            "name": name, "company": company, "phone": phone, "gender": rng.choice((1, 2)), "unionid": "",
            "remark": f"{name}-{company[2:4]}", "description": "", "wecom_tags": [], "owner_id": rng.choice(owner_ids),
            "lifecycle": stage, "lead_score": score, "lead_score_at": now if score else None,
            "last_contact_at": contacted, "created_at": now, "updated_at": now,
            "name_pinyin": pinyin, "name_initials": initials, "phone_tail": phone_tail(phone),
        })
        if len(batch) == 5000:
            yield batch
            batch = []
    if batch:
        yield batch


async def fill(engine, count: int, seed: int) -> None:
    """Fill an empty database; reuse one already holding exactly `count` customers; refuse anything else."""
    sessions = session_factory(engine)
    async with sessions() as session:
        existing = await session.scalar(select(func.count()).select_from(Customer)) or 0
        if existing == count:
            # An earlier run's queued replies would be delivered beside this run's timed path.
            await session.execute(delete(OutboxItem))
            await session.execute(delete(InboxItem))
            await session.commit()
            print(f"reusing the {existing} customers already in the database (its queues emptied)", flush=True)
            return
        if existing:
            raise SystemExit(f"the database holds {existing} customers, not {count}: give an empty database")
        now = datetime.now(timezone.utc)
        session.add_all(Staff(userid=f"bench_rep_{i}", name=f"销售{i}", role="sales", department_ids=[2], synced_at=now)
                        for i in range(REPS))
        await session.commit()
        owner_ids = list((await session.scalars(select(Staff.id).where(Staff.userid.like("bench_rep_%")))).all())
    rng, started, done = random.Random(seed), time.perf_counter(), 0
    for batch in synthetic_customers(count, owner_ids, rng, now):
        async with sessions() as session:
            await session.execute(insert(Customer), batch)
            await session.commit()
        done += len(batch)
        if done % 100_000 == 0 or done == count:
            print(f"  {done} customers ({time.perf_counter() - started:.0f} s)", flush=True)


async def sample_queries(engine, n: int, seed: int) -> dict[str, list[str]]:
    """n random customers' names, initials and phone tails."""
    rng = random.Random(seed + 1)
    async with session_factory(engine)() as session:
        top = await session.scalar(select(func.max(Customer.id)))
        ids = [rng.randrange(1, top + 1) for _ in range(n)]
        rows = (await session.execute(
            select(Customer.name, Customer.name_initials, Customer.phone_tail).where(Customer.id.in_(ids))
        )).all()
    rng.shuffle(rows)
    return {"name": [r.name for r in rows], "initials": [r.name_initials for r in rows], "phone_tail": [r.phone_tail for r in rows]}


async def run_lookup(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="scrm-bench-lookup-"))
    database_url = args.database_url or f"sqlite+aiosqlite:///{tmp / 'lookup.sqlite3'}"
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(database_url)
    print(f"preparing {args.customers} customers...", flush=True)
    await fill(engine, args.customers, args.seed)
    # A live table was vacuumed long before the day's first lookup; one filled seconds ago would be
    # vacuumed, analysed and hint-bitted beside the timed path.
    await refresh_statistics(database_url)
    queries = await sample_queries(engine, args.n, args.seed)

    sim = sample_state()
    template = sim.staff["chenjing"]  # the sample company's admin
    sim.staff.update({userid: {**template, "userid": userid, "name": f"管理员{i}", "email": f"{userid}@xinghe-demo.cn",
                               "mobile": f"139{i:08d}"} for i, userid in enumerate(BENCH_ADMINS)})
    sim_runner = web.AppRunner(create_simulator_app(sim), access_log_class=SimulatorAccessLogger)
    await sim_runner.setup()
    await web.TCPSite(sim_runner, "127.0.0.1", 0).start()
    roles_file = tmp / "roles.toml"
    roles_file.write_text("[users]\n" + "".join(f'{userid} = "admin"\n' for userid in BENCH_ADMINS), encoding="utf-8")
    port = free_port()
    env = {**os.environ, "SCRM_DATABASE_URL": database_url, "SCRM_REDIS_URL": args.redis_url, "SCRM_ROLES_FILE": str(roles_file),
           # each scripted admin sends a lookup every second or so: past the 30 commands a minute a person is allowed
           "SCRM_BOT_COMMANDS_PER_MINUTE": "100000",
           # the simulator's sample customers stay out of the measured database (a rerun reuses it)
           "SCRM_SYNC_ON_FIRST_START": "0",
           **sim.service_env(f"http://127.0.0.1:{sim_runner.addresses[0][1]}/cgi-bin/")}
    server = subprocess.Popen([sys.executable, "-m", "scrm.cli.main", "--log-level", "WARNING", "serve", "--host", "127.0.0.1",
                               "--port", str(port), "--roles", "web,worker"], env=env)
    crypto = CallbackCrypto(sim.callback_token, sim.encoding_aes_key, sim.corp_id)
    results: dict[str, list[float]] = {}
    shapes: dict[str, dict[str, int]] = {}
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(url, server)
        async with aiohttp.ClientSession() as http:
            lookup = Lookup(http, f"{url}/wecom/callback", crypto, sim, session_factory(engine))
            for _ in BENCH_ADMINS:  # warm-up: every admin's staff sync, connection pools, caches
                await lookup.once(f"查 {queries['name'][0]}")
            for kind in KINDS:
                results[kind], shapes[kind] = [], {"card": 0, "list": 0, "none": 0}
                for query in queries[kind]:
                    seconds, shape = await lookup.once(f"查 {query}")
                    results[kind].append(seconds)
                    shapes[kind][shape] += 1
            for kind, spoken in SPOKEN.items():
                results[kind], shapes[kind] = [], {"card": 0, "list": 0, "none": 0}
                for query in queries["name"]:
                    seconds, shape = await lookup.once(spoken.format(query))
                    results[kind].append(seconds)
                    shapes[kind][shape] += 1
            results["floor"] = [(await lookup.once(FLOOR))[0] for _ in range(args.n)]
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        await sim_runner.cleanup()
        await engine.dispose()

    backend = database_url.split("+")[0]
    print(f"\n{args.customers} customers, {backend}, redis: {'real' if args.redis_url else 'in-process stand-in'}, "
          f"{args.n} lookups per kind, one at a time, callback POST -> reply row in the outbox")
    for kind in (*KINDS, *SPOKEN):
        values = results[kind]
        print(f"{kind:<11} p50 {1000 * percentile(values, 50):6.1f} ms  p99 {1000 * percentile(values, 99):6.1f} ms"
              f"  max {1000 * max(values):6.1f} ms   replies: {shapes[kind]['card']} cards, {shapes[kind]['list']} lists,"
              f" {shapes[kind]['none']} other")
    floor = results["floor"]
    print(f"{'floor':<11} p50 {1000 * percentile(floor, 50):6.1f} ms  p99 {1000 * percentile(floor, 99):6.1f} ms"
          f"  max {1000 * max(floor):6.1f} ms   ({FLOOR}: same path, no customer search)")
    return 0


class Lookup:
    """One staff message at a time, timed from the POST to its reply's outbox row."""

    def __init__(self, http: aiohttp.ClientSession, url: str, crypto: CallbackCrypto, sim, sessions):
        self.http, self.url, self.crypto, self.sim, self.sessions = http, url, crypto, sim, sessions
        self.msg_id = int(time.time()) * 1000
        self.senders = itertools.cycle(BENCH_ADMINS)

    async def once(self, line: str) -> tuple[float, str]:
        self.msg_id += 1
        plaintext = build_plaintext_text(self.sim.corp_id, str(self.sim.agent_id), next(self.senders), line,
                                         msg_id=self.msg_id)
        timestamp = str(int(time.time()))
        body, signature = self.crypto.encrypt_callback(plaintext, timestamp=timestamp, nonce=str(self.msg_id),
                                                       agent_id=str(self.sim.agent_id))
        params = {"msg_signature": signature, "timestamp": timestamp, "nonce": str(self.msg_id)}
        key = f"reply:wecom_app:{self.msg_id}"
        started = datetime.now(timezone.utc)
        async with self.http.post(self.url, params=params, data=body.encode()) as resp:
            await resp.read()
            if resp.status != 200:
                raise SystemExit(f"callback answered HTTP {resp.status}")
        deadline = time.monotonic() + 30
        while True:  # a relaxed poll: the timing comes from the row itself, not from when we notice it
            async with self.sessions() as session:
                row = (await session.execute(
                    select(OutboxItem.payload, OutboxItem.created_at).where(OutboxItem.idempotency_key == key)
                )).first()
            if row is not None:
                payload, elapsed = row.payload, (row.created_at - started).total_seconds()
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"no reply to {line!r} within 30 s")
            await asyncio.sleep(0.02)
        content = payload[payload["msgtype"]]["content"]
        return elapsed, "card" if content.startswith("**【") else "list" if content.startswith(("找到", "与「")) else "none"
