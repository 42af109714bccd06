"""Process settings from the environment (and ``.env``): the contract deployment tools rely on.

``BOT_TOKEN``, ``TELEGRAM_API_BASE``, ``DATABASE_URL`` and ``WHISTLE_CONFIG`` are read as-is;
everything else has a default that suits a single-machine install.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.pacing import Limits
from bot.workers import DEFAULT_WORKERS

DEFAULT_API_BASE = "https://api.telegram.org"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/whistle.db"
# Telegram's rule for setWebhook's secret_token.
WEBHOOK_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")


def normalize_database_url(url: str) -> str:
    """Accept the plain URLs people paste and pick the async driver for them."""
    url = url.strip()
    for plain, async_prefix in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return async_prefix + url[len(plain) :]
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_nested_delimiter="__",
    )

    bot_token: SecretStr | None = Field(default=None, alias="BOT_TOKEN")
    telegram_api_base: str = Field(default=DEFAULT_API_BASE, alias="TELEGRAM_API_BASE")
    database_url: str = Field(default=DEFAULT_DATABASE_URL, alias="DATABASE_URL")
    # SQLite's PRAGMA synchronous: "full" syncs every commit (it survives a power loss),
    # "normal" only at checkpoints (faster commits; see the README's Guarantees).
    sqlite_synchronous: Literal["full", "normal"] = Field(
        default="full", alias="SQLITE_SYNCHRONOUS"
    )
    whistle_config: str | None = Field(default=None, alias="WHISTLE_CONFIG")
    # The early-warning keyword library; the shipped bot/warning/keywords.toml when unset.
    keywords_file: str | None = Field(default=None, alias="WHISTLE_KEYWORDS")
    # Webhook mode when WEBHOOK_URL (the public URL Telegram calls) is set; polling otherwise.
    webhook_url: str | None = Field(default=None, alias="WEBHOOK_URL")
    webhook_secret: SecretStr | None = Field(default=None, alias="WEBHOOK_SECRET")
    webhook_path: str | None = Field(default=None, alias="WEBHOOK_PATH")
    webhook_max_body: int = Field(default=1024 * 1024, alias="WEBHOOK_MAX_BODY", ge=1024)
    webhook_max_connections: int = Field(default=10, alias="WEBHOOK_MAX_CONNECTIONS", ge=1, le=100)
    # The HTTP server for the webhook, /health and /metrics (also served in polling mode).
    web_enabled: bool = Field(default=True, alias="WEB_ENABLED")
    web_host: str = Field(default="127.0.0.1", alias="WEB_HOST")
    web_port: int = Field(default=8080, alias="WEB_PORT", ge=0, le=65535)
    # Where people reach that server, e.g. behind a proxy: the dashboard's sign-in links point
    # there (else http://WEB_HOST:WEB_PORT) and Open311's media_url starts with it (else the
    # request's own scheme and host).
    web_public_url: str | None = Field(default=None, alias="WEB_PUBLIC_URL")
    # Signs the dashboard's session cookies; when unset a new one is made at every start, so
    # a restart signs everybody out.
    web_secret: SecretStr | None = Field(default=None, alias="WEB_SECRET")
    # How long a dashboard sign-in link works (minutes) and a session lasts (hours).
    dashboard_link_minutes: int = Field(default=10, alias="DASHBOARD_LINK_MINUTES", ge=1, le=1440)
    dashboard_session_hours: int = Field(
        default=12, alias="DASHBOARD_SESSION_HOURS", ge=1, le=24 * 30
    )
    # The Mini App (one-form filing): where Telegram opens it, an https:// address ending in
    # /app/ (unset: WEB_PUBLIC_URL + /app/ when that is https, else no Mini App), and how old
    # the launch data Telegram signs may be before the app must be opened again.
    webapp_url: str | None = Field(default=None, alias="WEBAPP_URL")
    webapp_max_age_minutes: int = Field(
        default=60, alias="WEBAPP_MAX_AGE_MINUTES", ge=1, le=24 * 60
    )
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    polling_timeout: int = Field(default=25, alias="POLLING_TIMEOUT", ge=0, le=50)
    # Updates handled at once (of different people; one person's always in order). Each holds
    # a database connection while it runs, so the pool is sized from it.
    update_workers: int = Field(default=DEFAULT_WORKERS, alias="UPDATE_WORKERS", ge=1, le=64)
    # Outbound pacing (bot/pacing.py), Telegram's limits by default: calls per second over
    # all chats, messages per rolling minute in one group, messages per second in one chat
    # (groups included) and how many a chat may get at once before that pace applies.
    send_global_per_second: float = Field(default=30.0, alias="SEND_GLOBAL_PER_SECOND", gt=0)
    send_group_per_minute: int = Field(default=20, alias="SEND_GROUP_PER_MINUTE", ge=1)
    send_private_per_second: float = Field(default=1.0, alias="SEND_PRIVATE_PER_SECOND", gt=0)
    send_burst: int = Field(default=3, alias="SEND_BURST", ge=1)
    # A person's private messages (an album counts once) within 5 seconds beyond which the
    # rest of the burst is not handled and one notice is sent (bot/flood.py).
    flood_limit: int = Field(default=10, alias="FLOOD_LIMIT", ge=1)
    # Several replicas (DEPLOYMENT.md): with REDIS_URL the replicas share the pacing budget and
    # lock each user's updates in Redis; unset, both live in the process (one replica).
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    # Starts every key Whistle writes in Redis (two bots may share one Redis with different
    # prefixes, or different database numbers in REDIS_URL).
    redis_prefix: str = Field(
        default="whistle", alias="REDIS_PREFIX", min_length=1, max_length=64, pattern=r"^[\w.-]+$"
    )
    # How long one replica may hold a user's lock (it lapses if the replica dies meanwhile).
    user_lock_seconds: float = Field(default=30.0, alias="USER_LOCK_SECONDS", gt=0, le=600)
    # How long a sender's claim on an outgoing message lasts unless renewed: a replica that
    # dies gives its chats to the others after this long.
    outbox_claim_seconds: float = Field(default=30.0, alias="OUTBOX_CLAIM_SECONDS", ge=1, le=600)

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("telegram_api_base")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.strip().rstrip("/") or DEFAULT_API_BASE

    def send_limits(self) -> Limits:
        return Limits(
            global_per_second=self.send_global_per_second,
            group_per_minute=self.send_group_per_minute,
            private_per_second=self.send_private_per_second,
            burst=self.send_burst,
        )

    def sqlite_path(self) -> Path | None:
        """The database file for a SQLite URL (None for in-memory or other databases)."""
        prefix = "sqlite+aiosqlite:///"
        if not self.database_url.startswith(prefix):
            return None
        rest = self.database_url[len(prefix) :].split("?", 1)[0]
        return None if rest in ("", ":memory:") else Path(rest)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if not value:
            return None
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("REDIS_URL must be a redis:// (or rediss://, unix://) URL")
        return value

    @field_validator("webhook_url", "webhook_path")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return (value or "").strip() or None

    @field_validator("web_public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return _http_url("WEB_PUBLIC_URL", value, slash=False)

    @field_validator("webapp_url")
    @classmethod
    def _webapp_url(cls, value: str | None) -> str | None:
        return _http_url("WEBAPP_URL", value, slash=True)

    @field_validator("webhook_secret", "web_secret", mode="before")
    @classmethod
    def _blank_secret_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _webhook_mode_is_complete(self) -> Settings:
        secret = self.webhook_secret.get_secret_value() if self.webhook_secret else None
        if secret is not None and not WEBHOOK_SECRET_PATTERN.fullmatch(secret):
            raise ValueError(
                "WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and - "
                "(Telegram's rule for secret_token)"
            )
        if self.webhook_url is None:
            return self
        parts = urlsplit(self.webhook_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"WEBHOOK_URL must be an http(s) URL, not {self.webhook_url!r}")
        if secret is None:
            raise ValueError(
                "WEBHOOK_SECRET is required when WEBHOOK_URL is set: Telegram sends it with "
                "every update and the bot refuses requests without it"
            )
        if not self.web_enabled:
            raise ValueError("WEBHOOK_URL needs the web server: do not set WEB_ENABLED=false")
        if self.webhook_path is not None and not self.webhook_path.startswith("/"):
            raise ValueError("WEBHOOK_PATH must start with '/'")
        return self

    @property
    def webhook_mode(self) -> bool:
        return self.webhook_url is not None

    def public_base_url(self, port: int | None = None) -> str:
        """The web server's address as people reach it: WEB_PUBLIC_URL, else the address it
        listens on (``port`` is the port actually bound, for WEB_PORT=0)."""
        if self.web_public_url is not None:
            return self.web_public_url
        host = self.web_host if ":" not in self.web_host else f"[{self.web_host}]"
        return f"http://{host}:{port if port is not None else self.web_port}"

    def resolved_webapp_url(self) -> str | None:
        """Where the Mini App is opened, or None when it is off (Telegram opens only https://,
        except in its test environment, which the playground stands for)."""
        if self.webapp_url is not None:
            return self.webapp_url
        if self.web_enabled and (self.web_public_url or "").startswith("https://"):
            return f"{self.public_base_url().rstrip('/')}/app/"
        return None

    def resolved_webhook_path(self) -> str:
        """Where the webhook is served: WEBHOOK_PATH, else the path of WEBHOOK_URL."""
        if self.webhook_path is not None:
            return self.webhook_path
        path = urlsplit(self.webhook_url or "").path
        return path or "/"


def _http_url(name: str, value: str | None, *, slash: bool) -> str | None:
    """An http(s) address with a host, ending in ``/`` (``slash``) or not; empty is unset."""
    value = (value or "").strip().rstrip("/")
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an http(s) URL, not {value!r}")
    return value + "/" if slash else value
