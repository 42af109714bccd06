"""Dispute early warning: the shipped keyword library, the one-pass matcher and its scoring,
validation that names the broken entry, and end to end (SQLite and PostgreSQL): a report or
post with a threat alerts the governance center without the reporter's name, a plain one does
not, and /reload_keywords reloads for admins only and keeps the old library when the new file
is broken."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import col

from bench import keywords as keywords_bench
from bot.app import Whistle
from bot.district import District
from bot.testserver import BotAPIServer, BotMessage
from bot.warning import (
    DEFAULT_KEYWORDS_PATH,
    KeywordLibrary,
    LibraryError,
    load_library,
    parse_library,
)
from bot.warning.matcher import Matcher, Pattern
from models import Case, CaseEvent
from tests.conftest import EXAMPLE_DISTRICT, ROOT, make_settings, settled

RESIDENT, CLERK, OUTSIDER, GROUP_ADMIN = 7400, 9031, 9998, 9501
CENTER_HEAD, CENTER_ADMIN = 100000001, 100000002  # roles in config.example.toml
CENTER = -1001000000001
CGZF = -1001000000021  # 城管执法局: where 乱堆乱放 (clutter) reports go
PHOTO = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

CATEGORIES = {
    "neighbour": "邻里纠纷",
    "violence": "暴力威胁",
    "family": "家庭矛盾",
    "property": "物业纠纷",
    "wages": "欠薪",
    "self_harm": "自伤风险",
    "petition": "信访风险",
    "fraud": "诈骗",
}


@pytest.fixture(scope="module")
def library() -> KeywordLibrary:
    return load_library(DEFAULT_KEYWORDS_PATH)


def flagged(library: KeywordLibrary, text: str) -> list[str]:
    return [score.category.code for score in library.assess(text).flagged]


class TestShippedLibrary:
    def test_eight_categories_and_at_least_300_words(self, library: KeywordLibrary) -> None:
        assert {c.code: c.name("zh-Hans") for c in library.categories} == CATEGORIES
        assert len(library) >= 300
        for category in library.categories:
            assert category.name("en") and category.level in (1, 2, 3)
            languages = {keyword.language for keyword in category.keywords}
            assert languages == {"zh-Hans", "en"}, category.code
            assert sum(keyword.weight for keyword in category.keywords) > category.threshold

    def test_every_word_is_found_in_a_text_of_its_own(self, library: KeywordLibrary) -> None:
        for category in library.categories:
            for keyword in category.keywords:
                text = f"居民反映：{keyword.word.removesuffix('*')}。"
                found = {hit.keyword for hit in library.assess(text).hits}
                assert keyword in found, keyword

    @pytest.mark.parametrize(
        ("text", "category"),
        [
            ("他喝了酒在楼下喊，说要砍死他全家", "violence"),
            ("我真的不想活了，明天就去跳河", "self_harm"),
            ("包工头跑了，拖欠工资大半年", "wages"),
            ("物业不作为，楼上漏水不管", "property"),
            ("我们几十户准备集体上访，去北京上访", "petition"),
            ("有人冒充公检法让我把钱转到安全账户", "fraud"),
            ("老公打我，已经不是第一次家暴了", "family"),
            ("跟邻居吵架，差点打起来了", "neighbour"),
            ("隔壁天天吵架，邻居骂人", "neighbour"),
            ("I think my neighbour is going to hurt someone", "violence"),
            ("We have not been paid: unpaid wages for three months", "wages"),
        ],
    )
    def test_what_residents_write(self, library: KeywordLibrary, text: str, category: str) -> None:
        top = library.assess(text).top
        assert top is not None and top.category.code == category, text


class TestMatching:
    def test_several_words_of_several_categories(self, library: KeywordLibrary) -> None:
        result = library.assess("老板跑路了，拖欠工资半年，工友们说要集体上访，还扬言要砍死他")
        codes = [score.category.code for score in result.flagged]
        assert codes == ["violence", "wages", "petition"]  # level 3 first, then by score
        wages = result.flagged[1]
        assert [k.word for k in wages.keywords] == ["老板跑路", "拖欠工资"]
        assert wages.score == 10
        assert result.top is result.flagged[0]

    def test_overlapping_words_are_all_found_but_a_contained_one_counts_once(
        self, library: KeywordLibrary
    ) -> None:
        result = library.assess("他站在楼顶说要跳楼")
        words = {(hit.keyword.word, hit.start, hit.end) for hit in result.hits}
        assert {("站在楼顶", 1, 5), ("楼顶", 3, 5), ("要跳楼", 6, 9), ("跳楼", 7, 9)} <= words
        [self_harm] = result.flagged
        assert [k.word for k in self_harm.keywords] == ["站在楼顶", "要跳楼"]
        assert self_harm.score == 7 + 10

    def test_a_shorter_word_also_found_on_its_own_counts(self, library: KeywordLibrary) -> None:
        [score] = library.assess("电梯坏了没人修，另一部电梯坏了").scores
        assert {k.word for k in score.keywords} == {"电梯坏了没人修", "电梯坏了"}
        assert score.score == 6

    def test_latin_text_ignores_case_and_full_width_forms(self, library: KeywordLibrary) -> None:
        for text in ("He said: I will KILL YOU", "i will kill you", "ＩＷＩＬＬ ＫＩＬＬ ＹＯＵ"):
            assert flagged(library, text) == ["violence"], text
        assert flagged(library, "Suicidal thoughts, he said he wants to END MY LIFE") == [
            "self_harm"
        ]

    def test_latin_words_match_whole_words_and_star_means_prefix(
        self, library: KeywordLibrary
    ) -> None:
        assert library.assess("Skills training has begun").hits == ()
        assert flagged(library, "he has a gun and said he will shoot") == []  # gun: 4 of 5
        assert [h.keyword.word for h in library.assess("Guns, a GUN!").hits] == ["guns", "gun"]
        assert library.assess("skills to kill yourself time").top is None
        threatened = [h.keyword.word for h in library.assess("He threatened us").hits]
        assert threatened == ["threaten*"]
        assert flagged(library, "he THREATENED to stab my brother") == ["violence"]

    def test_below_the_threshold_is_no_hit(self, library: KeywordLibrary) -> None:
        result = library.assess("楼上天天吵架")
        [score] = result.scores
        assert (score.category.code, score.score, score.is_hit) == ("neighbour", 3, False)
        assert result.top is None and result.flagged == ()

    @pytest.mark.parametrize(
        "text",
        [
            "楼道里有人飞线充电",
            "小区门口乱堆乱放，堵住了消防通道",
            "建议在小区里多装几盏路灯",
            "3号楼北侧路灯不亮已经一周了，麻烦派人来看看",
            "The bus stop needs a bench",
            "Rubbish has not been collected since Monday; skills centre closed",
            "",
        ],
    )
    def test_innocent_texts_hit_nothing(self, library: KeywordLibrary, text: str) -> None:
        assert library.assess(text).hits == ()

    def test_automaton_finds_what_a_naive_search_finds(self) -> None:
        rng = random.Random(4)
        alphabet = "甲乙丙丁"
        for _ in range(50):
            words = {
                "".join(rng.choices(alphabet, k=rng.randint(1, 4)))
                for _ in range(rng.randint(1, 12))
            }
            matcher = Matcher(Pattern(word, word) for word in words)
            text = "".join(rng.choices(alphabet, k=60))
            _normal, matches = matcher.find_all(text)
            found = sorted((m.start, m.end, m.pattern.payload) for m in matches)
            expected = sorted(
                (start, start + len(word), word)
                for word in words
                for start in range(len(text))
                if text.startswith(word, start)
            )
            assert found == expected


BASE = """\
[categories.violence]
names = { "zh-Hans" = "暴力威胁", en = "Threat of violence" }
level = 3
threshold = 5

