"""Live updates for the pages: ``GET /api/v1/events`` as server-sent events.

One ``LiveHub`` per app takes the floor's ordered event stream and the
quota publishers' progress, and fans them out to the open connections. Each
connection has a bounded queue: when a slow reader lets it fill, the oldest
entries go (and are counted), never the floor's loop. An agent's connection
carries only that agent's ``desk``, ``quota`` and ``call`` events;
supervisors and admins get the ``quota`` and ``call`` events of every agent
they see (a team lead: the team's, ``dialer.api.scope``) and the ``floor``
(the wallboard's body, ``dialer.api.board``). A ``desk`` or
``floor`` event is the whole body, rendered when it is sent, so a burst of
changes costs one render and a dropped one is healed by the next; ``floor``
is sent at most once every ``FLOOR_INTERVAL_S`` (it reads the database).
A comment line every ``heartbeat_s`` keeps proxies from closing the stream.

EventSource cannot send headers: the token may be given as ``?token=``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from dialer.api.auth import resolve_user, token_of
from dialer.api.board import floor_board
from dialer.api.context import ApiContext, context
from dialer.api.desk import DeskTracker, desk_body, quota_body, today_progress
from dialer.api.errors import error_responses
from dialer.api.users import Role, User
from dialer.events import (
    CallAssigned,
    CallBridged,
    CallEnded,
    CallEvent,
    DispositionSet,
    Event,
)
from quota.progress import QuotaProgress

log = logging.getLogger(__name__)

QUEUE_LIMIT = 256  # entries per connection before the oldest are dropped
HEARTBEAT_S = 15.0
FLOOR_INTERVAL_S = 1.0
# Call events worth a page's attention (the rest are the wire's detail).
CALL_KINDS = (CallAssigned, CallBridged, CallEnded, DispositionSet)
_WATCHERS = frozenset({Role.SUPERVISOR, Role.ADMIN})


@dataclass(eq=False)  # one per connection: compared and hashed by identity
class Subscription:
    user: User
    team: frozenset[str] | None = None  # a team lead's agents; None: the whole floor
    queue: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=QUEUE_LIMIT))
    desk_changed: bool = False
    floor_changed: bool = False
    dropped: int = 0
    closed: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, name: str, data: str) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1  # deque drops the oldest itself
        self.queue.append((name, data))
        self.wake.set()

    @property
    def watcher(self) -> bool:
        return self.user.role in _WATCHERS

    def watches(self, agents: set[str] | frozenset[str]) -> bool:
        """Whether a watcher sees what ``agents`` did (a call no agent took: the floor's)."""
        if not self.watcher:
            return False
        return self.team is None or not self.team.isdisjoint(agents)

    def touch_desk(self) -> None:
        self.desk_changed = True
        self.wake.set()

    def touch_floor(self) -> None:
        self.floor_changed = True
        self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()


class LiveHub:
    def __init__(
        self,
        tracker: DeskTracker,
        *,
        heartbeat_s: float = HEARTBEAT_S,
        team_of: Callable[[User], frozenset[str] | None] = lambda _: None,
    ) -> None:
        self.tracker = tracker
        self.team_of = team_of  # the agents a team lead sees, asked as each connection opens
        self.heartbeat_s = heartbeat_s
        self.subscriptions: set[Subscription] = set()
        self.dropped = 0  # over every connection, closed ones too
        self.closed = False

    def on_event(self, event: Event) -> None:
        """The floor's event stream (synchronous: it only marks and queues)."""
        agents = self.tracker.on_event(event)
        if not self.subscriptions:
            return
        call: str | None = None
        if isinstance(event, CALL_KINDS) and isinstance(event, CallEvent):
            call = json.dumps({"call_id": event.call_id, "kind": event.kind})
        for sub in self.subscriptions:
            mine = sub.user.agent_id in agents
            if mine:
                sub.touch_desk()
            if call is not None and (mine or sub.watches(agents)):
                sub.put("call", call)
            if sub.watcher and (agents or call is not None):
                sub.touch_floor()

    def on_quota(self, progress: QuotaProgress) -> None:
        """A quota publisher: one agent-day changed."""
        for sub in self.subscriptions:
            if sub.user.agent_id == progress.agent or sub.watches({progress.agent}):
                sub.put("quota", quota_body(progress, sub.user.locale).model_dump_json())
            if sub.watcher:
                sub.touch_floor()  # the team's quota board moved

    def subscribe(self, user: User) -> Subscription:
        sub = Subscription(user, self.team_of(user))
        if self.closed:
            sub.close()
        else:
            self.subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self.subscriptions:
            self.subscriptions.discard(sub)
            self.dropped += sub.dropped

    def close(self) -> None:
        """End every stream (the floor is stopping)."""
        self.closed = True
        for sub in self.subscriptions:
            sub.close()


def frame(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"


async def stream(ctx: ApiContext, sub: Subscription) -> AsyncIterator[str]:
    hub = ctx.live
    user = sub.user
    loop = asyncio.get_running_loop()
    floor_sent = -FLOOR_INTERVAL_S
    try:
        yield "retry: 3000\n\n"
        if user.agent_id is not None:
            sub.desk_changed = True
            progress = today_progress(ctx, user.agent_id)
            yield frame("quota", quota_body(progress, user.locale).model_dump_json())
        sub.floor_changed = sub.watcher
        while True:
            floor_due = floor_sent + FLOOR_INTERVAL_S - loop.time()
            floor_waits = sub.floor_changed and floor_due > 0
            if not (sub.queue or sub.desk_changed or sub.closed) and (
                floor_waits or not sub.floor_changed
            ):
                sub.wake.clear()
                try:
                    await asyncio.wait_for(
                        sub.wake.wait(), floor_due if floor_waits else hub.heartbeat_s
                    )
                except TimeoutError:
                    if not floor_waits:
                        yield ": heartbeat\n\n"
                        continue
            if sub.closed:
                return
            while sub.queue:
                name, data = sub.queue.popleft()
                yield frame(name, data)
            if sub.desk_changed and user.agent_id is not None:
                sub.desk_changed = False
                body = await desk_body(ctx, user.agent_id, user.locale)
                yield frame("desk", body.model_dump_json())
            sub.desk_changed = False
            if sub.floor_changed and loop.time() - floor_sent >= FLOOR_INTERVAL_S:
                sub.floor_changed = False
                floor_sent = loop.time()
                yield frame("floor", (await floor_board(ctx, user)).model_dump_json())
    finally:
        hub.unsubscribe(sub)


router = APIRouter(prefix="/api/v1", tags=["live"])


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **error_responses(401),
    },
)
async def events(
    request: Request,
    ctx: Annotated[ApiContext, Depends(context)],
    token: Annotated[str | None, Query(description="for EventSource (it sends no header)")] = None,
) -> StreamingResponse:
    """Server-sent events: ``desk``, ``quota``, ``call`` and ``floor`` (see the module's doc)."""
    user = await resolve_user(request, token_of(request) or token)
    sub = ctx.live.subscribe(user)
    return StreamingResponse(
        stream(ctx, sub),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
