"""Catalogues and templates: every user-facing string comes from ``locales/``.

Message ids are symbolic (``start.greeting``); each language has a complete catalogue
``locales/<lang>/LC_MESSAGES/messages.po``, compiled in memory at start. Jinja2 templates in
``bot/templates`` compose messages from catalogue entries with autoescaping on, so every value
interpolated into HTML is escaped. Code that names a message id for later rendering marks it
with :func:`N_` so the completeness test finds it.
"""

from __future__ import annotations

import functools
import gettext
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from io import BytesIO
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

ROOT = Path(__file__).resolve().parent.parent
LOCALES_DIR = ROOT / "locales"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
DOMAIN = "messages"

logger = logging.getLogger(__name__)


def N_(message_id: str) -> str:
    """Mark a message id that is rendered later (by the outbox sender, an error handler)."""
    return message_id


def tag_to_dir(tag: str) -> str:
    return tag.replace("-", "_")


def dir_to_tag(name: str) -> str:
    return name.replace("_", "-")


def catalogue_path(tag: str, root: Path = LOCALES_DIR) -> Path:
    return root / tag_to_dir(tag) / "LC_MESSAGES" / f"{DOMAIN}.po"


def available_languages(root: Path = LOCALES_DIR) -> tuple[str, ...]:
    """Language tags that have a catalogue, e.g. ``("en", "zh-Hans")``."""
    return tuple(
        sorted(dir_to_tag(p.parent.parent.name) for p in root.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    )


def compile_catalogue(path: Path) -> gettext.GNUTranslations:
    with path.open("rb") as source:
        catalog = read_po(source, domain=DOMAIN)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def match_language(telegram_code: str | None, supported: tuple[str, ...]) -> str | None:
    """Map a Telegram ``language_code`` (IETF tag such as ``zh-hans``, ``zh-CN``, ``en-US``)."""
    if not telegram_code:
        return None
    code = telegram_code.lower()
    by_lower = {tag.lower(): tag for tag in supported}
    if code in by_lower:
        return by_lower[code]
    primary = code.split("-", 1)[0]
    for tag in supported:
        if tag.lower().split("-", 1)[0] == primary:
            return tag
    return None


# Right-to-left letters (Hebrew, Arabic, Syriac, Thaana, N'Ko and their presentation forms,
# the historic RTL scripts) and the direction controls. A user value with any of them is
# isolated where it is placed in a sentence, so it cannot turn the rest of the line around
# (a first name ending in U+202E RIGHT-TO-LEFT OVERRIDE would reverse the greeting after it).
_DIRECTIONAL = re.compile(
    "[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff\U00010800-\U00010fff\U0001e800-\U0001efff"
    "\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]"
)
FSI, PDI = "\u2068", "\u2069"  # FIRST STRONG ISOLATE ... POP DIRECTIONAL ISOLATE
_OPENS = frozenset("\u2066\u2067\u2068")


def isolate(value: str) -> str:
    """``value`` between FSI and PDI when it could change the direction of the text around it
    (otherwise as it is: isolating left-to-right text changes nothing on screen). Isolates the
    value opened and left open are closed first, so the value cannot escape its own."""
    if not _DIRECTIONAL.search(value):
        return value
    open_isolates = 0
    for char in value:
        if char in _OPENS:
            open_isolates += 1
        elif char == PDI and open_isolates:
            open_isolates -= 1
    return f"{FSI}{value}{PDI * open_isolates}{PDI}"


def _isolated(params: Mapping[str, Any]) -> dict[str, Any]:
    """Message parameters with every plain string (user values: names, descriptions) isolated;
    ``Markup`` is the bot's own text."""
    return {
        key: isolate(value) if isinstance(value, str) and not isinstance(value, Markup) else value
        for key, value in params.items()
    }


def _finalize(value: Any) -> Any:
    """What a template prints directly: plain strings isolated like message parameters."""
    return isolate(value) if type(value) is str else value


@dataclass(frozen=True)
class Translator:
    """Messages of one language, with fallback to the default language."""

    language: str
    _primary: gettext.GNUTranslations
    _fallback: gettext.GNUTranslations | None = None

    def has(self, message_id: str) -> bool:
        return message_id in self._primary._catalog  # type: ignore[attr-defined]

    def ids(self, prefix: str) -> list[str]:
        """The message ids starting with ``prefix`` (of this language and its fallback)."""
        found: set[str] = set()
        for catalogue in (self._primary, self._fallback):
            if catalogue is not None:
                found.update(
                    k
                    for k in catalogue._catalog  # type: ignore[attr-defined]
                    if isinstance(k, str) and k.startswith(prefix)
                )
        return sorted(found)

    def raw(self, message_id: str) -> str:
        for catalogue in (self._primary, self._fallback):
            if catalogue is not None and message_id in catalogue._catalog:  # type: ignore[attr-defined]
                return str(catalogue.gettext(message_id))
        logger.warning("i18n.missing", extra={"message_id": message_id, "lang": self.language})
        return message_id

    def __call__(self, message_id: str, **params: Any) -> str:
        """Plain text (not HTML): for button labels, callback answers, command descriptions."""
        text = self.raw(message_id)
        return text % _isolated(params) if params else text

    def html(self, message_id: str, **params: Any) -> Markup:
        """HTML: the catalogue text is trusted markup, every parameter is escaped."""
        text = self.raw(message_id)
        if not params:
            return Markup(text)
        return Markup(text) % _isolated(params)


@dataclass
class Catalogues:
    """All languages, loaded once at start."""

    default_language: str
    root: Path = LOCALES_DIR
    templates: Path = TEMPLATES_DIR
    # District-aware helpers for templates (unit names), set by the application.
    template_globals: dict[str, Any] = field(default_factory=dict)
    # The district's time zone: dates and times are shown in it.
    zone: tzinfo = UTC
    translators: dict[str, Translator] = field(init=False)
    _envs: dict[str, Environment] = field(init=False)

    def __post_init__(self) -> None:
        languages = available_languages(self.root)
        if self.default_language not in languages:
            raise ValueError(
                f"no catalogue for default language {self.default_language!r} in {self.root}"
            )
        compiled = {tag: compile_catalogue(catalogue_path(tag, self.root)) for tag in languages}
        fallback = compiled[self.default_language]
        self.translators = {
            tag: Translator(tag, compiled[tag], None if tag == self.default_language else fallback)
            for tag in languages
        }
        self._envs = {}

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.translators)

    def translator(self, language: str | None) -> Translator:
        return self.translators.get(language or "", self.translators[self.default_language])

    def env(self, language: str) -> Environment:
        env = self._envs.get(language)
        if env is None:
            env = Environment(
                loader=FileSystemLoader(self.templates),
                autoescape=select_autoescape(default=True, default_for_string=True),
                undefined=StrictUndefined,
                extensions=["jinja2.ext.i18n"],
                trim_blocks=True,
                lstrip_blocks=True,
                keep_trailing_newline=False,
                finalize=_finalize,
            )
            translator = self.translator(language)
            env.install_gettext_callables(  # type: ignore[attr-defined]
                gettext=translator.raw,
                ngettext=lambda s, p, n: translator.raw(s if n == 1 else p),
                newstyle=True,
            )
            # ``_()`` in a template: the catalogue text as markup, each parameter escaped and
            # (a user value) isolated, exactly as outside templates.
            env.globals["_"] = env.globals["gettext"] = translator.html
            env.globals["lang"] = language
            env.globals.update(self.template_globals)
            env.globals.update(
                local_time=lambda iso: self.moment(iso, language),
                local_date=lambda iso: self.moment(iso, language, date_only=True),
                number=lambda value: format_decimal(value, locale=babel_locale(language)),
                percent=lambda value: format_percent(
                    value, "#,##0.0%", locale=babel_locale(language)
                ),
            )
            self._envs[language] = env
        return env

    def render(self, template: str, context: Mapping[str, Any], language: str) -> str:
        context = self.localise(context, language)
        return self.env(language).get_template(template).render(**context).strip()

    def render_text(self, message_id: str, params: Mapping[str, Any], language: str) -> str:
        return str(self.translator(language).html(message_id, **self.localise(params, language)))

    def moment(self, iso: str | None, language: str, *, date_only: bool = False) -> str:
        """A stored UTC time, in the district's zone, written the way ``language`` writes dates
        (the catalogue's CLDR pattern, formatted by Babel)."""
        if not iso:
            return ""
        pattern = self.translator(language).raw(
            N_("format.date") if date_only else N_("format.datetime")
        )
        value = datetime.fromisoformat(iso)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return format_datetime(value.astimezone(self.zone), pattern, locale=babel_locale(language))

    def localise(self, params: Mapping[str, Any], language: str) -> dict[str, Any]:
        """Times a service put in a message's parameters with :func:`when`, written for the
        reader."""
        return {
            key: self.moment(value[MOMENT], language)
            if isinstance(value, dict) and MOMENT in value
            else value
            for key, value in params.items()
        }


MOMENT = "$moment"


def when(moment: datetime) -> dict[str, Any]:
    """A date and time as a message parameter, written in each reader's language at sending."""
    return {MOMENT: moment.astimezone(UTC).isoformat()}


def babel_locale(tag: str) -> Locale:
    """Babel's locale for a catalogue's language tag (``zh-Hans``, ``en``, ``mn-Mong``)."""
    return _babel_locale(tag)


@functools.cache
def _babel_locale(tag: str) -> Locale:
    try:
        return Locale.parse(tag, sep="-")
    except (ValueError, UnknownLocaleError):
        return Locale.parse("en")
