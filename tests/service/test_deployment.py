"""docker-compose.yml is checked by structure (no Docker engine here), and the roles it runs are
run the same way as separate processes: a `web` process stores, a `worker` process archives."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
import yaml

from connectors.wecom.crypto import CallbackCrypto
from connectors.wecom.simulator.callbacks import CallbackSender
from scrm.bench.processes import free_port, wait_healthy
from tests.service.test_crash_recovery import archived_ids, start_service

COMPOSE = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())
REQUIRED_ENV = {
    "SCRM_DATABASE_URL", "SCRM_REDIS_URL", "SCRM_WECOM_CORP_ID", "SCRM_WECOM_SECRET", "SCRM_WECOM_AGENT_ID",
    "SCRM_WECOM_TOKEN", "SCRM_WECOM_AES_KEY", "SCRM_API_TOKEN",
}


def test_compose_runs_each_role_with_its_dependencies_and_health_checks():
    services = COMPOSE["services"]
    assert {"postgres", "redis", "migrate", "web", "worker", "scheduler"} <= set(services)
    for role in ("web", "worker", "scheduler"):
        service = services[role]
        command = service["command"]
        assert command[:2] == ["scrm", "serve"] and command[command.index("--roles") + 1] == role
        assert REQUIRED_ENV <= set(service["environment"])
        assert service["environment"]["SCRM_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert service["environment"]["SCRM_REDIS_URL"].startswith("redis://redis:")
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        assert service["environment"]["SCRM_LOG_FORMAT"] == "json"
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["scrm", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for infra in ("postgres", "redis"):
        assert services[infra]["healthcheck"]["test"]
    assert services["web"]["deploy"]["replicas"] == services["worker"]["deploy"]["replicas"] == 2
    assert "replicas" not in services["scheduler"].get("deploy", {})  # one scheduler; a second would idle anyway
    assert services["web"]["ports"] == ["8080-8081:8080"]  # one host port per web replica


def test_dockerfile_installs_every_package():
    dockerfile = (Path(__file__).parents[2] / "Dockerfile").read_text()
    for package in ("bot", "connectors", "crm_core", "scheduler", "nlp", "config", "scrm"):
        assert f"COPY {package} {package}" in dockerfile


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # processes must share the database and Redis
async def test_web_and_worker_as_separate_processes_share_the_work(backend, sim, sim_server, tmp_path):
    api_base = str(sim_server.make_url("/cgi-bin/"))
    web_port, worker_port = free_port(), free_port()
    web = start_service(backend, sim, api_base, web_port, tmp_path / "web.log", roles="web")
    worker = start_service(backend, sim, api_base, worker_port, tmp_path / "worker.log", roles="worker")
    try:
        async with aiohttp.ClientSession() as http:
            await wait_healthy(f"http://127.0.0.1:{web_port}", web)
            await wait_healthy(f"http://127.0.0.1:{worker_port}", worker)
            # The worker process serves health only: no callback endpoint there.
            async with http.post(f"http://127.0.0.1:{worker_port}/wecom/callback") as resp:
                assert resp.status == 404
            crypto = CallbackCrypto(sim.callback_token, sim.encoding_aes_key, sim.corp_id)
            sender = CallbackSender(http, f"http://127.0.0.1:{web_port}/wecom/callback", crypto,
                                    corp_id=sim.corp_id, agent_id=str(sim.agent_id))
            for i in range(20):
                assert (await sender.text("lina", f"第 {i} 条", msg_id=700_000 + i))[0] == 200
            ids: list[str] = []
            for _ in range(300):
                ids = await archived_ids(backend.database_url)
                if len(ids) >= 20:
                    break
                await asyncio.sleep(0.1)
            assert sorted(ids) == sorted(str(700_000 + i) for i in range(20))
            for _ in range(300):  # the worker also delivers the bot's replies
                if len([m for m in sim.sent_app_messages if m["touser"] == "lina"]) >= 20:
                    break
                await asyncio.sleep(0.1)
            assert len([m for m in sim.sent_app_messages if m["touser"] == "lina"]) == 20
    finally:
        for proc in (web, worker):
            proc.terminate()
        for proc in (web, worker):
            await asyncio.to_thread(proc.wait, 30)
