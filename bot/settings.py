"""Process settings from the environment (and ``.env``): the contract deployment tools rely on.

``BOT_TOKEN``, ``TELEGRAM_API_BASE``, ``DATABASE_URL`` and ``WHISTLE_CONFIG`` are read as-is;
everything else has a default that suits a single-machine install.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.pacing import Limits

DEFAULT_API_BASE = "https://api.telegram.org"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/whistle.db"


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
    whistle_config: str | None = Field(default=None, alias="WHISTLE_CONFIG")
    # The early-warning keyword library; the shipped bot/warning/keywords.toml when unset.
    keywords_file: str | None = Field(default=None, alias="WHISTLE_KEYWORDS")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    polling_timeout: int = Field(default=25, alias="POLLING_TIMEOUT", ge=0, le=50)
    # Outbound pacing (bot/pacing.py), Telegram's limits by default: calls per second over
    # all chats, messages per rolling minute in one group, messages per second in one chat
    # (groups included) and how many a chat may get at once before that pace applies.
    send_global_per_second: float = Field(default=30.0, alias="SEND_GLOBAL_PER_SECOND", gt=0)
    send_group_per_minute: int = Field(default=20, alias="SEND_GROUP_PER_MINUTE", ge=1)
    send_private_per_second: float = Field(default=1.0, alias="SEND_PRIVATE_PER_SECOND", gt=0)
    send_burst: int = Field(default=3, alias="SEND_BURST", ge=1)

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return normalize_database_url(value)

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
