"""Service settings: environment variables first, an optional TOML file second, defaults last.

Validated once at start so a misconfigured deployment fails with a message that says which
variable to set, instead of failing later on the first callback.
"""

from __future__ import annotations

import base64
import binascii
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TENCENT_API_BASE = "https://qyapi.weixin.qq.com/cgi-bin/"
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

    @property
    def configured(self) -> bool:
        return bool(self.corp_id)


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
    roles_file: Path | None = None

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
        worker_lease_seconds=_number(pick("worker_lease_seconds", "60"), "SCRM_WORKER_LEASE_SECONDS"),
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
        missing = [var for name, var in _WECOM_ENV.items() if name != "api_base" and not getattr(wecom, name)]
        if missing:
            problems.append("SCRM_WECOM_CORP_ID is set, so also set " + ", ".join(missing))
        if wecom.aes_key and not _valid_aes_key(wecom.aes_key):
            problems.append("SCRM_WECOM_AES_KEY must be the 43-character EncodingAESKey from the WeCom admin console")
        if wecom.agent_id and not wecom.agent_id.isdigit():
            problems.append("SCRM_WECOM_AGENT_ID must be the numeric AgentId of your WeCom app")
    if settings.roles_file and not settings.roles_file.is_file():
        problems.append(f"SCRM_ROLES_FILE points at {settings.roles_file}, which does not exist")
    if not wecom.api_base.startswith(("http://", "https://")):
        problems.append("SCRM_WECOM_API_BASE must be an http(s) URL")
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
        raise ConfigError([f"{name} must be a number of seconds (got {value!r})"]) from None
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
