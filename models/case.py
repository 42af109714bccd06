"""Cases and their lifecycle.

A case is anything a resident files: a photo report (随手拍), a post (我有话说) or a help request
(邻里互助). Its ``status`` moves only through :data:`TRANSITIONS`; every move is recorded as a
:class:`CaseEvent` in the same transaction (the audit trail and the resident's timeline).
Delivery to Telegram is separate (the outbox), as FixMyStreet separates state from send_state.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Enum, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


def _values(members: Any) -> list[str]:
    return [m.value for m in members]


def _enum(kind: type[StrEnum], length: int = 16) -> Enum:
    # Stored as the value in a plain VARCHAR: no database enum type to migrate.
    return Enum(kind, native_enum=False, length=length, values_callable=_values)


class CaseKind(StrEnum):
    REPORT = "report"  # 随手拍
    SAY = "say"  # 我有话说
    HELP = "help"  # 邻里互助


class CaseStatus(StrEnum):
    TRIAGE = "triage"  # waiting for the governance center to assign a department
    DISPATCHED = "dispatched"  # 吹哨: a department has the case and must acknowledge
    ACKNOWLEDGED = "acknowledged"  # 应哨
    ANSWERED = "answered"  # 答卷: waiting for the resident's rating
    REOPENED = "reopened"  # rated unsatisfied: back with the same department
    CLOSED = "closed"  # 交卷 / 评卷
    PUBLISHED = "published"  # a help request posted to volunteers
    WITHDRAWN = "withdrawn"  # by the resident, before anyone acknowledged
    BUNDLED = "bundled"  # 打包: handled as part of another case's bundle, closed with it


class TriageStage(StrEnum):
    """Where the 三审 wizard on a triage card stands."""

    LEAD = "lead"  # 一审职责: the lead department
    ASSIST = "assist"  # 一审职责: the assisting ones
    DIFFICULTY = "difficulty"  # 二审难度
    TIME = "time"  # 三审时效


class Difficulty(StrEnum):
    SIMPLE = "simple"  # the community alone
    COMPLEX = "complex"  # a lead department, others assisting
    HARD = "hard"  # many departments: the leader in charge coordinates


class HelpStage(StrEnum):
    """Where the volunteer holding a help request says they are."""

    CLAIMED = "claimed"
    ON_THE_WAY = "way"
    DONE = "done"


class CardColour(StrEnum):
    """The card a case shows on the ladder (亮牌); the district file's rungs name them."""

    NONE = "none"
    YELLOW = "yellow"
    RED = "red"


class Rating(StrEnum):
    SATISFIED = "satisfied"
    BASICALLY = "basically"
    UNSATISFIED = "unsatisfied"
    UNRATED = "unrated"  # nobody rated in time


# The only allowed moves. Anything else is refused with InvalidTransition.
TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.TRIAGE: frozenset(
        {CaseStatus.DISPATCHED, CaseStatus.WITHDRAWN, CaseStatus.BUNDLED}
    ),
    CaseStatus.DISPATCHED: frozenset(
        {CaseStatus.ACKNOWLEDGED, CaseStatus.TRIAGE, CaseStatus.WITHDRAWN, CaseStatus.BUNDLED}
    ),
    CaseStatus.ACKNOWLEDGED: frozenset(
        {CaseStatus.ANSWERED, CaseStatus.TRIAGE, CaseStatus.BUNDLED}
    ),
    CaseStatus.ANSWERED: frozenset({CaseStatus.CLOSED, CaseStatus.REOPENED, CaseStatus.BUNDLED}),
    CaseStatus.REOPENED: frozenset({CaseStatus.ANSWERED, CaseStatus.TRIAGE, CaseStatus.BUNDLED}),
    CaseStatus.PUBLISHED: frozenset({CaseStatus.WITHDRAWN, CaseStatus.CLOSED}),
    # A bundled case closes when its bundle's lead closes.
    CaseStatus.BUNDLED: frozenset({CaseStatus.CLOSED}),
    CaseStatus.CLOSED: frozenset(),
    CaseStatus.WITHDRAWN: frozenset(),
}

# Statuses in which a department holds the case (its card shows the action buttons).
WITH_DEPARTMENT = frozenset({CaseStatus.DISPATCHED, CaseStatus.ACKNOWLEDGED, CaseStatus.REOPENED})
OPEN = frozenset(TRANSITIONS) - {CaseStatus.CLOSED, CaseStatus.WITHDRAWN}


# Where a case came from: a resident's private chat, or an integrating system through the
# Open311 API ("open311:<integration code>"), whose cases have no Telegram user to tell.
SOURCE_TELEGRAM = "telegram"
OPEN311_PREFIX = "open311:"


class InvalidTransition(Exception):
    def __init__(self, current: CaseStatus, wanted: CaseStatus) -> None:
        super().__init__(f"a {current} case cannot become {wanted}")
        self.current = current
        self.wanted = wanted


