"""Catalogue completeness: every message id the code or templates use exists, translated, in
every language, with the same placeholders."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.i18n import Catalogues, available_languages, catalogue_path, match_language
from bot.testserver.markup_html import parse_html

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
TAG = re.compile(r"</?([a-z-]+)")
KEYWORDS = {"_": None, "N_": None, "gettext": None, "UserError": None}


def used_message_ids() -> set[str]:
    found: set[str] = set()
    for package in ("bot", "handlers", "models", "scheduler"):
        method_map = [("**/testserver/**", "ignore"), ("**.py", "python"), ("**.html", "jinja2")]
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / package, method_map=method_map, keywords=KEYWORDS
        ):
            found.add(message if isinstance(message, str) else message[0])
    return found


def catalogue(language: str) -> dict[str, str]:
    with catalogue_path(language).open("rb") as source:
        cat = read_po(source)
    return {str(m.id): str(m.string) for m in cat if m.id}


LANGUAGES = available_languages()


class TestCatalogues:
    def test_three_languages_ship(self) -> None:
        assert {"zh-Hans", "en", "mn-Mong"} <= set(LANGUAGES)

    def test_code_uses_message_ids(self) -> None:
        # Guards the extraction itself: if it found nothing the other tests would pass vacuously.
        assert {"start.greeting", "menu.report", "lang.changed"} <= used_message_ids()

    @pytest.mark.parametrize("language", LANGUAGES)
    def test_every_used_id_is_translated(self, language: str) -> None:
        entries = catalogue(language)
        missing = sorted(i for i in used_message_ids() if not entries.get(i, "").strip())
        assert missing == [], f"{language} lacks {missing}"

    @pytest.mark.parametrize("language", LANGUAGES)
    def test_no_unused_entries(self, language: str) -> None:
        unused = sorted(set(catalogue(language)) - used_message_ids())
        assert unused == [], f"{language} has entries nothing uses: {unused}"

    @pytest.mark.parametrize("language", [code for code in LANGUAGES if code != "zh-Hans"])
    def test_same_ids_placeholders_and_tags_as_default(self, language: str) -> None:
        default, other = catalogue("zh-Hans"), catalogue(language)
        assert set(other) == set(default)
        for message_id, text in default.items():
            assert sorted(PLACEHOLDER.findall(other[message_id])) == sorted(
                PLACEHOLDER.findall(text)
            ), message_id
            assert sorted(TAG.findall(other[message_id])) == sorted(TAG.findall(text)), message_id

    @pytest.mark.parametrize("language", LANGUAGES)
    def test_every_message_is_html_telegram_accepts(self, language: str) -> None:
        # Messages are sent with parse_mode HTML: a bare "<" (say "/bind <unit>") is refused by
        # Telegram. Parsed by the test server's own parser, with placeholders filled.
        refused = []
        for message_id, text in catalogue(language).items():
            try:
                parse_html(PLACEHOLDER.sub("x", text))
            except Exception as error:
                refused.append((message_id, str(error)))
        assert refused == []

    def test_the_glossary_is_followed(self) -> None:
        # Each term of the platform in one word per language: every message whose Chinese
        # text holds the term uses the glossary's word (locales/mn_Mong/glossary.toml).
        with (ROOT / "locales" / "mn_Mong" / "glossary.toml").open("rb") as source:
            terms = tomllib.load(source)["terms"]
        assert {"吹哨", "应哨", "答卷", "黄牌", "红牌", "督办", "协办", "网格员"} <= set(terms)
        default = catalogue("zh-Hans")
        others = {"mn": catalogue("mn-Mong"), "en": catalogue("en")}
        astray = []
        for term, words in terms.items():
            using = [message_id for message_id, text in default.items() if term in text]
            assert using, f"nothing says {term}"
            for language, word in words.items():
                for message_id in using:
                    if word.lower() not in others[language][message_id].lower():
                        astray.append((term, language, message_id))
        assert astray == []

    @pytest.mark.parametrize("language", [code for code in LANGUAGES if code != "zh-Hans"])
    def test_titles_follow_each_languages_convention(self, language: str) -> None:
        # 【…】 titles are Chinese typography: English writes [Photo report], Mongolian «…»;
        # the brackets live in each catalogue, never in a template.
        chinese = [k for k, text in catalogue(language).items() if "【" in text or "】" in text]
        assert chinese == []
        templates = ROOT / "bot" / "templates"
        assert [p.name for p in templates.glob("*.html") if "【" in p.read_text()] == []

    @pytest.mark.parametrize("language", LANGUAGES)
    def test_command_descriptions_fit_telegram(self, language: str) -> None:
        # setMyCommands takes descriptions of 1-256 characters.
        for message_id, text in catalogue(language).items():
            if message_id.startswith("commands."):
                assert 1 <= len(text) <= 256, (language, message_id)


class TestRendering:
    def test_template_escapes_user_values(self) -> None:
        catalogues = Catalogues("zh-Hans")
        text = catalogues.render(
            "start.html",
            {"name": "<script>&", "district": "海勃湾区", "languages": False},
            "zh-Hans",
        )
        assert "&lt;script&gt;&amp;" in text
        assert "<script>" not in text
        assert "<b>海勃湾区「吹哨」</b>" in text

    def test_missing_message_falls_back_to_default_language(self, tmp_path: Path) -> None:
        for code, body in (("zh_Hans", 'msgid "a"\nmsgstr "甲"\n'), ("en", "")):
            path = tmp_path / code / "LC_MESSAGES"
            path.mkdir(parents=True)
            (path / "messages.po").write_text(body, encoding="utf-8")
        catalogues = Catalogues("zh-Hans", root=tmp_path)
        assert catalogues.translator("en")("a") == "甲"


@pytest.mark.parametrize(
    ("telegram", "expected"),
    [
        ("zh-hans", "zh-Hans"),
        ("zh-CN", "zh-Hans"),
        ("zh", "zh-Hans"),
        ("en-US", "en"),
        ("en", "en"),
        ("de", None),
        (None, None),
    ],
)
def test_telegram_language_codes_map_to_catalogues(telegram: str | None, expected: str) -> None:
    assert match_language(telegram, ("en", "zh-Hans")) == expected
