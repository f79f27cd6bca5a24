"""Predictive calls in the collector: launched for no agent, the call of the agent it reaches.

A predictive ``CallAssigned`` names no agent; the runner connects the
answered customer to whichever agent is free, and that agent's state changes
name the call. The call then waits for that agent's wrap-up like any bridged
call, another agent's stray event never lands in it, and a call no agent
ever took finishes at its end with no agent at all.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from cdr.collector import CdrCollector, Failed, Finished, Output
from cdr.effective import DEFAULT_RULE, EffectiveRule
from cdr.record import CallRecord, Outcome
from dialer.events import Event

# The scenario helper sits beside its tests (the unit tier has no packages).
sys.path.insert(0, str(Path(__file__).parent))
from scenario import table


def rule_for(campaign: str | None) -> EffectiveRule:
    return DEFAULT_RULE


def feed_all(collector: CdrCollector, events: Iterable[Event]) -> list[Output]:
    return [out for event in events for out in collector.feed(event)]


def records(outputs: Sequence[Output]) -> dict[str, CallRecord]:
    assert not [o for o in outputs if isinstance(o, Failed)]
    return {o.record.call_id: o.record for o in outputs if isinstance(o, Finished)}


LAUNCHED = """
  0.000  assigned campaign=c1 lead=L1 mode=predictive number=+8613800000001 record=no
  0.010  started target=sip:+8613800000001@gw trunk=t1
  0.300  progress 180
"""
CONNECTED = (
    LAUNCHED
    + """
  4.000  answered
  4.001  agent a1 ready->reserved
  4.020  bridged agent_leg=leg-a1
  4.021  agent a1 reserved->talking
"""
)
ENDED = """
  64.020 ended answered status=200 hangup=remote
  64.020 cleared by=customer
  64.021 agent a1 talking->wrap_up
  70.000 disposition a1 sale
"""
READY = "70.001 agent a1 wrap_up->ready"


def test_a_predictive_call_waits_for_the_wrap_up_of_the_agent_it_was_connected_to() -> None:
    collector = CdrCollector(rule_for)
    assert records(feed_all(collector, table(CONNECTED + ENDED))) == {}
    assert collector.open_calls() == ["call-1"]  # the agent is still wrapping up
    record = records(feed_all(collector, table(READY)))["call-1"]
    assert (record.outcome, record.talk_ms, record.wrap_up_ms) == (Outcome.ANSWERED, 60_000, 5980)
    assert record.disposition == "sale"
    assert record.mode == "predictive"
    assert (collector.late_events, collector.ignored_events) == (0, 0)


def test_the_record_of_a_connected_predictive_call_names_its_agent() -> None:
    collector = CdrCollector(rule_for)
    record = records(feed_all(collector, table(CONNECTED + ENDED + READY)))["call-1"]
    assert record.agent == "a1"


def test_a_disposition_naming_the_call_also_makes_it_the_agents() -> None:
    # No state change names the call (say the reservation event was lost): the disposition does.
    events = table(
        LAUNCHED
        + """
  4.000  answered
  4.020  bridged agent_leg=leg-a1
  30.000 disposition a1 callback
  64.020 ended answered status=200 hangup=remote
  64.021 agent a1 talking->wrap_up call=-
"""
    )
    collector = CdrCollector(rule_for)
    assert records(feed_all(collector, events)) == {}
    record = records(feed_all(collector, table("66.000 agent a1 wrap_up->ready call=-")))["call-1"]
    assert (record.disposition, record.wrap_up_ms) == ("callback", 1979)


def test_another_agent_naming_the_call_later_does_not_take_it_over() -> None:
    stray = """
  10.000 agent a2 ready->reserved
  64.500 agent a2 reserved->ready
"""
    events = sorted(table(CONNECTED + ENDED + stray), key=lambda event: event.mono)
    collector = CdrCollector(rule_for)
    outputs = feed_all(collector, events)
    assert records(outputs) == {}  # a2 leaving "reserved" did not end a1's wrap-up
    record = records(feed_all(collector, table(READY)))["call-1"]
    assert (record.wrap_up_ms, record.disposition) == (5980, "sale")
    assert collector.ignored_events == 2  # both of a2's events went nowhere


@pytest.mark.parametrize(
    "ending",
    [
        # Rang out: our CANCEL after the ring time.
        "30.010 cleared by=system reason=ring_timeout\n30.050 ended cancelled status=487",
        # Answered, no agent free within 2 s: the message, then our BYE.
        "4.000 answered\n9.500 cleared by=system reason=abandoned\n9.510 ended answered",
    ],
)
def test_a_call_no_agent_took_finishes_at_its_end_without_an_agent(ending: str) -> None:
    floor = """
  1.000  agent a1 ready->paused reason=break call=-
  2.000  agent a2 wrap_up->ready call=-
"""
    events = sorted(table(LAUNCHED + floor + ending), key=lambda event: event.mono)
    collector = CdrCollector(rule_for)
    record = records(feed_all(collector, events))["call-1"]
    assert record.agent is None
    assert (record.wrap_up_ms, record.disposition) == (None, None)
    assert collector.open_calls() == []
    assert collector.ignored_events == 2  # the floor's changes were no call's
    after = feed_all(collector, table("31.000 agent a1 paused->ready call=-"))
    assert after == [] and collector.late_events == 0


def test_of_two_calls_in_flight_only_the_connected_one_becomes_the_agents() -> None:
    other = table(LAUNCHED.replace("L1", "L2") + "9.000 ended no_answer status=480", call_id="c-2")
    collector = CdrCollector(rule_for)
    events = sorted([*table(CONNECTED + ENDED), *other], key=lambda event: event.mono)
    done = records(feed_all(collector, events))
    assert list(done) == ["c-2"]
    assert (done["c-2"].agent, done["c-2"].outcome) == (None, Outcome.NO_ANSWER)
    assert records(feed_all(collector, table(READY)))["call-1"].wrap_up_ms == 5980
