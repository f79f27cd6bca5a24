"""The collector: one ordered stream in, one record per call attempt out."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdr.builder import build
from cdr.collector import CdrCollector, Failed, Finished, Opened, Output, Progressed
from cdr.effective import DEFAULT_RULE, EffectiveRule
from cdr.record import CallRecord, Outcome
from dialer.events import Event

# The scenario helper sits beside its tests (the unit tier has no packages).
sys.path.insert(0, str(Path(__file__).parent))
from scenario import MONO0, ms, table

STRICT = EffectiveRule(name="strict", version=4, min_talk_s=60.0)
RULES = {"c1": DEFAULT_RULE, "c2": STRICT}


def rule_for(campaign: str | None) -> EffectiveRule:
    return RULES.get(campaign or "", DEFAULT_RULE)


def feed_all(collector: CdrCollector, events: Iterable[Event]) -> list[Output]:
    return [out for event in events for out in collector.feed(event)]


def round_robin(*streams: Sequence[Event]) -> list[Event]:
    """One event of each stream in turn, each stream's order kept."""
    longest = max(len(s) for s in streams)
    return [s[i] for i in range(longest) for s in streams if i < len(s)]


def finished(outputs: Sequence[Output]) -> dict[str, CallRecord]:
    records = [o.record for o in outputs if isinstance(o, Finished)]
    by_id = {r.call_id: r for r in records}
    assert len(by_id) == len(records), "a call finished twice"
    return by_id


BRIDGED = """
  0.000  assigned campaign=c1 lead=L1 agent=a1 number=+8613800000001
  0.010  started target=sip:+8613800000001@gw trunk=t1
  0.300  progress 180
  4.000  answered
  4.020  bridged agent_leg=leg-a1
  64.020 ended answered status=200 hangup=remote
  64.020 cleared by=customer
"""


def test_opened_progressed_then_finished_after_the_wrap_up() -> None:
    collector = CdrCollector(rule_for)
    events = table(BRIDGED + "64.021 agent a1 talking->wrap_up\n70.000 disposition a1 sale")
    outputs = feed_all(collector, events)
    kinds = [type(o).__name__ for o in outputs]
    assert kinds == ["Opened", "Progressed", "Progressed"]
    opened = outputs[0]
    assert isinstance(opened, Opened)
    assert (opened.record.outcome, opened.record.created_at_ms) == (Outcome.INTERRUPTED, ms(0))
    bridged = outputs[2]
    assert isinstance(bridged, Progressed) and bridged.record.bridged_at_ms == ms(4.02)
    assert collector.open_calls() == ["call-1"]
    assert collector.snapshot("call-1").disposition == "sale"

    done = feed_all(collector, table("70.001 agent a1 wrap_up->ready"))
    assert [type(o) for o in done] == [Finished]
    assert finished(done)["call-1"] == build(
        "call-1", [*events, *table("70.001 agent a1 wrap_up->ready")], DEFAULT_RULE
    )
    assert finished(done)["call-1"].wrap_up_ms == 5980
    assert collector.open_calls() == []


def test_a_call_never_bridged_finishes_at_its_end_and_the_agents_release_is_not_late() -> None:
    collector = CdrCollector(rule_for)
    outputs = feed_all(
        collector,
        table(
            """
  0.000 assigned campaign=c1 agent=a1 number=+861
  0.010 started target=sip:+861@gw
  2.000 ended busy status=486 hangup=remote
  2.001 agent a1 reserved->ready
"""
        ),
    )
    assert finished(outputs)["call-1"].outcome is Outcome.BUSY
    assert (collector.late_events, collector.ignored_events) == (0, 1)


def test_without_wrap_up_the_agents_next_state_finishes_the_call_at_once() -> None:
    collector = CdrCollector(rule_for)
    outputs = feed_all(collector, table(BRIDGED + "64.030 agent a1 talking->ready"))
    record = finished(outputs)["call-1"]
    assert (record.wrap_up_ms, record.talk_ms, record.effective) == (None, 60_000, True)