[categories.violence.words.zh-Hans]
"砍死他" = 10
"打架" = 3

[categories.violence.words.en]
"kill you" = 9
"""
WORD = 'categories.violence.words.zh-Hans."砍死他"'


class TestValidation:
    def test_the_base_is_valid(self) -> None:
        assert len(parse_library(BASE)) == 3

    @pytest.mark.parametrize(
        ("old", "new", "where", "message"),
        [
            ('"砍死他" = 10', '"砍死他" = 0', f"7: {WORD}", "from 1 to 10, got 0"),
            ('"砍死他" = 10', '"砍死他" = 11', f"7: {WORD}", "from 1 to 10, got 11"),
            ('"砍死他" = 10', '"砍死他" = "10"', f"7: {WORD}", "got '10'"),
            ('"砍死他" = 10', '"砍死他" = 2.5', f"7: {WORD}", "got 2.5"),
            ('"砍死他" = 10', '"砍死他" = true', f"7: {WORD}", "got True"),
            ('"打架" = 3', '"" = 3', '8: categories.violence.words.zh-Hans.""', "empty word"),
            ('"打架" = 3', '"  " = 3', "8: categories.violence.words.zh-Hans", "empty word"),
            ('"打架" = 3', '"*" = 3', '8: categories.violence.words.zh-Hans."*"', "empty word"),
            (
                '"kill you" = 9',
                '"kill*you" = 9',
                '11: categories.violence.words.en."kill*you"',
                "may only end a word",
            ),
            (
                '"kill you" = 9',
                '"kill you" = 9\n"KILL  You" = 4',
                '12: categories.violence.words.en."KILL  You"',
                'the same word as categories.violence.words.en."kill you"',
            ),
            ("level = 3", "level = 4", "3: categories.violence.level", "from 1 to 3, got 4"),
            ("threshold = 5", "threshold = 0", "4: categories.violence.threshold", "got 0"),
            ("threshold = 5\n", "", "1: categories.violence", "threshold is missing"),
            (
                "threshold = 5",
                'threshold = 5\ncolour = "red"',
                "5: categories.violence.colour",
                "unknown key",
            ),
            (
                ', en = "Threat of violence"',
                "",
                "2: categories.violence.names.en",
                "a name in this language is required",
            ),
            (
                "[categories.violence.words.en]",
                "[categories.violence.words.fr]",
                "10: categories.violence.words.fr",
                "unknown language",
            ),
            (
                "[categories.violence]",
                "[categories.Violence]",
                "1: categories.Violence",
                "lowercase letters",
            ),
            (
                "[categories.violence]",
                "version = 2\n[categories.violence]",
                "1: version",
                "unknown",
            ),
            ('"打架" = 3', '"打架" =', "8: TOML syntax error", "Invalid value"),
            ('"打架" = 3', '"打架" = 3\n"打架" = 4', "9: TOML syntax error", "overwrite"),
        ],
    )
    def test_a_broken_entry_is_refused_with_its_line_and_key(
        self, old: str, new: str, where: str, message: str
    ) -> None:
        assert old in BASE
        with pytest.raises(LibraryError) as caught:
            parse_library(BASE.replace(old, new, 1), path="keywords.toml")
        first = str(caught.value.problems[0])
        assert first.startswith(f"keywords.toml:{where}"), first
        assert message in first, first

    def test_every_problem_is_reported(self) -> None:
        text = BASE.replace('"砍死他" = 10', '"砍死他" = 0').replace("level = 3", "level = 0")
        with pytest.raises(LibraryError) as caught:
            parse_library(text, path="keywords.toml")
        assert [p.line for p in caught.value.problems] == [3, 7]
        assert str(caught.value).count("keywords.toml:") == 2

    def test_an_empty_or_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(LibraryError, match="no categories"):
            parse_library("# nothing yet\n")
        with pytest.raises(LibraryError, match="cannot read"):
            load_library(tmp_path / "nowhere.toml")


class TestCommandLine:
    def test_check_validates_the_library_too(self, tmp_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "WHISTLE_"))}
        env.update(WHISTLE_CONFIG=str(EXAMPLE_DISTRICT), PYTHONPATH=str(ROOT))
        command = [sys.executable, "-m", "bot", "check"]

        def check() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                command, check=False, env=env, cwd=tmp_path, capture_output=True, text=True
            )

        ok = check()
        assert ok.returncode == 0, ok.stderr
        assert f"{DEFAULT_KEYWORDS_PATH}: OK" in ok.stdout

        broken = tmp_path / "keywords.toml"
        broken.write_text(BASE.replace('"砍死他" = 10', '"砍死他" = 0'), encoding="utf-8")
        env["WHISTLE_KEYWORDS"] = str(broken)
        refused = check()
        assert refused.returncode == 2
        assert f"{broken}:7: {WORD}: must be a whole number" in refused.stderr


class TestBenchmark:
    def test_runs_and_writes_its_results(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        args = ["--texts", "300", "--rounds", "1", "--results", str(tmp_path)]
        assert keywords_bench.main(args) == 0
        [written] = tmp_path.glob("keywords-*.json")
        result = json.loads(written.read_text(encoding="utf-8"))
        assert result["texts"] == 300 and result["library"]["keywords"] >= 300
        assert result["texts_per_second"] > 0 and 0 < result["flagged"] < 300
        assert "texts/s" in capsys.readouterr().out


# -- end to end -------------------------------------------------------------------------------


@pytest.fixture
def keywords_file(tmp_path: Path) -> Path:
    path = tmp_path / "keywords.toml"
    shutil.copy(DEFAULT_KEYWORDS_PATH, path)
    return path


@pytest.fixture
async def app(
    api_server: BotAPIServer, database_url: str, district: District, keywords_file: Path
) -> AsyncIterator[Whistle]:
    """The application reading its keyword library from a file the test may rewrite."""
    api_server.add_user(RESIDENT, first_name="王晓霞", username="wangxx", language_code="zh-hans")
    for user in (CLERK, OUTSIDER, GROUP_ADMIN, CENTER_HEAD, CENTER_ADMIN):
        api_server.add_user(user, first_name=f"user{user}")
    for chat_id in district.configured_chat_ids():
        if chat_id != CENTER:
            api_server.create_group(chat_id, f"group {chat_id}", members=[CLERK, CENTER_ADMIN])
    api_server.create_group(
        CENTER,
        "综治中心",
        members=[CENTER_HEAD, CENTER_ADMIN, OUTSIDER],
        admins=[GROUP_ADMIN],
    )
    settings = make_settings(
        api_server.base_url, database_url, WHISTLE_KEYWORDS=str(keywords_file)
    )
    whistle = Whistle(settings=settings, district=district, retry_base=0.05)
    await whistle.start()
    yield whistle
    await whistle.stop()


async def press(api_server: BotAPIServer, message: BotMessage, label: str) -> None:
    data = next(
        str(b["callback_data"]) for b in message.buttons() if label in str(b.get("text", ""))
    )
    answered = len(api_server.callback_answers)
    api_server.press_button(RESIDENT, message.message_id, data)
    await api_server.wait_for(lambda s: len(s.callback_answers) > answered)


async def report(api_server: BotAPIServer, text: str) -> BotMessage:
    """随手拍 through the dialog: a photo with the text as caption, 乱堆乱放, an address."""
    api_server.send_photo(RESIDENT, PHOTO, caption=text)
    [categories] = await api_server.wait_for_message(RESIDENT)
    await press(api_server, categories, "乱堆乱放")
    await api_server.wait_for_message(RESIDENT)  # where is it?
    api_server.send_text(RESIDENT, "康乐小区3号楼")
    [summary] = await api_server.wait_for_message(RESIDENT)
    await press(api_server, summary, "确认提交")
    [receipt] = await api_server.wait_for_message(RESIDENT)
    return receipt


async def cases_and_events(app: Whistle) -> tuple[list[Case], list[CaseEvent]]:
    async with app.factory() as session:
        cases = (await session.scalars(select(Case).order_by(col(Case.id)))).all()
        events = (await session.scalars(select(CaseEvent).order_by(col(CaseEvent.id)))).all()
    return list(cases), list(events)


class TestAlerts:
    async def test_a_threat_alerts_the_center_without_the_reporters_name(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        receipt = await report(api_server, "楼道堆满杂物，说了两句，对门扬言要砍死他")
        assert "HB-000001" in receipt.text

        [alert] = await api_server.wait_for_message(CENTER)
        assert "矛盾纠纷预警" in alert.text and "HB-000001" in alert.text
        assert "类别：暴力威胁 · 风险等级：高" in alert.text
        assert "砍死他" in alert.text and "城市管理综合执法局" in alert.text
        assert "王晓霞" not in alert.text and "wangxx" not in alert.text
        [card] = await api_server.wait_for_message(CGZF)
        assert "王晓霞" in (card.caption or "")  # the department's card does name the resident

        [case], events = await cases_and_events(app)
        assert (case.risk_category, case.risk_level) == ("violence", 3)
        [flag] = [event for event in events if event.kind == "risk_flagged"]
        assert flag.actor_role == "system" and flag.case_id == case.id
        assert flag.data["words"] == ["扬言", "砍死他"] and flag.data["score"] == 13
        # The resident's timeline does not show it.
        api_server.send_text(RESIDENT, "/my")
        [cases_list] = await api_server.wait_for_message(RESIDENT)
        assert "预警" not in cases_list.text

    async def test_a_post_to_the_center_alerts_it_without_the_name(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        api_server.send_text(RESIDENT, "🗣 我有话说")
        await api_server.wait_for_message(RESIDENT)
        api_server.send_text(RESIDENT, "工地老板拖欠工资半年了，我们准备集体上访")
        [categories] = await api_server.wait_for_message(RESIDENT)
        await press(api_server, categories, "跳过")
        [anonymous] = await api_server.wait_for_message(RESIDENT)
        await press(api_server, anonymous, "显示我的名字")
        [summary] = await api_server.wait_for_message(RESIDENT)
        await press(api_server, summary, "确认提交")
        await api_server.wait_for_message(RESIDENT)

        card, alert = await api_server.wait_for_message(CENTER, count=2)
        assert "王晓霞" in card.text  # the center card names a resident who is not anonymous
        assert "HB-000001" in alert.text and "类别：信访风险 · 风险等级：中" in alert.text
        assert "同时命中：欠薪" in alert.text
        assert "命中关键词：集体上访、拖欠工资" in alert.text
        assert "尚待综治中心分派" in alert.text
        assert "王晓霞" not in alert.text and "wangxx" not in alert.text
        [case], events = await cases_and_events(app)
        assert (case.risk_category, case.risk_level) == ("petition", 2)
        [flag] = [event for event in events if event.kind == "risk_flagged"]
        assert flag.data["also"] == ["wages"]

    async def test_a_plain_report_changes_nothing(
        self, app: Whistle, api_server: BotAPIServer
    ) -> None:
        await report(api_server, "楼道里堆满了旧家具，堵住了消防通道")
        await api_server.wait_for_message(CGZF)
        await settled(app)
        assert api_server.messages(CENTER) == []
        [case], events = await cases_and_events(app)
        assert (case.risk_category, case.risk_level) == (None, None)
        assert "risk_flagged" not in {event.kind for event in events}


SMALL_LIBRARY = """\
[categories.manholes]
names = { "zh-Hans" = "井盖风险", en = "Manhole risk" }
level = 2
threshold = 3

