"""The service killed with SIGKILL at random moments while residents file reports.

Runs the harness of ``bench/crash.py`` with 20 kills: residents file photo reports through the
real dialog (photo with caption → category → address → Confirm) while the real service
process is killed 0.3–1.5 s after each start-up (some kills land during start-up) and
restarted; the Bot API test server keeps unconfirmed updates, as Telegram does. Then the
service runs undisturbed until everything is through.

What must hold:

* every report whose Confirm press reached the server is exactly one case (updates are
  confirmed only after their transaction commits, and a redelivered update is ignored);
* every case's card reached its department's group;
* a message is sent twice only if its send was in flight at a kill: each chat sends one
  message at a time, so no chat has more duplicates than there were kills;
* nothing is left pending in the outbox; the only dead rows are callback answers repeated
  after a kill (Telegram refuses a second answer to the same press).

The seed is printed (set ``WHISTLE_CRASH_SEED`` to repeat a run's choices; timing still
varies). ``python -m bench.crash`` is the longer run, with Bot API faults as an option.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.crash import DEPARTMENT_CHAT, run_crash
from bot.testserver import BotAPIServer
from tests.conftest import AppFactory

KILLS = 20
CALLBACK_REPEATED = "answerCallbackQuery: TelegramBadRequest: Bad Request: query is too old"


@pytest.mark.slow
async def test_reports_survive_twenty_kills_once_each(
    tmp_path: Path, database_url: str, api_server: BotAPIServer
) -> None:
    seed = os.environ.get("WHISTLE_CRASH_SEED")
    figures = await run_crash(
        api_server,
        database_url,
        tmp_path,
        kills=KILLS,
        residents=4,
        seed=int(seed) if seed else None,
        step_timeout=45.0,
        drain_timeout=60.0,
    )
    print(f"\n{figures.table()}")

    assert figures.problems() == []
    assert figures.kills == KILLS
    assert figures.self_exits == {}  # the service never died but by our hand
    # Every kill cut into a report in hand (some resident between a photo and its receipt),
    # and every report that crossed one is still exactly one case.
    assert figures.kills_between_reports == 0
    assert figures.cases == figures.reports
    assert figures.card_duplicates <= figures.kills
    for chat, duplicates in figures.duplicates_by_chat.items():
        assert duplicates <= figures.kills, f"chat {chat}: {duplicates} duplicates"
    assert figures.duplicates_by_chat.get(str(DEPARTMENT_CHAT), 0) == figures.card_duplicates
    for reason in figures.dead_rows:
        assert reason.startswith(CALLBACK_REPEATED), reason


async def test_a_429_at_start_up_is_waited_out(
    make_app: AppFactory, api_server: BotAPIServer
) -> None:
    # Found by the fault run: a 429 on getMe or deleteWebhook used to stop the service.
    for method in ("getMe", "setMyCommands", "deleteWebhook"):
        api_server.fail_next(429, retry_after=1, method=method)
    await make_app()
    assert api_server.faults == []
    api_server.add_user(7300, first_name="Li", language_code="en")
    api_server.send_text(7300, "/start")
    [greeting] = await api_server.wait_for_message(7300)
    assert greeting.text.startswith("Hello, Li!")
