"""SQLModel tables. Importing this package registers every table on ``SQLModel.metadata``."""

from models.dialog import DialogState
from models.links import MessageLink
from models.outbox import OutboxMessage, OutboxStatus
from models.updates import ProcessedUpdate
from models.user import User

__all__ = [
    "DialogState",
    "MessageLink",
    "OutboxMessage",
    "OutboxStatus",
    "ProcessedUpdate",
    "User",
]
