"""The CDR package's tables share this declarative base (one metadata for cdr/).

The schema is owned by the Alembic history in ``migrations/``; these models
describe the same tables for queries, and a test checks that the head revision
and the metadata agree. Instants are stored as UTC milliseconds (BIGINT), the
same on SQLite and PostgreSQL, so no driver ever guesses a zone.
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Predictable constraint names, so migrations can alter them by name on
# PostgreSQL and in SQLite batch mode alike (the same convention as dialer.store).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class CdrBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
