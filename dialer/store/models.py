"""The tables: campaigns, leads, dial attempts and do-not-call entries.

The schema itself is owned by the Alembic history (``migrations/``); these
models describe the same tables for queries, and a test checks that the head
revision and ``Base.metadata`` agree.

Two column types keep values honest whatever the database:

- ``UTCDateTime`` refuses a naive datetime (it would silently mean the host's
  zone) and always reads back an aware UTC datetime, also on SQLite, which
  keeps no zone at all (values are stored there as naive UTC text, which
  sorts in time order).
- ``EnumText`` stores a ``StrEnum`` as its string value and reads the enum
  back; the allowed values are also a CHECK constraint in the database.

Invariants the database enforces (CHECK constraints), so no code path can
break them:

- a lead is ``in_progress`` exactly when it is claimed, and a claim records
  who (``claimed_by``), when (``claimed_at``) and the state it was claimed
  from (``claimed_from``, restored by a release);
- a ``callback`` lead has a ``callback_at``; a callback agent needs a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from dialer.campaigns.recycling import LeadState
from dialer.events import CallOutcome

# Every constraint gets a predictable name, so migrations can drop or alter
# it by name on PostgreSQL and in SQLite batch mode alike.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LENGTH = 64  # campaign, lead and agent ids
CLAIMER_LENGTH = 128  # "node-3/agent-17"
E164_LENGTH = 16  # "+" and at most 15 digits (ITU-T E.164 §6.1)
NAME_LENGTH = 200
ZONE_LENGTH = 64  # IANA names are at most ~30 characters
CALL_ID_LENGTH = 255  # SIP Call-ID: no limit in RFC 3261, 255 in practice
NUMBER_LENGTH = 64  # a dialed number as sent (manual dials may be raw)
ENUM_LENGTH = 32

_E = TypeVar("_E", bound=StrEnum)


class StoreError(Exception):
    """Base error of the store package."""


class NaiveDatetimeError(StoreError, ValueError):
    """A naive datetime was given where an instant is stored (our own misuse)."""


def require_utc_instant(value: datetime, what: str) -> datetime:
    """``value`` as aware UTC, or NaiveDatetimeError naming ``what``."""
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(
            f"{what} must be timezone-aware, got naive {value.isoformat()}; "
            "a naive datetime would silently mean the host's zone"
        )
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An instant: aware datetimes in, aware UTC datetimes out, naive refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = require_utc_instant(value, "a stored datetime")
        # SQLite's DATETIME drops the offset: store naive UTC there, always.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class EnumText(TypeDecorator[_E]):
    """A ``StrEnum`` stored as its value in a VARCHAR (no native enum type)."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[_E], length: int = ENUM_LENGTH) -> None:
        # Room to spare: a new member then needs a new CHECK, not a new column.
        longest = max(len(member.value) for member in enum)
        if longest > length:
            raise ValueError(f"{enum.__name__} has a {longest}-character value; length {length}")
        super().__init__(length=length)
        self.enum = enum
        self.length = length

    def process_bind_param(self, value: _E | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return self.enum(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> _E | None:
        if value is None:
            return None
        return self.enum(value)

    @property
    def python_type(self) -> type[_E]:
        return self.enum


def one_of(column: str, values: Iterable[str]) -> str:
    """SQL text of a CHECK that ``column`` holds one of ``values``."""
    listed = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({listed})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    mode: Mapped[str] = mapped_column(String(16))  # dialing.runner.DialMode value
    timezone: Mapped[str] = mapped_column(String(ZONE_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CampaignDefinition(Base):
    """A campaign defined at run time (over the API): its settings as they were given."""

    __tablename__ = "campaign_definitions"

    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)  # a [[campaigns]] table, as JSON
    created_by: Mapped[str] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


_IN_PROGRESS = LeadState.IN_PROGRESS.value
_CLAIMED = (
    f"state = '{_IN_PROGRESS}' AND claimed_by IS NOT NULL AND claimed_at IS NOT NULL"
    " AND claimed_from IS NOT NULL"
)
_UNCLAIMED = (
    f"state <> '{_IN_PROGRESS}' AND claimed_by IS NULL AND claimed_at IS NULL"
    " AND claimed_from IS NULL"
)


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        UniqueConstraint("campaign_id", "phone"),
        Index(None, "campaign_id", "state", "next_attempt_at"),
        CheckConstraint(one_of("state", LeadState), name="state"),
        CheckConstraint(
            f"claimed_from IS NULL OR ({one_of('claimed_from', LeadState)}"
            f" AND claimed_from <> '{_IN_PROGRESS}')",
            name="claimed_from",
        ),
        CheckConstraint(f"({_CLAIMED}) OR ({_UNCLAIMED})", name="claim"),
        CheckConstraint(
            f"state <> '{LeadState.CALLBACK.value}' OR callback_at IS NOT NULL", name="callback"
        ),
        CheckConstraint("callback_agent IS NULL OR callback_at IS NOT NULL", name="callback_agent"),
        CheckConstraint("attempts >= 0", name="attempts"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    phone: Mapped[str] = mapped_column(String(E164_LENGTH))
    name: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    timezone: Mapped[str | None] = mapped_column(String(ZONE_LENGTH))  # None: campaign's
    priority: Mapped[int] = mapped_column(Integer)
    state: Mapped[LeadState] = mapped_column(EnumText(LeadState))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer)
    is_follow_up: Mapped[bool] = mapped_column(Boolean)
    callback_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    callback_agent: Mapped[str | None] = mapped_column(String(ID_LENGTH))  # None: anyone
    claimed_by: Mapped[str | None] = mapped_column(String(CLAIMER_LENGTH))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_from: Mapped[LeadState | None] = mapped_column(EnumText(LeadState))
    extra: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DialAttempt(Base):
    __tablename__ = "dial_attempts"
    __table_args__ = (
        Index(None, "lead_id"),
        Index(None, "campaign_id", "outcome"),
        CheckConstraint(f"outcome IS NULL OR {one_of('outcome', CallOutcome)}", name="outcome"),
        CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="ended_after_started"),
    )

    call_id: Mapped[str] = mapped_column(String(CALL_ID_LENGTH), primary_key=True)
    lead_id: Mapped[str | None] = mapped_column(ForeignKey("leads.id"))  # None: manual dial
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    agent_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    number: Mapped[str] = mapped_column(String(NUMBER_LENGTH))
    trunk: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[CallOutcome | None] = mapped_column(EnumText(CallOutcome))
    sip_status: Mapped[int | None] = mapped_column(Integer)
    q850_cause: Mapped[int | None] = mapped_column(Integer)
    bridged: Mapped[bool] = mapped_column(Boolean)


GLOBAL_SCOPE = "global"


class DoNotCall(Base):
    """A number never to be dialed: everywhere (scope "global") or in one campaign."""

    __tablename__ = "do_not_call"

    scope: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    phone: Mapped[str] = mapped_column(String(E164_LENGTH), primary_key=True)
    reason: Mapped[str] = mapped_column(String(NAME_LENGTH))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())
