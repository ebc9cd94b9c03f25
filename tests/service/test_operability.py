"""What an operator watches: /metrics after real traffic, JSON logs tied to a request id, and
`scrm doctor` against a running service and a misconfigured one."""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text

from connectors.wecom.simulator.callbacks import build_plaintext_text
from crm_core.models import InboxItem
from scheduler.runner import JobContext, ScheduledJob, Scheduler
from scrm import keys
from scrm.cli.doctor import run_doctor
from scrm.logging_setup import JsonFormatter
from tests.service.conftest import external_id

PLAIN_SECRET = "not-the-right-secret-0042"


async def scrape(service) -> dict[tuple[str, frozenset], float]:
    resp = await service.client.get("/metrics")
    assert resp.status == 200 and resp.content_type == "text/plain"
    families = text_string_to_metric_families(await resp.text())
    return {(s.name, frozenset(s.labels.items())): s.value for family in families for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def post_callback(service, plaintext: str, *, headers: dict[str, str] | None = None, signature: str | None = None):
    timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
    body, good_signature = service.crypto.encrypt_callback(plaintext, timestamp=timestamp, nonce=nonce)
    params = {"msg_signature": signature or good_signature, "timestamp": timestamp, "nonce": nonce}
    return await service.client.post("/wecom/callback", params=params, data=body.encode(), headers=headers or {})


def staff_text(service, content: str, msg_id: int) -> str:
    return build_plaintext_text(service.sim.corp_id, str(service.sim.agent_id), "zhangwei", content, msg_id=msg_id)


async def test_metrics_count_callbacks_commands_analysis_and_sends(service):
    await service.wecom.change_external_contact("add_external_contact", "zhangwei", external_id(service.sim, "赵磊"))
    for _ in range(2):  # WeCom retrying the same message
        await service.wecom.text("zhangwei", "查 赵磊", msg_id=7001)
    assert (await post_callback(service, staff_text(service, "查 赵磊", 7002), signature="0" * 40)).status == 403
    assert (await service.client.post("/wecom/callback", data=b"<xml/>")).status == 400
    kfid = next(iter(service.sim.kf_accounts))
    token = service.sim.kf_customer_writes(kfid, external_id(service.sim, "赵磊"), "你们服务很好，谢谢")
    await service.wecom.kf_msg_or_event(token, kfid)
    await service.settle()
    service.sim.fail_next("message/send", errcode=60111)  # the recipient left the company
    await service.wecom.text("zhangwei", "帮助", msg_id=7003)
    await service.settle()

    m = await scrape(service)
    assert value(m, "scrm_callbacks_total", result="accepted") == 4
    assert value(m, "scrm_callbacks_total", result="duplicate") == 1
    assert value(m, "scrm_callbacks_total", result="bad_signature") == 1
    assert value(m, "scrm_callbacks_total", result="bad_request") == 1
    assert value(m, "scrm_callback_ack_seconds_count") == 5
    assert value(m, "scrm_callback_ack_seconds_bucket", le="5.0") == 5  # all acked well inside WeCom's 5 s
    assert value(m, "scrm_bot_command_seconds_count", command="查") == 1
    assert value(m, "scrm_bot_command_seconds_count", command="帮助") == 1
    assert value(m, "scrm_nlp_analysis_seconds_count", mode="inline") == 1
    async with service.sessions() as session:  # the kf wake-up stages the pulled message as a row of its own
        processed = await session.scalar(select(func.count()).where(InboxItem.status == "done"))
    assert value(m, "scrm_inbox_processed_total", result="done") == processed >= 4
    sent_app_messages = len(service.sim.sent_app_messages)
    assert sent_app_messages >= 1
    assert value(m, "scrm_outbox_sends_total", kind="app_message", result="sent") == sent_app_messages
    assert value(m, "scrm_outbox_sends_total", kind="app_message", result="parked") == 1
    assert value(m, "scrm_outbox_send_failures_total", kind="app_message", error="InvalidUserError") == 1
    assert value(m, "scrm_queue_items", queue="outbox", status="parked") == 1
    assert value(m, "scrm_queue_items", queue="inbox", status="pending") == 0
    assert value(m, "scrm_database_up") == 1
    assert not any("zhangwei" in str(labels) or "13800131001" in str(labels) for _, labels in m)


async def test_inbox_lag_shows_a_waiting_callback_and_drops_to_zero_once_processed(service):
    await service.stop_background_workers()
    assert (await service.wecom.text("zhangwei", "我的待办", msg_id=7101))[0] == 200

    waiting = await scrape(service)
    assert value(waiting, "scrm_queue_items", queue="inbox", status="pending") == 1
    assert 0 < value(waiting, "scrm_inbox_lag_seconds") < 60

    await service.settle()
    done = await scrape(service)
    assert value(done, "scrm_queue_items", queue="inbox", status="pending") == 0
    assert value(done, "scrm_inbox_lag_seconds") == 0


async def test_scheduler_runs_and_last_success_are_exported(service):
    async def greet(ctx: JobContext) -> str:
        return "greeted 0 customers"

    async def broken(ctx: JobContext) -> str:
        raise RuntimeError("template missing")

    metrics = service.app[keys.METRICS]
    jobs = [metrics.instrument_job(ScheduledJob("care.greet", "0 9 * * *", "问候", greet)),
            metrics.instrument_job(ScheduledJob("care.broken", "0 9 * * *", "坏的", broken))]
    scheduler = Scheduler(jobs, service.app[keys.SESSIONS], service.app[keys.REDIS], service.settings.tz)
    at = datetime(2026, 11, 29, 1, 0, tzinfo=timezone.utc)
    before = time.time()
    for name in ("care.greet", "care.broken", "care.greet"):  # the second greet run is the same run: skipped
        await scheduler.run_job(name, at)

    m = await scrape(service)
    assert value(m, "scrm_scheduler_runs_total", job="care.greet", status="done") == 1
    assert value(m, "scrm_scheduler_runs_total", job="care.broken", status="failed") == 1
    assert value(m, "scrm_scheduler_last_success_timestamp_seconds", job="care.greet") >= before
    assert value(m, "scrm_scheduler_last_success_timestamp_seconds", job="care.broken") is None


async def test_json_log_lines_carry_the_request_id_the_response_returned(service, caplog):
    caplog.set_level(logging.INFO)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        given = await post_callback(service, staff_text(service, "帮助", 7201), headers={"X-Request-Id": "lb-4f2a.91"})
        made = await post_callback(service, staff_text(service, "帮助", 7202))
        hostile = await post_callback(service, staff_text(service, "帮助", 7203),
                                      headers={"X-Request-Id": "x" * 65 + '", "level": "CRITICAL'})
        refused = await post_callback(service, staff_text(service, "帮助", 7204), signature="0" * 40)
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("scrm.test").exception("outside any request")
    finally:
        logging.getLogger().removeHandler(handler)

    assert given.headers["X-Request-Id"] == "lb-4f2a.91"
    assert len(made.headers["X-Request-Id"]) == 32
    assert len(hostile.headers["X-Request-Id"]) == 32 and "CRITICAL" not in hostile.headers["X-Request-Id"]
    assert refused.status == 403 and len(refused.headers["X-Request-Id"]) == 32
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert all({"ts", "level", "logger", "message"} <= line.keys() for line in lines)
    by_request = {}
    for line in lines:
        by_request.setdefault(line.get("request_id"), []).append(line)
    [stored] = by_request["lb-4f2a.91"]
    assert stored["logger"] == "connectors.wecom.receiver" and stored["message"].endswith("stored")
    assert by_request[made.headers["X-Request-Id"]][0]["message"].endswith("stored")
    [rejected] = by_request[refused.headers["X-Request-Id"]]
    assert rejected["level"] == "WARNING" and "bad signature" in rejected["message"]
    [outside] = [line for line in lines if line["logger"] == "scrm.test"]
    assert "request_id" not in outside and "ValueError: boom" in outside["exc_info"]


def doctor_env(service, **changes: str) -> dict[str, str]:
    wecom = service.settings.wecom
    env = {
        "SCRM_DATABASE_URL": service.settings.database_url,
        "SCRM_WECOM_CORP_ID": wecom.corp_id, "SCRM_WECOM_SECRET": wecom.secret, "SCRM_WECOM_AGENT_ID": wecom.agent_id,
        "SCRM_WECOM_TOKEN": wecom.token, "SCRM_WECOM_AES_KEY": wecom.aes_key, "SCRM_WECOM_API_BASE": wecom.api_base,
    }
    if service.settings.redis_url:
        env["SCRM_REDIS_URL"] = service.settings.redis_url
    return {**env, **changes}


def findings(output: str) -> dict[str, tuple[str, str]]:
    rows = [line.split(maxsplit=2) for line in output.splitlines() if line[:4].strip() in ("OK", "WARN", "FAIL")]
    return {check: (status, detail) for status, check, detail in rows}


async def test_doctor_passes_against_the_running_service(service):
    out = io.StringIO()
    code = await run_doctor(env=doctor_env(service), callback_url=str(service.client.make_url("/wecom/callback")),
                            out=out)
    found = findings(out.getvalue())
    assert code == 0, out.getvalue()
    for check in ("configuration", "database", "schema", "wecom", "callback"):
        assert found[check][0] == "OK", out.getvalue()
    # The embedded setup runs on the in-process Redis stand-in: fine, but worth a warning.
    assert found["redis"][0] == ("OK" if service.settings.redis_url else "WARN")
    assert service.settings.wecom.secret not in out.getvalue()


async def test_doctor_tells_whether_the_queue_tables_get_vacuumed(service):
    out = io.StringIO()
    await run_doctor(env=doctor_env(service), out=out)
    found = findings(out.getvalue())
    if not service.settings.database_url.startswith("postgresql"):
        assert "vacuum" not in found  # SQLite reuses its free pages by itself
        return
    async with service.sessions() as session:
        autovacuum = await session.scalar(text("SHOW autovacuum"))
        options = dict((await session.execute(text(
            "SELECT relname, array_to_string(reloptions, ',') FROM pg_class "
            "WHERE relname IN ('inbox_items', 'outbox_items')"))).all())
    status, detail = found["vacuum"]
    if autovacuum == "on":
        assert status == "OK"
    else:
        assert status == "WARN" and "VACUUM ANALYZE inbox_items, outbox_items" in detail
    for table in ("inbox_items", "outbox_items"):
        assert "autovacuum_vacuum_scale_factor=0.01" in options[table]


async def test_doctor_explains_wrong_credentials_and_exits_1(service):
    out = io.StringIO()
    env = doctor_env(service, SCRM_WECOM_SECRET=PLAIN_SECRET, SCRM_WECOM_TOKEN="a-token-the-service-does-not-use")
    code = await run_doctor(env=env, callback_url=str(service.client.make_url("/wecom/callback")), out=out)
    found = findings(out.getvalue())
    assert code == 1
    status, detail = found["wecom"]
    assert status == "FAIL" and "errcode 40001" in detail and "SCRM_WECOM_SECRET" in detail
    assert PLAIN_SECRET not in out.getvalue() and "not***(25)" in detail
    status, detail = found["callback"]
    assert status == "FAIL" and "refused the signature" in detail and "SCRM_WECOM_TOKEN" in detail
    assert found["database"][0] == "OK"


@pytest.mark.slow
def test_doctor_cli_fails_on_an_unreachable_database(tmp_path):
    env = {**os.environ, "SCRM_DATABASE_URL": "postgresql+asyncpg://scrm:hunter2@127.0.0.1:1/scrm"}
    for name in [n for n in env if n.startswith("SCRM_") and n != "SCRM_DATABASE_URL"]:
        del env[name]
    result = subprocess.run([sys.executable, "-m", "scrm.cli.main", "doctor"], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path, env=env)
    found = findings(result.stdout)
    assert result.returncode == 1, result.stdout + result.stderr
    status, detail = found["database"]
    assert status == "FAIL" and "cannot reach" in detail and "SCRM_DATABASE_URL" in detail
    assert "hunter2" not in result.stdout


@pytest.mark.slow
def test_log_format_json_from_the_environment_gives_one_object_per_line(tmp_path):
    env = {**os.environ, "SCRM_LOG_FORMAT": "json", "SCRM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}"}
    result = subprocess.run([sys.executable, "-m", "scrm.cli.main", "db", "upgrade"], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert lines and all(line["level"] == "INFO" and line["logger"].startswith("alembic") for line in lines)
    assert any("Running upgrade" in line["message"] for line in lines)