def test_with_no_agent_change_the_grace_finishes_the_call() -> None:
    collector = CdrCollector(rule_for, agent_grace_s=2.0)
    assert [type(o) for o in feed_all(collector, table(BRIDGED))][-1] is Progressed
    end = MONO0 + 64.020
    assert collector.tick(end + 1.999) == []
    outputs = collector.tick(end + 2.0)
    assert finished(outputs)["call-1"].wrap_up_ms is None
    assert collector.tick(end + 10) == []


def test_a_long_wrap_up_is_waited_for() -> None:
    collector = CdrCollector(rule_for, agent_grace_s=2.0)
    feed_all(collector, table(BRIDGED + "64.021 agent a1 talking->wrap_up"))
    assert collector.tick(MONO0 + 3600) == []
    outputs = feed_all(collector, table("3664.021 agent a1 wrap_up->paused reason=break"))
    assert finished(outputs)["call-1"].wrap_up_ms == 3_600_000


def test_a_disposition_after_the_call_finished_makes_no_second_record() -> None:
    collector = CdrCollector(rule_for)
    outputs = feed_all(
        collector,
        table(BRIDGED + "64.021 agent a1 talking->wrap_up\n70.000 agent a1 wrap_up->ready"),
    )
    late = feed_all(collector, table("71.000 disposition a1 sale\n72.000 cleared by=agent"))
    assert late == []
    assert len(finished(outputs)) == 1
    assert finished(outputs)["call-1"].disposition is None
    assert collector.late_events == 2


def test_finished_calls_are_remembered_up_to_the_bound() -> None:
    collector = CdrCollector(rule_for, remember=2)
    for n in range(3):
        feed_all(collector, table(f"0.0 assigned number=+1 call=k{n}\n1.0 ended busy call=k{n}"))
    feed_all(collector, table("2.0 disposition a1 sale call=k2"))
    assert collector.late_events == 1
    feed_all(collector, table("2.0 disposition a1 sale call=k0"))  # forgotten: unknown now
    assert (collector.late_events, collector.ignored_events) == (1, 1)
    with pytest.raises(ValueError, match="remember must be at least 1"):
        CdrCollector(rule_for, remember=0)
    with pytest.raises(ValueError, match="agent_grace_s must be a number >= 0"):
        CdrCollector(rule_for, agent_grace_s=float("nan"))


FAILOVER = """
  0.000  assigned campaign=c1 lead=L1 agent=a1 number=+8613800000001 trunk=t1 call=R
  0.010  started target=sip:+8613800000001@gw1 trunk=t1 call=R
  0.200  ended trunk_failure status=503 hangup=remote call=R
  0.210  assigned campaign=c1 lead=L1 agent=a1 number=+8613800000001 trunk=t2 attempt_of=R call=X
  0.220  started target=sip:+8613800000001@gw2 trunk=t2 call=X
  0.500  progress 180 call=X
  5.000  answered call=X
  5.010  bridged agent_leg=leg-a1 call=X
  5.010  agent a1 reserved->talking call=R
  65.010 ended answered status=200 hangup=remote call=X
  65.020 agent a1 talking->wrap_up call=R
  68.000 disposition a1 sale call=R
  68.020 agent a1 wrap_up->ready call=R
"""


def test_trunk_failover_gives_two_linked_records_and_the_wrap_up_goes_to_the_second() -> None:
    collector = CdrCollector(rule_for)
    events = table(FAILOVER)
    records = finished(feed_all(collector, events))
    assert sorted(records) == ["R", "X"]
    first, second = records["R"], records["X"]
    assert (first.outcome, first.sip_status, first.trunk, first.attempt_of) == (
        Outcome.TRUNK_FAILURE,
        503,
        "t1",
        None,
    )
    assert (first.wrap_up_ms, first.disposition, first.talk_ms) == (None, None, 0)
    assert (second.outcome, second.trunk, second.attempt_of) == (Outcome.ANSWERED, "t2", "R")
    assert (second.wrap_up_ms, second.disposition, second.talk_ms) == (3000, "sale", 60_000)
    # The second attempt owns everything after the first one ended: its own events
    # and the agent's, which carry the reservation (the first attempt's id).
    assert second == build("X", events[3:], DEFAULT_RULE)
    assert collector.open_calls() == [] and collector.late_events == 0


