"""Which call an agent's desk shows, folded from the floor's ordered events."""

from __future__ import annotations

from dialer.agents.state import AgentState
from dialer.api.desk import DeskTracker
from dialer.events import (
    AgentStateChanged,
    CallAssigned,
    CallBridged,
    CallEnded,
    CallOutcome,
    Direction,
    DispositionSet,
    Event,
)


def assigned(call_id: str, at_ms: int, agent: str | None, number: str = "+8613800000001") -> Event:
    return CallAssigned(
        call_id=call_id,
        at_ms=at_ms,
        mono=at_ms / 1000,
        campaign="c1",
        lead_id=f"lead-{call_id}",
        agent=agent,
        mode="progressive",
        direction=Direction.OUTBOUND,
        number=number,
    )


def state(agent: str, at_ms: int, previous: str, new: str) -> Event:
    return AgentStateChanged(
        at_ms=at_ms, mono=at_ms / 1000, agent=agent, previous=previous, state=new
    )


def ended(call_id: str, at_ms: int) -> Event:
    return CallEnded(
        call_id=call_id,
        at_ms=at_ms,
        mono=at_ms / 1000,
        outcome=CallOutcome.ANSWERED,
        status=200,
        q850_cause=None,
        hangup_by=None,
    )


def test_a_call_is_shown_from_its_reservation_through_wrap_up() -> None:
    desks = DeskTracker([])
    assert desks.on_event(state("a1", 1000, "ready", "reserved")) == {"a1"}
    assert desks.current("a1", AgentState.RESERVED) is None  # reserved, not dialed yet
    assert desks.on_event(assigned("c-1", 1001, "a1")) == {"a1"}
    shown = desks.current("a1", AgentState.RESERVED)
    assert shown is not None and (shown.call_id, shown.lead_id) == ("c-1", "lead-c-1")
    assert desks.agent_of("c-1") == "a1"
    assert desks.on_event(ended("c-1", 5000)) == {"a1"}
    assert desks.agent_of("c-1") is None
    wrap_up = desks.current("a1", AgentState.WRAP_UP)
    assert wrap_up is not None and not wrap_up.dispositioned
    desks.on_event(DispositionSet(call_id="c-1", at_ms=6000, mono=6.0, agent="a1", code="sale"))
    assert wrap_up.dispositioned
    assert desks.current("a1", AgentState.READY) is None  # ready again: no call on the desk
    assert desks.since_ms["a1"] == 1000


def test_a_new_reservation_hides_the_previous_call() -> None:
    desks = DeskTracker([])
    desks.on_event(state("a1", 1000, "ready", "reserved"))
    desks.on_event(assigned("c-1", 1000, "a1"))
    desks.on_event(ended("c-1", 2000))
    desks.on_event(state("a1", 3000, "ready", "reserved"))
    assert desks.current("a1", AgentState.RESERVED) is None  # c-1 is over; c-2 not yet out
    desks.on_event(assigned("c-2", 3002, "a1", number="+8613900000002"))
    shown = desks.current("a1", AgentState.RESERVED)
    assert shown is not None and shown.number == "+8613900000002"


def test_other_agents_calls_are_not_on_this_desk() -> None:
    desks = DeskTracker([])
    desks.on_event(state("a1", 1000, "ready", "reserved"))
    assert desks.on_event(assigned("c-9", 1001, "a2")) == {"a2"}
    assert desks.current("a1", AgentState.RESERVED) is None
    # A predictive call nobody is connected to yet changes no desk.
    assert desks.on_event(assigned("c-10", 1002, None)) == set()
    bridged = CallBridged(call_id="c-10", at_ms=1500, mono=1.5, agent_leg="leg-nobody")
    assert desks.on_event(bridged) == set()
