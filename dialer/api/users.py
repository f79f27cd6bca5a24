"""The API's users, their page sessions and their API tokens, in the floor's database.

Passwords are kept as scrypt hashes with a salt of their own per user (RFC
7914; ``hashlib.scrypt``), never in clear. Session and API tokens are random
(``secrets.token_urlsafe(32)``) and only their SHA-256 is stored, so a copy
of the database signs nobody in. A session lasts ``http.session_minutes``;
an API token until it is revoked. Time is an argument (``now_ms``) so expiry
is tested without waiting.

The tables are owned by Alembic revision 0004; these models describe them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Integer,
    MetaData,
    String,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dialer.api.messages import DEFAULT_LOCALE, LOCALES
from dialer.config import Config

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
MIN_PASSWORD = 4  # the demo's "demo"; deployments choose longer ones
MAX_PASSWORD = 1024
# scrypt cost: 16 MiB and some tens of milliseconds per check, run off the loop.
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_LEN = 2**14, 8, 1, 32


class Role(StrEnum):
    AGENT = "agent"
    QA = "qa"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class TokenKind(StrEnum):
    SESSION = "session"  # a page sign-in: expires
    API = "api"  # a per-user token for programs: until revoked


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    name: str
    role: Role
    locale: str
    agent_id: str | None
    team: str | None


@dataclass(frozen=True, slots=True)
class IssuedSession:
    token: str  # shown once; only its hash is kept
    expires_at_ms: int
    user: User


class UserError(ValueError):
    """A user that cannot be created or changed as asked; lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class BadCredentialsError(Exception):
    """Unknown username or wrong password (which one is not said)."""


