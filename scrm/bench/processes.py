"""Starting `scrm serve` as a child process and knowing when it is up (benchmarks, process tests)."""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import sys
import time

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(port: int, roles: str, env: dict[str, str], *, log_level: str = "WARNING") -> subprocess.Popen:
    """`scrm serve --roles ROLES` on 127.0.0.1:PORT with this interpreter; the child's pid is the
    service's own (no shell in between), so its memory can be read from /proc."""
    return subprocess.Popen([sys.executable, "-m", "scrm.cli.main", "--log-level", log_level, "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--roles", roles], env=env)


async def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Poll `url`/healthz until it answers 200; fail at once if the process exits meanwhile."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[:4]} exited during start-up (code {proc.returncode})")
            try:
                async with http.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not become healthy within {timeout:.0f} s")


def rss_bytes(pid: int) -> int:
    """Resident memory of a process now (VmRSS in /proc/PID/status; Linux only)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError(f"process {pid} reports no VmRSS (exited?)")


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]