TRANSFER = """
  0.000  assigned campaign=c1 lead=L1 agent=a1 number=+8613800000001 call=A
  0.010  started target=sip:+8613800000001@gw call=A
  4.000  answered call=A
  4.020  bridged agent_leg=leg-a1 call=A
  50.000 transferred new=B to=a2 call=A
  50.001 assigned campaign=c1 lead=L1 agent=a2 number=+8613800000001 attempt_of=A call=B
  50.010 agent a1 talking->wrap_up call=A
  52.000 bridged agent_leg=leg-a2 call=B
  52.000 agent a2 reserved->talking call=A
  55.000 disposition a1 transferred call=A
  55.010 agent a1 wrap_up->ready call=A
  100.00 ended answered status=200 hangup=remote call=B
  100.01 agent a2 talking->wrap_up call=A
  110.00 disposition a2 sale call=A
  110.01 agent a2 wrap_up->ready call=A
"""


def test_transfer_gives_two_records_each_with_its_own_agents_wrap_up() -> None:
    collector = CdrCollector(rule_for)
    records = finished(feed_all(collector, table(TRANSFER)))
    first, second = records["A"], records["B"]
    assert (first.outcome, first.agent, first.talk_ms, first.ended_at_ms) == (
        Outcome.TRANSFERRED,
        "a1",
        45_980,
        ms(50.0),
    )
    assert (first.wrap_up_ms, first.disposition, first.effective) == (5000, "transferred", True)
    assert (second.attempt_of, second.agent, second.talk_ms, second.outcome) == (
        "A",
        "a2",
        48_000,
        Outcome.ANSWERED,
    )
    assert (second.wrap_up_ms, second.disposition) == (10_000, "sale")


def test_an_unknown_reservation_goes_to_the_agents_call_awaiting_wrap_up() -> None:
    collector = CdrCollector(rule_for)
    rows = (
        BRIDGED
        + """
  64.021 agent a1 talking->wrap_up call=preview-L1
  66.000 disposition a1 callback callback=1700000900000 call=preview-L1
  66.010 agent a1 wrap_up->ready call=preview-L1
"""
    )
    record = finished(feed_all(collector, table(rows)))["call-1"]
    assert (record.wrap_up_ms, record.disposition, record.callback_at_ms) == (
        1989,
        "callback",
        1_700_000_900_000,
    )


def test_another_agents_changes_never_reach_the_call() -> None:
    collector = CdrCollector(rule_for)
    feed_all(collector, table(BRIDGED))
    assert feed_all(collector, table("64.5 agent a9 talking->wrap_up call=call-1")) == []
    assert collector.open_calls() == ["call-1"]
    assert collector.ignored_events == 1


def test_the_agent_legs_end_is_routed_other_agent_leg_events_are_ignored() -> None:
    collector = CdrCollector(rule_for)
    rows = """
  0.000  assigned agent=a1 number=+861
  0.000  started target=sip:+861@gw
  3.000  answered call=call-1-agent
  4.000  answered
  4.010  bridged agent_leg=call-1-agent
  30.00  ended answered status=200 hangup=remote call=call-1-agent
  30.01  ended answered status=200 hangup=local
  30.02  agent a1 talking->ready
"""
    record = finished(feed_all(collector, table(rows)))["call-1"]
    assert (record.hangup_by, record.talk_ms) == ("agent", 26_000)
    assert collector.ignored_events == 1  # the agent leg's answer


def test_a_broken_call_fails_alone() -> None:
    collector = CdrCollector(rule_for)
    good = table(BRIDGED + "64.030 agent a1 talking->ready", call_id="good")
    other = table(BRIDGED.replace("a1", "a2") + "64.030 agent a2 talking->ready", call_id="g2")
    broken = table(
        "0.0 assigned agent=a3 number=+8\n0.1 assigned agent=a3 number=+8\n1.0 ended busy",
        call_id="bad",
    )
    outputs = feed_all(collector, round_robin(good, broken, other))
    failures = [o for o in outputs if isinstance(o, Failed)]
    assert len(failures) == 1
    assert failures[0].call_id == "bad"
    assert "a second call_assigned" in failures[0].error
    assert failures[0].events == tuple(broken)
    assert sorted(finished(outputs)) == ["g2", "good"]
    assert feed_all(collector, table("2.0 cleared by=system", call_id="bad")) == []
    assert collector.late_events == 1


