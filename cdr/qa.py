"""Quality assurance (质检): scorecards, scoring a call, random sampling, stored scores.

A scorecard is the standard script (规范语言 / 质检标准) as weighted items. Each
item is scored from 0 to its ``max_points``; the call's total is the weighted
share of the points, 0–100. Some items are ``fatal``: they are pass/fail
compliance checks, and anything short of full points on one of them makes
the whole call score 0 with ``failed=True`` (a false promise is not offset by
a friendly greeting).

Sampling picks the calls QA listens to (随机抽查电话录音): per agent and per
day, a share of the answered and bridged calls, never fewer than a minimum
(or all of them when there are fewer), the same picks for the same seed, so a
sample can be reproduced when an agent disputes it.

The pure parts (``Scorecard``, ``score``, ``sample``) need no database;
``QaStore`` keeps the scores, each one audited.
"""

from __future__ import annotations

import math
import random
import re
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .audit import AuditAction, AuditLog
from .record import CallRecord, Outcome
from .review_tables import WHO_LENGTH, QaScoreRow
from .tables import CdrRow

_KEY = re.compile(r"[a-z][a-z0-9_]*")
MAX_NAME = 64  # qa_scores.scorecard
COMMENT_MAX = 2000  # a reviewer's remarks on one call
_CARD_KEYS = frozenset({"name", "version", "title", "items"})
_ITEM_KEYS = frozenset({"key", "label", "weight", "max_points", "fatal", "description"})


class QaError(ValueError):
    """Base error of QA: a scorecard, answers or a sample request that cannot be used."""


class ScorecardError(QaError):
    """A scorecard definition that cannot be used; the message lists every problem."""


class AnswersError(QaError):
    """A reviewer's answers that do not fit the scorecard; the message lists every problem."""


class UnknownCallError(QaError, LookupError):
    """A score for a call id that has no CDR."""


@dataclass(frozen=True, slots=True)
class ScorecardItem:
    key: str  # stable English key: what answers and stored scores refer to
    label: str  # what the reviewer sees, e.g. "开场问候"
    weight: float
    max_points: float
    fatal: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class Scorecard:
    name: str
    version: int
    items: tuple[ScorecardItem, ...]
    title: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def item(self, key: str) -> ScorecardItem:
        for item in self.items:
            if item.key == key:
                return item
        raise KeyError(f"scorecard {self.ref} has no item {key!r}")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], source: str = "scorecard") -> Scorecard:
        """A scorecard from its parsed TOML; every problem is named, not just the first."""
        problems = [f"{source}: unknown key {k!r}" for k in sorted(set(raw) - _CARD_KEYS)]
        name = raw.get("name")
        if (
            not isinstance(name, str)
            or not _KEY.fullmatch(name.replace("-", "_"))
            or len(name) > MAX_NAME
        ):
            problems.append(
                f"{source}.name: {name!r} is not a name of at most {MAX_NAME} lower-case letters,"
                " digits, _ and -"
            )
        version = raw.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            problems.append(f"{source}.version: {version!r} is not a whole number ≥ 1")
        title = raw.get("title", "")
        if not isinstance(title, str):
            problems.append(f"{source}.title: {title!r} is not text")
        raw_items = raw.get("items")
        items: list[ScorecardItem] = []
        if not isinstance(raw_items, list) or not raw_items:
            problems.append(f"{source}.items: a scorecard needs at least one [[items]] table")
        else:
            seen: set[str] = set()
            for index, raw_item in enumerate(raw_items):
                item = _item(raw_item, f"{source}.items[{index}]", problems)
                if item is None:
                    continue
                if item.key in seen:
                    problems.append(f"{source}.items[{index}].key: {item.key!r} is used twice")
                seen.add(item.key)
                items.append(item)
        if problems:
            raise ScorecardError("; ".join(problems))
        assert isinstance(name, str) and isinstance(version, int) and isinstance(title, str)
        return cls(name=name, version=version, items=tuple(items), title=title)

    @classmethod
    def from_toml(cls, text: str, source: str = "scorecard") -> Scorecard:
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ScorecardError(f"{source}: not valid TOML: {exc}") from exc
        return cls.from_mapping(raw, source)

    @classmethod
    def load(cls, path: Path) -> Scorecard:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScorecardError(f"{path}: cannot be read: {exc}") from exc
        return cls.from_toml(text, str(path))


def _positive(raw: Mapping[str, Any], key: str, where: str, problems: list[str]) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        problems.append(f"{where}.{key}: {value!r} is not a number > 0")
        return 0.0
    if not math.isfinite(value):
        problems.append(f"{where}.{key}: {value!r} is not a finite number")
        return 0.0
    return float(value)


