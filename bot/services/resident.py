"""The resident's private chat: the questions of the filing dialogs (随手拍, 我有话说,
邻里互助), the summary checked before sending, the offer to follow a similar open case instead
of filing a photo report again, the resident's list of cases (filed and followed) and a case's
timeline, withdrawing, and rating with its optional comment.

No aiogram here. Handlers keep the draft in the dialog state and pass plain values; what the
resident sees is written to the outbox and rendered at send time in their language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.callbacks import ConfirmWithdraw, DraftAction, MyCasesPage, ViewCase, WithdrawCase
from bot.district import District
from bot.i18n import N_, Translator
from bot.services import (
    bundling,
    cases,
    closure,
    early_warning,
    followers,
    my_cases,
    notify,
    privacy,
)
from bot.services.errors import UserError
from bot.services.outbox import (
    answer_callback,
    button,
    enqueue,
    inline_keyboard,
    literal_button,
    send_text,
)
from bot.warning import KeywordLibrary
from models import Case, CaseEvent, CaseKind, CaseStatus, HelpRequest

PAGE_SIZE = 5
MAX_WHEN = 200  # HelpRequest.needed_when
# The latest events a timeline shows: with the case's facts and the residents' comments (cut
# short) it stays within Telegram's 4096 characters.
MAX_TIMELINE_EVENTS = 15

# The steps of each dialog, in order. The photo step also takes the description.
STEPS: dict[CaseKind, tuple[str, ...]] = {
    CaseKind.REPORT: ("photos", "category", "location", "confirm"),
    CaseKind.SAY: ("description", "category", "anonymous", "confirm"),
    CaseKind.HELP: (
        "description",
        "community",
        "where",
        "door",
        "when",
        "skills",
        "contact",
        "confirm",
    ),
}
# What the summary's edit buttons may go back to.
EDITABLE: dict[CaseKind, tuple[str, ...]] = {
    CaseKind.REPORT: ("description", "category", "location"),
    CaseKind.SAY: ("description", "category"),
    CaseKind.HELP: ("description", "community", "where", "door", "when", "skills"),
}
PROMPTS: dict[tuple[CaseKind, str], str] = {
    (CaseKind.REPORT, "photos"): N_("report.ask-photos"),
    (CaseKind.REPORT, "description"): N_("report.ask-description"),
    (CaseKind.REPORT, "category"): N_("report.ask-category"),
    (CaseKind.REPORT, "location"): N_("report.ask-location"),
    (CaseKind.SAY, "description"): N_("say.ask-text"),
    (CaseKind.SAY, "category"): N_("say.ask-category"),
    (CaseKind.SAY, "anonymous"): N_("say.ask-anonymous"),
    (CaseKind.HELP, "description"): N_("ask.ask-what"),
    (CaseKind.HELP, "community"): N_("ask.ask-community"),
    (CaseKind.HELP, "where"): N_("ask.ask-where"),
    (CaseKind.HELP, "door"): N_("ask.ask-door"),
    (CaseKind.HELP, "skills"): N_("ask.ask-skills"),
    (CaseKind.HELP, "when"): N_("ask.ask-when"),
    (CaseKind.HELP, "contact"): N_("ask.ask-contact"),
}
EDIT_LABELS = {
    "description": N_("summary.edit-description"),
    "category": N_("summary.edit-category"),
    "location": N_("summary.edit-location"),
    "community": N_("summary.edit-community"),
    "where": N_("summary.edit-where"),
    "door": N_("summary.edit-door"),
    "when": N_("summary.edit-when"),
    "skills": N_("summary.edit-skills"),
}
# A resident may take a case back until a department has acknowledged it.
WITHDRAWABLE = frozenset({CaseStatus.TRIAGE, CaseStatus.DISPATCHED, CaseStatus.PUBLISHED})
# Event kinds the timeline shows; others (reminders, escalations) are for staff.
TIMELINE_EVENTS = (
    N_("event.submitted"), N_("event.dispatched"), N_("event.acknowledged"),
    N_("event.answered"), N_("event.returned"), N_("event.transferred"),
    N_("event.reopened"), N_("event.commented"), N_("event.closed"), N_("event.withdrawn"),
    N_("event.followed"), N_("event.co_rated"), N_("event.bundled"), N_("event.bundle_joined"),
)  # fmt: skip
_TIMELINE_KINDS = frozenset(key.removeprefix("event.") for key in TIMELINE_EVENTS)
# A co-reporter reads the resident's own steps in the third person, and without their
# comments; their own joining and rating in the second.
_FOR_CO_REPORTERS = {
    "reopened": N_("event.reopened-by-reporter"),
    "commented": N_("event.commented-by-reporter"),
}
_BY_THE_READER = {"followed": N_("event.followed-you"), "co_rated": N_("event.co_rated-you")}
# Events after which the timeline names the unit that has the case.
_WITH_UNIT = frozenset({"dispatched", "acknowledged", "answered", "transferred"})


@dataclass(frozen=True)
class ResidentChat:
    """One update in a resident's private chat: where to write, in which language, when."""

    session: AsyncSession
    district: District
    chat_id: int
    lang: str
    now: datetime
    name: str
    t: Translator
    # The early-warning library in use when the update arrived (None: no screening).
    keywords: KeywordLibrary | None = None

    @property
    def _here(self) -> dict[str, Any]:
        """Where and in which language the chat's messages go, and when."""
        return {"chat_id": self.chat_id, "locale": self.lang, "now": self.now}

    def say(
        self, text_key: str, *, keyboard: dict[str, Any] | None = None, **context: Any
    ) -> None:
        send_text(self.session, text_key=text_key, keyboard=keyboard, **self._here, **context)

    def show(
        self, template: str, context: dict[str, Any], keyboard: dict[str, Any] | None = None
    ) -> None:
        """A new message from a template (summaries, lists, offers)."""
        enqueue(self.session, template=template, context=context, keyboard=keyboard, **self._here)

    def answer(self, query_id: str, text_key: str | None = None, **context: Any) -> None:
        answer_callback(
            self.session, callback_query_id=query_id, text_key=text_key, **self._here, **context
        )

    def edit(
        self,
        message_id: int,
        *,
        text_key: str | None = None,
        template: str | None = None,
        context: dict[str, Any] | None = None,
        keyboard: dict[str, Any] | None = None,
    ) -> None:
        """Replace a message's text (and its buttons: none unless given)."""
        enqueue(
            self.session,
            method="editMessageText",
            text_key=text_key,
            template=template,
            context=context,
            keyboard=keyboard,
            target=message_id,
            **self._here,
        )

    def drop_buttons(self, message_id: int) -> None:
        self.edit_buttons(message_id, None)

    def edit_buttons(self, message_id: int, keyboard: dict[str, Any] | None) -> None:
        enqueue(
            self.session,
            chat_id=self.chat_id,
            locale=self.lang,
            now=self.now,
            method="editMessageReplyMarkup",
            keyboard=keyboard,
            target=message_id,
        )