def test_a_rule_that_cannot_be_had_fails_that_call_only() -> None:
    def picky(campaign: str | None) -> EffectiveRule:
        if campaign == "gone":
            raise LookupError("campaign gone has no effective rule")
        return DEFAULT_RULE

    collector = CdrCollector(picky)
    outputs = feed_all(collector, table("0 assigned campaign=gone number=+1\n1 ended busy"))
    outputs += feed_all(
        collector, table("0 assigned campaign=c1 number=+1\n1 ended busy", call_id="ok")
    )
    failures = [o for o in outputs if isinstance(o, Failed)]
    assert [f.error for f in failures] == ["LookupError: campaign gone has no effective rule"]
    assert sorted(finished(outputs)) == ["ok"]


def test_the_rule_is_the_calls_campaigns() -> None:
    collector = CdrCollector(rule_for)
    rows = BRIDGED.replace("campaign=c1", "campaign=c2") + "64.03 agent a1 talking->ready"
    record = finished(feed_all(collector, table(rows)))["call-1"]
    assert (record.effective_rule, record.effective) == ("strict@4", True)
    short = rows.replace("64.020 ended", "50.000 ended")
    assert finished(feed_all(CdrCollector(rule_for), table(short)))["call-1"].effective is False


def test_snapshot_of_an_unknown_call() -> None:
    with pytest.raises(KeyError, match="call nope is not open"):
        CdrCollector(rule_for).snapshot("nope")


def test_events_of_nothing_known_are_ignored() -> None:
    collector = CdrCollector(rule_for)
    stray = table(
        """
  0 answered call=agent-a1-leg
  1 registered 1001
  2 agent a1 ready->paused reason=break call=-
"""
    )
    assert feed_all(collector, stray) == []
    assert (collector.ignored_events, collector.late_events) == (2, 0)


# -- any interleaving ---------------------------------------------------------

TEMPLATES = [
    # busy, no agent bridged
    """
  0.000 assigned campaign={camp} agent={agent} number=+86{n}
  0.010 started target=sip:{n}@gw trunk=t1
  0.300 progress 180
  1.500 ended busy status=486 hangup=remote
  1.501 agent {agent} reserved->ready
""",
    # bridged, wrap-up with a disposition and a recording closed in it
    """
  0.000 assigned campaign={camp} agent={agent} number=+86{n}
  0.010 started target=sip:{n}@gw
  0.300 progress 180
  4.000 answered
  4.020 bridged agent_leg=leg-{agent}
  4.020 agent {agent} reserved->talking
  20.00 held
  25.00 unheld
  {end} ended answered status=200 hangup=remote
  {end} cleared by=customer
  {end} agent {agent} talking->wrap_up
  {end} recording customer_speech=20000
  {wrap} disposition {agent} sale
  {wrap} agent {agent} wrap_up->ready
""",
    # bridged, no wrap-up configured
    """
  0.000 assigned campaign={camp} agent={agent} number=+86{n}
  0.010 started target=sip:{n}@gw
  4.000 answered
  4.020 bridged agent_leg=leg-{agent}
  {end} ended answered status=200 hangup=local call=leg-{agent}
  {end} ended answered status=200 hangup=local
  {end} agent {agent} talking->ready
""",
    # bridged, the agent says nothing: the grace finishes it
    """
  0.000 assigned campaign={camp} agent={agent} number=+86{n}
  4.000 answered
  4.020 bridged agent_leg=leg-{agent}
  {end} cleared by=agent
  {end} ended answered status=200 hangup=local
""",
    # abandoned, the agent never reached
    """
  0.000 started target=sip:{n}@gw
  0.000 assigned campaign={camp} agent={agent} number=+86{n}
  5.000 answered
  5.400 classified human
  7.000 cleared by=system reason=abandoned
  7.200 ended answered status=200 hangup=local
""",
]


