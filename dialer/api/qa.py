"""QA (质检) for QA reviewers, supervisors and admins: the sample queue, scorecards, scores.

The queue is the day's random sample (``cdr.qa.sample``: the configured share
of each agent's answered calls, at least the configured minimum, the same
picks for the same day), minus the calls already scored. Scorecards are the
TOML files under ``deploy/qa/`` (the standard script); a score is checked
against its card (every item answered, within its points) and saved through
``QaStore``, which audits it and sets the CDR's ``qa_score`` in the same
transaction, so the score shows in the CDR search at once.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Final
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from cdr.qa import (
    COMMENT_MAX,
    AnswersError,
    Scorecard,
    ScorecardError,
    UnknownCallError,
    sample,
    score,
)
from cdr.tables import CdrRow
from dialer.api.auth import Role, User, require
from dialer.api.cdrs import Day, QaScoreItem, cdr_row
from dialer.api.context import ApiContext, context
from dialer.api.errors import ApiError, error_responses
from dialer.api.messages import register
from dialer.api.scope import require_in_team, team_agents

__all__ = [
    "SCORECARDS_DIR",
    "QueueItem",
    "ScoreIn",
    "ScoreOut",
    "ScorecardItemOut",
    "ScorecardOut",
    "load_scorecards",
    "router",
]

register(
    {
        "qa.unknown_scorecard": {
            "en": "There is no scorecard {ref}.",
            "zh-CN": "没有质检表 {ref}。",
        },
        "qa.bad_answers": {
            "en": "The answers do not fit scorecard {ref}: {count} problem(s).",
            "zh-CN": "评分不符合质检表 {ref}：共 {count} 处问题。",
        },
        "qa.unknown_call": {
            "en": "Call {call_id} has no CDR, so it cannot be scored.",
            "zh-CN": "通话 {call_id} 没有通话记录，无法评分。",
        },
        "qa.scorecards_broken": {
            "en": "The scorecards cannot be read; an admin must fix them.",
            "zh-CN": "质检表无法读取，需要管理员修正。",
        },
    }
)

router = APIRouter(prefix="/api/v1", tags=["qa"])

SCORECARDS_DIR: Final = Path(__file__).resolve().parents[2] / "deploy" / "qa"


def load_scorecards(directory: Path = SCORECARDS_DIR) -> list[Scorecard]:
    """Every scorecard under ``directory``, by ref (blocking); ScorecardError names
    every problem of every broken file."""
    cards: list[Scorecard] = []
    problems: list[str] = []
    for path in sorted(directory.glob("*.toml")):
        try:
            cards.append(Scorecard.load(path))
        except ScorecardError as exc:
            problems.append(str(exc))
    if problems:
        raise ScorecardError("; ".join(problems))
    return sorted(cards, key=lambda card: (card.name, card.version))


class ScorecardItemOut(BaseModel):
    key: str
    label: str
    description: str
    weight: float
    max: float
    fatal: bool


class ScorecardOut(BaseModel):
    ref: str = Field(description="name@version: what a score names")
    name: str
    title: str
    items: list[ScorecardItemOut]


class QueueItem(BaseModel):
    call_id: str
    agent: str | None
    campaign: str | None
    created_at_ms: int
    talk_ms: int
    has_recording: bool


class ScoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call_id: str = Field(min_length=1, max_length=64)
    scorecard: str = Field(min_length=1, max_length=80, description="ref (name@version) or name")
    answers: dict[str, float] = Field(description="points per item key")
    comment: str = Field(default="", max_length=COMMENT_MAX)


class ScoreOut(BaseModel):
    call_id: str
    scorecard: str
    score: float
    failed: bool = Field(description="a fatal item was missed: the score is 0")
    reviewer: str
    at_ms: int
    items: list[QaScoreItem]
    comment: str


Ctx = Annotated[ApiContext, Depends(context)]
Reviewer = Annotated[User, Depends(require(Role.QA, Role.SUPERVISOR, Role.ADMIN))]


async def _cards() -> list[Scorecard]:
    try:
        return await asyncio.to_thread(load_scorecards)
    except ScorecardError as exc:
        raise ApiError(500, "scorecards_invalid", "qa.scorecards_broken", [str(exc)]) from None


def _card(cards: list[Scorecard], ref: str) -> Scorecard:
    """The card named by ``name@version``, or by ``name`` alone: its newest version."""
    exact = [card for card in cards if card.ref == ref]
    named = [card for card in cards if card.name == ref]
    found = exact or named[-1:]
    if not found:
        raise ApiError(
            422,
            "invalid_request",
            "qa.unknown_scorecard",
            [f"scorecard: known are {', '.join(card.ref for card in cards) or 'none'}"],
            ref=ref,
        )
    return found[0]


@router.get(
    "/qa/scorecards", response_model=list[ScorecardOut], responses=error_responses(401, 403)
)
async def scorecards(user: Reviewer) -> list[ScorecardOut]:
    """The scorecards a reviewer scores against (the standard script)."""
    return [
        ScorecardOut(
            ref=card.ref,
            name=card.name,
            title=card.title,
            items=[
                ScorecardItemOut(
                    key=item.key,
                    label=item.label,
                    description=item.description,
                    weight=item.weight,
                    max=item.max_points,
                    fatal=item.fatal,
                )
                for item in card.items
            ],
        )
        for card in await _cards()
    ]


def _day_bounds_ms(day: date, tz: ZoneInfo) -> tuple[int, int]:
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    following = date.fromordinal(day.toordinal() + 1)
    end = datetime(following.year, following.month, following.day, tzinfo=tz)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


@router.get("/qa/queue", response_model=list[QueueItem], responses=error_responses(401, 403, 422))
async def queue(
    ctx: Ctx,
    user: Reviewer,
    day: Annotated[Day | None, Query(description="local day; default today")] = None,
) -> list[QueueItem]:
    """The day's sample of answered calls still waiting for a score (a lead: its team's share)."""
    config = ctx.floor.config
    team = team_agents(ctx, user)
    tz = ZoneInfo(config.service.timezone)
    chosen = day or datetime.fromtimestamp(ctx.now_ms() / 1000, tz).date()
    start, end = _day_bounds_ms(chosen, tz)
    records = {record.call_id: record async for record in ctx.cdrs.search(start, end)}
    picked = sample(
        records.values(),
        rate=config.cdr.qa_sample_rate,
        minimum=config.cdr.qa_sample_minimum,
        seed=int(chosen.strftime("%Y%m%d")),  # as ``dialer cdr qa-sample``: reproducible
        tz=tz,
    )
    async with ctx.floor.database.sessionmaker() as session:
        scored = set(
            await session.scalars(
                select(CdrRow.call_id).where(
                    CdrRow.call_id.in_(picked), CdrRow.qa_score.is_not(None)
                )
            )
        )
    return [
        QueueItem(
            call_id=call_id,
            agent=records[call_id].agent,
            campaign=records[call_id].campaign,
            created_at_ms=records[call_id].created_at_ms,
            talk_ms=records[call_id].talk_ms,
            has_recording=records[call_id].recording is not None,
        )
        for call_id in picked
        if call_id not in scored and (team is None or records[call_id].agent in team)
    ]


@router.post(
    "/qa/scores",
    status_code=201,
    response_model=ScoreOut,
    responses=error_responses(401, 403, 404, 422),
)
async def save_score(ctx: Ctx, user: Reviewer, body: ScoreIn) -> ScoreOut:
    """Score a call against a scorecard; the CDR's ``qa_score`` becomes this score."""
    if team_agents(ctx, user) is not None:  # a lead scores its team's calls only
        row = await cdr_row(ctx, body.call_id)
        if row is None:
            raise ApiError(404, "not_found", "qa.unknown_call", call_id=body.call_id)
        require_in_team(ctx, user, row["agent"])
    card = _card(await _cards(), body.scorecard)
    try:
        result = score(card, body.answers)
    except AnswersError as exc:
        problems = str(exc).split("; ")
        raise ApiError(
            422, "invalid_request", "qa.bad_answers", problems, ref=card.ref, count=len(problems)
        ) from None
    now = ctx.now_ms()
    try:
        stored = await ctx.qa.save(
            body.call_id, card, result, user.username, now, comment=body.comment.strip()
        )
    except UnknownCallError:
        raise ApiError(404, "not_found", "qa.unknown_call", call_id=body.call_id) from None
    return ScoreOut(
        call_id=stored.call_id,
        scorecard=card.ref,
        score=stored.total,
        failed=stored.failed,
        reviewer=stored.reviewer,
        at_ms=stored.scored_at_ms,
        items=QaScoreItem.all_of(stored.items),
        comment=stored.comment,
    )
