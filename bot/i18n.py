"""Catalogues and templates: every user-facing string comes from ``locales/``.

Message ids are symbolic (``start.greeting``); each language has a complete catalogue
``locales/<lang>/LC_MESSAGES/messages.po``, compiled in memory at start. Jinja2 templates in
``bot/templates`` compose messages from catalogue entries with autoescaping on, so every value
interpolated into HTML is escaped. Code that names a message id for later rendering marks it
with :func:`N_` so the completeness test finds it.
"""

from __future__ import annotations

import gettext
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
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


@dataclass(frozen=True)
class Translator:
    """Messages of one language, with fallback to the default language."""

    language: str
    _primary: gettext.GNUTranslations
    _fallback: gettext.GNUTranslations | None = None

    def has(self, message_id: str) -> bool:
        return message_id in self._primary._catalog  # type: ignore[attr-defined]

    def raw(self, message_id: str) -> str:
        for catalogue in (self._primary, self._fallback):
            if catalogue is not None and message_id in catalogue._catalog:  # type: ignore[attr-defined]
                return str(catalogue.gettext(message_id))
        logger.warning("i18n.missing", extra={"message_id": message_id, "lang": self.language})
        return message_id

    def __call__(self, message_id: str, **params: Any) -> str:
        """Plain text (not HTML): for button labels, callback answers, command descriptions."""
        text = self.raw(message_id)
        return text % params if params else text

    def html(self, message_id: str, **params: Any) -> Markup:
        """HTML: the catalogue text is trusted markup, every parameter is escaped."""
        text = self.raw(message_id)
        if not params:
            return Markup(text)
        return Markup(text) % params


@dataclass
class Catalogues:
    """All languages, loaded once at start."""

    default_language: str
    root: Path = LOCALES_DIR
    templates: Path = TEMPLATES_DIR
    # District-aware helpers for templates (unit names, local times), set by the application.
    template_globals: dict[str, Any] = field(default_factory=dict)
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
            )
            translator = self.translator(language)
            env.install_gettext_callables(  # type: ignore[attr-defined]
                gettext=translator.raw,
                ngettext=lambda s, p, n: translator.raw(s if n == 1 else p),
                newstyle=True,
            )
            env.globals["lang"] = language
            env.globals.update(self.template_globals)
            self._envs[language] = env
        return env

    def render(self, template: str, context: Mapping[str, Any], language: str) -> str:
        return self.env(language).get_template(template).render(**context).strip()

    def render_text(self, message_id: str, params: Mapping[str, Any], language: str) -> str:
        return str(self.translator(language).html(message_id, **params))