def _item(raw: object, where: str, problems: list[str]) -> ScorecardItem | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: {raw!r} is not a table")
        return None
    before = len(problems)
    problems.extend(f"{where}: unknown key {k!r}" for k in sorted(set(raw) - _ITEM_KEYS))
    key = raw.get("key")
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        problems.append(f"{where}.key: {key!r} is not a key of lower-case letters, digits and _")
    label = raw.get("label")
    if not isinstance(label, str) or not label.strip():
        problems.append(f"{where}.label: {label!r} is not a non-empty text")
    weight = _positive(raw, "weight", where, problems)
    max_points = _positive(raw, "max_points", where, problems)
    fatal = raw.get("fatal", False)
    if not isinstance(fatal, bool):
        problems.append(f"{where}.fatal: {fatal!r} is not true/false")
    description = raw.get("description", "")
    if not isinstance(description, str):
        problems.append(f"{where}.description: {description!r} is not text")
    if len(problems) > before:
        return None
    assert isinstance(key, str) and isinstance(label, str) and isinstance(description, str)
    return ScorecardItem(
        key=key,
        label=label,
        weight=weight,
        max_points=max_points,
        fatal=bool(fatal),
        description=description,
    )


@dataclass(frozen=True, slots=True)
class ItemScore:
    key: str
    points: float
    max_points: float
    weight: float
    fatal: bool

    @property
    def failed_fatal(self) -> bool:
        return self.fatal and self.points < self.max_points


@dataclass(frozen=True, slots=True)
class QaResult:
    total: float  # 0–100, rounded to 2 decimals; 0 when a fatal item failed
    failed: bool  # a fatal item failed
    items: tuple[ItemScore, ...]  # in the scorecard's order


def score(card: Scorecard, answers: Mapping[str, float]) -> QaResult:
    """The call's score from the points given per item key; every problem is named."""
    problems = [
        f"answer for unknown item {key!r} (scorecard {card.ref})"
        for key in sorted(set(answers) - {item.key for item in card.items})
    ]
    scored: list[ItemScore] = []
    for item in card.items:
        if item.key not in answers:
            problems.append(f"item {item.key!r} ({item.label}) has no answer")
            continue
        points = answers[item.key]
        if (
            isinstance(points, bool)
            or not isinstance(points, int | float)
            or not math.isfinite(points)
        ):
            problems.append(f"item {item.key!r}: {points!r} is not a number of points")
            continue
        if not 0 <= points <= item.max_points:
            problems.append(
                f"item {item.key!r}: {points!r} points is outside 0–{item.max_points:g}"
            )
            continue
        scored.append(
            ItemScore(
                key=item.key,
                points=float(points),
                max_points=item.max_points,
                weight=item.weight,
                fatal=item.fatal,
            )
        )
    if problems:
        raise AnswersError("; ".join(problems))
    failed = any(item.failed_fatal for item in scored)
    if failed:
        return QaResult(total=0.0, failed=True, items=tuple(scored))
    weights = sum(item.weight for item in scored)
    earned = sum(item.weight * item.points / item.max_points for item in scored)
    return QaResult(total=round(100 * earned / weights, 2), failed=False, items=tuple(scored))


def _sampled_count(n: int, rate: float, minimum: int) -> int:
    # A tiny epsilon keeps 0.1 * 30 from becoming 4 through float error.
    by_rate = math.ceil(rate * n - 1e-9)
    return min(n, max(minimum, by_rate))


def sample(
    records: Iterable[CallRecord],
    *,
    rate: float,
    minimum: int,
    seed: int,
    tz: tzinfo = UTC,
) -> list[str]:
    """Call ids to review: per agent and per local day (``tz``) of answered+bridged calls.

    Each agent-day gets ``ceil(rate × n)`` of its ``n`` calls, at least
    ``minimum`` (all of them if there are fewer). The picks depend only on the
    seed and on which calls there are, not on their order. The result is
    ordered by day, agent, then call id.
    """
    problems = []
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        problems.append(f"rate {rate!r} is not a share between 0 and 1")
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 0:
        problems.append(f"minimum {minimum!r} is not a whole number ≥ 0")
    if isinstance(seed, bool) or not isinstance(seed, int):
        problems.append(f"seed {seed!r} is not a whole number")
    if problems:
        raise QaError("; ".join(problems))
    groups: dict[tuple[date, str], set[str]] = defaultdict(set)
    for record in records:
        if (
            record.outcome is not Outcome.ANSWERED
            or record.bridged_at_ms is None
            or record.agent is None
        ):
            continue
        day = datetime.fromtimestamp(record.created_at_ms / 1000, tz).date()
        groups[day, record.agent].add(record.call_id)
    picked: list[str] = []
    for (day, agent), call_ids in sorted(groups.items()):
        ordered = sorted(call_ids)
        # A string seed is hashed with SHA-512 by random.seed: stable across runs and hosts.
        rng = random.Random(f"{seed}/{agent}/{day.isoformat()}")
        chosen = rng.sample(ordered, _sampled_count(len(ordered), rate, minimum))
        picked.extend(sorted(chosen))
    return picked


