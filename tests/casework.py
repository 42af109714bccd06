"""Cases filed and handled through the service layer, as the bot's handlers do it: each step
in one transaction, with the outbox woken so that receipts, cards and their edits go out.

Tests that are about what happens to a case (cards, the ladder, triage, Open311) start from
here rather than walking the wizard or the card's buttons; those are tested end to end in
tests/test_resident_flows.py and tests/test_department_flows.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bot.app import Whistle
from bot.db import transaction
from bot.services import cases, closure
from bot.testserver import BotAPIServer
from models import Case, CaseKind

PHOTO = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

T = TypeVar("T")


async def step(app: Whistle, action: Callable[..., Awaitable[T]], **values: Any) -> T:
    """One step taken as a handler takes it: ``action`` of the service layer, with ``values``,
    in the app's district at its clock's time, in one transaction; then the outbox is woken
    for what the step queued."""
    async with transaction(app.factory) as session:
        result = await action(session, app.district, now=app.clock.now(), **values)
    app.sender.wake()
    return result


def posted_photo(api_server: BotAPIServer, user: int, chat_id: int, data: bytes = PHOTO) -> str:
    """``user`` posts a photo in ``chat_id``, a group the bot does not read (privacy mode):
    the file id of a real photo that the bot can send on."""
    sent = api_server.send_photo(user, data, chat_id=chat_id)
    return str(sent["photo"][-1]["file_id"])


async def submit(app: Whistle, draft: cases.Draft, *, resident: int, name: str = "王晓霞") -> Case:
    """Resident ``resident`` (first name ``name``, writing Simplified Chinese) sends
    ``draft``, as the last step of the wizard does; the outbox is woken for what it queued."""
    return await step(
        app, cases.submit, resident=cases.Person(resident, name, "zh-Hans"), draft=draft
    )


async def ask_for_help(
    app: Whistle, *, resident: int, description: str, name: str = "王晓霞", **values: Any
) -> Case:
    """Resident ``resident`` (first name ``name``) asks the neighbours for help (邻里互助)
    with ``description``; ``values`` as the wizard fills them in (address, door, when,
    skills, whether to share a contact)."""
    draft = cases.Draft(kind=CaseKind.HELP, description=description, **values)
    return await submit(app, draft, resident=resident, name=name)


async def file_photo_report(
    app: Whistle,
    api_server: BotAPIServer,
    *,
    resident: int,
    scratch: int,
    name: str = "王晓霞",
    photo: bytes = PHOTO,
    photos: int = 1,
    description: str = "楼道里有人飞线充电",
    category: str = "flying_wire",
    address: str = "康乐小区3号楼",
    **values: Any,
) -> Case:
    """The resident photographs a problem (``photos`` shots, posted in the ``scratch`` group
    for their file ids) and reports it: by default a flying wire in 康乐小区3号楼, which goes
    to 城管执法局."""
    draft = cases.Draft(
        kind=CaseKind.REPORT,
        photos=[posted_photo(api_server, resident, scratch, photo) for _ in range(photos)],
        description=description,
        category=category,
        address=address,
        **values,
    )
    return await submit(app, draft, resident=resident, name=name)


async def acknowledge(app: Whistle, case: Case, *, by: cases.Person) -> None:
    """``by``, of the case's department, acknowledges (应哨) ``case``, as the card's button
    does."""
    assert case.id is not None and case.department is not None
    await step(app, cases.acknowledge, case_id=case.id, department=case.department, actor=by)


async def answer(
    app: Whistle,
    case: Case,
    *,
    by: cases.Person,
    text: str,
    photos: list[str] | None = None,
    department: str | None = None,
) -> None:
    """``by`` answers (答卷) ``case`` for ``department`` (by default the case's own, as filed),
    as a reply to its card does."""
    department = department or case.department
    assert case.id is not None and department is not None
    await step(
        app,
        cases.answer,
        case_id=case.id,
        department=department,
        actor=by,
        text=text,
        photos=photos or [],
    )


async def withdraw(app: Whistle, case: Case) -> None:
    """The resident who filed ``case`` withdraws (撤回) it, as the button under its timeline
    in /my does."""
    assert case.id is not None and case.resident_id is not None
    await step(app, closure.withdraw, case_id=case.id, resident_id=case.resident_id)
