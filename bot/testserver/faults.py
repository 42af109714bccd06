"""Injected faults: failing, delaying, dropping or losing the answer of upcoming API calls.

Owns the list of armed faults and the matching rules.  A fault matches a call by bot, by
method name (case-insensitive) and by ``chat_id`` when those were given; ``method=None``
matches every method except getUpdates, because a polling bot calls getUpdates continuously
and would otherwise swallow faults meant for its sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FAIL = "fail"
DELAY = "delay"
DROP = "drop"
LOSE_ANSWER = "lose_answer"


@dataclass
class Fault:
    kind: str
    remaining: int
    method: str | None = None
    chat_id: str | None = None
    bot_id: int | None = None
    status: int = 500
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def matches(self, bot_id: int, method: str, chat_id: str) -> bool:
        if self.bot_id is not None and self.bot_id != bot_id:
            return False
        if self.method is None:
            if method == "getupdates":
                return False
        elif self.method != method:
            return False
        return self.chat_id is None or self.chat_id == chat_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "remaining": self.remaining,
            "method": self.method,
            "chat_id": self.chat_id,
            "bot_id": self.bot_id,
            "status": self.status,
            "description": self.description,
            "seconds": self.seconds,
        }


class FaultPlan:
    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        if fault.method is not None:
            fault.method = fault.method.lower()
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        self.faults.clear()

    def take(self, kind: str, bot_id: int, method: str, chat_id: str) -> Fault | None:
        """Consumes one use of the first armed fault of ``kind`` matching the call."""
        for fault in self.faults:
            if fault.kind == kind and fault.matches(bot_id, method, chat_id):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None
