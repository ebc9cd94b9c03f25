"""Configuration errors name what to set; every CLI command answers --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from config.roles import RoleMap
from config.settings import ConfigError, load_settings, require_wecom

GOOD_KEY = "U0NSTSBkZW1vIGtleSBmb3IgdGhlIHNpbXVsYXRvciE"


def test_defaults_are_the_embedded_setup():
    settings = load_settings({})
    assert settings.database_url == "sqlite+aiosqlite:///data/scrm.sqlite3"
    assert settings.redis_url is None and settings.timezone == "Asia/Shanghai"
    assert settings.wecom.api_base == "https://qyapi.weixin.qq.com/cgi-bin/"


def test_every_problem_is_reported_with_the_variable_to_set():
    env = {"SCRM_DATABASE_URL": "mysql://x", "SCRM_TIMEZONE": "Mars/Olympus", "SCRM_WECOM_CORP_ID": "ww1",
           "SCRM_WECOM_AES_KEY": "short", "SCRM_WECOM_AGENT_ID": "abc"}
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    text = str(err.value)
    for expected in ("SCRM_DATABASE_URL", "SCRM_TIMEZONE", "SCRM_WECOM_SECRET", "SCRM_WECOM_TOKEN",
                     "SCRM_WECOM_AES_KEY must be the 43-character", "SCRM_WECOM_AGENT_ID must be the numeric"):
        assert expected in text


def test_toml_file_is_read_and_environment_wins(tmp_path):
    path = tmp_path / "scrm.toml"
    path.write_text('timezone = "Asia/Tokyo"\napi_token = "from-file"\n[wecom]\ncorp_id = "wwfile"\nsecret = "s"\n'
                    f'agent_id = "1000002"\ntoken = "t"\naes_key = "{GOOD_KEY}"\n', encoding="utf-8")
    settings = load_settings({"SCRM_CONFIG": str(path), "SCRM_API_TOKEN": "from-env"})
    assert settings.timezone == "Asia/Tokyo" and settings.api_token == "from-env"
    assert settings.wecom.corp_id == "wwfile" and settings.wecom.configured


def test_serving_without_credentials_says_what_to_set():
    with pytest.raises(ConfigError, match="SCRM_WECOM_CORP_ID.*scrm demo"):
        require_wecom(load_settings({}))


def test_roles_come_from_users_then_departments_then_leadership():
    roles = RoleMap(users={"chenjing": "admin"}, departments={3: "support"})
    assert roles.role_for("chenjing", [3]) == "admin"
    assert roles.role_for("wangfang", [3]) == "support"
    assert roles.role_for("liuyang", [2], is_leader=True) == "manager"
    assert roles.role_for("zhangwei", [2]) == "sales"
    with pytest.raises(ValueError, match="unknown role"):
        RoleMap(users={"x": "boss"})


@pytest.mark.slow
@pytest.mark.parametrize("args", [[], ["serve"], ["demo"], ["db", "upgrade"], ["simulator"], ["nlp"], ["nlp", "reindex"], ["jobs", "run"], ["bench", "ingest"], ["bench", "nlp"], ["bench", "scheduler"]])
def test_every_command_has_help(args):
    result = subprocess.run([sys.executable, "-m", "scrm.cli.main", *args, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usage: scrm" in result.stdout


@pytest.mark.slow
def test_serve_without_credentials_exits_with_the_message(tmp_path):
    result = subprocess.run([sys.executable, "-m", "scrm.cli.main", "serve"], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "SCRM_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2 and "SCRM_WECOM_CORP_ID" in result.stderr


@pytest.mark.slow
def test_jobs_list_and_run_once_per_scheduled_time(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "SCRM_DATA_DIR": str(tmp_path)}

    def scrm(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "scrm.cli.main", "--log-level", "WARNING", *args],
                                capture_output=True, text=True, timeout=120, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    listing = scrm("jobs", "list")
    assert "followups.remind" in listing and "tickets.sla_escalations" in listing and "last never" in listing
    assert "queued" in scrm("jobs", "run", "followups.remind", "--at", "2026-12-01T09:00")
    assert "already ran" in scrm("jobs", "run", "followups.remind", "--at", "2026-12-01T09:00")
    assert "2026-12-01 09:00 done" in scrm("jobs", "list")
    assert "care.birthdays" in listing and "digests.weekly" in listing
    assert "care.group_send_sync" in listing and "needs WeCom credentials" in listing


@pytest.mark.slow
def test_parked_sends_are_listed_and_retried_from_the_cli(tmp_path):
    import asyncio

    from sqlalchemy import update

    from crm_core.db import create_engine, session_factory
    from crm_core.migrate import upgrade
    from crm_core.models import OutboxItem
    from crm_core.outbox import OutboxService

    url = f"sqlite+aiosqlite:///{tmp_path / 'scrm.sqlite3'}"
    upgrade(url)

    async def park_one() -> None:
        engine = create_engine(url)
        async with session_factory(engine)() as session:
            await OutboxService(session).enqueue(idempotency_key="k1", kind="kf_message",
                                                 payload={"touser": "wmX", "msgtype": "text", "text": {"content": "您好"}})
            await session.execute(update(OutboxItem).values(status="parked", attempts=8, last_error="KfWindowClosedError: 95002"))
            await session.commit()
        await engine.dispose()

    asyncio.run(park_one())
    env = {"PATH": "/usr/bin:/bin", "SCRM_DATA_DIR": str(tmp_path)}

    def scrm(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "scrm.cli.main", "--log-level", "WARNING", *args],
                              capture_output=True, text=True, timeout=120, env=env)

    listing = scrm("outbox", "failed").stdout
    assert "#1 kf_message to wmX after 8 attempt(s): KfWindowClosedError: 95002" in listing and "您好" in listing
    assert scrm("outbox", "retry", "1").returncode == 0
    assert "no parked outbox rows" in scrm("outbox", "failed").stdout
    assert scrm("outbox", "retry", "1").returncode == 1  # no longer parked
    assert "no parked inbox rows" in scrm("inbox", "failed").stdout


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_db_upgrade_leaves_fresh_statistics_behind(backend):
    """A migration that rewrites a big table must not leave the next jobs planning on dead rows."""
    import asyncpg

    env = {"PATH": "/usr/bin:/bin", "SCRM_DATABASE_URL": backend.database_url}
    result = subprocess.run([sys.executable, "-m", "scrm.cli.main", "--log-level", "WARNING", "db", "upgrade"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    conn = await asyncpg.connect(backend.database_url.replace("+asyncpg", ""))
    try:
        vacuumed = await conn.fetchval("SELECT last_vacuum IS NOT NULL AND last_analyze IS NOT NULL "
                                       "FROM pg_stat_user_tables WHERE relname = 'customers'")
    finally:
        await conn.close()
    assert vacuumed
