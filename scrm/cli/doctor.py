"""`scrm doctor`: check a deployment from the outside, each finding with what to fix.

Every check prints OK, WARN (works, but not as intended for production) or FAIL; the exit code
is 1 when anything failed, so a deploy script can gate on it. Nothing is changed: the schema is
compared with the code's, not migrated, and the WeCom token is fetched but not cached. Each check
imports the client it needs when it runs, so `scrm doctor --help` loads none of them.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Mapping, TextIO
from urllib.parse import urlsplit

from config.settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    import aiohttp

OK, WARN, FAIL = "OK", "WARN", "FAIL"
CHECK_TIMEOUT = 15.0

# What a gettoken errcode means for the person holding the config file.
GETTOKEN_ERRCODES = {
    -1: "WeCom is busy; run the check again in a minute",
    40001: "the secret does not belong to this corp: copy the app's Secret (应用管理 → the app → Secret) into "
           "SCRM_WECOM_SECRET",
    40013: "the corp id is wrong: SCRM_WECOM_CORP_ID is 我的企业 → 企业信息 → 企业ID (starts with ww)",
    41002: "SCRM_WECOM_CORP_ID is empty",
    41004: "SCRM_WECOM_SECRET is empty",
    45009: "the gettoken quota is used up; something fetches tokens too often (is the Redis token cache shared?)",
    60020: "this server's IP is not a trusted IP of the app: add it under the app's 企业可信IP",
}


@dataclass(frozen=True)
class Finding:
    check: str
    status: str
    detail: str


def register(sub: argparse._SubParsersAction) -> None:
    doctor = sub.add_parser("doctor", help="check configuration, database, Redis, WeCom credentials and the callback URL")
    doctor.add_argument("--callback-url", help="also check that WeCom's URL verification succeeds at this URL "
                                               "(https://<host>/wecom/callback)")
    doctor.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    return asyncio.run(run_doctor(toml_path=args.config, callback_url=args.callback_url))


async def run_doctor(
    *, env: Mapping[str, str] | None = None, toml_path: str | None = None, callback_url: str | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Run every check, printing each finding as it comes; 1 if any failed."""
    import aiohttp

    findings: list[Finding] = []

    def report(*new: Finding) -> None:
        for finding in new:
            findings.append(finding)
            print(f"{finding.status:<4}  {finding.check:<13} {finding.detail}", file=out, flush=True)

    try:
        settings = load_settings(env, toml_path)
    except ConfigError as exc:
        report(Finding("configuration", FAIL, "; ".join(exc.problems)))
        return 1
    report(Finding("configuration", OK, "valid"))
    report(*await _bounded("database", check_database(settings)))
    report(*await _bounded("redis", check_redis(settings)))
    async with aiohttp.ClientSession() as http:
        report(*await _bounded("wecom", check_wecom(settings, http)))
        report(*await _bounded("callback", check_callback(settings, http, callback_url)))
    failed = sum(f.status == FAIL for f in findings)
    print(f"{failed} check(s) failed" if failed else "all checks passed", file=out)
    return 1 if failed else 0


async def _bounded(check: str, findings: Awaitable[list[Finding]]) -> list[Finding]:
    try:
        return await asyncio.wait_for(findings, CHECK_TIMEOUT)
    except TimeoutError:
        return [Finding(check, FAIL, f"no answer within {CHECK_TIMEOUT:.0f} s (firewall or wrong host?)")]