# -- the filing dialogs -----------------------------------------------------------------------


async def check_can_file(chat: ResidentChat) -> None:
    """Before a dialog starts: refused at once when the resident has filed their hourly
    allowance (the filing itself checks again)."""
    await privacy.check_intake(chat.session, chat.district, resident_id=chat.chat_id, now=chat.now)


def next_step(kind: CaseKind, done: str, district: District | None = None) -> str:
    steps = STEPS[kind]
    if done not in steps:  # the description, edited on its own in a photo report
        return "confirm"
    skipped = skipped_steps(district) if district is not None else frozenset()
    for step in steps[steps.index(done) + 1 :]:
        if step not in skipped:
            return step
    return "confirm"


def skipped_steps(district: District) -> frozenset[str]:
    """Questions the district has nothing to offer for: no communities, no skills."""
    skipped = set()
    if not district.communities():
        skipped.add("community")
    if not district.volunteers.skills:
        skipped.add("skills")
    return frozenset(skipped)


def add_photo(draft: cases.Draft, file_id: str) -> bool:
    """False when the draft already has as many photos as a case may have."""
    if len(draft.photos) >= cases.MAX_PHOTOS:
        return False
    draft.photos.append(file_id)
    return True


def check_text(text: str, limit: int) -> str:
    text = text.strip()
    if not text:
        raise UserError(N_("dialog.text-expected"))
    if len(text) > limit:
        raise UserError(N_("dialog.text-too-long"), limit=limit, length=len(text))
    return text


def check_address(text: str) -> str:
    return check_text(text, cases.MAX_ADDRESS)


def check_when(text: str) -> str:
    return check_text(text, MAX_WHEN)


