"""The resident's private chat: 随手拍 photo reports, 我有话说 posts, 邻里互助 help requests,
/my with timelines and withdrawal, and rating an answer.

A filing dialog keeps its draft in the dialog state (``Draft.to_dict()``) with a token that its
buttons carry, so a button from a finished or abandoned dialog is recognised as stale. Each
step is a state of :class:`Filing`; what each step asks and shows lives in
:mod:`bot.services.resident`. /start, /help, /cancel and /lang are handled before this router
and work in every state.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, Filter, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiogram.types import User as TelegramUser
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import (
    ConfirmWithdraw,
    DraftAction,
    MyCasesPage,
    RateCase,
    ViewCase,
    WithdrawCase,
)
from bot.i18n import N_, Catalogues
from bot.services import cases, menu, resident
from bot.services.errors import UserError
from bot.services.resident import ResidentChat
from bot.warning import EarlyWarning
from handlers.filters import CallbackOf, TextIn
from models import CaseKind


class Filing(StatesGroup):
    photos = State()
    description = State()
    category = State()
    location = State()
    anonymous = State()
    community = State()
    where = State()
    door = State()
    when = State()
    skills = State()
    contact = State()
    confirm = State()
    similar = State()  # a photo report repeats an open case: follow it, or file anyway


class RatingComment(StatesGroup):
    comment = State()


# Each step's dialog state, by the step's name (the names of :mod:`bot.services.resident`).
STEP_STATES: dict[str, State] = {
    name: state for name, state in vars(Filing).items() if isinstance(state, State)
}
FIRST_STEPS = {
    "report": (CaseKind.REPORT, "photos"),
    "say": (CaseKind.SAY, "description"),
    "ask": (CaseKind.HELP, "description"),
}
# The steps answered by one text, kept in the draft once checked: the draft's field, the check.
TEXT_ANSWERS: dict[str, tuple[str, Callable[[str], str]]] = {
    "description": ("description", cases.check_description),
    "where": ("address", resident.check_building),
    "door": ("door", resident.check_door),
    "when": ("needed_when", resident.check_when),
}
TEXT_STEPS = tuple(STEP_STATES[step] for step in TEXT_ANSWERS)
BUTTON_STEPS = (
    Filing.category,
    Filing.community,
    Filing.skills,
    Filing.anonymous,
    Filing.contact,
    Filing.confirm,
    Filing.similar,
)


@dataclass
class Dialog:
    """The filing dialog in the dialog state: token, draft, whether the summary sent the
    resident back to edit one step, and the album being received."""

    state: FSMContext
    data: dict[str, Any]
    _draft: cases.Draft | None = field(default=None, repr=False)

    @classmethod
    async def load(cls, state: FSMContext) -> Dialog:
        return cls(state, await state.get_data())

    @property
    def token(self) -> str:
        return str(self.data.get("token", ""))

    @property
    def draft(self) -> cases.Draft:
        if self._draft is None:
            if "draft" not in self.data:
                raise UserError(N_("errors.stale-button"))
            self._draft = cases.Draft.from_dict(self.data["draft"])
        return self._draft

    async def begin(
        self, chat: ResidentChat, draft: cases.Draft, step: str, *, ask: bool = True
    ) -> None:
        """A new dialog: earlier dialogs' buttons go stale."""
        self.data = {"token": secrets.token_hex(4)}
        self._draft = draft
        if ask:
            await self.go(chat, step)
            return
        await self.state.set_state(STEP_STATES[step])
        await self.save()

    async def go(self, chat: ResidentChat, step: str, *, editing: bool | None = None) -> None:
        if editing is not None:
            self.data["editing"] = editing
        await self.state.set_state(STEP_STATES[step])
        await self.save()
        resident.prompt(chat, draft=self.draft, step=step, token=self.token)

    async def advance(self, chat: ResidentChat, done: str) -> None:
        """The step ``done`` is complete: on to the next, or back to the summary."""
        editing = bool(self.data.get("editing"))
        step = "confirm" if editing else resident.next_step(self.draft.kind, done, chat.district)
        await self.go(chat, step)

    async def save(self) -> None:
        if self._draft is not None:
            self.data["draft"] = self._draft.to_dict()
        await self.state.set_data(self.data)


