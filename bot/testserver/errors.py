"""Bot API error values and the exact description texts Telegram uses.

Owns ``ApiError`` (what a method handler raises to produce ``{"ok": false, ...}``) and
``ControlError`` (misuse of the control API, e.g. pressing a button that does not exist).
Description texts follow tdlib/telegram-bot-api so bots see the same strings as in production.
"""

from __future__ import annotations

from typing import Any

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
    "delete the webhook first"
)
POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)
WRONG_FILE = "Bad Request: wrong file identifier/HTTP URL specified"

# Descriptions used when a fault is injected with only a status code.
DEFAULT_DESCRIPTIONS: dict[int, str] = {
    400: "Bad Request: injected fault",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot "
    "instance is running",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class ApiError(Exception):
    """A Bot API failure: HTTP status, Telegram's description and optional parameters."""

    def __init__(
        self, code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


class ControlError(ValueError):
    """The control API was asked to do something the simulated world does not allow."""


def bad_request(message: str) -> ApiError:
    return ApiError(400, f"Bad Request: {message}")


def forbidden(message: str) -> ApiError:
    return ApiError(403, f"Forbidden: {message}")


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


def chat_migrated(new_chat_id: int) -> ApiError:
    return ApiError(
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        {"migrate_to_chat_id": new_chat_id},
    )


def lower_first(message: str) -> str:
    """tdlib lower-cases the first letter of error texts unless they look like CONSTANTS."""
    if len(message) >= 2 and (message[1] == "_" or message[1].isupper()):
        return message
    return message[:1].lower() + message[1:]