MAX_BUILDING = 60
MAX_DOOR = 200  # HelpRequest.door
# Every volunteer in the group sees where a help request is: the building, never a phone
# number or the flat. A run of seven or more digits is taken for a phone number; "501室",
# "2-3-501", "2单元501", "#501", "flat 5", "room 12" for a flat.
_PHONE = re.compile(r"(?:\d[\s-]?){7,}")
_FLAT = re.compile(
    r"\d+\s*(?:室|户|号房)|\d+\s*-\s*\d+\s*-\s*\d+|单元\s*\d{2,}|#\s*\d{3,}"
    r"|\b(?:flat|apt|apartment|room|rm|unit)\.?\s*#?\s*\d+",
    re.IGNORECASE,
)


def check_building(text: str) -> str:
    """The public part of a help request's place: a building, with no phone or flat."""
    text = check_text(text, MAX_BUILDING)
    # One answer names every problem, so the resident fixes them in one go.
    phone, flat = _PHONE.search(text), _FLAT.search(text)
    if phone and flat:
        raise UserError(N_("ask.where-has-phone-and-flat"))
    if phone:
        raise UserError(N_("ask.where-has-phone"))
    if flat:
        raise UserError(N_("ask.where-has-flat"))
    return text


def check_door(text: str) -> str:
    return check_text(text, MAX_DOOR)


def community_of(chat: ResidentChat, code: str) -> str:
    unit = chat.district.department(code)
    if unit is None or unit not in chat.district.communities():
        raise UserError(N_("errors.stale-button"))
    return unit.code


def toggle_skill(chat: ResidentChat, draft: cases.Draft, index: str) -> None:
    skills = chat.district.volunteers.skills
    if not index.isdigit() or int(index) >= len(skills):
        raise UserError(N_("errors.stale-button"))
    skill = skills[int(index)]
    draft.skills = (
        [s for s in draft.skills if s != skill]
        if skill in draft.skills
        else [*draft.skills, skill]
    )


def skills_label(chat: ResidentChat, draft: cases.Draft) -> str:
    if not draft.skills:
        return chat.t(N_("ask.skills-any"))
    return ("、" if chat.lang.startswith("zh") else ", ").join(draft.skills)


def skills_keyboard(chat: ResidentChat, draft: cases.Draft, token: str) -> dict[str, Any]:
    buttons = [
        literal_button(
            ("✅ " if skill in draft.skills else "") + skill,
            DraftAction(token, "skill", str(index)).pack(),
        )
        for index, skill in enumerate(chat.district.volunteers.skills)
    ]
    rows = [buttons[i : i + 3] for i in range(0, len(buttons), 3)]
    rows.append([button(N_("ask.skills-done"), DraftAction(token, "skill", "ok").pack())])
    return {"inline": rows}


def prompt(chat: ResidentChat, *, draft: cases.Draft, step: str, token: str) -> None:
    """Ask for what the step needs (the summary, at the end)."""
    if step == "confirm":
        show_summary(chat, draft=draft, token=token)
        return
    keyboard = None
    if step == "category":
        keyboard = _category_keyboard(chat, draft.kind, token)
    elif step == "anonymous":
        keyboard = inline_keyboard(
            [
                button(N_("say.anonymous-yes"), DraftAction(token, "anon", "1").pack()),
                button(N_("say.anonymous-no"), DraftAction(token, "anon", "0").pack()),
            ]
        )
    elif step == "community":
        keyboard = inline_keyboard(
            *(
                [
                    literal_button(
                        unit.names.get(chat.lang), DraftAction(token, "com", unit.code).pack()
                    )
                ]
                for unit in chat.district.communities()
            )
        )
    elif step == "door":
        keyboard = inline_keyboard(
            [button(N_("dialog.skip"), DraftAction(token, "door", "").pack())]
        )
    elif step == "skills":
        keyboard = skills_keyboard(chat, draft, token)
    elif step == "contact":
        keyboard = inline_keyboard(
            [
                button(N_("ask.contact-yes"), DraftAction(token, "contact", "1").pack()),
                button(N_("ask.contact-no"), DraftAction(token, "contact", "0").pack()),
            ]
        )
    limits = {
        "photos": cases.MAX_PHOTOS,
        "description": cases.MAX_DESCRIPTION,
        "location": cases.MAX_ADDRESS,
        "where": MAX_BUILDING,
        "door": MAX_DOOR,
        "when": MAX_WHEN,
    }
    context = {"limit": limits[step]} if step in limits else {}
    chat.say(PROMPTS[(draft.kind, step)], keyboard=keyboard, **context)


