"""Inline-button payloads: short, versioned, and parsed defensively.

Any group member can press any button and clients can send arbitrary callback_data, so a
payload is only a pointer (ids, a verb); handlers re-check who presses and whether the action
still applies. The prefix carries a version so old buttons can be recognised as stale.
Kept free of aiogram so services can build keyboards.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, ClassVar, Self

SEPARATOR = ":"
MAX_BYTES = 64


@dataclasses.dataclass(frozen=True)
class Callback:
    prefix: ClassVar[str]

    def pack(self) -> str:
        parts = [self.prefix]
        for field in dataclasses.fields(self):
            value = str(getattr(self, field.name))
            if SEPARATOR in value:
                raise ValueError(f"{field.name} may not contain {SEPARATOR!r}")
            parts.append(value)
        packed = SEPARATOR.join(parts)
        if len(packed.encode()) > MAX_BYTES:
            raise ValueError(f"callback data over {MAX_BYTES} bytes: {packed!r}")
        return packed

    @classmethod
    def unpack(cls, data: str | None) -> Self | None:
        """The payload, or None when it is not one of ours (forged, stale, garbled)."""
        if not data:
            return None
        prefix, *values = data.split(SEPARATOR)
        fields = dataclasses.fields(cls)
        if prefix != cls.prefix or len(values) != len(fields):
            return None
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for field, raw in zip(fields, values, strict=True):
            kind = hints[field.name]
            try:
                kwargs[field.name] = int(raw) if kind is int else raw
            except ValueError:
                return None
        return cls(**kwargs)


@dataclasses.dataclass(frozen=True)
class LanguageChoice(Callback):
    prefix: ClassVar[str] = "l1"
    code: str


@dataclasses.dataclass(frozen=True)
class CaseAction(Callback):
    """A department card's buttons: ``ack`` 应哨, ``ans`` 答卷, ``ret`` 退回."""

    prefix: ClassVar[str] = "c1"
    action: str
    case_id: int


@dataclasses.dataclass(frozen=True)
class AssignCase(Callback):
    """The center assigns a case waiting for triage to a department."""

    prefix: ClassVar[str] = "a1"
    case_id: int
    unit: str


@dataclasses.dataclass(frozen=True)
class RateCase(Callback):
    """The resident's rating: ``s`` satisfied, ``b`` basically satisfied, ``u`` unsatisfied."""

    prefix: ClassVar[str] = "r1"
    case_id: int
    rating: str


@dataclasses.dataclass(frozen=True)
class MyCasesPage(Callback):
    prefix: ClassVar[str] = "m1"
    page: int


@dataclasses.dataclass(frozen=True)
class ViewCase(Callback):
    prefix: ClassVar[str] = "v1"
    case_id: int


@dataclasses.dataclass(frozen=True)
class WithdrawCase(Callback):
    prefix: ClassVar[str] = "w1"
    case_id: int


@dataclasses.dataclass(frozen=True)
class ConfirmWithdraw(Callback):
    """The second press of a withdrawal: the resident confirms taking the case back."""

    prefix: ClassVar[str] = "w2"
    case_id: int


@dataclasses.dataclass(frozen=True)
class DraftAction(Callback):
    """A button in a resident's filing dialog. ``token`` names one dialog, so presses left
    over from a submitted, cancelled or restarted dialog are stale. ``action``: ``cat`` (a
    category, empty ``value`` to skip), ``anon`` / ``contact`` (``value`` 1 or 0), on the
    summary ``ok``, ``toggle``, ``edit`` (``value`` names the step) and ``no``, and on the
    offer of a similar open case ``follow`` (``value`` its id) and ``new``."""

    prefix: ClassVar[str] = "d1"
    token: str
    action: str
    value: str


@dataclasses.dataclass(frozen=True)
class CallOutcome(Callback):
    """The center head's "phone the chief" task: ``c`` called, ``n`` no answer."""

    prefix: ClassVar[str] = "k1"
    case_id: int
    outcome: str


@dataclasses.dataclass(frozen=True)
class TriageStep(Callback):
    """A step of the triage wizard: ``lead``/``assist`` a unit code, ``next``, ``back``,
    ``diff`` simple|complex|hard, ``due`` days (0 for the standard time)."""

    prefix: ClassVar[str] = "t1"
    case_id: int
    action: str
    value: str


@dataclasses.dataclass(frozen=True)
class ProposeDeadline(Callback):
    """A department proposes a completion deadline in days (0: show the choices)."""

    prefix: ClassVar[str] = "p1"
    case_id: int
    days: int


@dataclasses.dataclass(frozen=True)
class DecideDeadline(Callback):
    """The street office (or center) approves (``y``) or rejects (``n``) a proposed deadline."""

    prefix: ClassVar[str] = "p2"
    case_id: int
    days: int
    decision: str


@dataclasses.dataclass(frozen=True)
class BundleDecision(Callback):
    """Confirm (``y``) or cancel (``n``) a /bundle proposal, named by its audit event."""

    prefix: ClassVar[str] = "b1"
    proposal: int
    action: str


@dataclasses.dataclass(frozen=True)
class VolunteerForm(Callback):
    """A button in the /volunteer dialog: ``com`` a community code, ``sk`` a skill's index
    (toggled), ``ok`` the skills are chosen. ``token`` names one dialog."""

    prefix: ClassVar[str] = "vf1"
    token: str
    action: str
    value: str


@dataclasses.dataclass(frozen=True)
class VolunteerDecision(Callback):
    """A community admin approves (``y``) or declines (``n``) a volunteer."""

    prefix: ClassVar[str] = "vd1"
    user_id: int
    decision: str


@dataclasses.dataclass(frozen=True)
class VolunteerPause(Callback):
    """A volunteer pauses (``p``) or resumes (``r``) taking requests."""

    prefix: ClassVar[str] = "vp1"
    action: str


@dataclasses.dataclass(frozen=True)
class ClaimHelp(Callback):
    """The Claim button on a help card in the volunteer chat."""

    prefix: ClassVar[str] = "h1"
    case_id: int


@dataclasses.dataclass(frozen=True)
class HelpProgress(Callback):
    """The claiming volunteer's buttons: ``way`` on my way, ``done``, ``rel`` release."""

    prefix: ClassVar[str] = "h2"
    case_id: int
    action: str


@dataclasses.dataclass(frozen=True)
class HelpConfirm(Callback):
    """The requester's answer after Done: ``y`` helped, ``t`` helped with thanks, ``n`` not."""

    prefix: ClassVar[str] = "h3"
    case_id: int
    answer: str


@dataclasses.dataclass(frozen=True)
class RedeemOffer(Callback):
    """A Redeem button in /shop: the offer's short key and the price shown, so a press after
    the price changed is stale instead of spending a different amount."""

    prefix: ClassVar[str] = "pt1"
    offer: str
    price: int


@dataclasses.dataclass(frozen=True)
class ForgetMe(Callback):
    """The answer to /forgetme: ``y`` erase my data, ``n`` keep it."""

    prefix: ClassVar[str] = "fg1"
    answer: str


@dataclasses.dataclass(frozen=True)
class OpenFolded(Callback):
    """A line of a group's burst digest: post this case's own card now."""

    prefix: ClassVar[str] = "f1"
    fold_id: int
