"""SQLModel tables. Importing this package registers every table on ``SQLModel.metadata``."""

from models.case import (
    CardColour,
    Case,
    CaseEvent,
    CaseFollower,
    CaseKind,
    CaseStatus,
    Difficulty,
    Escalation,
    EscalationState,
    GroupBinding,
    HelpRequest,
    HelpStage,
    InvalidTransition,
    Rating,
    TriageStage,
)
from models.dashboard import DashboardSession, LoginLink
from models.dialog import DialogState
from models.fold import CardFold, FoldDigest
from models.links import MessageLink
from models.open311 import Open311Request
from models.outbox import Lane, OutboxMessage, OutboxStatus
from models.points import EntryKind, OfferStock, PointEntry, Redemption
from models.refusal import GroupRefusal
from models.report import OutboxFile, ReportRun
from models.updates import ProcessedUpdate
from models.user import ChatLanguage, User
from models.volunteer import HelpClaim, Volunteer, VolunteerStatus
from models.webapp import PhotoUpload, WebAppDraft, WebAppSubmission

__all__ = [
    "CardColour",
    "CardFold",
    "Case",
    "CaseEvent",
    "CaseFollower",
    "CaseKind",
    "CaseStatus",
    "ChatLanguage",
    "DashboardSession",
    "DialogState",
    "Difficulty",
    "EntryKind",
    "Escalation",
    "EscalationState",
    "FoldDigest",
    "GroupBinding",
    "GroupRefusal",
    "HelpClaim",
    "HelpRequest",
    "HelpStage",
    "InvalidTransition",
    "Lane",
    "LoginLink",
    "MessageLink",
    "OfferStock",
    "Open311Request",
    "OutboxFile",
    "OutboxMessage",
    "OutboxStatus",
    "PhotoUpload",
    "PointEntry",
    "ProcessedUpdate",
    "Rating",
    "Redemption",
    "ReportRun",
    "TriageStage",
    "User",
    "Volunteer",
    "VolunteerStatus",
    "WebAppDraft",
    "WebAppSubmission",
]
