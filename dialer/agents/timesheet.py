"""Seconds per state and per pause reason, folded from one agent's state events.

Pure: the caller passes the events (in order) and the period ``[start_mono,
end_mono)``; the state open at the end counts up to ``end_mono``. Events before
the period only establish the state at its start. With no event before the
start, the first event's ``previous`` state is taken to hold from the start;
if that is PAUSED its reason is unknown and is filed under the reason ``None``
(not billable). With no event at all, ``initial`` holds for the whole period.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from dialer.agents.state import AgentError, AgentState
from dialer.events import AgentStateChanged


class TimesheetError(AgentError):
    """The events cannot describe one agent's timeline (wrong agent, order, or a gap)."""


@dataclass(frozen=True, slots=True)
class Timesheet:
    agent: str
    start_mono: float
    end_mono: float
    seconds: Mapping[AgentState, float]  # every state present, 0.0 when never in it
    pause_seconds: Mapping[str | None, float]  # by reason code; None = unknown reason
    billable_pause_s: float
    unbillable_pause_s: float

    @property
    def wait_s(self) -> float:
        return self.seconds[AgentState.READY]

    @property
    def talk_s(self) -> float:
        return self.seconds[AgentState.TALKING]

    @property
    def wrap_up_s(self) -> float:
        return self.seconds[AgentState.WRAP_UP]

    @property
    def pause_s(self) -> float:
        return self.seconds[AgentState.PAUSED]

    @property
    def signed_in_s(self) -> float:
        return self.end_mono - self.start_mono - self.seconds[AgentState.SIGNED_OUT]

    @classmethod
    def fold(
        cls,
        agent: str,
        events: Iterable[AgentStateChanged],
        start_mono: float,
        end_mono: float,
        *,
        initial: AgentState = AgentState.SIGNED_OUT,
    ) -> Timesheet:
        if not end_mono >= start_mono:
            raise TimesheetError(f"period ends at {end_mono}, before its start {start_mono}")
        by_state: dict[AgentState, list[float]] = {state: [] for state in AgentState}
        by_reason: dict[str | None, list[float]] = {}
        billable: list[float] = []
        unbillable: list[float] = []

        state: AgentState | None = None
        reason: str | None = None
        paid = False
        since = -math.inf

        def close(until: float) -> None:
            assert state is not None
            span = min(until, end_mono) - max(since, start_mono)
            if span <= 0:
                return
            by_state[state].append(span)
            if state is AgentState.PAUSED:
                by_reason.setdefault(reason, []).append(span)
                (billable if paid else unbillable).append(span)

        for event in events:
            if event.agent != agent:
                raise TimesheetError(f"event for agent {event.agent!r} in {agent!r}'s timesheet")
            previous = _parse(event.previous, event)
            if state is None:
                state = previous
            elif previous is not state:
                raise TimesheetError(
                    f"agent {agent}: event at {event.mono} leaves {previous.value} but the "
                    f"agent was {state.value}; an event is missing"
                )
            if event.mono < since:
                raise TimesheetError(
                    f"agent {agent}: event at {event.mono} is before the one at {since}"
                )
            close(event.mono)
            state = _parse(event.state, event)
            reason, paid, since = event.reason, bool(event.billable), event.mono
        if state is None:
            state = initial
        close(end_mono)

        seconds = {s: math.fsum(spans) for s, spans in by_state.items()}
        pauses = {r: math.fsum(spans) for r, spans in by_reason.items()}
        return cls(
            agent=agent,
            start_mono=start_mono,
            end_mono=end_mono,
            seconds=MappingProxyType(seconds),
            pause_seconds=MappingProxyType(pauses),
            billable_pause_s=math.fsum(billable),
            unbillable_pause_s=math.fsum(unbillable),
        )


def _parse(value: str, event: AgentStateChanged) -> AgentState:
    try:
        return AgentState(value)
    except ValueError:
        raise TimesheetError(
            f"agent {event.agent}: unknown state {value!r} in the event at {event.mono}"
        ) from None