[categories.manholes.words.zh-Hans]
"井盖丢了" = 3

[categories.manholes.words.en]
"manhole" = 3
"""


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


class TestReload:
    async def reload(
        self,
        api_server: BotAPIServer,
        user: int,
        chat_id: int = CENTER,
        reply_to: int | None = None,
    ) -> str:
        api_server.send_text(user, "/reload_keywords", chat_id=chat_id, reply_to=reply_to)
        [reply] = await api_server.wait_for_message(chat_id)
        return reply.text

    async def test_an_admin_reloads_and_a_broken_file_keeps_the_library(
        self, app: Whistle, api_server: BotAPIServer, keywords_file: Path
    ) -> None:
        write(keywords_file, SMALL_LIBRARY)
        reply = await self.reload(api_server, CENTER_ADMIN)
        assert reply == "✅ 关键词库已重新加载：1 类，共 2 个关键词。"

        await report(api_server, "路口的井盖丢了，晚上看不见")
        [alert] = await api_server.wait_for_message(CENTER)
        assert "类别：井盖风险 · 风险等级：中" in alert.text and "井盖丢了" in alert.text
        await report(api_server, "对门扬言要砍死他")  # no longer in the library
        await api_server.wait_for_message(CGZF, count=2)
        await settled(app)
        assert len(api_server.messages(CENTER)) == 2  # the reply and one alert

        in_use = app.early_warning.library
        write(keywords_file, SMALL_LIBRARY.replace('"井盖丢了" = 3', '"井盖丢了" = 0'))
        reply = await self.reload(api_server, CENTER_HEAD, reply_to=alert.message_id)
        assert reply.startswith("❌ 关键词库有误，未加载，继续使用原词库（2 个关键词）")
        assert 'keywords.toml:7: categories.manholes.words.zh-Hans."井盖丢了": ' in reply
        assert str(keywords_file.parent) not in reply  # the file's name, not the server's path
        assert app.early_warning.library is in_use

    async def test_others_are_refused(
        self, app: Whistle, api_server: BotAPIServer, keywords_file: Path
    ) -> None:
        write(keywords_file, SMALL_LIBRARY)
        in_use = app.early_warning.library
        refused = "只有管理员或综治中心主任可以重新加载关键词库。"
        assert await self.reload(api_server, OUTSIDER) == refused
        # Administering the Telegram group is not a role in the district file.
        assert await self.reload(api_server, GROUP_ADMIN) == refused
        assert await self.reload(api_server, CENTER_ADMIN, CGZF) == (
            "请在综治中心群里发送 /reload_keywords。"
        )
        assert app.early_warning.library is in_use
