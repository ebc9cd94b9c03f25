"""Service settings: environment variables first, an optional TOML file second, defaults last.

Validated once at start so a misconfigured deployment fails with a message that says which
variable to set, instead of failing later on the first callback.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

TENCENT_API_BASE = "https://qyapi.weixin.qq.com/cgi-bin/"
# 构造网页授权链接 https://developer.work.weixin.qq.com/document/path/91022
TENCENT_OAUTH_URL = "https://open.weixin.qq.com/connect/oauth2/authorize"
# The JS-SDK a page loads for wx.agentConfig: both files, as Tencent's staff answer in its developer community
# (jweixin-1.2.0 alone lacks agentConfig on the phone clients); JS-SDK使用说明 document/path/90514.
TENCENT_JSSDK_URLS = ("https://res.wx.qq.com/open/js/jweixin-1.2.0.js",
                      "https://open.work.weixin.qq.com/wwopen/js/jwxwork-1.0.0.js")
ENV_PREFIX = "SCRM_"


class ConfigError(ValueError):
    """Raised with every problem found, each line naming the setting to fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("Invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class WeComSettings:
    corp_id: str = ""
    secret: str = ""
    agent_id: str = ""
    token: str = ""
    aes_key: str = ""
    api_base: str = TENCENT_API_BASE
    # SCRM_WECOM_CONTACTS_SECRET: the 通讯录同步 Secret, which alone may list member ids (user/list_id,
    # https://developer.work.weixin.qq.com/document/path/96067); unset, the app's own Secret is tried
    contacts_secret: str = ""
    # SCRM_WECOM_OAUTH_URL: where a page sends a member to be identified (the simulator's in tests and the demo)
    oauth_url: str = TENCENT_OAUTH_URL

    @property
    def configured(self) -> bool:
        return bool(self.corp_id)


@dataclass(frozen=True)
class ArchiveSettings:
    """会话内容存档 (chat archive): pulled by the worker role when the archive secret and key are set."""

    secret: str = ""  # SCRM_WECOM_ARCHIVE_SECRET: the archive's own Secret (管理工具 → 会话内容存档)
    private_key_file: Path | None = None  # SCRM_ARCHIVE_PRIVATE_KEY_FILE: PEM of the uploaded public key's pair
    # SCRM_ARCHIVE_PRIVATE_KEYS="1=/keys/v1.pem,2=/keys/v2.pem": keys of other publickey_ver values after a rotation
    private_keys: tuple[tuple[int, Path], ...] = ()
    sdk_lib: Path | None = None  # SCRM_ARCHIVE_SDK_LIB: libWeWorkFinanceSdk_C.so; unset: the simulator's API
    poll_seconds: float = 60.0  # SCRM_ARCHIVE_POLL_SECONDS: pause after catching up

    @property
    def configured(self) -> bool:
        return bool(self.secret or self.private_key_file)


@dataclass(frozen=True)
class WebhookSettings:
    """The generic JSON webhook (connectors/webhook.py): one HMAC secret per channel name."""

    # SCRM_WEBHOOK_SECRETS="site:SECRET,feishu:SECRET", or [webhook] secrets = {site = "SECRET"}
    secrets: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def channels(self) -> dict[str, str]:
        return dict(self.secrets)


@dataclass(frozen=True)
class PageSettings:
    """The H5 pages WeCom opens (chat sidebar, 看板): who is looking comes from WeCom's OAuth, kept in a
    signed cookie (scrm.http.pages.identity)."""

    # SCRM_PAGE_SECRET: signs the pages' session cookies; every web process must share it. Unset, one is
    # generated into DATA_DIR/page_secret and kept there (enough for the embedded single process).
    secret: str = field(default="", repr=False)
    # SCRM_PAGE_BASE_URL: the public origin the pages are served at (https://scrm.example.com), as configured
    # for the app's homepage in the WeCom admin console; links in chat point there. Unset: no links in chat.
    base_url: str = ""
    # SCRM_PAGE_JSSDK_URLS: comma-separated scripts that provide `wx` (Tencent's; the simulator's double in tests)
    jssdk_urls: tuple[str, ...] = TENCENT_JSSDK_URLS
    session_seconds: float = 7200.0  # SCRM_PAGE_SESSION_SECONDS: a session this old needs WeCom's OAuth again


@dataclass(frozen=True)
class Settings:
    database_url: str = ""
    redis_url: str | None = None
    timezone: str = "Asia/Shanghai"
    api_token: str = ""
    data_dir: Path = Path("data")
    wecom: WeComSettings = field(default_factory=WeComSettings)
    max_body_bytes: int = 1024 * 1024
    inbox_max_attempts: int = 5
    outbox_max_attempts: int = 8
    worker_lease_seconds: float = 60.0
    bot_commands_per_minute: int = 30
    roles_file: Path | None = None
    # SCRM_TICKET_ROUTING_FILE: who the support agents are ([routing] of config/tickets.toml, for this company)
    ticket_routing_file: Path | None = None
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    # SCRM_SYNC_ON_FIRST_START=0: a fresh install waits for `scrm sync directory` instead of syncing by itself
    sync_on_first_start: bool = True
    pages: PageSettings = field(default_factory=PageSettings)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

_WECOM_ENV = {f.name: f"{ENV_PREFIX}WECOM_{f.name.upper()}" for f in fields(WeComSettings)}


def load_settings(env: Mapping[str, str] | None = None, toml_path: str | Path | None = None) -> Settings:
    """Build Settings from `env` (default os.environ) and an optional TOML file.

    The TOML file (path from the argument or SCRM_CONFIG) uses the same names without the
    prefix, lower case, with WeCom keys in a `[wecom]` table. Environment variables win.
    """
    env = os.environ if env is None else env
    toml_path = toml_path or env.get(f"{ENV_PREFIX}CONFIG")
    file_values: dict = {}
    if toml_path:
        path = Path(toml_path)
        if not path.is_file():
            raise ConfigError([f"SCRM_CONFIG points at {path}, which does not exist"])
        try:
            file_values = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path} is not valid TOML: {exc}"]) from exc
    file_wecom = file_values.get("wecom", {})

    def pick(name: str, default: str = "") -> str:
        return env.get(f"{ENV_PREFIX}{name.upper()}", str(file_values.get(name, default)))

    data_dir = Path(pick("data_dir", "data"))
    wecom = WeComSettings(
        **{name: env.get(var, str(file_wecom.get(name, getattr(WeComSettings, name)))) for name, var in _WECOM_ENV.items()}
    )
    settings = Settings(
        database_url=pick("database_url") or f"sqlite+aiosqlite:///{data_dir / 'scrm.sqlite3'}",
        redis_url=pick("redis_url") or None,
        timezone=pick("timezone", "Asia/Shanghai"),
        api_token=pick("api_token"),
        data_dir=data_dir,
        wecom=wecom,
        roles_file=Path(pick("roles_file")) if pick("roles_file") else None,
        ticket_routing_file=Path(pick("ticket_routing_file")) if pick("ticket_routing_file") else None,
        worker_lease_seconds=_number(pick("worker_lease_seconds", "60"), "SCRM_WORKER_LEASE_SECONDS"),
        bot_commands_per_minute=int(_number(pick("bot_commands_per_minute", "30"), "SCRM_BOT_COMMANDS_PER_MINUTE")),
        archive=_archive_settings(env, file_values, file_wecom),
        webhook=_webhook_settings(env, file_values),
        sync_on_first_start=pick("sync_on_first_start", "1").strip().lower() not in ("0", "false", "no", "off"),
        pages=PageSettings(
            secret=pick("page_secret"),
            base_url=pick("page_base_url").rstrip("/"),
            jssdk_urls=tuple(u.strip() for u in pick("page_jssdk_urls").split(",") if u.strip()) or TENCENT_JSSDK_URLS,
            session_seconds=_number(pick("page_session_seconds", "7200"), "SCRM_PAGE_SESSION_SECONDS"),
        ),
    )
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    """Collect every problem at once; an admin fixes them in one pass."""
    problems: list[str] = []
    url = settings.database_url
    if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        problems.append(
            "SCRM_DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg:// "
            f"(got {url.split('://')[0]}://...)"
        )
    if settings.redis_url and not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        problems.append("SCRM_REDIS_URL must be a redis:// or rediss:// URL, or unset for the in-process stand-in")
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"SCRM_TIMEZONE={settings.timezone!r} is not an IANA time zone (e.g. Asia/Shanghai)")
    wecom = settings.wecom
    if wecom.configured:
        missing = [var for name, var in _WECOM_ENV.items()
                   if name not in ("api_base", "contacts_secret", "oauth_url") and not getattr(wecom, name)]
        if missing:
            problems.append("SCRM_WECOM_CORP_ID is set, so also set " + ", ".join(missing))
        if wecom.aes_key and not _valid_aes_key(wecom.aes_key):
            problems.append("SCRM_WECOM_AES_KEY must be the 43-character EncodingAESKey from the WeCom admin console")
        if wecom.agent_id and not wecom.agent_id.isdigit():
            problems.append("SCRM_WECOM_AGENT_ID must be the numeric AgentId of your WeCom app")
    if settings.roles_file and not settings.roles_file.is_file():
        problems.append(f"SCRM_ROLES_FILE points at {settings.roles_file}, which does not exist")
    if settings.ticket_routing_file and not settings.ticket_routing_file.is_file():
        problems.append(f"SCRM_TICKET_ROUTING_FILE points at {settings.ticket_routing_file}, which does not exist")
    if not wecom.api_base.startswith(("http://", "https://")):
        problems.append("SCRM_WECOM_API_BASE must be an http(s) URL")
    if not wecom.oauth_url.startswith(("http://", "https://")):
        problems.append("SCRM_WECOM_OAUTH_URL must be an http(s) URL")
    problems.extend(_page_problems(settings.pages))
    problems.extend(_archive_problems(settings))
    problems.extend(_webhook_problems(settings.webhook))
    if problems:
        raise ConfigError(problems)


