"""The service as a newcomer runs it: ``python -m bot`` as its own process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from bot.testserver import BotAPIServer
from tests.conftest import EXAMPLE_DISTRICT, TOKEN

RESIDENT = 7100


def service_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "TELEGRAM_"))}
    env.update(extra)
    return env


async def run_bot(*args: str, env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_bad_district_file_is_refused_naming_key_and_line(
    tmp_path: Path, database_url: str
) -> None:
    bad = EXAMPLE_DISTRICT.read_text(encoding="utf-8").replace(
        'case_prefix = "HB"', 'case_prefix = "HB-2024!"', 1
    )
    line = next(n for n, text in enumerate(bad.splitlines(), 1) if text.startswith("case_prefix"))
    config = tmp_path / "district.toml"
    config.write_text(bad, encoding="utf-8")
    env = service_env(BOT_TOKEN=TOKEN, DATABASE_URL=database_url, WHISTLE_CONFIG=str(config))
    process = await run_bot(env=env, cwd=tmp_path)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    assert f"district.toml:{line}: district.case_prefix" in stderr.decode()


async def test_service_answers_start_and_stops_cleanly(
    tmp_path: Path, database_url: str, api_server: BotAPIServer
) -> None:
    env = service_env(
        BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE=api_server.base_url,
        DATABASE_URL=database_url,
        WHISTLE_CONFIG=str(EXAMPLE_DISTRICT),
        POLLING_TIMEOUT="1",
    )
    process = await run_bot(env=env, cwd=tmp_path)
    try:
        api_server.add_user(RESIDENT, first_name="秘密名字", language_code="zh-hans")
        api_server.send_text(RESIDENT, "/start")
        [reply] = await api_server.wait_for_message(RESIDENT, timeout=60)
        assert "秘密名字" in reply.text
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()[-2000:]
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.strip()]
    assert {"app.started", "outbox.delivered", "app.stopped"} <= {e["event"] for e in lines}
    assert "秘密名字" not in stderr.decode()  # no personal data in the logs


async def test_an_unreachable_database_or_redis_stops_the_start_with_a_clear_message(
    tmp_path: Path, api_server: BotAPIServer
) -> None:
    """Nothing listens on port 9: the service says which dependency does not answer (without
    a password) and exits non-zero within seconds, instead of retrying or hanging."""
    base = service_env(
        BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE=api_server.base_url,
        WHISTLE_CONFIG=str(EXAMPLE_DISTRICT),
    )
    cases = [
        (
            {"DATABASE_URL": "postgresql://whistle:s3cret@127.0.0.1:9/whistle"},
            "the database at postgresql+asyncpg://whistle:***@127.0.0.1:9/whistle does not answer",
        ),
        (
            {
                "DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
                "REDIS_URL": "redis://:s3cret@127.0.0.1:9/0",
            },
            "Redis at 127.0.0.1:9/0 does not answer",
        ),
    ]
    for extra, message in cases:
        process = await run_bot(env={**base, **extra}, cwd=tmp_path)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        text = stderr.decode()
        assert process.returncode == 1, text[-2000:]
        assert message in text, text[-2000:]
        assert "s3cret" not in text
        assert "Traceback" not in text
    process = await run_bot("migrate", env={**base, **cases[0][0]}, cwd=tmp_path)
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 1
    assert "Whistle cannot migrate: the database at" in stderr.decode()
