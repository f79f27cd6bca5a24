"""The database handle: one async engine, sessions, and migrations to head.

``Database(url)`` is an async context manager owning the engine::

    async with Database("sqlite+aiosqlite:///var/dialer.db") as db:
        await db.upgrade()
        async with db.session() as session, session.begin():
            ...

On SQLite every new connection is set up for a service with several
concurrent writers: WAL (readers never block the writer), foreign keys
enforced (off by default in SQLite) and a busy timeout, so a writer waits for
the lock instead of failing at once with "database is locked".

``upgrade()`` runs the Alembic history in ``migrations/`` (next to the
``dialer`` package) in a worker thread: Alembic's command API is blocking,
and ``migrations/env.py`` opens its own async engine on the URL given here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from dialer.store.models import StoreError

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
DEFAULT_BUSY_TIMEOUT_MS = 5_000


class Database:
    def __init__(
        self, url: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS, echo: bool = False
    ) -> None:
        parsed = make_url(url)
        self.url = url
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database in (None, "", ":memory:"):
            # Every pooled connection (and the migration engine) would get a
            # different empty database.
            raise StoreError(f"SQLite needs a database file, got {url!r}")
        if type(busy_timeout_ms) is not int or busy_timeout_ms < 0:
            raise StoreError(f"busy_timeout_ms must be an integer >= 0, got {busy_timeout_ms!r}")
        self.busy_timeout_ms = busy_timeout_ms
        self.echo = echo
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise StoreError("Database is not open: use 'async with Database(url) as db'")
        return self._engine

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        """The session factory, for stores of other packages (``cdr``) that take one."""
        if self._sessions is None:
            raise StoreError("Database is not open: use 'async with Database(url) as db'")
        return self._sessions

    async def __aenter__(self) -> Self:
        if self._engine is not None:
            raise StoreError("Database is already open")
        if self.is_sqlite:
            database = make_url(self.url).database
            assert database is not None
            if not database.startswith("file:"):
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(self.url, echo=self.echo)
        if self.is_sqlite:
            event.listen(engine.sync_engine, "connect", self._configure_sqlite)
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        engine, self._engine, self._sessions = self._engine, None, None
        if engine is not None:
            await engine.dispose()

    def _configure_sqlite(self, dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms:d}")
        finally:
            cursor.close()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A new session; use ``session.begin()`` for a transaction."""
        if self._sessions is None:
            raise StoreError("Database is not open: use 'async with Database(url) as db'")
        async with self._sessions() as session:
            yield session

    def alembic_config(self) -> Config:
        """An Alembic config on this package's history and this database's URL."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        # Passed as an attribute, not an option: ConfigParser would treat a
        # '%' in a password as interpolation.
        config.attributes["url"] = self.url
        return config

    async def upgrade(self, revision: str = "head") -> None:
        """Migrate the schema up to ``revision`` (default: the newest)."""
        await asyncio.to_thread(command.upgrade, self.alembic_config(), revision)

    async def downgrade(self, revision: str) -> None:
        """Migrate the schema down to ``revision`` ("base" drops every table)."""
        await asyncio.to_thread(command.downgrade, self.alembic_config(), revision)
