"""The FastAPI application over a running floor: every router, one error shape.

``api_context(floor)`` builds the stores the routes share and subscribes the
live hub to the floor's event stream and quota publishers (once per floor);
``create_app(ctx)`` makes the app. The OpenAPI document is at
``/api/openapi.json`` and its browsable form at ``/api/docs``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

from fastapi import FastAPI
from starlette.requests import HTTPConnection

from cdr.audit import AuditLog
from cdr.qa import QaStore
from cdr.recordings import RecordingIndex
from cdr.store import CdrStore
from dialer.api import (
    admin,
    auth,
    board,
    campaigns,
    cdrs,
    desk,
    errors,
    live,
    qa,
    quotas,
    recordings,
)
from dialer.api.body_limit import BodyLimit
from dialer.api.context import ApiContext
from dialer.api.messages import negotiate
from dialer.api.scope import team_in
from dialer.api.users import TokenRejectedError, UserStore, wall_ms
from dialer.floor import Floor
from dialer.web.pages import mount_pages

TITLE = "Telesales dialer API"


def api_context(
    floor: Floor, *, now_ms: Callable[[], int] = wall_ms, heartbeat_s: float = live.HEARTBEAT_S
) -> ApiContext:
    sessions = floor.database.sessionmaker
    audit = AuditLog(sessions)
    tracker = desk.DeskTracker(floor.runners)
    hub = live.LiveHub(
        tracker, heartbeat_s=heartbeat_s, team_of=lambda user: team_in(floor.config, user)
    )
    floor.service.subscribe(hub.on_event)
    floor.quotas.publishers.append(hub.on_quota)
    return ApiContext(
        floor=floor,
        users=UserStore(sessions, floor.config, now_ms=now_ms),
        cdrs=CdrStore(sessions, node=floor.config.service.node_name),
        recordings=RecordingIndex(sessions, audit),
        qa=QaStore(sessions, audit),
        audit=audit,
        desks=tracker,
        live=hub,
        now_ms=now_ms,
    )


async def reader_locale(ctx: ApiContext, connection: HTTPConnection) -> str:
    """The locale of whoever sent ``connection``, before any route has looked at them."""
    token = auth.token_of(connection)
    if token is not None:
        with contextlib.suppress(TokenRejectedError):
            return (await ctx.users.resolve(token)).locale
    return negotiate(connection.headers.get("accept-language"))


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title=TITLE,
        version="1",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.api = ctx
    app.add_middleware(
        BodyLimit,
        max_upload_bytes=ctx.floor.config.http.max_upload_bytes,
        locale_for=functools.partial(reader_locale, ctx),
    )
    errors.install(app)
    for module in (auth, desk, live, cdrs, recordings, qa, quotas, campaigns, admin, board):
        app.include_router(module.router)
    mount_pages(app)
    return app
