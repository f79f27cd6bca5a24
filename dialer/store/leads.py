"""Leads in the database: import, candidates, exclusive claims, attempts, DNC.

The one rule everything here serves: **no lead is dialed twice at once**, also
with several dialers (tasks, or nodes on one PostgreSQL). A dialer first reads
``candidates`` (no lock), lets the hopper pick, then ``claim``s each pick. A
claim is one conditional UPDATE::

    UPDATE leads SET state = 'in_progress', claimed_by = ?, claimed_at = ?,
                     claimed_from = state
     WHERE id = ? AND claimed_by IS NULL AND state IN ('new', 'queued', 'callback')

and it won only if it changed a row. The database serialises writers to a
row, so of two claimers exactly one sees the row still unclaimed; a CHECK
constraint makes ``in_progress`` and a claim inseparable. The claim ends with
``apply_decision`` (the retry rules' verdict on the attempt) or ``release``
(nothing happened, e.g. a skipped preview: the lead gets its state back).

Do-not-call entries are consulted at read and claim time, so a number added
to the list mid-campaign is never rung again, whatever its lead's state.

Every instant is an argument (``now``); naive datetimes are refused.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Result,
    and_,
    case,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.campaigns.hopper import LeadCandidate
from dialer.campaigns.recycling import DIALABLE_STATES, Callback, Decision, LeadState
from dialer.campaigns.windows import zone
from dialer.events import CallOutcome
from dialer.leads.csv_import import ImportReport
from dialer.store.database import Database
from dialer.store.models import (
    CLAIMER_LENGTH,
    GLOBAL_SCOPE,
    ID_LENGTH,
    Campaign,
    CampaignDefinition,
    DialAttempt,
    DoNotCall,
    Lead,
    StoreError,
    require_utc_instant,
)

_DIALABLE = tuple(sorted(DIALABLE_STATES))
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")  # ITU-T E.164: at most 15 digits
_CHUNK = 500  # bound parameters per IN (...) list, far below SQLite's limit
UNFINISHED = "unfinished"  # attempt_counts key for attempts with no outcome yet


class ImportRefusedError(StoreError, ValueError):
    """An import was refused as a whole; nothing was written."""


class DuplicatePhoneError(ImportRefusedError):
    def __init__(self, campaign_id: str, phone: str, why: str) -> None:
        self.campaign_id = campaign_id
        self.phone = phone
        super().__init__(f"import into campaign {campaign_id!r} refused, nothing imported: {why}")


class UnknownLeadError(StoreError, LookupError):
    pass


class NotClaimedError(StoreError):
    """A decision for a lead that is not claimed (already decided, or released)."""


class AttemptError(StoreError):
    pass


@dataclass(frozen=True, slots=True)
class StoredLead:
    """A lead row as stored, whatever its state (candidates are ``LeadCandidate``)."""

    id: str
    campaign_id: str
    phone: str
    name: str | None
    timezone: str | None
    priority: int
    state: LeadState
    next_attempt_at: datetime | None
    attempts: int
    is_follow_up: bool
    callback_at: datetime | None
    callback_agent: str | None
    claimed_by: str | None
    claimed_at: datetime | None
    claimed_from: LeadState | None
    extra: dict[str, str]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    call_id: str
    lead_id: str | None
    campaign_id: str
    agent_id: str
    number: str
    trunk: str | None
    started_at: datetime
    ended_at: datetime | None
    outcome: CallOutcome | None
    sip_status: int | None
    q850_cause: int | None
    bridged: bool


def _new_id() -> str:
    return uuid.uuid4().hex


def _require_id(value: str, what: str, limit: int = ID_LENGTH) -> None:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValueError(f"{what} must be a non-empty string of at most {limit} characters")


def _require_e164(phone: str) -> None:
    if not isinstance(phone, str) or not _E164.fullmatch(phone):
        raise ValueError(f"phone must be an E.164 number like '+8613800138000', got {phone!r}")


def _rowcount(result: Result[Any]) -> int:
    # An UPDATE's result is a CursorResult; the session API types it as Result.
    assert isinstance(result, CursorResult)
    return result.rowcount


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _not_dnc() -> ColumnElement[bool]:
    """No do-not-call entry for the lead's phone, global or in its campaign."""
    return ~exists().where(
        DoNotCall.phone == Lead.phone,
        DoNotCall.scope.in_([GLOBAL_SCOPE, Lead.campaign_id]),
    )


