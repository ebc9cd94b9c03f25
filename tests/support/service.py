"""A running service wired to the WeCom simulator, both on real loopback HTTP servers."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, update

from config.settings import PageSettings, Settings, WeComSettings
from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import CallbackSender
from connectors.wecom.simulator.state import SimulatorState
from crm_core.db import utcnow
from crm_core.models import InboxItem, OutboxItem
from scrm import keys
from scrm.app import create_app, stop_tasks

API_TOKEN = "test-api-token"
PAGE_SECRET = "test-page-secret-0123456789abcdef0123"
# The scheduler role runs jobs on the real clock; tests run jobs explicitly, on a fixed clock.
TEST_ROLES = frozenset({"web", "worker"})


@dataclass
class Service:
    client: TestClient
    sim: SimulatorState
    wecom: CallbackSender
    crypto: CallbackCrypto
    settings: Settings

    @property
    def app(self):
        return self.client.server.app

    def sessions(self):
        return self.app[keys.SESSIONS]()

    async def settle(self, rounds: int = 200) -> None:
        """Run the workers until the inbox and outbox hold nothing due: deterministic, no sleeping.
        One worker per queue does it: each claims a whole batch and they would run one after another
        here anyway, so the app's other inbox workers (four on PostgreSQL) would only add empty claims."""
        workers = [self.app[keys.INBOX_WORKERS][0], self.app[keys.OUTBOX_WORKERS][0]]
        for _ in range(rounds):
            handled = 0
            for worker in workers:
                handled += await worker.run_once()
            if handled == 0 and not await self.pending():
                return
        raise AssertionError("queues did not settle")

    async def settle_past_backoffs(self, rounds: int = 30) -> None:
        """Run the workers until nothing is handled, treating every back-off as over (time passes;
        nobody sleeps), for tests of retries and outages."""
        for _ in range(rounds):
            async with self.sessions() as session:
                for model in (InboxItem, OutboxItem):
                    await session.execute(update(model).where(model.status == "pending").values(available_at=utcnow()))
                await session.commit()
            handled = 0
            for worker in (*self.app[keys.INBOX_WORKERS], *self.app[keys.OUTBOX_WORKERS]):
                handled += await worker.run_once()
            if not handled:
                return

    async def stop_background_workers(self) -> None:
        """Every test service steps its workers by hand (make_service stops the loops). Only the workers' loops
        are stopped: the Redis wake-up listener (PostgreSQL runs) stops with the app, as in production,
        and waiting for it here would only sit out stop_tasks' grace period."""
        workers = (*self.app[keys.INBOX_WORKERS], *self.app[keys.OUTBOX_WORKERS])
        for worker in workers:
            worker.stop()
        names = {worker.worker_id for worker in workers}
        await stop_tasks({task for task in self.app[keys.WORKER_TASKS] if task.get_name() in names})

    async def pending(self) -> int:
        counts = [select(func.count()).where(model.status.in_(("pending", "processing"))).scalar_subquery()
                  for model in (InboxItem, OutboxItem)]
        async with self.sessions() as session:
            return await session.scalar(select(counts[0] + counts[1]))

    async def api(self, path: str, **params) -> tuple[int, dict]:
        resp = await self.client.get(path, params=params, headers={"Authorization": f"Bearer {API_TOKEN}"})
        return resp.status, await resp.json()


def external_id(sim: SimulatorState, name: str) -> str:
    """A sample customer's external_userid by name, so tests do not hard-code simulator ids."""
    return next(k for k, c in sim.external_contacts.items() if c["external_contact"]["name"] == name)


def service_settings(backend, sim: SimulatorState, api_base: str, **changes) -> Settings:
    """Tests start from an empty CRM and sync the directory when they mean to (tests/sync). The pages log in
    through the simulator's OAuth and load its JS-SDK double."""
    changes.setdefault("sync_on_first_start", False)
    sim_origin = api_base.split("/cgi-bin/", 1)[0]
    changes.setdefault("pages", PageSettings(secret=PAGE_SECRET, jssdk_urls=(f"{sim_origin}/sim/jssdk/jweixin.js",)))
    return Settings(
        database_url=backend.database_url,
        redis_url=backend.redis_url,
        api_token=API_TOKEN,
        wecom=WeComSettings(
            corp_id=sim.corp_id, secret=sim.secret, agent_id=str(sim.agent_id), token=sim.callback_token,
            aes_key=sim.encoding_aes_key, api_base=api_base, oauth_url=f"{sim_origin}/connect/oauth2/authorize",
        ),
        **changes,
    )


async def make_service(backend, sim: SimulatorState, sim_server: TestServer, aiohttp_client, *,
                       workers_in_background: bool = False, **changes) -> Service:
    """The running service; `changes` are Settings fields (roles_file, ...). Its workers are
    stepped by the test (settle) unless `workers_in_background`, as `scrm serve` runs them."""
    settings = service_settings(backend, sim, str(sim_server.make_url("/cgi-bin/")), **changes)
    client = await aiohttp_client(create_app(settings, TEST_ROLES))
    crypto = CallbackCrypto(sim.callback_token, sim.encoding_aes_key, sim.corp_id)
    sender = CallbackSender(client.session, str(client.make_url("/wecom/callback")), crypto,
                            corp_id=sim.corp_id, agent_id=str(sim.agent_id))
    service = Service(client=client, sim=sim, wecom=sender, crypto=crypto, settings=settings)
    # Tests step the workers themselves (settle): the background loops, woken by every callback,
    # raced them for the same rows, and settle spun on claims and counts while a loop held a row
    # (a third of a chat test's time). The loops' own waking: tests/service/test_wakeups.py, test_scale_out.py.
    if not workers_in_background:
        await service.stop_background_workers()
    return service


def use_service_env(monkeypatch, service: Service) -> None:
    """`scrm …` run by hand in this test talks to the service's database, Redis and simulator, as an
    operator's shell would (environment variables only; no SCRM_CONFIG file)."""
    sim, settings = service.sim, service.settings
    for name, value in {"DATABASE_URL": settings.database_url, "WECOM_CORP_ID": sim.corp_id, "WECOM_SECRET": sim.secret,
                        "WECOM_AGENT_ID": str(sim.agent_id), "WECOM_TOKEN": sim.callback_token,
                        "WECOM_AES_KEY": sim.encoding_aes_key, "WECOM_API_BASE": settings.wecom.api_base}.items():
        monkeypatch.setenv(f"SCRM_{name}", value)
    monkeypatch.delenv("SCRM_CONFIG", raising=False)
    if settings.redis_url:
        monkeypatch.setenv("SCRM_REDIS_URL", settings.redis_url)
