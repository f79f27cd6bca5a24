"""Who is asking: credentials, roles, and the session endpoints (sign-in, sign-out, me).

A request is signed in by ``Authorization: Bearer <token>`` (a page session
or a per-user API token) or by the ``dialer_session`` HttpOnly cookie that
sign-in sets for the pages. ``current_user`` resolves it (401 otherwise, in
the reader's language: ``unauthenticated`` or ``session_expired``);
``require(*roles)`` also checks the role (403 ``forbidden`` naming the role
needed). The resolved user is kept on ``request.state.user`` so errors
raised later in the request speak the user's language.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from dialer.api.context import ApiContext, context
from dialer.api.errors import ApiError, error_responses
from dialer.api.messages import LOCALES, register
from dialer.api.users import BadCredentialsError, Role, TokenRejectedError, User, UserError

__all__ = ["Role", "User", "current_user", "require", "router"]

SESSION_COOKIE = "dialer_session"

register(
    {
        "auth.missing": {
            "en": "Please sign in: no token or session was given.",
            "zh-CN": "请先登录：未提供令牌或会话。",
        },
        "auth.invalid": {
            "en": "The token or session is not valid; please sign in again.",
            "zh-CN": "令牌或会话无效，请重新登录。",
        },
        "auth.revoked": {
            "en": "This token or session has been revoked; please sign in again.",
            "zh-CN": "该令牌或会话已被注销，请重新登录。",
        },
        "auth.expired": {
            "en": "Your session has expired; please sign in again.",
            "zh-CN": "会话已过期，请重新登录。",
        },
        "auth.bad_credentials": {
            "en": "Wrong username or password.",
            "zh-CN": "用户名或密码错误。",
        },
        "auth.forbidden": {
            "en": "This needs the {needed} role; you are signed in as {role}.",
            "zh-CN": "此操作需要{needed}角色；您当前的角色是{role}。",
        },
        "auth.bad_locale": {
            "en": "The language must be one of: {locales}.",
            "zh-CN": "语言必须是以下之一：{locales}。",
        },
        "role.agent": {"en": "agent", "zh-CN": "坐席"},
        "role.qa": {"en": "QA", "zh-CN": "质检"},
        "role.supervisor": {"en": "supervisor", "zh-CN": "班长"},
        "role.admin": {"en": "admin", "zh-CN": "管理员"},
    }
)

_REJECTIONS = {
    "unknown": ("unauthenticated", "auth.invalid"),
    "revoked": ("unauthenticated", "auth.revoked"),
    "expired": ("session_expired", "auth.expired"),
}


def token_of(request: HTTPConnection, *, query: bool = False) -> str | None:
    """The credentials given: bearer header, then session cookie (then ``?token=``)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return cookie
    if query:
        return request.query_params.get("token") or None
    return None


async def resolve_user(request: HTTPConnection, token: str | None) -> User:
    if token is None:
        raise ApiError(401, "unauthenticated", "auth.missing")
    try:
        user = await context(request).users.resolve(token)
    except TokenRejectedError as exc:
        code, key = _REJECTIONS[exc.reason]
        raise ApiError(401, code, key) from None
    request.state.user = user
    return user


async def current_user(request: Request) -> User:
    """FastAPI dependency: the signed-in user (401 otherwise)."""
    return await resolve_user(request, token_of(request))


CurrentUser = Annotated[User, Depends(current_user)]


def require(*roles: Role) -> Callable[..., Awaitable[User]]:
    """FastAPI dependency: the signed-in user, if their role is one of ``roles`` (else 403)."""
    allowed = frozenset(roles)

    async def allowed_user(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise ApiError(
                403,
                "forbidden",
                "auth.forbidden",
                [f"needs role {' or '.join(r.value for r in roles)}, got {user.role.value}"],
                needed=" / ".join(r.value for r in roles),
                role=user.role.value,
            )
        return user

    return allowed_user


# -- the session endpoints ---------------------------------------------------------

router = APIRouter(prefix="/api/v1", tags=["session"])
Context = Annotated[ApiContext, Depends(context)]


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class UserOut(BaseModel):
    id: int
    username: str
    name: str
    role: Role
    locale: str
    agent_id: str | None
    team: str | None

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            name=user.name,
            role=user.role,
            locale=user.locale,
            agent_id=user.agent_id,
            team=user.team,
        )


class SessionOut(BaseModel):
    token: str
    expires_at: datetime
    user: UserOut


class MePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    locale: str


@router.post("/session", responses=error_responses(401, 422))
async def sign_in(body: SignIn, request: Request, response: Response, ctx: Context) -> SessionOut:
    try:
        user = await ctx.users.authenticate(body.username, body.password)
    except BadCredentialsError:
        raise ApiError(401, "unauthenticated", "auth.bad_credentials") from None
    issued = await ctx.users.create_session(user)
    request.state.user = user
    response.set_cookie(
        SESSION_COOKIE,
        issued.token,
        max_age=ctx.users.session_ms // 1000,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    expires = datetime.fromtimestamp(issued.expires_at_ms / 1000, UTC)
    return SessionOut(token=issued.token, expires_at=expires, user=UserOut.of(user))


@router.delete("/session", status_code=204, responses=error_responses(401))
async def sign_out(request: Request, ctx: Context) -> Response:
    token = token_of(request)
    await resolve_user(request, token)  # signing out needs a live session too
    assert token is not None
    await ctx.users.revoke(token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me", responses=error_responses(401))
async def me(user: CurrentUser) -> UserOut:
    return UserOut.of(user)


@router.patch("/me", responses=error_responses(401, 422))
async def change_me(body: MePatch, user: CurrentUser, request: Request, ctx: Context) -> UserOut:
    try:
        changed = await ctx.users.set_locale(user.id, body.locale)
    except UserError as exc:
        raise ApiError(
            422, "invalid_request", "auth.bad_locale", exc.problems, locales=", ".join(LOCALES)
        ) from None
    request.state.user = changed
    return UserOut.of(changed)
