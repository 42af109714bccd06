"""A person sending faster than anyone types (a stuck client, a script, a paste split into
fifty messages): the first messages are handled as usual, the rest of the burst is not, and
the person gets one polite notice instead of an answer to each.

Time is the message's own ``date`` (when Telegram received it), not when it is handled, so a
queue that delays a calm person's messages never makes them look like a flood. An album (one
``media_group_id``, up to ten photos at once) counts as one message. What is counted lives in
this process: with several replicas each counts the messages it handles, so a flood is cut
later, never a calm person sooner.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW = 5  # seconds
LIMIT = 10  # messages (an album counts once) within WINDOW; more is a flood
NOTICE_EVERY = 60  # seconds: at most one notice a minute
FORGET_AFTER = 600  # seconds of quiet after which a person's count is dropped
PRUNE_AT = 10_000  # people tracked before quiet ones are dropped


@dataclass
class _Person:
    dates: deque[int] = field(default_factory=deque)
    last_album: str | None = None
    noticed_at: int | None = None


class FloodWatch:
    """Per person: is this message part of a flood, and should they be told (once a minute)?"""

    def __init__(self, *, limit: int = LIMIT, window: int = WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._people: dict[int, _Person] = {}

    def check(self, user_id: int, date: int, album: str | None = None) -> str | None:
        """None: handle the message. ``"notice"``: not handled, tell them. ``"quiet"``: not
        handled, they were told less than a minute ago."""
        person = self._people.get(user_id)
        if person is None:
            if len(self._people) >= PRUNE_AT:
                self._prune(date)
            person = self._people[user_id] = _Person()
        if album is not None and album == person.last_album:
            return None  # the rest of an album already counted
        person.last_album = album
        dates = person.dates
        dates.append(date)
        while dates and dates[0] <= date - self.window:
            dates.popleft()
        if len(dates) <= self.limit:
            return None
        if person.noticed_at is not None and date - person.noticed_at < NOTICE_EVERY:
            return "quiet"
        person.noticed_at = date
        return "notice"

    def _prune(self, now: int) -> None:
        quiet = [
            user_id
            for user_id, person in self._people.items()
            if not person.dates or person.dates[-1] < now - FORGET_AFTER
        ]
        for user_id in quiet:
            del self._people[user_id]