@dataclass(frozen=True, slots=True)
class StoredScore:
    id: int
    call_id: str
    scorecard: str
    scorecard_version: int
    reviewer: str
    total: float
    failed: bool
    items: tuple[ItemScore, ...]
    scored_at_ms: int
    comment: str = ""


def _items_json(result: QaResult) -> list[dict[str, Any]]:
    return [
        {
            "key": item.key,
            "points": item.points,
            "max_points": item.max_points,
            "weight": item.weight,
            "fatal": item.fatal,
        }
        for item in result.items
    ]


def _stored(row: QaScoreRow) -> StoredScore:
    return StoredScore(
        id=row.id,
        call_id=row.call_id,
        scorecard=row.scorecard,
        scorecard_version=row.scorecard_version,
        reviewer=row.reviewer,
        total=row.total,
        failed=row.failed,
        items=tuple(
            ItemScore(
                key=str(item["key"]),
                points=float(item["points"]),
                max_points=float(item["max_points"]),
                weight=float(item["weight"]),
                fatal=bool(item["fatal"]),
            )
            for item in row.items
        ),
        scored_at_ms=row.scored_at_ms,
        comment=row.comment,
    )


class QaStore:
    """QA scores in the database; every save is audited in the same transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit: AuditLog) -> None:
        self._sessions = sessions
        self._audit = audit

    async def save(
        self,
        call_id: str,
        card: Scorecard,
        result: QaResult,
        reviewer: str,
        now_ms: int,
        *,
        comment: str = "",
    ) -> StoredScore:
        """Store one reviewer's score of a call; a call without a CDR is refused (and audited)."""
        if not 0 < len(reviewer) <= WHO_LENGTH:
            raise QaError(f"a score needs the reviewer who gave it (1 to {WHO_LENGTH} characters)")
        if len(comment) > COMMENT_MAX:
            raise QaError(f"a comment is at most {COMMENT_MAX} characters, got {len(comment)}")
        keys = [item.key for item in result.items]
        if keys != [item.key for item in card.items]:
            raise AnswersError(f"the result's items {keys} are not those of scorecard {card.ref}")
        if score(card, {item.key: item.points for item in result.items}) != result:
            raise AnswersError(f"the result does not add up under scorecard {card.ref}")
        async with self._sessions() as session, session.begin():
            known = await session.scalar(select(exists().where(CdrRow.call_id == call_id)))
            if not known:
                # The refusal is committed too: who tried to score what is part of the trail.
                self._audit.add(
                    session,
                    who=reviewer,
                    action=AuditAction.SCORE,
                    call_id=call_id,
                    detail=f"refused: no CDR for this call ({card.ref})",
                    ok=False,
                    now_ms=now_ms,
                )
            else:
                row = QaScoreRow(
                    call_id=call_id,
                    scorecard=card.name,
                    scorecard_version=card.version,
                    reviewer=reviewer,
                    total=result.total,
                    failed=result.failed,
                    items=_items_json(result),
                    scored_at_ms=now_ms,
                    comment=comment,
                )
                session.add(row)
                await session.flush()
                # The CDR shows the newest score; every score stays in qa_scores.
                newest = (
                    select(QaScoreRow.total)
                    .where(QaScoreRow.call_id == call_id)
                    .order_by(QaScoreRow.scored_at_ms.desc(), QaScoreRow.id.desc())
                    .limit(1)
                    .scalar_subquery()
                )
                await session.execute(
                    update(CdrRow)
                    .where(CdrRow.call_id == call_id)
                    .values(qa_score=newest)
                    .execution_options(synchronize_session=False)
                )
                self._audit.add(
                    session,
                    who=reviewer,
                    action=AuditAction.SCORE,
                    call_id=call_id,
                    detail=f"{card.ref} total={result.total:g}"
                    + (" (fatal item failed)" if result.failed else ""),
                    ok=True,
                    now_ms=now_ms,
                )
                stored = _stored(row)
        if not known:
            raise UnknownCallError(
                f"cannot score call {call_id!r}: there is no CDR with that call id"
            )
        return stored

    async def scores_for(self, call_id: str) -> list[StoredScore]:
        """Every score of a call, oldest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(QaScoreRow)
                .where(QaScoreRow.call_id == call_id)
                .order_by(QaScoreRow.scored_at_ms, QaScoreRow.id)
            )
            return [_stored(row) for row in rows]