async def check_database(settings: Settings) -> list[Finding]:
    """Reachable, and the schema at the code's head revision (checked, never migrated here)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from crm_core.db import create_engine

    url = make_url(settings.database_url)
    shown = url.render_as_string(hide_password=True)
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite and url.database and not Path(url.database).exists():
        return [Finding("database", WARN, f"{url.database} does not exist yet; the service creates and migrates it "
                                          "at start (its directory must be writable)")]
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            autovacuum = None if sqlite else (await conn.execute(text("SHOW autovacuum"))).scalar()
            try:
                version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
            except DBAPIError:
                version = None
    except Exception as exc:
        return [Finding("database", FAIL, f"cannot reach {shown}: {_reason(exc)}; check SCRM_DATABASE_URL and that "
                                          "the database server is running")]
    finally:
        await engine.dispose()
    from crm_core.migrate import code_head

    head = code_head()
    if version == head:
        schema = Finding("schema", OK, f"at {head}")
    elif sqlite:
        schema = Finding("schema", WARN, f"at {version or 'no schema'}, the code needs {head}; SQLite is migrated "
                                         "automatically when the service starts")
    else:
        schema = Finding("schema", FAIL, f"at {version or 'no schema'}, the code needs {head}: run `scrm db upgrade`")
    return [Finding("database", OK, f"{shown} answers"), schema, *_vacuum_finding(autovacuum)]


def _vacuum_finding(autovacuum: str | None) -> list[Finding]:
    """The inbox and outbox rewrite each row two or three times on its way through: without vacuum
    their dead versions pile up and every claim and queue count wades through them."""
    if autovacuum is None:
        return []
    if autovacuum == "on":
        return [Finding("vacuum", OK, "autovacuum is on (the queue tables ask for it early: migration 0011)")]
    return [Finding("vacuum", WARN, "autovacuum is off on this server: the inbox and outbox keep every dead row "
                                    "version and the workers slow down as they grow; set autovacuum = on, or run "
                                    "`VACUUM ANALYZE inbox_items, outbox_items` every few minutes")]


async def check_redis(settings: Settings) -> list[Finding]:
    from redis.asyncio import Redis

    if not settings.redis_url:
        return [Finding("redis", WARN, "SCRM_REDIS_URL is unset: the in-process stand-in works for one process only; "
                                       "set it before running several web/worker/scheduler processes")]
    parts = urlsplit(settings.redis_url)
    shown = f"{parts.hostname}:{parts.port or 6379}" if parts.hostname else parts.path  # never the password
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        await redis.ping()
    except Exception as exc:
        return [Finding("redis", FAIL, f"cannot reach {shown}: {_reason(exc)}; check SCRM_REDIS_URL")]
    finally:
        await redis.aclose()
    return [Finding("redis", OK, f"{shown} answers")]


async def check_wecom(settings: Settings, http: aiohttp.ClientSession) -> list[Finding]:
    """One real gettoken with the configured corp id and secret (not cached, so nothing is replaced)."""
    import aiohttp

    from connectors.wecom.client import mask

    wecom = settings.wecom
    if not wecom.configured:
        return [Finding("wecom", FAIL, "no credentials: set SCRM_WECOM_CORP_ID, SCRM_WECOM_SECRET, "
                                       "SCRM_WECOM_AGENT_ID, SCRM_WECOM_TOKEN and SCRM_WECOM_AES_KEY")]
    base = wecom.api_base.rstrip("/") + "/"
    who = f"corp {wecom.corp_id}, secret {mask(wecom.secret)}"
    try:
        async with http.get(base + "gettoken", params={"corpid": wecom.corp_id, "corpsecret": wecom.secret},
                            timeout=aiohttp.ClientTimeout(total=10)) as resp:
            status = resp.status
            body = await resp.json(content_type=None) if status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        reason = _reason(exc).replace(wecom.secret, mask(wecom.secret))  # aiohttp errors can quote the URL
        return [Finding("wecom", FAIL, f"cannot reach {base}: {reason}; check SCRM_WECOM_API_BASE and outbound access")]
    if not isinstance(body, dict):
        return [Finding("wecom", FAIL, f"{base}gettoken answered HTTP {status} without a WeCom JSON body; "
                                       "check SCRM_WECOM_API_BASE")]
    errcode = body.get("errcode", 0)
    if errcode == 0 and body.get("access_token"):
        return [Finding("wecom", OK, f"gettoken succeeded at {base} ({who})")]
    meaning = GETTOKEN_ERRCODES.get(errcode, "see https://open.work.weixin.qq.com/devtool/query?e=" + str(errcode))
    return [Finding("wecom", FAIL, f"gettoken answered errcode {errcode} ({who}): {meaning}")]


async def check_callback(settings: Settings, http: aiohttp.ClientSession, callback_url: str | None) -> list[Finding]:
    """WeCom's own URL verification: a signed, encrypted echostr must come back decrypted."""
    import aiohttp
    from defusedxml.ElementTree import fromstring

    from connectors.wecom.crypto import CallbackCrypto

    if not callback_url:
        return [Finding("callback", WARN, "not checked: pass --callback-url https://<host>/wecom/callback "
                                          "(the URL saved in the WeCom admin console)")]
    wecom = settings.wecom
    if not wecom.configured:
        return [Finding("callback", FAIL, "cannot sign a verification request without SCRM_WECOM_TOKEN and "
                                          "SCRM_WECOM_AES_KEY")]
    crypto = CallbackCrypto(wecom.token, wecom.aes_key, wecom.corp_id)
    echo = str(secrets.randbits(60))
    timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
    envelope, signature = crypto.encrypt_callback(echo, timestamp=timestamp, nonce=nonce)
    params = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce,
              "echostr": fromstring(envelope).findtext("Encrypt")}
    try:
        async with http.get(callback_url, params=params, timeout=aiohttp.ClientTimeout(total=10)) as resp:
            status, body = resp.status, (await resp.text())[:200]
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return [Finding("callback", FAIL, f"cannot reach {callback_url}: {_reason(exc)}; WeCom must be able to reach "
                                          "it from the internet")]
    if status == 200 and body == echo:
        return [Finding("callback", OK, f"{callback_url} answers WeCom's URL verification")]
    if status == 403:
        fix = ("the service there refused the signature: its SCRM_WECOM_TOKEN or SCRM_WECOM_AES_KEY differ from this "
               "configuration")
    elif status in (404, 405):
        fix = ("nothing handles WeCom callbacks there: the path is /wecom/callback, served by a process with the "
               "web role and WeCom credentials")
    elif status == 200:
        fix = "it answered 200 without the echostr: another application or a proxy page answers this URL"
    else:
        fix = f"it answered HTTP {status}"
    return [Finding("callback", FAIL, f"{callback_url}: {fix}")]


def _reason(exc: BaseException) -> str:
    """The first line of an error, without SQLAlchemy's background link."""
    cause = getattr(exc, "orig", None) or exc
    message = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {message[:200]}" if message else type(cause).__name__
