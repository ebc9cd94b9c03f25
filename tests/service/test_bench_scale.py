"""Smoke runs of the multi-process benchmarks, tiny on purpose: they check the wiring (processes,
round-robin load, archive and loss checks, the RSS table), not the numbers."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest


def scrm(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scrm.cli.main", "--log-level", "WARNING", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args", [["bench", "ingest", "--web", "2"], ["bench", "ingest", "--workers", "1,2"],
                                  ["bench", "memory", "--messages", "10"]])
@pytest.mark.slow
def test_several_processes_need_postgres_and_redis(args):
    result = scrm(*args, timeout=60)
    assert result.returncode == 2 and "must share PostgreSQL and Redis" in result.stderr


@pytest.mark.slow
def test_memory_bench_has_help():
    result = scrm("bench", "memory", "--help", timeout=60)
    assert result.returncode == 0 and "--sample-every" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_ingest_over_separate_web_and_worker_processes(backend):
    result = await asyncio.to_thread(scrm, "bench", "ingest", "--web", "2", "--workers", "1", "-n", "40", "--rate", "40",
                                     "--duration", "1", "--database-url", backend.database_url, "--redis-url", backend.redis_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 web + 1 worker process, 5 staff, archived 80" in result.stdout
    assert "loss check OK: 80 acked, 80 archived, 0 missing, 0 duplicates" in result.stdout
    assert "no-op unpaced (2 processes)" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_memory_bench_samples_every_process(backend):
    # --backlog 0: each chunk is archived before the next is posted, so every mark gets its sample
    # however fast the workers are (all 120 archived between two polls would leave one sample).
    result = await asyncio.to_thread(scrm, "bench", "memory", "--messages", "120", "--sample-every", "40", "--warmup", "40",
                                     "--chunk", "40", "--backlog", "0", "--database-url", backend.database_url,
                                     "--redis-url", backend.redis_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "loss check OK: 120 acked, 120 archived, 0 missing, 0 duplicates" in result.stdout
    assert "web1  worker1    bench" in result.stdout
    assert "growth from " in result.stdout and "to 120 archived: web1 " in result.stdout