class AlbumTail(Filter):
    """The rest of an album whose first photo the dialog already answered."""

    async def __call__(self, message: Message, state: FSMContext) -> bool:
        album = message.media_group_id
        return album is not None and album == (await state.get_data()).get("album")


class ReopenedCase(Filter):
    """Free text from a resident with a reopened case comments on it."""

    async def __call__(self, message: Message, session: AsyncSession) -> bool | dict[str, Any]:
        assert message.from_user is not None
        case_id = await resident.latest_reopened(session, message.from_user.id)
        return False if case_id is None else {"case_id": case_id}


async def _context(
    handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
    event: TelegramObject,
    data: dict[str, Any],
) -> Any:
    """Every handler here gets the chat it answers in and the dialog."""
    user = data["user"]
    warning: EarlyWarning | None = data.get("early_warning")
    data["chat"] = ResidentChat(
        session=data["session"],
        district=data["district"],
        chat_id=user.id,
        lang=data["lang"],
        now=data["now"],
        name=user.first_name,
        t=data["t"],
        keywords=warning.library if warning is not None else None,
    )
    data["dialog"] = await Dialog.load(data["state"])
    return await handler(event, data)


def _contact(user: TelegramUser) -> str:
    return f"@{user.username}" if user.username else user.first_name


def _message_id(query: CallbackQuery) -> int:
    if query.message is None:
        raise UserError(N_("errors.stale-button"))
    return query.message.message_id


# -- starting ---------------------------------------------------------------------------------


async def _open(feature: str, chat: ResidentChat, dialog: Dialog) -> None:
    if feature == "my":
        await resident.show_cases(chat, resident_id=chat.chat_id, page=0)
        return
    kind, step = FIRST_STEPS[feature]
    await resident.check_can_file(chat)
    await dialog.begin(chat, cases.Draft(kind=kind), step)


async def feature_command(
    message: Message, command: CommandObject, chat: ResidentChat, dialog: Dialog
) -> None:
    await _open(command.command, chat, dialog)


async def feature_button(
    message: Message, choice: str, chat: ResidentChat, dialog: Dialog
) -> None:
    await _open(choice, chat, dialog)


async def photo_starts_report(message: Message, chat: ResidentChat, dialog: Dialog) -> None:
    """A photo sent outside any dialog is the start of a 随手拍 (its caption the description)."""
    await resident.check_can_file(chat)
    await dialog.begin(chat, cases.Draft(kind=CaseKind.REPORT), "photos", ask=False)
    await _take_photo(message, chat, dialog, step="photos")


# -- photos -----------------------------------------------------------------------------------


async def _take_photo(message: Message, chat: ResidentChat, dialog: Dialog, *, step: str) -> None:
    assert message.photo
    album = message.media_group_id
    dialog.data["album"] = album
    draft = dialog.draft
    if not resident.add_photo(draft, message.photo[-1].file_id):
        await _refuse_extra_photo(chat, dialog, album)
        return
    if message.caption:
        draft.description = cases.check_description(message.caption)
        await dialog.advance(chat, step)
        return
    await dialog.save()
    received = (
        N_("say.photo-received") if draft.kind is CaseKind.SAY else N_("report.photo-received")
    )
    chat.say(received, limit=cases.MAX_PHOTOS, length=cases.MAX_DESCRIPTION)


async def _refuse_extra_photo(chat: ResidentChat, dialog: Dialog, album: str | None) -> None:
    # One refusal per album, however many photos it has beyond the limit.
    if album is None or dialog.data.get("refused") != album:
        chat.say(N_("report.photos-too-many"), limit=cases.MAX_PHOTOS)
    dialog.data["refused"] = album
    await dialog.save()


async def photo_added(message: Message, chat: ResidentChat, dialog: Dialog) -> None:
    await _take_photo(message, chat, dialog, step="photos")


