"""Dispute early warning (矛盾纠纷预警, seed 003): screening what residents file, and reloading
the keyword library.

A report or post whose text hits a category of the library is flagged on the case with the
strongest category and its risk level, gets a ``risk_flagged`` event and an alert in the
governance center's group, all in the filing transaction. The alert names the case, the
categories hit, the level and the library words that matched; never the resident's name or
contact. A text that hits nothing changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from bot.district import District
from bot.i18n import N_
from bot.logs import log_event
from bot.services import routing
from bot.services.outbox import Link, enqueue, send_text
from bot.warning import CategoryScore, EarlyWarning, KeywordLibrary, LibraryError
from models import Case, CaseEvent, CaseKind

logger = logging.getLogger(__name__)

RISK_FLAGGED = "risk_flagged"
ALERT = "risk-alert"
# The alert template builds these from the level (``"warning.level." ~ level``).
LEVEL_MESSAGE_IDS = (N_("warning.level.1"), N_("warning.level.2"), N_("warning.level.3"))
# Problems quoted back to whoever asked for a reload; the rest are only counted.
MAX_PROBLEMS_SHOWN = 5
SCREENED_KINDS = frozenset({CaseKind.REPORT, CaseKind.SAY})


async def screen_case(
    session: AsyncSession,
    district: District,
    library: KeywordLibrary,
    case: Case,
    *,
    now: datetime,
    text: str | None = None,
) -> CategoryScore | None:
    """Match a newly filed case's text (or ``text``: what a co-reporter wrote when following
    the case); on a hit flag the case and alert the center. A case keeps its strongest flag."""
    if case.kind not in SCREENED_KINDS:
        return None
    assessment = library.assess(case.description if text is None else text)
    top = assessment.top
    if top is None:
        return None
    assert case.id is not None
    category = top.category
    others = [score.category for score in assessment.flagged[1:]]
    # A word listed in two categories is shown once.
    words = list(
        dict.fromkeys(
            keyword.word.removesuffix("*")
            for score in assessment.flagged
            for keyword in score.keywords
        )
    )
    languages = {*category.names, district.default_language}
    if case.risk_level is None or category.level >= case.risk_level:
        case.risk_category, case.risk_level = category.code, category.level
    session.add(
        CaseEvent(
            case_id=case.id,
            at=now,
            kind=RISK_FLAGGED,
            actor_id=None,
            actor_role="system",
            department=case.department,
            to_status=case.status,
            data={
                "category": category.code,
                "level": category.level,
                "score": top.score,
                "threshold": category.threshold,
                "also": [other.code for other in others],
                "words": words,
            },
        )
    )
    center = await routing.chat_of(session, district, routing.CENTER)
    if center is not None:
        enqueue(
            session,
            chat_id=center,
            locale=district.default_language,
            now=now,
            template="risk_alert.html",
            context={
                "number": case.number,
                "kind": case.kind.value,
                "category": category.code,
                # Names travel with the alert, so a later reload does not change it.
                "category_names": {lang: category.name(lang) for lang in languages},
                "level": category.level,
                "also_names": {lang: [other.name(lang) for other in others] for lang in languages},
                "words": words,
                "department": case.department,
            },
            link=Link("case", str(case.id), ALERT),
        )
    log_event(
        logger,
        "warning.flagged",
        case=case.number,
        category=category.code,
        level=category.level,
        score=top.score,
        alerted=center is not None,
    )
    return top


async def reload_library(
    session: AsyncSession,
    district: District,
    early_warning: EarlyWarning,
    *,
    chat_id: int,
    by: int,
    now: datetime,
) -> KeywordLibrary | None:
    """Load the library file again and say how it went; a broken file keeps the library in
    use and the answer quotes what is wrong."""
    lang = district.default_language
    try:
        library = await asyncio.to_thread(early_warning.reload)
    except LibraryError as error:
        # The file's name is enough in a chat; the full path is for the server's logs.
        shown = [
            str(replace(problem, path=Path(problem.path).name))
            for problem in error.problems[:MAX_PROBLEMS_SHOWN]
        ]
        if len(error.problems) > MAX_PROBLEMS_SHOWN:
            shown.append("…")
        send_text(
            session,
            chat_id=chat_id,
            locale=lang,
            now=now,
            text_key=N_("warning.reload-failed"),
            problems="\n".join(shown),
            keywords=len(early_warning.library),
        )
        log_event(
            logger,
            "warning.reload_failed",
            logging.WARNING,
            by=by,
            problems=len(error.problems),
        )
        return None
    send_text(
        session,
        chat_id=chat_id,
        locale=lang,
        now=now,
        text_key=N_("warning.reloaded"),
        categories=len(library.categories),
        keywords=len(library),
    )
    log_event(
        logger,
        "warning.reloaded",
        by=by,
        categories=len(library.categories),
        keywords=len(library),
    )
    return library
