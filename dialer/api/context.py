"""What every route of the API works on: the running floor and the stores beside it.

One ``ApiContext`` per app (``create_app`` keeps it in ``app.state``), built
once over a running ``Floor`` by ``dialer.api.app.api_context``. Routes get it
with the ``context`` dependency, never from a global, so tests run several
floors side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from cdr.audit import AuditLog
from cdr.qa import QaStore
from cdr.recordings import RecordingIndex
from cdr.store import CdrStore
from dialer.api.users import UserStore

if TYPE_CHECKING:
    from dialer.api.desk import DeskTracker
    from dialer.api.live import LiveHub
    from dialer.floor import Floor


@dataclass
class ApiContext:
    floor: Floor
    users: UserStore
    cdrs: CdrStore
    recordings: RecordingIndex
    qa: QaStore
    audit: AuditLog
    desks: DeskTracker  # each agent's current call, from the event stream
    live: LiveHub  # the server-sent events' fan-out
    now_ms: Callable[[], int]


def context(request: HTTPConnection) -> ApiContext:
    """FastAPI dependency: the app's context."""
    found = getattr(request.app.state, "api", None)
    if not isinstance(found, ApiContext):
        raise RuntimeError("the app has no ApiContext: build it with dialer.api.app.create_app")
    return found