def _category_keyboard(chat: ResidentChat, kind: CaseKind, token: str) -> dict[str, Any]:
    buttons = [
        literal_button(
            category.names.get(chat.lang), DraftAction(token, "cat", category.code).pack()
        )
        for category in chat.district.categories_of_kind(kind.value)
    ]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    if kind is not CaseKind.REPORT:
        rows.append([button(N_("dialog.skip"), DraftAction(token, "cat", "").pack())])
    return {"inline": rows}


def category_of(chat: ResidentChat, kind: CaseKind, code: str) -> str | None:
    """The category a button named, checked against the district; '' means skipped."""
    if not code and kind is not CaseKind.REPORT:
        return None
    category = chat.district.category(code) if code else None
    if category is None or category.kind != kind.value:
        raise UserError(N_("report.category-unknown"))
    return category.code


def chosen(chat: ResidentChat, message_id: int, choice: str) -> None:
    """A question answered by a button shows the answer instead of its buttons."""
    chat.edit(message_id, text_key=N_("dialog.chosen"), context={"choice": choice})


def category_label(chat: ResidentChat, code: str | None) -> str:
    category = chat.district.category(code) if code else None
    return category.names.get(chat.lang) if category else chat.t("dialog.skip")


def show_summary(
    chat: ResidentChat, *, draft: cases.Draft, token: str, message_id: int | None = None
) -> None:
    """Everything the resident filled in, with Confirm, edits and Cancel; edited in place
    when ``message_id`` is given (the anonymity toggle)."""
    context = {
        "kind": draft.kind.value,
        "photo_count": len(draft.photos),
        "description": draft.description,
        "category": draft.category,
        "address": draft.address,
        "latitude": draft.latitude,
        "longitude": draft.longitude,
        "needed_when": draft.needed_when,
        "anonymous": draft.anonymous,
        "share_contact": draft.share_contact,
        "contact": draft.contact,
        "name": chat.name,
        "community": draft.community,
        "door": draft.door,
        "skills": list(draft.skills),
    }
    keyboard = _summary_keyboard(draft, token)
    if message_id is not None:
        chat.edit(message_id, template="resident_summary.html", context=context, keyboard=keyboard)
        return
    chat.show("resident_summary.html", context, keyboard)


def _summary_keyboard(draft: cases.Draft, token: str) -> dict[str, Any]:
    def action(name: str, value: str = "") -> str:
        return DraftAction(token, name, value).pack()

    if draft.kind is CaseKind.HELP:
        toggle = N_("summary.hide-contact") if draft.share_contact else N_("summary.share-contact")
    else:
        toggle = N_("summary.go-named") if draft.anonymous else N_("summary.go-anonymous")
    edits = [button(EDIT_LABELS[step], action("edit", step)) for step in EDITABLE[draft.kind]]
    edits.append(button(N_("summary.cancel"), action("no")))
    return inline_keyboard(
        [button(N_("summary.confirm"), action("ok"))],
        [button(toggle, action("toggle"))],
        *(edits[i : i + 2] for i in range(0, len(edits), 2)),
    )


async def confirm(
    chat: ResidentChat, *, resident_id: int, draft: cases.Draft, token: str, message_id: int
) -> int | None:
    """Confirm on the summary. A photo report that repeats an open case nearby is not filed
    yet: the resident is shown that case and asked whether it is the same problem (returns
    its id). Anything else is filed."""
    chat.drop_buttons(message_id)
    similar = await bundling.find_similar(
        chat.session, chat.district, draft=draft, resident_id=resident_id, now=chat.now
    )
    if similar is None:
        await _file(chat, resident_id=resident_id, draft=draft)
        return None
    assert similar.id is not None
    chat.show(
        "similar_case.html",
        bundling.similar_context(similar),
        inline_keyboard(
            [button(N_("similar.follow"), DraftAction(token, "follow", str(similar.id)).pack())],
            [button(N_("similar.new"), DraftAction(token, "new", "").pack())],
        ),
    )
    return similar.id


async def follow_similar(
    chat: ResidentChat, *, resident_id: int, case_id: int, draft: cases.Draft, message_id: int
) -> Case:
    """Same problem: the resident follows the case instead of filing one. What they wrote is
    screened for dispute risks like a new case's text, against the case they follow."""
    case = await bundling.follow(
        chat.session,
        chat.district,
        case_id=case_id,
        resident=cases.Person(resident_id, chat.name, chat.lang),
        draft=draft,
        now=chat.now,
    )
    if chat.keywords is not None and draft.description:
        await early_warning.screen_case(
            chat.session, chat.district, chat.keywords, case, now=chat.now, text=draft.description
        )
    chosen(chat, message_id, chat.t(N_("similar.follow")))
    chat.say(N_("similar.following"), number=case.number)
    return case


