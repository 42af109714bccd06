"""Process settings from the environment (and ``.env``): the contract deployment tools rely on.

``BOT_TOKEN``, ``TELEGRAM_API_BASE``, ``DATABASE_URL`` and ``WHISTLE_CONFIG`` are read as-is;
everything else has a default that suits a single-machine install.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("telegram_api_base")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.strip().rstrip("/") or DEFAULT_API_BASE

    def sqlite_path(self) -> Path | None:
        """The database file for a SQLite URL (None for in-memory or other databases)."""
        prefix = "sqlite+aiosqlite:///"
        if not self.database_url.startswith(prefix):
            return None
        rest = self.database_url[len(prefix) :].split("?", 1)[0]
        return None if rest in ("", ":memory:") else Path(rest)
