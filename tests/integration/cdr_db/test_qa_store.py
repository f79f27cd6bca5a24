"""QA scores and the audit log on real SQLite and PostgreSQL databases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdr.audit import AuditAction, AuditError, AuditLog
from cdr.qa import AnswersError, QaStore, Scorecard, UnknownCallError, score
from cdr.record import CallRecord
from cdr.review_tables import QaScoreRow
from cdr.store import CdrStore

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
Make = Callable[..., CallRecord]
T0 = 1_717_383_600_000
NOW = T0 + 3_600_000
CARD = Scorecard.load(
    Path(__file__).resolve().parents[3] / "deploy" / "qa" / "standard-script.toml"
)
FULL = {item.key: item.max_points for item in CARD.items}


@pytest.fixture
def audit(cdr_sessions: Sessions) -> AuditLog:
    return AuditLog(cdr_sessions)


@pytest.fixture
def qa(cdr_sessions: Sessions, audit: AuditLog) -> QaStore:
    return QaStore(cdr_sessions, audit)


@pytest.fixture
async def cdrs(cdr_sessions: Sessions, make_record: Make) -> CdrStore:
    store = CdrStore(cdr_sessions)
    for call_id in ("c1", "c2"):
        assert await store.close(make_record(call_id), T0 + 100_000)
    return store


async def test_a_score_is_stored_audited_and_shown_on_the_cdr(
    qa: QaStore, audit: AuditLog, cdrs: CdrStore
) -> None:
    result = score(CARD, {**FULL, "needs_discovery": 5, "closing": 0})
    stored = await qa.save("c1", CARD, result, "qa.li", NOW)

    assert (stored.call_id, stored.scorecard, stored.scorecard_version) == (
        "c1",
        "standard-script",
        1,
    )
    assert (stored.reviewer, stored.total, stored.failed, stored.scored_at_ms) == (
        "qa.li",
        result.total,
        False,
        NOW,
    )
    assert stored.items == result.items
    assert await qa.scores_for("c1") == [stored]
    assert await qa.scores_for("c2") == []
    assert await cdrs.qa_score("c1") == result.total
    [entry] = await audit.entries(call_id="c1")
    assert (entry.who, entry.action, entry.ok, entry.at_ms) == (
        "qa.li",
        AuditAction.SCORE,
        True,
        NOW,
    )
    assert "standard-script@1" in entry.detail


async def test_a_fatal_item_failed_is_stored_as_a_failed_zero(qa: QaStore, cdrs: CdrStore) -> None:
    result = score(CARD, {**FULL, "compliance_no_false_promises": 0})
    stored = await qa.save("c1", CARD, result, "qa.li", NOW)
    assert (stored.total, stored.failed) == (0.0, True)
    [item] = [item for item in stored.items if item.failed_fatal]
    assert item.key == "compliance_no_false_promises"


async def test_every_score_is_kept_oldest_first_and_the_cdr_shows_the_newest(
    qa: QaStore, cdrs: CdrStore
) -> None:
    first = score(CARD, FULL)
    second = score(CARD, {**FULL, "greeting": 1})
    await qa.save("c1", CARD, second, "qa.zhou", NOW + 60_000)
    await qa.save("c1", CARD, first, "qa.li", NOW)
    scores = await qa.scores_for("c1")
    assert [(s.reviewer, s.total) for s in scores] == [
        ("qa.li", 100.0),
        ("qa.zhou", second.total),
    ]
    # The newest by when it was scored, though it was saved first.
    assert await cdrs.qa_score("c1") == second.total


async def test_a_score_for_a_call_without_a_cdr_is_refused_and_audited(
    qa: QaStore, audit: AuditLog, cdrs: CdrStore
) -> None:
    with pytest.raises(UnknownCallError, match="'c404': there is no CDR"):
        await qa.save("c404", CARD, score(CARD, FULL), "qa.li", NOW)
    assert await qa.scores_for("c404") == []
    [entry] = await audit.entries(call_id="c404")
    assert (entry.action, entry.ok) == (AuditAction.SCORE, False)
    assert "no CDR" in entry.detail


async def test_a_result_of_another_scorecard_is_refused(qa: QaStore, cdrs: CdrStore) -> None:
    other = Scorecard.from_toml(
        'name = "short"\nversion = 1\n[[items]]\nkey = "greeting"\nlabel = "问候"\n'
        "weight = 1\nmax_points = 1\n"
    )
    with pytest.raises(AnswersError, match="not those of scorecard standard-script@1"):
        await qa.save("c1", CARD, score(other, {"greeting": 1}), "qa.li", NOW)
    inflated = replace(score(CARD, {**FULL, "greeting": 0}), total=100.0)
    with pytest.raises(AnswersError, match="does not add up"):
        await qa.save("c1", CARD, inflated, "qa.li", NOW)
    assert await qa.scores_for("c1") == []


async def test_the_database_keeps_a_failed_score_at_zero(
    qa: QaStore, cdrs: CdrStore, cdr_sessions: Sessions
) -> None:
    await qa.save("c1", CARD, score(CARD, {**FULL, "compliance_no_false_promises": 0}), "q", NOW)
    with pytest.raises(IntegrityError):
        async with cdr_sessions() as session, session.begin():
            await session.execute(update(QaScoreRow).values(total=80.0))
    [stored] = await qa.scores_for("c1")
    assert stored.total == 0.0


async def test_audit_entries_filter_by_who_action_result_and_time(audit: AuditLog) -> None:
    await audit.write("qa.li", AuditAction.PLAY, "c1", "/rec/c1.wav", True, NOW)
    await audit.write("qa.li", "export", None, "cdrs 2024-06-03, masked", True, NOW + 1)
    await audit.write(
        "agent.7", AuditAction.EXPORT, None, "refused: agents may not export", False, NOW + 2
    )
    await audit.write("qa.zhou", AuditAction.PLAY, "c1", "refused: checksum", False, NOW + 3)

    assert [e.at_ms for e in await audit.entries()] == [NOW, NOW + 1, NOW + 2, NOW + 3]
    assert [e.who for e in await audit.entries(action="export")] == ["qa.li", "agent.7"]
    assert [e.who for e in await audit.entries(call_id="c1", ok=False)] == ["qa.zhou"]
    assert [e.at_ms for e in await audit.entries(since_ms=NOW + 1, until_ms=NOW + 3)] == [
        NOW + 1,
        NOW + 2,
    ]
    assert [e.at_ms for e in await audit.entries(who="qa.li", limit=1)] == [NOW]


async def test_bad_audit_entries_are_refused_naming_every_problem(audit: AuditLog) -> None:
    with pytest.raises(AuditError) as caught:
        await audit.write("", "listen", "c1", "", True, -5)
    message = str(caught.value)
    assert "who is empty" in message
    assert "action 'listen' is not one of" in message
    assert "now_ms -5" in message
    assert await audit.entries() == []
    with pytest.raises(AuditError, match="'listen' is not an audit action"):
        await audit.entries(action="listen")