class TokenRejectedError(Exception):
    """A token that signs nobody in: ``reason`` is unknown, revoked or expired."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ApiBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _one_of(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class UserRow(ApiBase):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_one_of("role", Role), name="role"),
        CheckConstraint("role = 'agent' OR agent_id IS NULL", name="agent_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    locale: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    team: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class UserTokenRow(ApiBase):
    __tablename__ = "user_tokens"
    __table_args__ = (
        CheckConstraint(_one_of("kind", TokenKind), name="kind"),
        CheckConstraint("kind = 'api' OR expires_at_ms IS NOT NULL", name="expiry"),
    )

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(128))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    expires_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    revoked_at_ms: Mapped[int | None] = mapped_column(BigInteger)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (hex), so the cost can rise without a migration."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_LEN
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(digest)
        got = hashlib.scrypt(
            password.encode("utf-8"),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# A hash to check against when the username is unknown, so both take as long.
_DUMMY_HASH = hash_password("not a password", b"\0" * 16)


def _user(row: UserRow) -> User:
    return User(row.id, row.username, row.name, Role(row.role), row.locale, row.agent_id, row.team)


class UserStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        config: Config,
        *,
        now_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self._sessions = sessions
        self._agents = {agent.id: agent for agent in config.agents}
        self.session_ms = config.http.session_minutes * 60_000
        self.now_ms = now_ms

    # -- users -------------------------------------------------------------------

    async def create_user(
        self,
        *,
        username: str,
        password: str,
        role: str,
        name: str = "",
        locale: str = DEFAULT_LOCALE,
        agent_id: str | None = None,
        team: str | None = None,
    ) -> User:
        """A new user; ``UserError`` lists every problem and nothing is written."""
        problems = self._problems(username, password, role, locale, agent_id)
        async with self._sessions() as session:
            taken = await session.scalar(select(UserRow.id).where(UserRow.username == username))
            if taken is not None:
                problems.append(f"username {username!r} is taken")
            if agent_id is not None:
                bound = await session.scalar(
                    select(UserRow.username).where(UserRow.agent_id == agent_id)
                )
                if bound is not None:
                    problems.append(f"agent {agent_id!r} already belongs to user {bound!r}")
            if problems:
                raise UserError(problems)
            if team is None and agent_id is not None:
                team = self._agents[agent_id].team
            row = UserRow(
                username=username,
                name=name.strip() or username,
                role=role,
                locale=locale,
                agent_id=agent_id,
                team=team,
                password_hash=await asyncio.to_thread(hash_password, password),
                created_at_ms=self.now_ms(),
            )
            session.add(row)
            await session.commit()
            return _user(row)

    def _problems(
        self, username: str, password: str, role: str, locale: str, agent_id: str | None
    ) -> list[str]:
        problems = []
        if not USERNAME.fullmatch(username):
            problems.append(
                f"username {username!r} must be 1 to 64 letters, digits or _.@- "
                "(starting with a letter or digit)"
            )
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            problems.append(f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
        if role not in tuple(Role):
            problems.append(f"role {role!r} is not one of {', '.join(Role)}")
        if locale not in LOCALES:
            problems.append(f"locale {locale!r} is not one of {', '.join(LOCALES)}")
        if role == Role.AGENT and agent_id is None:
            problems.append("an agent user needs agent_id (one of the configured agents)")
        if agent_id is not None and role != Role.AGENT:
            problems.append(f"only agent users have an agent_id, not role {role!r}")
        if agent_id is not None and agent_id not in self._agents:
            problems.append(f"agent_id {agent_id!r} is not a configured agent")
        return problems

    async def get(self, user_id: int) -> User | None:
        async with self._sessions() as session:
            row = await session.get(UserRow, user_id)
        return _user(row) if row is not None else None

    async def by_username(self, username: str) -> User | None:
        async with self._sessions() as session:
            row = await session.scalar(select(UserRow).where(UserRow.username == username))
        return _user(row) if row is not None else None

    async def list_users(self) -> list[User]:
        async with self._sessions() as session:
            rows = await session.scalars(select(UserRow).order_by(UserRow.id))
            return [_user(row) for row in rows]

    async def set_password(self, user_id: int, password: str) -> None:
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise UserError([f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"])
        hashed = await asyncio.to_thread(hash_password, password)
        async with self._sessions() as session:
            done = await session.execute(
                update(UserRow).where(UserRow.id == user_id).values(password_hash=hashed)
            )
            if not _changed(done):
                raise UserError([f"no user {user_id}"])
            await session.commit()

    async def set_locale(self, user_id: int, locale: str) -> User:
        if locale not in LOCALES:
            raise UserError([f"locale {locale!r} is not one of {', '.join(LOCALES)}"])
        async with self._sessions() as session:
            row = await session.get(UserRow, user_id)
            if row is None:
                raise UserError([f"no user {user_id}"])
            row.locale = locale
            await session.commit()
            return _user(row)

    # -- signing in ----------------------------------------------------------------

    async def authenticate(self, username: str, password: str) -> User:
        async with self._sessions() as session:
            row = await session.scalar(select(UserRow).where(UserRow.username == username))
        stored = row.password_hash if row is not None else _DUMMY_HASH
        good = await asyncio.to_thread(check_password, password, stored)
        if row is None or not good:
            raise BadCredentialsError(username)
        return _user(row)

    async def create_session(self, user: User) -> IssuedSession:
        now = self.now_ms()
        token = await self._issue(user.id, TokenKind.SESSION, "page sign-in", now + self.session_ms)
        return IssuedSession(token, now + self.session_ms, user)

    async def issue_token(self, user_id: int, label: str = "") -> str:
        """A per-user API token (shown once) that lasts until revoked."""
        return await self._issue(user_id, TokenKind.API, label[:128], None)

    async def _issue(self, user_id: int, kind: TokenKind, label: str, expires: int | None) -> str:
        token = secrets.token_urlsafe(32)
        async with self._sessions() as session:
            if await session.get(UserRow, user_id) is None:
                raise UserError([f"no user {user_id}"])
            session.add(
                UserTokenRow(
                    token_hash=token_hash(token),
                    user_id=user_id,
                    kind=kind.value,
                    label=label,
                    created_at_ms=self.now_ms(),
                    expires_at_ms=expires,
                    revoked_at_ms=None,
                )
            )
            await session.commit()
        return token

    async def resolve(self, token: str) -> User:
        """Whose token this is; ``TokenRejectedError`` says why it signs nobody in."""
        async with self._sessions() as session:
            found = (
                await session.execute(
                    select(UserTokenRow, UserRow)
                    .join(UserRow, UserRow.id == UserTokenRow.user_id)
                    .where(UserTokenRow.token_hash == token_hash(token))
                )
            ).first()
        if found is None:
            raise TokenRejectedError("unknown")
        issued, row = found
        if issued.revoked_at_ms is not None:
            raise TokenRejectedError("revoked")
        if issued.expires_at_ms is not None and issued.expires_at_ms <= self.now_ms():
            raise TokenRejectedError("expired")
        return _user(row)

    async def revoke(self, token: str) -> bool:
        """End a session or an API token; False if it was not live."""
        async with self._sessions() as session:
            done = await session.execute(
                update(UserTokenRow)
                .where(
                    UserTokenRow.token_hash == token_hash(token),
                    UserTokenRow.revoked_at_ms.is_(None),
                )
                .values(revoked_at_ms=self.now_ms())
            )
            await session.commit()
        return _changed(done)


def _changed(result: object) -> bool:
    return bool(getattr(result, "rowcount", 0))