class Intake(SQLModel):
    """What was filed, by whom, and where: every kind of case has it."""

    kind: CaseKind = Field(sa_type=_enum(CaseKind))
    category: str | None = Field(default=None, max_length=32)
    resident_id: int = Field(sa_type=BigInteger)
    resident_language: str = Field(max_length=16)
    # Shown to a department only when the resident is not anonymous.
    resident_name: str = Field(default="", max_length=128)
    anonymous: bool = False
    # Given only with the resident's consent (help requests: shared with the volunteer).
    contact: str | None = Field(default=None, max_length=128)
    description: str = Field(default="", max_length=2000)
    photos: list[str] = Field(default_factory=list, sa_type=JSON)
    latitude: float | None = None
    longitude: float | None = None
    address: str | None = Field(default=None, max_length=300)
    # SOURCE_TELEGRAM, or "open311:<code>" for a case filed by an integrating system; such a
    # case's resident fields hold what the system sent about the caller (personal data, never
    # shown), and an external ``media_url`` it gave instead of Telegram photos.
    source: str = Field(
        default=SOURCE_TELEGRAM, max_length=40, sa_column_kwargs={"server_default": "telegram"}
    )
    media_url: str | None = Field(default=None, max_length=500)
    # When the resident's personal data was removed from the case (/forgetme, or the district's
    # retention period after closing); the case stays in the statistics.
    anonymised_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Answer(SQLModel):
    """应哨 and 答卷, then 评卷: who acknowledged, what was answered, how the resident rated it."""

    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acknowledged_by: int | None = Field(default=None, sa_type=BigInteger)
    acknowledged_by_name: str | None = Field(default=None, max_length=128)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    answer_text: str | None = Field(default=None, max_length=4000)
    answer_photos: list[str] = Field(default_factory=list, sa_type=JSON)
    answer_album: str | None = Field(default=None, max_length=64)  # media_group_id
    rating_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rating: Rating | None = Field(default=None, sa_type=_enum(Rating))
    rating_comment: str | None = Field(default=None, max_length=1000)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reopen_count: int = 0


class Ladder(SQLModel):
    """The card ladder (亮牌): when the current unit was whistled, how many times the case has
    been dispatched (each dispatch starts a new ladder), the card it shows, and when the next
    rung and the agreed completion date (三审时效) fall."""

    dispatched_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    dispatch_count: int = 0
    card_colour: CardColour = Field(default=CardColour.NONE, sa_type=_enum(CardColour, 8))
    next_rung_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    deadline_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Triage(SQLModel):
    """三审 by a street office (or the center): where the case waits, and what was decided."""

    triage_unit: str | None = Field(default=None, max_length=32)
    triage_lead: str | None = Field(default=None, max_length=32)
    triage_assist: list[str] = Field(default_factory=list, sa_type=JSON)
    triage_difficulty: Difficulty | None = Field(default=None, sa_type=_enum(Difficulty))
    triage_step: TriageStage | None = Field(default=None, sa_type=_enum(TriageStage))
    # 协办 units that reported in (报到) on their card: code -> {"name": who, "at": ISO time}.
    # The lead answers (主责部门牵头); an assisting unit reports in and follows the case.
    assist_acks: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class Grouping(SQLModel):
    """打包 and the dispute early warning: the lead case of the bundle this case belongs to (a
    lead points at itself), how many residents reported the problem (kept with the followers
    so every card shows it without a query), and the strongest keyword category that matched
    (seed 003)."""

    bundle_id: int | None = Field(default=None, foreign_key="cases.id", index=True)
    reporters: int = 1
    risk_category: str | None = Field(default=None, max_length=32)
    risk_level: int | None = None


class Case(Intake, Answer, Ladder, Triage, Grouping, table=True):
    """One case, its lifecycle (``status``) and the unit that answers for it.

    The parts every report and post go through are groups of columns in this one row
    (:class:`Intake`, :class:`Answer`, :class:`Ladder`, :class:`Triage`, :class:`Grouping`):
    each card, timeline and statistic reads several of them at once, so one row read keeps
    an update at one statement. What only a help request has is its own table,
    :class:`HelpRequest`: nothing outside the volunteer flow reads it, the claim race is a
    conditional update of that small row, and the scheduler scans its due times alone.

    ``unit`` is the unit whistled (吹哨) to answer for the case: a department, a community
    or a street office, by its district-file code; for a help request, the requester's
    community, whose volunteer group gets the card.
    """

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_resident_created", "resident_id", "created_at"),
        Index("ix_cases_status_rating_due", "status", "rating_due_at"),
        # Similar-case detection reads open cases of one category filed recently.
        Index("ix_cases_category_status_created", "category", "status", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(default="", max_length=20, index=True)
    status: CaseStatus = Field(sa_type=_enum(CaseStatus))
    department: str | None = Field(default=None, max_length=32)
    community: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)

    def can_become(self, status: CaseStatus) -> bool:
        return status in TRANSITIONS[self.status]

    def move_to(self, status: CaseStatus, *, now: datetime) -> CaseStatus:
        """Change status by the rules; returns the previous status."""
        if not self.can_become(status):
            raise InvalidTransition(self.status, status)
        previous, self.status, self.updated_at = self.status, status, now
        if status is CaseStatus.CLOSED or status is CaseStatus.WITHDRAWN:
            self.closed_at = now
        return previous

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def from_telegram(self) -> bool:
        """Filed by a resident in Telegram, who is told about its progress."""
        return self.source == SOURCE_TELEGRAM

    @property
    def integration(self) -> str | None:
        """The code of the integrating system that filed the case, if one did."""
        return self.source.removeprefix(OPEN311_PREFIX) if not self.from_telegram else None