def require_wecom(settings: Settings) -> None:
    """`scrm serve` needs real credentials; the demo brings its own."""
    if not settings.wecom.configured:
        raise ConfigError(
            [
                "SCRM_WECOM_CORP_ID, SCRM_WECOM_SECRET, SCRM_WECOM_AGENT_ID, SCRM_WECOM_TOKEN and "
                "SCRM_WECOM_AES_KEY are needed to serve a WeCom app (or run `scrm demo` to try it with the simulator)"
            ]
        )


def _number(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError([f"{name} must be a number (got {value!r})"]) from None
    if number <= 0:
        raise ConfigError([f"{name} must be positive (got {value!r})"])
    return number


def _valid_aes_key(key: str) -> bool:
    if len(key) != 43:
        return False
    try:
        return len(base64.b64decode(key + "=", validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


PAGE_MIN_SECRET = 32


def _page_problems(pages: PageSettings) -> list[str]:
    problems = []
    if pages.secret and len(pages.secret) < PAGE_MIN_SECRET:
        problems.append(f"SCRM_PAGE_SECRET must be at least {PAGE_MIN_SECRET} characters (e.g. `openssl rand -hex 32`)")
    if pages.base_url and not pages.base_url.startswith(("http://", "https://")):
        problems.append("SCRM_PAGE_BASE_URL must be the pages' public http(s) origin, e.g. https://scrm.example.com")
    if not all(url.startswith(("http://", "https://")) for url in pages.jssdk_urls):
        problems.append("SCRM_PAGE_JSSDK_URLS must be http(s) URLs separated by commas")
    return problems


def _archive_settings(env: Mapping[str, str], file_values: dict, file_wecom: dict) -> ArchiveSettings:
    """The chat archive's settings; in TOML, `archive_secret` sits under [wecom], the rest at the top."""
    def pick(name: str) -> str:
        return env.get(f"{ENV_PREFIX}{name.upper()}", str(file_values.get(name, "")))

    versions: list[tuple[int, Path]] = []
    for entry in filter(None, (part.strip() for part in pick("archive_private_keys").split(","))):
        version, _, path = entry.partition("=")
        if not version.strip().isdigit() or not path.strip():
            raise ConfigError([f"SCRM_ARCHIVE_PRIVATE_KEYS must read like 1=/keys/v1.pem,2=/keys/v2.pem (got {entry!r})"])
        versions.append((int(version), Path(path.strip())))
    return ArchiveSettings(
        secret=env.get(f"{ENV_PREFIX}WECOM_ARCHIVE_SECRET", str(file_wecom.get("archive_secret", ""))),
        private_key_file=Path(pick("archive_private_key_file")) if pick("archive_private_key_file") else None,
        private_keys=tuple(versions),
        sdk_lib=Path(pick("archive_sdk_lib")) if pick("archive_sdk_lib") else None,
        poll_seconds=_number(pick("archive_poll_seconds") or "60", "SCRM_ARCHIVE_POLL_SECONDS"),
    )


def _archive_problems(settings: Settings) -> list[str]:
    archive = settings.archive
    if not archive.configured:
        return []
    problems = []
    if not settings.wecom.configured:
        problems.append("the chat archive needs the WeCom app settings too: set SCRM_WECOM_CORP_ID and the rest")
    if not archive.secret:
        problems.append("SCRM_ARCHIVE_PRIVATE_KEY_FILE is set, so also set SCRM_WECOM_ARCHIVE_SECRET (会话内容存档 Secret)")
    if archive.private_key_file is None:
        problems.append("SCRM_WECOM_ARCHIVE_SECRET is set, so also set SCRM_ARCHIVE_PRIVATE_KEY_FILE (the RSA private key PEM)")
    keys = [("SCRM_ARCHIVE_PRIVATE_KEY_FILE", archive.private_key_file)] if archive.private_key_file else []
    keys += [(f"SCRM_ARCHIVE_PRIVATE_KEYS (version {version})", path) for version, path in archive.private_keys]
    for variable, path in keys:
        problem = _rsa_private_key_problem(path)
        if problem:
            problems.append(f"{variable}: {problem}")
    if archive.sdk_lib is not None and not archive.sdk_lib.is_file():
        problems.append(f"SCRM_ARCHIVE_SDK_LIB points at {archive.sdk_lib}, which does not exist "
                        "(WeCom's libWeWorkFinanceSdk_C.so, from its 会话内容存档 SDK download)")
    if archive.sdk_lib is None and settings.wecom.api_base == TENCENT_API_BASE:
        problems.append("the chat archive of a real WeCom company is served only through WeCom's SDK: set "
                        "SCRM_ARCHIVE_SDK_LIB to libWeWorkFinanceSdk_C.so (without it, only `scrm simulator` can serve it)")
    return problems


def _rsa_private_key_problem(path: Path) -> str:
    """Why a file is not a usable archive key; never quotes the file's content."""
    if not path.is_file():
        return f"{path} does not exist"
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError):
        return f"{path} is not an unencrypted PEM private key"
    if not isinstance(key, rsa.RSAPrivateKey):
        return f"{path} is not an RSA private key"
    return ""


# Channel names end up in "webhook:{name}" identity and message channels, 32 characters wide.
WEBHOOK_CHANNEL = re.compile(r"[a-z0-9_-]{1,24}")
WEBHOOK_MIN_SECRET = 16


def _webhook_settings(env: Mapping[str, str], file_values: dict) -> WebhookSettings:
    """Secrets from SCRM_WEBHOOK_SECRETS when set (even empty), else the TOML [webhook] secrets table."""
    variable = f"{ENV_PREFIX}WEBHOOK_SECRETS"
    if variable in env:
        pairs = []
        for number, entry in enumerate(filter(None, (part.strip() for part in env[variable].split(","))), 1):
            channel, colon, secret = entry.partition(":")
            if not colon:  # never quote the entry: it may be a bare secret
                raise ConfigError([f"{variable} must read like site:SECRET,feishu:SECRET (entry {number} has no ':')"])
            pairs.append((channel.strip(), secret.strip()))
        return WebhookSettings(secrets=tuple(pairs))
    section = file_values.get("webhook", {})
    table = section.get("secrets", {}) if isinstance(section, dict) else None
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ConfigError([f"{variable}: [webhook] secrets in SCRM_CONFIG must be a table like {{site = \"SECRET\"}}"])
    return WebhookSettings(secrets=tuple(table.items()))


def _webhook_problems(webhook: WebhookSettings) -> list[str]:
    problems, seen = [], set()
    for channel, secret in webhook.secrets:
        if not WEBHOOK_CHANNEL.fullmatch(channel):
            problems.append(f"SCRM_WEBHOOK_SECRETS: channel name {channel[:40]!r} must be 1-24 characters of a-z, 0-9, _ and -")
        elif channel in seen:
            problems.append(f"SCRM_WEBHOOK_SECRETS names channel {channel!r} twice")
        seen.add(channel)
        if len(secret) < WEBHOOK_MIN_SECRET:
            problems.append(f"SCRM_WEBHOOK_SECRETS: the secret of channel {channel[:40]!r} must be at least "
                            f"{WEBHOOK_MIN_SECRET} characters (e.g. `openssl rand -hex 24`)")
    return problems
