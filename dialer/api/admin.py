"""Administration for admins: the API's users and tokens, the desk phones and the trunks.

Users live in the ``UserStore`` (scrypt-hashed passwords; tokens stored as
hashes and shown once, when issued). Phones and trunks are the configured
ones with what this node knows of them now (registered, up, channels in
use). No password of a user, phone or trunk is ever part of a response: the
response models have no field for one.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Body, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from dialer.api.auth import Role, User, UserOut, require
from dialer.api.context import ApiContext, context
from dialer.api.errors import ApiError, error_responses
from dialer.api.messages import register
from dialer.api.users import UserError

__all__ = ["NewToken", "NewUser", "PhoneOut", "TokenOut", "TrunkOut", "router"]

register(
    {
        "admin.bad_user": {
            "en": "The user cannot be created: {count} problem(s).",
            "zh-CN": "无法创建用户：共 {count} 处问题。",
        },
        "admin.unknown_user": {
            "en": "There is no user {user_id}.",
            "zh-CN": "没有用户 {user_id}。",
        },
    }
)

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

MAX_ID: Final = 2**31 - 1


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    name: str = Field(default="", max_length=128)
    role: Role
    locale: Literal["zh-CN", "en"] = "zh-CN"  # messages.LOCALES
    agent_id: str | None = Field(default=None, min_length=1, max_length=64)
    team: str | None = Field(default=None, min_length=1, max_length=64)


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(default="", max_length=128)


class TokenOut(BaseModel):
    token: str = Field(description="shown once: only its hash is kept")


class PhoneOut(BaseModel):
    extension: str
    vendor: str
    agent: str | None
    registered: bool


class TrunkOut(BaseModel):
    name: str
    host: str
    port: int
    transport: str
    username: str | None
    registers: bool = Field(description="whether this node registers to the trunk")
    max_channels: int
    max_calls_per_second: float
    priority: int
    caller_id: str | None
    prefixes_allowed: list[str]
    state: str | None = Field(description="up, down or half_open; null if no campaign uses it")
    in_use: int


Ctx = Annotated[ApiContext, Depends(context)]
Admin = Annotated[User, Depends(require(Role.ADMIN))]
UserId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("/users", response_model=list[UserOut], responses=error_responses(401, 403))
async def list_users(ctx: Ctx, user: Admin) -> list[UserOut]:
    return [UserOut.of(found) for found in await ctx.users.list_users()]


@router.post(
    "/users", status_code=201, response_model=UserOut, responses=error_responses(401, 403, 422)
)
async def create_user(ctx: Ctx, user: Admin, body: NewUser) -> UserOut:
    """A new user; every problem (taken username, unknown agent, ...) is named."""
    try:
        created = await ctx.users.create_user(
            username=body.username,
            password=body.password,
            role=body.role.value,
            name=body.name,
            locale=body.locale,
            agent_id=body.agent_id,
            team=body.team,
        )
    except UserError as exc:
        raise ApiError(
            422, "invalid_request", "admin.bad_user", exc.problems, count=len(exc.problems)
        ) from None
    return UserOut.of(created)


@router.post(
    "/users/{user_id}/tokens",
    status_code=201,
    response_model=TokenOut,
    responses=error_responses(401, 403, 404, 422),
)
async def issue_token(
    ctx: Ctx, user: Admin, user_id: UserId, body: Annotated[NewToken | None, Body()] = None
) -> TokenOut:
    """A per-user API token that lasts until revoked; shown in this response only."""
    try:
        token = await ctx.users.issue_token(user_id, body.label if body else "")
    except UserError:
        raise ApiError(404, "not_found", "admin.unknown_user", user_id=user_id) from None
    return TokenOut(token=token)


@router.get("/phones", response_model=list[PhoneOut], responses=error_responses(401, 403))
async def phones(ctx: Ctx, user: Admin) -> list[PhoneOut]:
    """The desk phones and whether each is registered now."""
    registrar = ctx.floor.service.endpoint.registrar
    now = asyncio.get_running_loop().time()  # registrations expire on the loop's clock
    registered = set(registrar.registered_extensions(now)) if registrar else set()
    return [
        PhoneOut(
            extension=phone.extension,
            vendor=phone.vendor,
            agent=phone.agent,
            registered=phone.extension in registered,
        )
        for phone in ctx.floor.config.phones
    ]


@router.get("/trunks", response_model=list[TrunkOut], responses=error_responses(401, 403))
async def trunks(ctx: Ctx, user: Admin) -> list[TrunkOut]:
    """The trunks, with their health where a running campaign uses them."""
    now = asyncio.get_running_loop().time()
    health = {
        name: found
        for runner in ctx.floor.runners
        if runner.trunks is not None
        for name, found in runner.trunks.health(now).items()
    }
    return [
        TrunkOut(
            name=trunk.name,
            host=trunk.host,
            port=trunk.port,
            transport=trunk.transport,
            username=trunk.username,
            registers=trunk.register,
            max_channels=trunk.max_channels,
            max_calls_per_second=trunk.max_calls_per_second,
            priority=trunk.priority,
            caller_id=trunk.caller_id,
            prefixes_allowed=list(trunk.prefixes_allowed),
            state=health[trunk.name].state.value if trunk.name in health else None,
            in_use=health[trunk.name].in_use if trunk.name in health else 0,
        )
        for trunk in ctx.floor.config.trunks
    ]
