"""Errors a user caused, carrying the message id of the answer they get.

Services raise :class:`UserError`; the update's unit of work rolls back what the handler did,
keeps the update marked as processed and sends the localized answer.
"""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    def __init__(self, message_id: str, **params: Any) -> None:
        super().__init__(message_id)
        self.message_id = message_id
        self.params = params