async def say_photo_added(message: Message, chat: ResidentChat, dialog: Dialog) -> None:
    if dialog.draft.kind is not CaseKind.SAY:
        raise UserError(N_("dialog.text-expected"))
    await _take_photo(message, chat, dialog, step="description")


async def album_continues(message: Message, chat: ResidentChat, dialog: Dialog) -> None:
    """Later photos of an album: kept without another answer."""
    assert message.photo
    if not resident.add_photo(dialog.draft, message.photo[-1].file_id):
        await _refuse_extra_photo(chat, dialog, message.media_group_id)
        return
    if message.caption and not dialog.draft.description:
        dialog.draft.description = cases.check_description(message.caption)
    await dialog.save()


# -- text steps -------------------------------------------------------------------------------


async def description_instead_of_photo(
    message: Message, chat: ResidentChat, dialog: Dialog
) -> None:
    if not dialog.draft.photos:
        raise UserError(N_("report.photo-first"))
    dialog.draft.description = cases.check_description(message.text or "")
    await dialog.advance(chat, "photos")


async def address_given(message: Message, chat: ResidentChat, dialog: Dialog) -> None:
    draft = dialog.draft
    draft.address = resident.check_address(message.text or "")
    draft.latitude = draft.longitude = None
    await dialog.advance(chat, "location")


async def location_sent(message: Message, chat: ResidentChat, dialog: Dialog) -> None:
    assert message.location is not None
    draft = dialog.draft
    draft.latitude, draft.longitude = message.location.latitude, message.location.longitude
    draft.address = None
    await dialog.advance(chat, "location")


def _text_given(step: str) -> Callable[[Message, ResidentChat, Dialog], Awaitable[None]]:
    """The handler of a step of :data:`TEXT_ANSWERS`: the checked text into the draft, and on."""
    field_name, check = TEXT_ANSWERS[step]

    async def given(message: Message, chat: ResidentChat, dialog: Dialog) -> None:
        setattr(dialog.draft, field_name, check(message.text or ""))
        await dialog.advance(chat, step)

    return given


# -- what does not fit the step ---------------------------------------------------------------


def _refusal(message_id: str) -> Callable[[Message], Awaitable[None]]:
    """A handler that answers input the step cannot use, changing nothing."""

    async def refuse(message: Message) -> None:
        raise UserError(message_id)

    return refuse


# -- buttons of the dialog --------------------------------------------------------------------


async def draft_pressed(
    query: CallbackQuery,
    cb: DraftAction,
    chat: ResidentChat,
    dialog: Dialog,
    raw_state: str | None,
) -> None:
    expected = {
        "cat": Filing.category,
        "anon": Filing.anonymous,
        "contact": Filing.contact,
        "com": Filing.community,
        "door": Filing.door,
        "skill": Filing.skills,
        "follow": Filing.similar,
        "new": Filing.similar,
    }
    if cb.token != dialog.token or raw_state != expected.get(cb.action, Filing.confirm).state:
        raise UserError(N_("errors.stale-button"))
    message_id = _message_id(query)
    chat.answer(query.id)
    draft = dialog.draft
    if cb.action == "cat":
        draft.category = resident.category_of(chat, draft.kind, cb.value)
        resident.chosen(chat, message_id, resident.category_label(chat, draft.category))
        await dialog.advance(chat, "category")
    elif cb.action == "anon":
        draft.anonymous = cb.value == "1"
        label = N_("say.anonymous-yes") if draft.anonymous else N_("say.anonymous-no")
        resident.chosen(chat, message_id, chat.t(label))
        await dialog.advance(chat, "anonymous")
    elif cb.action == "com":
        draft.community = resident.community_of(chat, cb.value)
        unit = chat.district.department(draft.community)
        assert unit is not None
        resident.chosen(chat, message_id, unit.names.get(chat.lang))
        await dialog.advance(chat, "community")
    elif cb.action == "door":  # skipped: the volunteer learns the door from the requester
        draft.door = None
        resident.chosen(chat, message_id, chat.t(N_("dialog.skip")))
        await dialog.advance(chat, "door")
    elif cb.action == "skill" and cb.value == "ok":
        resident.chosen(chat, message_id, resident.skills_label(chat, draft))
        await dialog.advance(chat, "skills")
    elif cb.action == "skill":
        resident.toggle_skill(chat, draft, cb.value)
        await dialog.save()
        chat.edit_buttons(message_id, resident.skills_keyboard(chat, draft, dialog.token))
    elif cb.action == "contact":
        _share_contact(draft, query.from_user, cb.value == "1")
        label = N_("ask.contact-yes") if draft.share_contact else N_("ask.contact-no")
        resident.chosen(chat, message_id, chat.t(label))
        await dialog.advance(chat, "contact")
    elif cb.action in ("follow", "new"):
        await _similar_pressed(query, cb, chat, dialog, message_id)
    else:
        await _summary_pressed(query, cb, chat, dialog, message_id)


