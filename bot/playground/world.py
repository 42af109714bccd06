"""The playground's world: the example district's groups and people in the test server, a few
residents and volunteers, and the chats the page shows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.district import District
from bot.i18n import N_
from bot.testserver import BotAPIServer

# Made-up people of the playground (the district's own people come from the district file).
RESIDENTS: tuple[tuple[int, str, str], ...] = (
    (7001, "王晓霞", "zh-hans"),
    (7002, "李明", "zh-hans"),
    (7003, "Alice", "en"),
)
VOLUNTEERS: tuple[tuple[int, str], ...] = ((8001, "张热心"), (8002, "刘志愿"))
# One clerk per unit group, so every group has someone to act as: 9001, 9002, …
CLERK_BASE = 9000


@dataclass(frozen=True)
class Member:
    id: int
    name: str


@dataclass(frozen=True)
class ChatView:
    """A chat the page shows. Private tabs (``private=True``) are one chat per member."""

    key: str
    title: str
    kind: str
    members: tuple[Member, ...]
    chat_id: int | None = None
    private: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "kind": self.kind,
            "chat_id": self.chat_id,
            "private": self.private,
            "members": [{"id": m.id, "name": m.name} for m in self.members],
        }


@dataclass(frozen=True)
class Group:
    chat_id: int
    kind: str
    names: Callable[[str], str]
    members: tuple[Member, ...]


def groups(district: District) -> list[Group]:
    """Every group of the district with the people who sit in it."""
    people = {p.telegram_id: Member(p.telegram_id, p.name) for p in district.people}
    volunteers = tuple(Member(uid, name) for uid, name in VOLUNTEERS)
    found: list[Group] = []
    clerk = CLERK_BASE

    def next_clerk(prefix: str) -> Member:
        nonlocal clerk
        clerk += 1
        return Member(clerk, f"{prefix}·办事员{clerk - CLERK_BASE}")

    center = district.governance_center
    if center.chat_id is not None:
        staff = [
            people[p.telegram_id]
            for p in district.people
            if p.has_role("center_head") or (p.has_role("admin") and not p.departments)
        ]
        found.append(
            Group(center.chat_id, "center", center.names.get, (*staff, next_clerk("中心")))
        )
    supervision = district.supervision
    if supervision is not None and supervision.chat_id is not None:
        staff = [people[p.telegram_id] for p in district.people_with_role("supervisor")]
        found.append(Group(supervision.chat_id, "supervision", supervision.names.get, (*staff,)))
    if district.volunteers.chat_id is not None:
        found.append(
            Group(
                district.volunteers.chat_id,
                "volunteers",
                lambda _lang: "志愿者群 · Volunteers",
                volunteers,
            )
        )
    for office in district.street_offices:
        if office.chat_id is not None:
            found.append(
                Group(office.chat_id, "street_office", office.names.get, (next_clerk("街道"),))
            )
    for department in district.departments:
        staff = [people[p.telegram_id] for p in district.people_of_department(department.code)]
        if department.chat_id is not None:
            found.append(
                Group(
                    department.chat_id,
                    "department",
                    department.names.get,
                    (*staff, next_clerk(department.names.get()[:2])),
                )
            )
        if department.volunteer_chat_id is not None:
            names = department.names.get
            found.append(
                Group(
                    department.volunteer_chat_id,
                    "volunteers",
                    lambda lang, names=names: f"{names(lang)} · 志愿者",  # type: ignore[misc]
                    volunteers,
                )
            )
    return found


def chat_views(district: District, lang: str, t: Callable[[str], str]) -> list[ChatView]:
    residents = tuple(Member(uid, name) for uid, name, _ in RESIDENTS)
    volunteers = tuple(Member(uid, name) for uid, name in VOLUNTEERS)
    staff = tuple(Member(p.telegram_id, p.name) for p in district.people)
    leaders = [p.telegram_id for p in district.people_with_role("leader")]
    ordered = sorted(staff, key=lambda m: m.id not in leaders)  # the leader first
    views = [
        ChatView(
            "residents", t(N_("playground.chat.residents")), "resident", residents, None, True
        ),
        ChatView("staff", t(N_("playground.chat.staff")), "staff", tuple(ordered), None, True),
        ChatView(
            "volunteers-private",
            t(N_("playground.chat.volunteers")),
            "volunteer",
            volunteers,
            private=True,
        ),
    ]
    order = {"department": 0, "volunteers": 1, "center": 2, "street_office": 3, "supervision": 4}
    for group in sorted(groups(district), key=lambda g: order.get(g.kind, 9)):
        views.append(
            ChatView(
                f"group{group.chat_id}",
                group.names(lang),
                group.kind,
                group.members,
                group.chat_id,
            )
        )
    return views


def populate(server: BotAPIServer, district: District) -> list[int]:
    """Create the people and groups in the test server; returns everyone who starts the bot."""
    everyone: dict[int, tuple[str, str]] = {}
    for uid, name, language in RESIDENTS:
        everyone[uid] = (name, language)
    for uid, name in VOLUNTEERS:
        everyone[uid] = (name, "zh-hans")
    for person in district.people:
        everyone[person.telegram_id] = (person.name, "zh-hans")
    all_groups = groups(district)
    for group in all_groups:
        for member in group.members:
            everyone.setdefault(member.id, (member.name, "zh-hans"))
    for uid, (name, language) in everyone.items():
        server.add_user(uid, name, language_code=language)
    for group in all_groups:
        server.create_group(
            group.chat_id,
            group.names(district.default_language),
            members=[m.id for m in group.members],
        )
    starters = [uid for uid, _, _ in RESIDENTS] + [uid for uid, _ in VOLUNTEERS]
    return starters + [person.telegram_id for person in district.people]