@st.composite
def floors(draw: st.DrawFn) -> tuple[dict[str, list[Event]], list[str]]:
    """A few calls (each its own agent) and an interleaving that keeps each call's order."""
    count = draw(st.integers(min_value=1, max_value=5))
    calls: dict[str, list[Event]] = {}
    for i in range(count):
        talk = draw(st.floats(min_value=25.0, max_value=90.0).map(lambda s: round(s, 3)))
        text = draw(st.sampled_from(TEMPLATES)).format(
            camp=draw(st.sampled_from(["c1", "c2"])),
            agent=f"a{i}",
            n=f"138{i:08d}",
            end=f"{4.02 + talk:.3f}",
            wrap=f"{4.02 + talk + draw(st.floats(0.1, 30.0)):.3f}",
        )
        start = draw(st.floats(min_value=0.0, max_value=100.0))
        calls[f"call-{i}"] = table(text, call_id=f"call-{i}", mono0=MONO0 + start)
    labels = [call_id for call_id, events in calls.items() for _ in events]
    return calls, draw(st.permutations(labels))


@settings(max_examples=150, deadline=None)
@given(floors())
def test_any_interleaving_gives_each_call_its_own_build(
    floor: tuple[dict[str, list[Event]], list[str]],
) -> None:
    calls, order = floor
    collector = CdrCollector(rule_for)
    position = dict.fromkeys(calls, 0)
    outputs: list[Output] = []
    for call_id in order:
        outputs += collector.feed(calls[call_id][position[call_id]])
        position[call_id] += 1
    outputs += collector.tick(MONO0 + 10_000)
    assert not [o for o in outputs if isinstance(o, Failed)]
    records = finished(outputs)
    assert sorted(records) == sorted(calls)
    for call_id, events in calls.items():
        campaign = records[call_id].campaign
        assert records[call_id] == build(call_id, events, rule_for(campaign))
    assert collector.open_calls() == []


RECORDED = BRIDGED.replace("number=+8613800000001", "number=+8613800000001 record=yes")


def test_a_recorded_call_waits_for_its_recording_to_link_it() -> None:
    collector = CdrCollector(rule_for)
    events = table(
        RECORDED
        + "64.021 agent a1 talking->ready\n"
        + "64.300 recording path=/r/call-1.wav sha256=ab duration=60000 customer_speech=20000\n"
    )
    outputs = feed_all(collector, events[:-1])
    assert finished(outputs) == {}, "finished before its recording was closed"
    record = finished(collector.feed(events[-1]))["call-1"]
    assert record.recording is not None
    assert (record.recording.path, record.recording.customer_speech_ms) == ("/r/call-1.wav", 20000)


def test_a_recording_that_never_comes_lets_the_call_finish_after_the_grace() -> None:
    collector = CdrCollector(rule_for, recording_grace_s=5.0)
    feed_all(collector, table(RECORDED + "64.021 agent a1 talking->ready\n"))
    end = MONO0 + 64.020
    assert collector.tick(end + 4.9) == []
    record = finished(collector.tick(end + 5.0))["call-1"]
    assert record.recording is None
    assert record.talk_ms == 60_000


def test_an_unrecorded_or_unbridged_call_does_not_wait_for_a_recording() -> None:
    collector = CdrCollector(rule_for)
    busy = table(
        "0.000 assigned campaign=c1 agent=a1 number=+8613800000002 record=yes\n"
        "0.010 started target=sip:x@gw\n"
        "0.400 ended busy status=486 hangup=remote\n"
    )
    assert set(finished(feed_all(collector, busy))) == {"call-1"}


def test_a_leg_no_call_was_assigned_to_has_no_record() -> None:
    # An agent's persistent connection: started, answered, ended; never a call of its own.
    collector = CdrCollector(rule_for)
    leg = table(
        "0.0 started target=sip:1001@desk\n0.2 answered\n90.0 ended answered hangup=local",
        call_id="agent-a1-leg",
    )
    assert feed_all(collector, leg) == []
    assert collector.open_calls() == []