class LeadStore:
    def __init__(self, database: Database, *, new_id: Callable[[], str] = _new_id) -> None:
        self._db = database
        self._new_id = new_id

    # -- campaigns and imports ---------------------------------------------------

    async def create_campaign(
        self, id: str, name: str, mode: str, timezone: str, *, now: datetime
    ) -> None:
        _require_id(id, "campaign id")
        if id == GLOBAL_SCOPE:
            raise ValueError(f"campaign id {GLOBAL_SCOPE!r} is reserved for the global DNC scope")
        zone(timezone)
        created_at = require_utc_instant(now, "now")
        try:
            async with self._db.session() as session, session.begin():
                session.add(
                    Campaign(id=id, name=name, mode=mode, timezone=timezone, created_at=created_at)
                )
        except IntegrityError as exc:
            raise StoreError(f"campaign {id!r} already exists") from exc

    async def define_campaign(
        self,
        id: str,
        name: str,
        mode: str,
        timezone: str,
        settings: dict[str, Any],
        *,
        created_by: str,
        now: datetime,
    ) -> None:
        """Keep a campaign defined at run time; StoreError if ``id`` has a definition.

        The campaign's row is created with it when the campaign is new (a
        campaign whose leads were imported first keeps its row)."""
        _require_id(id, "campaign id")
        zone(timezone)
        created_at = require_utc_instant(now, "now")
        try:
            async with self._db.session() as session, session.begin():
                if await session.get(Campaign, id) is None:
                    session.add(
                        Campaign(
                            id=id, name=name, mode=mode, timezone=timezone, created_at=created_at
                        )
                    )
                    await session.flush()
                session.add(
                    CampaignDefinition(
                        campaign_id=id,
                        settings=settings,
                        created_by=created_by,
                        created_at=created_at,
                    )
                )
        except IntegrityError as exc:
            raise StoreError(f"campaign {id!r} is already defined") from exc

    async def campaign_definitions(self) -> list[tuple[str, dict[str, Any]]]:
        """Every campaign defined at run time, oldest first: (id, settings)."""
        async with self._db.session() as session:
            rows = await session.execute(
                select(CampaignDefinition.campaign_id, CampaignDefinition.settings).order_by(
                    CampaignDefinition.created_at, CampaignDefinition.campaign_id
                )
            )
            return [(str(campaign), dict(settings)) for campaign, settings in rows.all()]

    async def import_report(
        self,
        campaign_id: str,
        report: ImportReport,
        *,
        now: datetime,
        is_follow_up: bool = False,
    ) -> int:
        """Insert every lead of ``report`` in one transaction; the number inserted.

        All or nothing: a report with file-level errors, an unknown campaign
        or a phone already in the campaign (or twice in the report) raises
        and leaves the table as it was.
        """
        created_at = require_utc_instant(now, "now")
        if report.file_errors:
            raise ImportRefusedError(
                f"import into campaign {campaign_id!r} refused: {report.summary()}"
            )
        phones = [lead.phone for lead in report.leads]
        twice = [phone for phone, n in Counter(phones).items() if n > 1]
        if twice:
            raise DuplicatePhoneError(campaign_id, twice[0], f"{twice[0]} is twice in the report")
        for phone in phones:
            _require_e164(phone)
        rows = [
            {
                "id": self._new_id(),
                "campaign_id": campaign_id,
                "phone": lead.phone,
                "name": lead.name,
                "timezone": lead.timezone,
                "priority": lead.priority,
                "state": LeadState.NEW,
                "next_attempt_at": None,
                "attempts": 0,
                "is_follow_up": is_follow_up,
                "callback_at": None,
                "callback_agent": None,
                "claimed_by": None,
                "claimed_at": None,
                "claimed_from": None,
                "extra": dict(lead.extra),
                "created_at": created_at,
            }
            for lead in report.leads
        ]
        async with self._db.session() as session:
            try:
                async with session.begin():
                    if await session.get(Campaign, campaign_id) is None:
                        raise ImportRefusedError(
                            f"import refused, nothing imported: no campaign {campaign_id!r}"
                        )
                    if rows:
                        await session.execute(insert(Lead), rows)
            except IntegrityError as exc:
                # Rolled back. Name the number (another import may have raced us).
                clash = await self._existing_phone(session, campaign_id, phones)
                if clash is not None:
                    why = f"{clash} is already in the campaign"
                    raise DuplicatePhoneError(campaign_id, clash, why) from exc
                raise ImportRefusedError(
                    f"import into campaign {campaign_id!r} refused by the database,"
                    f" nothing imported: {exc.orig}"
                ) from exc
        return len(rows)

    @staticmethod
    async def _existing_phone(
        session: AsyncSession, campaign_id: str, phones: Sequence[str]
    ) -> str | None:
        for chunk in _chunks(phones):
            found = await session.scalar(
                select(Lead.phone)
                .where(Lead.campaign_id == campaign_id, Lead.phone.in_(chunk))
                .order_by(Lead.phone)
                .limit(1)
            )
            if found is not None:
                return found
        return None

    # -- choosing and claiming ---------------------------------------------------

    async def candidates(self, campaign_id: str, now: datetime, limit: int) -> list[LeadCandidate]:
        """Up to ``limit`` leads that may be dialed at ``now``, for the hopper.

        Dialable (new, queued, callback), due, unclaimed and not on a DNC
        list. Due callbacks come first (the hopper serves them first, so a
        page full of high-priority leads must not hide them), then higher
        priority, then the longest waiting (a fresh lead has waited always).
        """
        at = require_utc_instant(now, "now")
        if type(limit) is not int or limit < 0:
            raise ValueError(f"limit must be an integer >= 0, got {limit!r}")
        statement = (
            select(Lead)
            .where(
                Lead.campaign_id == campaign_id,
                Lead.state.in_(_DIALABLE),
                Lead.claimed_by.is_(None),
                or_(Lead.next_attempt_at.is_(None), Lead.next_attempt_at <= at),
                _not_dnc(),
            )
            .order_by(
                case((Lead.state == LeadState.CALLBACK, 0), else_=1),
                Lead.priority.desc(),
                Lead.next_attempt_at.asc().nulls_first(),
                Lead.id,
            )
            .limit(limit)
        )
        async with self._db.session() as session:
            leads = (await session.scalars(statement)).all()
        return [_candidate(lead) for lead in leads]

    async def claim(
        self, lead_id: str, claimer: str, now: datetime, *, agent: str | None = None
    ) -> bool:
        """Claim ``lead_id`` for ``claimer``; False if it is taken or not dialable now.

        Dialable now means by the row, not by what a node holds in memory
        (another node may have changed the lead since): not yet due (a
        callback before its time, a retry before its delay) or a callback
        promised to another agent than ``agent`` is refused. One statement,
        so two nodes never both win. On PostgreSQL the row is chosen
        ``FOR UPDATE SKIP LOCKED``: a lead another node is claiming right now
        is skipped at once instead of waited for, so nodes sharing a list
        never queue behind each other's claims.
        """
        _require_id(claimer, "claimer", CLAIMER_LENGTH)
        at = require_utc_instant(now, "now")
        claimable = (
            Lead.id == lead_id,
            Lead.claimed_by.is_(None),
            Lead.state.in_(_DIALABLE),
            _not_dnc(),
            or_(Lead.next_attempt_at.is_(None), Lead.next_attempt_at <= at),
            or_(Lead.callback_agent.is_(None), Lead.callback_agent == agent),
        )
        async with self._db.session() as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                locked = select(Lead.id).where(*claimable).with_for_update(skip_locked=True)
                target: ColumnElement[bool] = Lead.id.in_(locked.scalar_subquery())
            else:  # SQLite has one writer at a time: the conditional update is the lock
                target = and_(*claimable)
            statement = (
                update(Lead)
                .where(target)
                .values(
                    state=LeadState.IN_PROGRESS,
                    claimed_by=claimer,
                    claimed_at=at,
                    # Right-hand sides see the row before the update (SQL standard).
                    claimed_from=Lead.state,
                )
                .execution_options(synchronize_session=False)
            )
            return _rowcount(await session.execute(statement)) == 1

    async def release(self, lead_id: str) -> bool:
        """End a claim without an attempt: the lead gets back the state it was claimed from."""
        statement = (
            update(Lead)
            .where(Lead.id == lead_id, Lead.state == LeadState.IN_PROGRESS)
            .values(state=Lead.claimed_from, claimed_by=None, claimed_at=None, claimed_from=None)
            .execution_options(synchronize_session=False)
        )
        async with self._db.session() as session, session.begin():
            return _rowcount(await session.execute(statement)) == 1

    async def apply_decision(
        self, lead_id: str, decision: Decision, callback: Callback | None = None
    ) -> None:
        """Store the retry rules' verdict on a claimed lead and end the claim.

        A ``callback`` state takes its time from ``callback`` (or, without
        one, from ``decision.next_attempt_at``, for any agent).
        """
        state = decision.lead_state
        if state is LeadState.IN_PROGRESS:
            raise ValueError("a decision cannot leave a lead in progress")
        next_at = (
            None
            if decision.next_attempt_at is None
            else require_utc_instant(decision.next_attempt_at, "decision.next_attempt_at")
        )
        callback_at: datetime | None = None
        callback_agent: str | None = None
        if callback is not None:
            if state is not LeadState.CALLBACK:
                raise ValueError(f"a callback was given with a decision to {state.value!r}")
            if callback.lead_id != lead_id:
                raise ValueError(f"callback is for lead {callback.lead_id!r}, not {lead_id!r}")
            callback_at = require_utc_instant(callback.at, "callback.at")
            callback_agent = callback.agent_id
            next_at = callback_at
        elif state is LeadState.CALLBACK:
            if next_at is None:
                raise ValueError("a callback decision needs a time (callback or next_attempt_at)")
            callback_at = next_at
        statement = (
            update(Lead)
            .where(Lead.id == lead_id, Lead.state == LeadState.IN_PROGRESS)
            .values(
                state=state,
                next_attempt_at=next_at,
                attempts=decision.attempts,
                callback_at=callback_at,
                callback_agent=callback_agent,
                claimed_by=None,
                claimed_at=None,
                claimed_from=None,
            )
            .execution_options(synchronize_session=False)
        )
        async with self._db.session() as session, session.begin():
            if _rowcount(await session.execute(statement)) == 1:
                return
            known = await session.scalar(select(Lead.state).where(Lead.id == lead_id))
        if known is None:
            raise UnknownLeadError(f"no lead {lead_id!r}")
        raise NotClaimedError(
            f"lead {lead_id!r} is {known.value!r}, not claimed: a decision needs a claim"
        )

    async def lead(self, lead_id: str) -> StoredLead:
        async with self._db.session() as session:
            row = await session.get(Lead, lead_id)
        if row is None:
            raise UnknownLeadError(f"no lead {lead_id!r}")
        return _stored(row)

    # -- attempts ----------------------------------------------------------------

    async def record_attempt_started(
        self,
        call_id: str,
        *,
        lead_id: str | None,
        campaign_id: str,
        agent_id: str,
        number: str,
        trunk: str | None,
        started_at: datetime,
    ) -> None:
        _require_id(call_id, "call_id", 255)
        at = require_utc_instant(started_at, "started_at")
        row = DialAttempt(
            call_id=call_id,
            lead_id=lead_id,
            campaign_id=campaign_id,
            agent_id=agent_id,
            number=number,
            trunk=trunk,
            started_at=at,
            ended_at=None,
            outcome=None,
            sip_status=None,
            q850_cause=None,
            bridged=False,
        )
        try:
            async with self._db.session() as session, session.begin():
                session.add(row)
        except IntegrityError as exc:
            raise AttemptError(
                f"attempt {call_id!r} not recorded (duplicate call id, or unknown"
                f" lead {lead_id!r} / campaign {campaign_id!r}): {exc.orig}"
            ) from exc

    async def record_attempt_ended(
        self,
        call_id: str,
        *,
        ended_at: datetime,
        outcome: CallOutcome,
        sip_status: int | None,
        q850_cause: int | None,
        bridged: bool,
        agent_id: str | None = None,
    ) -> None:
        """Close an attempt; ``agent_id`` names the agent a predictive call was connected to."""
        at = require_utc_instant(ended_at, "ended_at")
        connected = {"agent_id": agent_id} if agent_id is not None else {}
        statement = (
            update(DialAttempt)
            .where(
                DialAttempt.call_id == call_id,
                DialAttempt.ended_at.is_(None),
                DialAttempt.started_at <= at,
            )
            .values(
                ended_at=at,
                outcome=CallOutcome(outcome),
                sip_status=sip_status,
                q850_cause=q850_cause,
                bridged=bridged,
                **connected,
            )
            .execution_options(synchronize_session=False)
        )
        async with self._db.session() as session, session.begin():
            if _rowcount(await session.execute(statement)) == 1:
                return
            row = await session.get(DialAttempt, call_id)
        if row is None:
            raise AttemptError(f"no attempt {call_id!r} was started")
        if row.ended_at is not None:
            raise AttemptError(f"attempt {call_id!r} already ended at {row.ended_at.isoformat()}")
        raise AttemptError(
            f"attempt {call_id!r} cannot end at {at.isoformat()}, before it started"
            f" at {row.started_at.isoformat()}"
        )

    async def attempts_for(self, lead_id: str) -> list[AttemptRecord]:
        """The lead's attempts, oldest first."""
        statement = (
            select(DialAttempt)
            .where(DialAttempt.lead_id == lead_id)
            .order_by(DialAttempt.started_at, DialAttempt.call_id)
        )
        async with self._db.session() as session:
            rows = (await session.scalars(statement)).all()
        return [_attempt(row) for row in rows]

    # -- do not call -------------------------------------------------------------

    async def add_dnc(self, phone: str, scope: str, reason: str, now: datetime) -> bool:
        """Add ``phone`` to the list of ``scope`` ("global" or a campaign id).

        False if it was already there (the first entry and its reason stay).
        """
        _require_e164(phone)
        _require_id(scope, "scope")
        at = require_utc_instant(now, "now")
        try:
            async with self._db.session() as session, session.begin():
                session.add(DoNotCall(scope=scope, phone=phone, reason=reason, added_at=at))
        except IntegrityError:
            return False
        return True

    async def is_dnc(self, phone: str, campaign_id: str) -> bool:
        statement = select(
            exists().where(
                DoNotCall.phone == phone, DoNotCall.scope.in_([GLOBAL_SCOPE, campaign_id])
            )
        )
        async with self._db.session() as session:
            return bool(await session.scalar(statement))

    # -- counts ------------------------------------------------------------------

    async def counts(self, campaign_id: str) -> dict[str, int]:
        """Leads of the campaign by state; every state is present."""
        statement = (
            select(Lead.state, func.count())
            .where(Lead.campaign_id == campaign_id)
            .group_by(Lead.state)
        )
        result = {state.value: 0 for state in LeadState}
        async with self._db.session() as session:
            for state, n in await session.execute(statement):
                result[state.value] = n
        return result

    async def attempt_counts(self, campaign_id: str) -> dict[str, int]:
        """Attempts of the campaign by outcome; every outcome is present, and
        ``"unfinished"`` counts attempts that have not ended."""
        statement = (
            select(DialAttempt.outcome, func.count())
            .where(DialAttempt.campaign_id == campaign_id)
            .group_by(DialAttempt.outcome)
        )
        result = {outcome.value: 0 for outcome in CallOutcome}
        result[UNFINISHED] = 0
        async with self._db.session() as session:
            for outcome, n in await session.execute(statement):
                result[UNFINISHED if outcome is None else outcome.value] = n
        return result