def _share_contact(draft: cases.Draft, user: TelegramUser, share: bool) -> None:
    draft.share_contact = share
    draft.contact = _contact(user) if share else None


async def _summary_pressed(
    query: CallbackQuery, cb: DraftAction, chat: ResidentChat, dialog: Dialog, message_id: int
) -> None:
    draft = dialog.draft
    if cb.action == "ok":
        similar = await resident.confirm(
            chat,
            resident_id=query.from_user.id,
            draft=draft,
            token=dialog.token,
            message_id=message_id,
        )
        if similar is None:
            await dialog.state.clear()
            return
        dialog.data["similar"] = similar
        await dialog.state.set_state(Filing.similar)
        await dialog.save()
    elif cb.action == "toggle":
        if draft.kind is CaseKind.HELP:
            _share_contact(draft, query.from_user, not draft.share_contact)
        else:
            draft.anonymous = not draft.anonymous
        await dialog.save()
        resident.show_summary(chat, draft=draft, token=dialog.token, message_id=message_id)
    elif cb.action == "edit" and cb.value in resident.EDITABLE[draft.kind]:
        chat.drop_buttons(message_id)
        await dialog.go(chat, cb.value, editing=True)
    elif cb.action == "no":
        await dialog.state.clear()
        resident.cancelled(chat, message_id)
    else:
        raise UserError(N_("errors.stale-button"))


async def _similar_pressed(
    query: CallbackQuery, cb: DraftAction, chat: ResidentChat, dialog: Dialog, message_id: int
) -> None:
    """Same problem (follow the case offered) or a different one (file the report)."""
    draft = dialog.draft
    if cb.action == "follow":
        if cb.value != str(dialog.data.get("similar")):
            raise UserError(N_("errors.stale-button"))
        await resident.follow_similar(
            chat,
            resident_id=query.from_user.id,
            case_id=int(cb.value),
            draft=draft,
            message_id=message_id,
        )
    else:
        await resident.file_anyway(
            chat, resident_id=query.from_user.id, draft=draft, message_id=message_id
        )
    await dialog.state.clear()


# -- my cases ---------------------------------------------------------------------------------


async def page_pressed(query: CallbackQuery, cb: MyCasesPage, chat: ResidentChat) -> None:
    chat.answer(query.id)
    await resident.show_cases(
        chat, resident_id=query.from_user.id, page=cb.page, message_id=_message_id(query)
    )


async def case_pressed(query: CallbackQuery, cb: ViewCase, chat: ResidentChat) -> None:
    chat.answer(query.id)
    await resident.show_timeline(
        chat, resident_id=query.from_user.id, case_id=cb.case_id, message_id=_message_id(query)
    )


async def withdraw_pressed(query: CallbackQuery, cb: WithdrawCase, chat: ResidentChat) -> None:
    chat.answer(query.id)
    await resident.show_timeline(
        chat,
        resident_id=query.from_user.id,
        case_id=cb.case_id,
        message_id=_message_id(query),
        confirm_withdraw=True,
    )


async def withdraw_confirmed(
    query: CallbackQuery, cb: ConfirmWithdraw, chat: ResidentChat
) -> None:
    chat.answer(query.id)
    await resident.withdraw(
        chat, resident_id=query.from_user.id, case_id=cb.case_id, message_id=_message_id(query)
    )


