"""Dispute early warning: the keyword library (``keywords.toml``), its validation and scoring
(:mod:`bot.warning.library`) and the one-pass matcher (:mod:`bot.warning.matcher`).

No aiogram and no database here; :mod:`bot.services.early_warning` flags cases and alerts.
"""

from __future__ import annotations

from bot.warning.library import (
    DEFAULT_KEYWORDS_PATH,
    Assessment,
    CategoryScore,
    EarlyWarning,
    Hit,
    Keyword,
    KeywordLibrary,
    LibraryError,
    LibraryProblem,
    RiskCategory,
    load_library,
    parse_library,
    resolve_keywords_path,
)

__all__ = [
    "DEFAULT_KEYWORDS_PATH",
    "Assessment",
    "CategoryScore",
    "EarlyWarning",
    "Hit",
    "Keyword",
    "KeywordLibrary",
    "LibraryError",
    "LibraryProblem",
    "RiskCategory",
    "load_library",
    "parse_library",
    "resolve_keywords_path",
]