class HelpRequest(SQLModel, table=True):
    """The 邻里互助 part of a case (``Case.kind`` is help, and only then): when help is
    needed, the requester's door (for the volunteer who takes it only), the skills wanted, the
    volunteer who holds it (set only by a conditional update, so one claim wins) with their
    registered name and progress, and the next durable step the scheduler reads: while
    unclaimed, the re-announcement (stage 0) and the community office's notice (stage 1);
    after Done, the confirmation that counts as "helped" when the requester does not answer."""

    __tablename__ = "help_requests"

    case_id: int = Field(
        foreign_key="cases.id", primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    needed_when: str | None = Field(default=None, max_length=200)
    door: str | None = Field(default=None, max_length=200)
    skills: list[str] = Field(default_factory=list, sa_type=JSON)
    volunteer_id: int | None = Field(default=None, sa_type=BigInteger, index=True)
    volunteer_name: str | None = Field(default=None, max_length=128)
    progress: HelpStage | None = Field(default=None, sa_type=_enum(HelpStage))
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    stage: int = 0

    def let_go(self) -> None:
        """Nobody holds the request any more."""
        self.volunteer_id = self.volunteer_name = self.progress = None


class CaseEvent(SQLModel, table=True):
    """One line of a case's audit trail: who did what, when, from which status to which."""

    __tablename__ = "case_events"
    __table_args__ = (Index("ix_case_events_case_at", "case_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id")
    at: datetime = Field(sa_type=UTCDateTime)
    kind: str = Field(max_length=32)
    actor_id: int | None = Field(default=None, sa_type=BigInteger)
    actor_role: str = Field(max_length=16)  # resident | department | center | system
    department: str | None = Field(default=None, max_length=32)
    from_status: CaseStatus | None = Field(default=None, sa_type=_enum(CaseStatus))
    to_status: CaseStatus | None = Field(default=None, sa_type=_enum(CaseStatus))
    note: str | None = Field(default=None, max_length=2000)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class CaseFollower(SQLModel, table=True):
    """A co-reporter: a resident who reported the same problem and follows this case instead
    of filing another (or whose own case was bundled into it). Followers are told what the
    case's resident is told, in their own language, and never see who the resident is."""

    __tablename__ = "case_followers"
    __table_args__ = (UniqueConstraint("case_id", "user_id", name="uq_case_followers_case_user"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id")
    user_id: int = Field(sa_type=BigInteger, index=True)
    language: str = Field(max_length=16)
    joined_at: datetime = Field(sa_type=UTCDateTime)


class GroupBinding(SQLModel, table=True):
    """A department's (or street office's) group chat bound with /bind, overriding the file."""

    __tablename__ = "group_bindings"

    unit: str = Field(primary_key=True, max_length=32)
    chat_id: int = Field(sa_type=BigInteger, index=True, unique=True)
    bound_by: int = Field(sa_type=BigInteger)
    bound_at: datetime = Field(sa_type=UTCDateTime)


class EscalationState(StrEnum):
    PENDING = "pending"
    FIRED = "fired"
    CANCELLED = "cancelled"


class Escalation(SQLModel, table=True):
    """One rung of a case's ladder with its due time. Each (case, ladder, cycle, rung) exists
    once and fires at most once: the scanner claims due rows and marks them fired in the same
    transaction as the messages they cause."""

    __tablename__ = "escalations"
    __table_args__ = (
        UniqueConstraint("case_id", "ladder", "cycle", "rung", name="uq_escalations_rung"),
        Index("ix_escalations_state_due", "state", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    ladder: str = Field(max_length=16)  # ack | deadline
    cycle: int
    rung: int
    due_at: datetime = Field(sa_type=UTCDateTime)
    state: EscalationState = Field(default=EscalationState.PENDING, sa_type=_enum(EscalationState))
    fired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