# -- rating -----------------------------------------------------------------------------------


async def rate_pressed(
    query: CallbackQuery,
    cb: RateCase,
    chat: ResidentChat,
    raw_state: str | None,
    state: FSMContext,
) -> None:
    chat.answer(query.id)
    # A dialog under way is not interrupted: the comment is then simply not asked for.
    ask_comment = raw_state is None or raw_state == RatingComment.comment.state
    asked = await resident.rate(
        chat,
        resident_id=query.from_user.id,
        case_id=cb.case_id,
        code=cb.rating,
        message_id=_message_id(query),
        ask_comment=ask_comment,
    )
    if asked:
        await state.set_state(RatingComment.comment)
        await state.set_data({"case": cb.case_id})


async def rating_comment(
    message: Message, chat: ResidentChat, dialog: Dialog, state: FSMContext
) -> None:
    await resident.comment(
        chat,
        resident_id=chat.chat_id,
        case_id=int(dialog.data["case"]),
        text=message.text or "",
    )
    await state.clear()


async def skip_comment(message: Message, chat: ResidentChat, state: FSMContext) -> None:
    await state.clear()
    chat.say(N_("rate.comment-skipped"), keyboard=menu.MAIN_MENU)


async def comment_on_reopened(message: Message, chat: ResidentChat, case_id: int) -> None:
    await resident.comment(
        chat, resident_id=chat.chat_id, case_id=case_id, text=message.text or ""
    )


# -- the router -------------------------------------------------------------------------------


def router(catalogues: Catalogues) -> Router:
    r = Router(name="resident")
    r.message.filter(F.chat.type == "private")
    r.callback_query.filter(F.message.chat.type == "private")
    r.message.middleware(_context)
    r.callback_query.middleware(_context)
    labels = {
        catalogues.translator(code)(label): feature
        for code in catalogues.languages
        for feature, label in menu.FEATURES.items()
    }
    plain_text = F.text & ~F.text.startswith("/")
    mine = StateFilter(Filing, RatingComment)

    # Commands and menu buttons work in every state and start afresh.
    r.message.register(feature_command, Command(*menu.FEATURES))
    r.message.register(feature_button, TextIn(labels))
    r.message.register(skip_comment, RatingComment.comment, Command("skip"))
    r.message.register(_refusal(N_("dialog.unknown-command")), mine, F.text.startswith("/"))

    r.message.register(album_continues, StateFilter(Filing), F.photo, AlbumTail())
    r.message.register(photo_added, Filing.photos, F.photo)
    r.message.register(description_instead_of_photo, Filing.photos, plain_text)
    r.message.register(say_photo_added, Filing.description, F.photo)
    r.message.register(location_sent, Filing.location, F.location)
    r.message.register(address_given, Filing.location, plain_text)
    for step in TEXT_ANSWERS:
        r.message.register(_text_given(step), STEP_STATES[step], plain_text)
    r.message.register(rating_comment, RatingComment.comment, plain_text)

    r.message.register(_refusal(N_("report.photo-expected")), Filing.photos)
    r.message.register(_refusal(N_("report.location-expected")), Filing.location)
    r.message.register(_refusal(N_("dialog.text-expected")), StateFilter(*TEXT_STEPS))
    r.message.register(_refusal(N_("dialog.text-expected")), RatingComment.comment)
    r.message.register(_refusal(N_("dialog.use-buttons")), StateFilter(*BUTTON_STEPS))

    r.message.register(photo_starts_report, StateFilter(None), F.photo)
    r.message.register(comment_on_reopened, StateFilter(None), plain_text, ReopenedCase())

    r.callback_query.register(draft_pressed, CallbackOf(DraftAction))
    r.callback_query.register(page_pressed, CallbackOf(MyCasesPage))
    r.callback_query.register(case_pressed, CallbackOf(ViewCase))
    r.callback_query.register(withdraw_pressed, CallbackOf(WithdrawCase))
    r.callback_query.register(withdraw_confirmed, CallbackOf(ConfirmWithdraw))
    r.callback_query.register(rate_pressed, CallbackOf(RateCase))
    return r