def _candidate(lead: Lead) -> LeadCandidate:
    callback = None
    if lead.state is LeadState.CALLBACK:
        assert lead.callback_at is not None  # CHECK ck_leads_callback
        callback = Callback(lead.id, lead.callback_at, lead.callback_agent)
    return LeadCandidate(
        lead_id=lead.id,
        phone=lead.phone,
        timezone=lead.timezone,
        priority=lead.priority,
        state=lead.state,
        next_attempt_at=lead.next_attempt_at,
        attempts=lead.attempts,
        is_follow_up=lead.is_follow_up,
        callback=callback,
        campaign_id=lead.campaign_id,
    )


def _stored(lead: Lead) -> StoredLead:
    return StoredLead(
        id=lead.id,
        campaign_id=lead.campaign_id,
        phone=lead.phone,
        name=lead.name,
        timezone=lead.timezone,
        priority=lead.priority,
        state=lead.state,
        next_attempt_at=lead.next_attempt_at,
        attempts=lead.attempts,
        is_follow_up=lead.is_follow_up,
        callback_at=lead.callback_at,
        callback_agent=lead.callback_agent,
        claimed_by=lead.claimed_by,
        claimed_at=lead.claimed_at,
        claimed_from=lead.claimed_from,
        extra=dict(lead.extra),
        created_at=lead.created_at,
    )


def _attempt(row: DialAttempt) -> AttemptRecord:
    return AttemptRecord(
        call_id=row.call_id,
        lead_id=row.lead_id,
        campaign_id=row.campaign_id,
        agent_id=row.agent_id,
        number=row.number,
        trunk=row.trunk,
        started_at=row.started_at,
        ended_at=row.ended_at,
        outcome=row.outcome,
        sip_status=row.sip_status,
        q850_cause=row.q850_cause,
        bridged=row.bridged,
    )
