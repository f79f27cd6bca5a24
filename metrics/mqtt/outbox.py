"""What waits for the broker: a bounded outbox, pure (no I/O, no clock).

Two kinds of message go out, both at QoS 1:

* **State** (retained: agent state, quota progress, campaign stats). Only
  the latest per topic matters, so a newer one replaces a waiting older one
  (it moves to the back: its place in the stream is when it changed). State
  is never dropped, and the latest of every topic is kept after it was sent,
  so that ``resend_state()`` can queue it again on every reconnect: the
  broker may have restarted without its retained store.
* **Stream** (not retained: call events, command replies). Every message
  counts and their order matters. At most ``limit`` of them wait; one more
  pushes out the oldest waiting one, and ``dropped`` counts it.

The sender ``peek()``s the next message, publishes it and, once the broker
has acknowledged it, reports it ``sent()``. A message stays in the outbox
while it is on the wire, so a connection lost before the PUBACK sends it
again (QoS 1 is at-least-once). ``dropped`` counts stream messages that left
the outbox without a PUBACK; one pushed out while on the wire may still
have arrived.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for the broker; ``retain`` marks state (latest per topic wins)."""

    topic: str
    payload: bytes
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Pending:
    """A message in the outbox; ``seq`` orders it among all others."""

    seq: int
    message: Outgoing


class Outbox:
    """QoS 1 messages waiting for the broker, in the order they were put."""

    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"outbox limit must be a positive integer, not {limit!r}")
        self.limit = limit
        self.dropped = 0
        self._seq = 0
        self._stream: deque[Pending] = deque()
        # Waiting state by topic, oldest first (a replaced topic moves to the end).
        self._state_waiting: OrderedDict[str, Pending] = OrderedDict()
        self._state: dict[str, Outgoing] = {}

    def __len__(self) -> int:
        return len(self._stream) + len(self._state_waiting)

    @property
    def stream_waiting(self) -> int:
        return len(self._stream)

    @property
    def state_waiting(self) -> int:
        return len(self._state_waiting)

    @property
    def state(self) -> Mapping[str, Outgoing]:
        """The latest state message of every topic ever put (sent or not)."""
        return MappingProxyType(self._state)

    def waiting(self) -> list[Pending]:
        """Every waiting message, in the order they will be sent."""
        return sorted([*self._stream, *self._state_waiting.values()], key=lambda p: p.seq)

    def put(self, message: Outgoing) -> None:
        self._seq += 1
        pending = Pending(self._seq, message)
        if message.retain:
            self._state[message.topic] = message
            self._state_waiting.pop(message.topic, None)
            self._state_waiting[message.topic] = pending
            return
        self._stream.append(pending)
        while len(self._stream) > self.limit:
            self._stream.popleft()
            self.dropped += 1

    def peek(self) -> Pending | None:
        """The oldest waiting message (left in place until ``sent``)."""
        stream = self._stream[0] if self._stream else None
        state = next(iter(self._state_waiting.values()), None)
        if stream is None:
            return state
        if state is None:
            return stream
        return stream if stream.seq < state.seq else state

    def sent(self, pending: Pending) -> bool:
        """The broker acknowledged ``pending``: take it out. False if it had already left
        (pushed out by the bound, or a state message replaced while on the wire)."""
        if pending.message.retain:
            waiting = self._state_waiting.get(pending.message.topic)
            if waiting is None or waiting.seq != pending.seq:
                return False
            del self._state_waiting[pending.message.topic]
            return True
        if self._stream and self._stream[0].seq == pending.seq:
            self._stream.popleft()
            return True
        # Only the head is ever sent; anything else was pushed out meanwhile.
        return False

    def resend_state(self) -> int:
        """Queue the latest state of every topic not already waiting; how many were queued.

        Called on every (re)connect: the broker may have lost its retained store.
        """
        queued = 0
        for topic, message in self._state.items():
            if topic not in self._state_waiting:
                self._seq += 1
                self._state_waiting[topic] = Pending(self._seq, message)
                queued += 1
        return queued