async def file_anyway(
    chat: ResidentChat, *, resident_id: int, draft: cases.Draft, message_id: int
) -> Case:
    """A different problem after all: filed as usual."""
    chosen(chat, message_id, chat.t(N_("similar.new")))
    return await _file(chat, resident_id=resident_id, draft=draft)


async def _file(chat: ResidentChat, *, resident_id: int, draft: cases.Draft) -> Case:
    """File the case (the service sends the receipt) and screen it for dispute risks."""
    resident = cases.Person(resident_id, chat.name, chat.lang)
    case = await cases.submit(
        chat.session, chat.district, resident=resident, draft=draft, now=chat.now
    )
    if chat.keywords is not None:
        await early_warning.screen_case(
            chat.session, chat.district, chat.keywords, case, now=chat.now
        )
    return case


def cancelled(chat: ResidentChat, summary_message_id: int) -> None:
    chat.edit(summary_message_id, text_key=N_("cancel.done"))


# -- my cases ---------------------------------------------------------------------------------


async def show_cases(
    chat: ResidentChat, *, resident_id: int, page: int, message_id: int | None = None
) -> None:
    """A page of the resident's cases, newest first; paging edits the same message."""
    rows, total = await my_cases.cases_of(
        chat.session, resident_id, page=max(page, 0), page_size=PAGE_SIZE
    )
    pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    if not rows and total and page > 0:  # a page that no longer exists
        page = pages - 1
        rows, total = await my_cases.cases_of(
            chat.session, resident_id, page=page, page_size=PAGE_SIZE
        )
    if not rows:
        if message_id is None:
            chat.say(N_("my.empty"))
        else:
            chat.edit(message_id, text_key=N_("my.empty"))
        return
    page = max(page, 0)
    listed = [
        {
            **notify.case_facts(case),
            "updated_at": case.updated_at.isoformat(),
            "followed": case.resident_id != resident_id,
        }
        for case in rows
    ]
    keyboard_rows = [
        [literal_button(_case_label(chat, case, resident_id), ViewCase(_id(case)).pack())]
        for case in rows
    ]
    nav = []
    if page > 0:
        nav.append(button(N_("my.prev"), MyCasesPage(page - 1).pack()))
    if page < pages - 1:
        nav.append(button(N_("my.next"), MyCasesPage(page + 1).pack()))
    if nav:
        keyboard_rows.append(nav)
    context = {"cases": listed, "page": page + 1, "pages": pages, "total": total}
    keyboard = {"inline": keyboard_rows}
    if message_id is None:
        chat.show("resident_cases.html", context, keyboard)
    else:
        chat.edit(message_id, template="resident_cases.html", context=context, keyboard=keyboard)


def _id(case: Case) -> int:
    assert case.id is not None
    return case.id


def _case_label(chat: ResidentChat, case: Case, resident_id: int) -> str:
    category = chat.district.category(case.category) if case.category else None
    what = category.names.get(chat.lang) if category else chat.t(f"kind.{case.kind.value}")
    followed = " 👥" if case.resident_id != resident_id else ""
    return f"{case.number} · {what}{followed}"


async def _page_of(session: AsyncSession, case: Case, resident_id: int) -> int:
    """The page of the resident's list that shows this case."""
    newer = await session.scalar(
        select(func.count())
        .select_from(Case)
        .where(
            followers.mine(resident_id),
            or_(
                col(Case.created_at) > case.created_at,
                and_(col(Case.created_at) == case.created_at, col(Case.id) > case.id),
            ),
        )
    )
    return int(newer or 0) // PAGE_SIZE


