"""三审时效 from the department's side: it proposes a completion date from its card, the
approving group (the street office that triaged it, else the center) approves or rejects."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import Whistle
from bot.testserver import BotAPIServer
from models import Case, Escalation
from tests.casework import file_photo_report
from tests.conftest import AppFactory, settled, start_with_residents

RESIDENT, CLERK, CENTER_MEMBER, OUTSIDER = 7600, 9021, 9101, 9999
CENTER, CGZF, SCRATCH = -1001000000001, -1001000000021, -1005558


@pytest.fixture
async def acknowledged(
    api_server: BotAPIServer, make_app: AppFactory
) -> tuple[Whistle, Case, Any]:
    api_server.create_group(CENTER, "综治中心", members=[CENTER_MEMBER, OUTSIDER])
    api_server.create_group(CGZF, "城管执法局", members=[CLERK])
    api_server.create_group(SCRATCH, "Scratch", members=[RESIDENT])
    app = await start_with_residents(api_server, make_app, {RESIDENT: "王晓霞"}, center=CENTER)
    case = await file_photo_report(
        app,
        api_server,
        resident=RESIDENT,
        scratch=SCRATCH,
        description="整栋楼飞线充电，需要加装充电桩",
        address="康乐小区",
    )
    [card] = await api_server.wait_for_message(CGZF)
    await settled(app)
    assert "📅 申请办结期限" not in card.button_texts()  # not before acknowledgement
    api_server.press_button(CLERK, card.message_id, card.callback_data()[0], chat_id=CGZF)
    await api_server.wait_for(lambda s: len(s.callback_answers) == 1)
    await settled(app)
    await api_server.wait_for_message(RESIDENT, count=2)  # receipt, acknowledged
    return app, case, card


async def press(app: Whistle, api_server: BotAPIServer, chat: int, user: int, label: str) -> None:
    message = [m for m in api_server.messages(chat) if label in m.button_texts()][-1]
    data = message.callback_data()[message.button_texts().index(label)]
    answers = len(api_server.callback_answers)
    api_server.press_button(user, message.message_id, data, chat_id=chat)
    await api_server.wait_for(lambda s: len(s.callback_answers) > answers)
    await settled(app)


async def test_proposed_approved_resident_told_and_deadline_ladder_set(
    acknowledged: tuple[Whistle, Case, Any], api_server: BotAPIServer
) -> None:
    app, case, card = acknowledged
    assert "📅 申请办结期限" in api_server.messages(CGZF)[0].button_texts()
    await press(app, api_server, CGZF, CLERK, "📅 申请办结期限")
    ask = api_server.messages(CGZF)[-1]
    assert ask.reply_to_message_id == card.message_id and "需要多长时间" in ask.text
    await press(app, api_server, CGZF, CLERK, "15 天内办结")
    assert "等待审批" in api_server.messages(CGZF)[-1].text
    [proposal] = await api_server.wait_for_message(CENTER)
    assert "申请 HB-000001 在 15 天内（2026-01-20 09:00 前）办结" in proposal.text

    await press(app, api_server, CENTER, CENTER_MEMBER, "✅ 同意")
    [told] = await api_server.wait_for_message(RESIDENT)
    assert told.text == "📅 HB-000001：城市管理综合执法局 预计 2026-01-20 前办结。"
    assert "已由" in api_server.messages(CENTER)[-1].text
    assert api_server.messages(CENTER)[-1].button_texts() == []
    assert any("已由" in (m.text or "") and "批准" in m.text for m in api_server.messages(CGZF))
    assert "约定办结期限：2026-01-20 09:00" in (api_server.messages(CGZF)[0].caption or "")
    assert "📅 申请办结期限" not in api_server.messages(CGZF)[0].button_texts()
    async with app.factory() as session:
        rungs = await session.scalar(
            select(func.count()).select_from(Escalation).where(Escalation.ladder == "deadline")
        )
        assert (await session.get(Case, case.id)).deadline_at is not None  # type: ignore[union-attr]
    assert rungs == 4


async def test_rejected_proposals_and_outsiders_change_nothing(
    acknowledged: tuple[Whistle, Case, Any], api_server: BotAPIServer
) -> None:
    app, case, _ = acknowledged
    await press(app, api_server, CGZF, CLERK, "📅 申请办结期限")
    await press(app, api_server, CGZF, CLERK, "7 天内办结")
    [proposal] = await api_server.wait_for_message(CENTER)
    approve = proposal.callback_data()[0]
    api_server.add_member(CENTER, 4242)
    api_server.remove_member(CENTER, 4242)
    answers = len(api_server.callback_answers)
    api_server.press_button(4242, proposal.message_id, approve, chat_id=CENTER, force=True)
    await api_server.wait_for(lambda s: len(s.callback_answers) > answers)
    assert (
        api_server.callback_answers[-1].text
        == "只有海勃湾区社会治安综合治理中心工作群的成员可以操作。"
    )
    await press(app, api_server, CENTER, CENTER_MEMBER, "❌ 不同意")
    assert any("未获" in (m.text or "") for m in api_server.messages(CGZF))
    async with app.factory() as session:
        found = await session.get(Case, case.id)
        assert found is not None and found.deadline_at is None
    # A replayed approval of the rejected proposal is stale.
    answers = len(api_server.callback_answers)
    api_server.press_button(
        CENTER_MEMBER, proposal.message_id, approve, chat_id=CENTER, force=True
    )
    await api_server.wait_for(lambda s: len(s.callback_answers) > answers)
    assert api_server.callback_answers[-1].text == "这张卡片已失效。"
    async with app.factory() as session:
        found = await session.get(Case, case.id)
        assert found is not None and found.deadline_at is None