async def show_timeline(
    chat: ResidentChat,
    *,
    resident_id: int,
    case_id: int,
    message_id: int,
    confirm_withdraw: bool = False,
) -> None:
    """A case's facts and what happened to it, in place of the list."""
    case, events = await my_cases.timeline(chat.session, case_id=case_id, resident_id=resident_id)
    own = case.resident_id == resident_id
    shown = [
        _timeline_line(event, own=own, reader=resident_id)
        for event in events
        if event.kind in _TIMELINE_KINDS
    ][-MAX_TIMELINE_EVENTS:]
    withdrawable = own and case.status in WITHDRAWABLE and not closure.is_shared(case)
    if confirm_withdraw and not withdrawable:
        raise UserError(N_("withdraw.too-late"), number=case.number)
    request = await chat.session.get(HelpRequest, case.id) if case.kind is CaseKind.HELP else None
    context = {
        **notify.case_details(case),
        "needed_when": request.needed_when if request else None,
        "rating": case.rating.value if case.rating else None,
        "events": shown,
        "confirm_withdraw": confirm_withdraw,
        "followed": not own,
        "reporters": case.reporters,
    }
    page = await _page_of(chat.session, case, resident_id)
    back = button(N_("timeline.back"), MyCasesPage(page).pack())
    if confirm_withdraw:
        keyboard = inline_keyboard(
            [
                button(N_("timeline.withdraw-yes"), ConfirmWithdraw(case_id).pack()),
                button(N_("timeline.withdraw-no"), ViewCase(case_id).pack()),
            ]
        )
    elif withdrawable:
        keyboard = inline_keyboard(
            [button(N_("timeline.withdraw"), WithdrawCase(case_id).pack()), back]
        )
    else:
        keyboard = inline_keyboard([back])
    chat.edit(message_id, template="resident_timeline.html", context=context, keyboard=keyboard)


def _timeline_line(event: CaseEvent, *, own: bool, reader: int) -> dict[str, Any]:
    """One event as this reader sees it. Other residents are never named."""
    label = f"event.{event.kind}"
    if event.kind in _BY_THE_READER and event.actor_id == reader:
        label = _BY_THE_READER[event.kind]
    elif not own and event.kind in _FOR_CO_REPORTERS:
        label = _FOR_CO_REPORTERS[event.kind]
    cases_named = None
    if event.kind == "bundled":
        cases_named = event.note
    elif event.kind == "bundle_joined":
        cases_named = ", ".join(event.data.get("members", []))
    return {
        "label": label,
        "at": event.at.isoformat(),
        "department": event.department if event.kind in _WITH_UNIT else None,
        "note": event.note if own and event.kind == "commented" else None,
        "rating": event.data.get("rating") if event.kind == "co_rated" else None,
        "cases": cases_named,
    }


async def withdraw(chat: ResidentChat, *, resident_id: int, case_id: int, message_id: int) -> Case:
    case = await closure.withdraw(
        chat.session, chat.district, case_id=case_id, resident_id=resident_id, now=chat.now
    )
    await show_timeline(chat, resident_id=resident_id, case_id=case_id, message_id=message_id)
    return case


# -- rating -----------------------------------------------------------------------------------


async def rate(
    chat: ResidentChat,
    *,
    resident_id: int,
    case_id: int,
    code: str,
    message_id: int,
    ask_comment: bool = True,
) -> bool:
    """评卷 from the rating buttons; the question then shows the rating. Returns whether a
    comment was asked for: from the case's own resident only, whose rating decides."""
    rating = closure.RATINGS.get(code)
    if rating is None:
        raise UserError(N_("errors.stale-button"))
    case = await closure.rate(
        chat.session,
        chat.district,
        case_id=case_id,
        resident_id=resident_id,
        rating=rating,
        now=chat.now,
    )
    chat.edit(
        message_id,
        text_key=N_("rate.rated"),
        context={"number": case.number, "rating": chat.t(f"rating.{rating.value}")},
    )
    if case.resident_id != resident_id:
        chat.say(N_("rate.co-rated"), number=case.number)
        return False
    if ask_comment:
        chat.say(N_("rate.comment-prompt"), limit=cases.MAX_COMMENT)
    return ask_comment


async def comment(chat: ResidentChat, *, resident_id: int, case_id: int, text: str) -> Case:
    return await closure.comment_on_rating(
        chat.session,
        chat.district,
        case_id=case_id,
        resident_id=resident_id,
        text=text,
        now=chat.now,
    )


async def latest_reopened(session: AsyncSession, resident_id: int) -> int | None:
    """The resident's most recently reopened case, which free text comments on."""
    case_id: int | None = await session.scalar(
        select(col(Case.id))
        .where(col(Case.resident_id) == resident_id, col(Case.status) == CaseStatus.REOPENED)
        .order_by(col(Case.updated_at).desc(), col(Case.id).desc())
        .limit(1)
    )
    return case_id
