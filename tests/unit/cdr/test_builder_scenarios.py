"""Scenario tests: a call's events as a table in, the whole CDR row out."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from cdr.builder import BuildError, build
from cdr.effective import DEFAULT_RULE, EffectiveRule
from cdr.record import AnsweredBy, CallRecord, Outcome, RecordingRef
from dialer.events import Event

# The scenario helper sits beside its tests (the unit tier has no packages).
sys.path.insert(0, str(Path(__file__).parent))
from scenario import ScenarioError, ms, table

HEAD = """
  t(s)   event
  0.000  assigned campaign=c1 lead=L1 agent=a1 number=+8613800000001 caller_id=+8610000 trunk=t1
  0.010  started target=sip:+8613800000001@gw.example trunk=t1
"""


def row(**fields: Any) -> CallRecord:
    """The expected record: what HEAD says, plus the scenario's own fields."""
    base: dict[str, Any] = {
        "call_id": "call-1",
        "campaign": "c1",
        "lead_id": "L1",
        "agent": "a1",
        "direction": "outbound",
        "mode": "progressive",
        "number": "+8613800000001",
        "trunk": "t1",
        "caller_id": "+8610000",
        "created_at_ms": ms(0),
        "effective_rule": "default@1",
    }
    return CallRecord(**(base | fields))


def cdr(rows: str, rule: EffectiveRule = DEFAULT_RULE, **kwargs: Any) -> CallRecord:
    return build("call-1", table(HEAD + rows), rule, **kwargs)


TALK = """
  0.300  progress 180
  4.000  answered
  4.020  bridged agent_leg=leg-a1
"""

ANSWERED: dict[str, Any] = dict(
    ringing_at_ms=ms(0.3),
    answered_at_ms=ms(4.0),
    bridged_at_ms=ms(4.02),
    ring_ms=3700,
    outcome=Outcome.ANSWERED,
    sip_status=200,
)


def test_answered_and_bridged_customer_hangs_up() -> None:
    record = cdr(
        TALK
        + """
  64.020 ended answered status=200 hangup=remote
  64.020 cleared by=customer
  64.021 agent a1 talking->wrap_up
  70.000 disposition a1 sale
  70.001 agent a1 wrap_up->ready
"""
    )
    assert record == row(
        **ANSWERED,
        ended_at_ms=ms(64.02),
        talk_ms=60_000,
        billable_ms=60_020,
        hangup_by="customer",
        wrap_up_ms=5_980,
        disposition="sale",
        effective=True,
    )


def test_hangup_by_falls_back_to_the_customer_legs_side_without_call_cleared() -> None:
    remote = cdr(TALK + "64.020 ended answered status=200 hangup=remote reason=bye")
    local = cdr(TALK + "64.020 ended answered status=200 hangup=local")
    assert (remote.hangup_by, remote.end_reason) == ("customer", "bye")
    assert (local.hangup_by, local.end_reason) == ("system", "")


def test_agent_hangs_up_from_the_desk() -> None:
    record = cdr(
        TALK
        + """
  50.000 cleared by=agent reason="agent hung up"
  50.030 ended answered status=200 hangup=local
  50.040 agent a1 talking->ready
"""
    )
    assert record == row(
        **ANSWERED,
        ended_at_ms=ms(50.03),
        talk_ms=46_010,
        billable_ms=46_030,
        hangup_by="agent",
        end_reason="agent hung up",
        effective=True,
    )


def test_per_call_agent_leg_ending_first_is_the_agents_hangup() -> None:
    agent_first = cdr(
        TALK
        + """
  50.000 ended answered status=200 hangup=remote call=leg-a1
  50.010 ended answered status=200 hangup=local
"""
    )
    customer_first = cdr(
        TALK
        + """
  50.000 ended answered status=200 hangup=remote
  50.010 ended answered status=200 hangup=local call=leg-a1
"""
    )
    assert agent_first.hangup_by == "agent"
    assert agent_first.talk_ms == 45_990  # the customer leg's end ends the talk
    assert customer_first.hangup_by == "customer"


def test_busy() -> None:
    record = cdr(
        """
  0.300  progress 183 early
  1.500  ended busy status=486 cause=17 hangup=remote reason="user busy"
"""
    )
    assert record == row(
        ringing_at_ms=ms(0.3),
        ended_at_ms=ms(1.5),
        ring_ms=1200,
        outcome=Outcome.BUSY,
        sip_status=486,
        q850_cause=17,
        hangup_by="customer",
        end_reason="user busy",
    )


def test_no_answer_after_our_ring_timeout() -> None:
    record = cdr(
        """
  0.300  progress 180
  30.010 cleared by=system reason=ring_timeout
  30.050 ended cancelled status=487 hangup=local
"""
    )
    assert record == row(
        ringing_at_ms=ms(0.3),
        ended_at_ms=ms(30.05),
        ring_ms=29_750,
        outcome=Outcome.NO_ANSWER,
        sip_status=487,
        hangup_by="system",
        end_reason="ring_timeout",
    )


def test_a_cancel_for_another_reason_stays_cancelled() -> None:
    record = cdr(
        """
  0.300  progress 180
  5.000  cleared by=system reason=sign_out
  5.040  ended cancelled status=487 hangup=local
"""
    )
    assert (record.outcome, record.end_reason) == (Outcome.CANCELLED, "sign_out")


def test_no_answer_from_the_network() -> None:
    record = cdr(
        """
  0.300  progress 180
  40.000 ended no_answer status=480 cause=19 hangup=remote
"""
    )
    assert (record.outcome, record.sip_status, record.q850_cause) == (Outcome.NO_ANSWER, 480, 19)
    assert record.ring_ms == 39_700


def test_invalid_number() -> None:
    record = cdr("0.200  ended invalid_number status=404 cause=1 hangup=remote")
    assert record == row(
        ended_at_ms=ms(0.2),
        outcome=Outcome.INVALID_NUMBER,
        sip_status=404,
        q850_cause=1,
        hangup_by="customer",
    )


ABANDON = """
  0.300  progress 180
  5.000  answered
  5.400  classified {who}
  7.000  cleared by=system reason=abandoned
  7.200  ended answered status=200 hangup=local
  7.210  agent a1 reserved->ready
"""


def test_abandoned_a_live_answer_that_reached_no_agent() -> None:
    record = cdr(ABANDON.format(who="human"))
    assert record == row(
        ringing_at_ms=ms(0.3),
        answered_at_ms=ms(5.0),
        ended_at_ms=ms(7.2),
        ring_ms=4700,
        billable_ms=2200,
        outcome=Outcome.ANSWERED,
        sip_status=200,
        hangup_by="system",
        end_reason="abandoned",
        answered_by=AnsweredBy.HUMAN,
        abandoned=True,
    )


@pytest.mark.parametrize(("who", "abandoned"), [("unknown", True), ("machine", False)])
def test_a_machine_answer_is_not_abandoned(who: str, abandoned: bool) -> None:
    record = cdr(ABANDON.format(who=who))
    assert (record.answered_by, record.abandoned) == (AnsweredBy(who), abandoned)


def test_media_timeout() -> None:
    record = cdr(
        TALK
        + """
  40.000 media_timeout customer silent=5.0
  40.000 cleared by=system reason=media_timeout
  40.050 ended answered status=200 hangup=local
"""
    )
    assert record == row(
        **ANSWERED,
        ended_at_ms=ms(40.05),
        talk_ms=36_030,
        billable_ms=36_050,
        hangup_by="system",
        end_reason="media_timeout",
        media_timeout_leg="customer",
        effective=True,
    )


def test_reinvite_hold_time_is_summed_and_an_open_hold_ends_with_the_call() -> None:
    record = cdr(
        TALK
        + """
  10.000 held
  25.000 unheld
  50.000 held
  50.500 held
  64.020 ended answered status=200 hangup=remote
"""
    )
    assert record.held_ms == 15_000 + 14_020
    assert record.talk_ms == 60_000


def test_transfer_ends_the_attempt_at_the_transfer() -> None:
    record = cdr(
        TALK
        + """
  50.000 transferred new=call-2 to=a2
  50.010 agent a1 talking->wrap_up
  55.000 agent a1 wrap_up->ready
"""
    )
    assert record == row(
        **(ANSWERED | {"sip_status": None, "outcome": Outcome.TRANSFERRED}),
        ended_at_ms=ms(50.0),
        talk_ms=45_980,
        billable_ms=46_000,
        end_reason="transferred to a2 as call-2",
        wrap_up_ms=4990,
        effective=True,
    )


def test_the_customer_legs_events_after_a_transfer_belong_to_the_new_attempt() -> None:
    record = cdr(
        TALK
        + """
  50.000 transferred new=call-2 to=a2
  60.000 held
  90.000 ended answered status=200 hangup=remote
"""
    )
    assert (record.ended_at_ms, record.held_ms, record.sip_status) == (ms(50.0), 0, None)


def test_crash_mid_call_leaves_what_is_known() -> None:
    rows = TALK + "30.000 held\n45.000 dtmf customer 5"
    record = cdr(rows, interrupted=True)
    assert record == row(
        **(ANSWERED | {"sip_status": None, "outcome": Outcome.INTERRUPTED}),
        talk_ms=40_980,
        billable_ms=41_000,
        held_ms=15_000,
    )
    with pytest.raises(BuildError, match=r"has not ended.*interrupted=True"):
        cdr(rows)


def test_crash_after_the_call_was_cleared_counts_to_the_clearing() -> None:
    record = cdr(TALK + "40.000 cleared by=agent\n41.000 dtmf customer 1", interrupted=True)
    assert (record.outcome, record.ended_at_ms, record.talk_ms) == (
        Outcome.INTERRUPTED,
        ms(40.0),
        35_980,
    )
    assert record.hangup_by == "agent"


def test_crash_in_wrap_up_keeps_the_calls_outcome_and_cuts_the_wrap_up() -> None:
    record = cdr(
        TALK
        + """
  64.020 ended answered status=200 hangup=remote
  64.030 agent a1 talking->wrap_up
  66.030 disposition a1 sale
""",
        interrupted=True,
    )
    assert (record.outcome, record.wrap_up_ms, record.effective) == (Outcome.ANSWERED, 2000, True)


def test_recording_closed() -> None:
    record = cdr(
        TALK
        + """
  64.020 ended answered status=200 hangup=remote
  64.300 recording path=/rec/c.wav sha256=ab12 duration=60000 size=1920044 agent_speech=21000 customer_speech=25000 repaired
"""  # noqa: E501 - one row of the table
    )
    assert record.recording == RecordingRef(
        path="/rec/c.wav",
        sha256="ab12",
        duration_ms=60_000,
        size_bytes=1_920_044,
        agent_speech_ms=21_000,
        customer_speech_ms=25_000,
        repaired=True,
    )
    assert record.recording_error is None


def test_recording_failed() -> None:
    record = cdr(
        TALK
        + """
  20.000 recording_failed reason="disk full"
  64.020 ended answered status=200 hangup=remote
"""
    )
    assert (record.recording, record.recording_error) == (None, "disk full")
    assert record.outcome is Outcome.ANSWERED


def talked(seconds: str, extra: str = "") -> list[Event]:
    end = f"{4.020 + float(seconds):.3f}"
    return table(
        HEAD + TALK + extra + f"\n{end} ended answered status=200 hangup=remote\n"
        f"{end} agent a1 talking->wrap_up\n{float(end) + 5:.3f} agent a1 wrap_up->ready"
    )


@pytest.mark.parametrize(("seconds", "effective"), [("29.999", False), ("30.000", True)])
def test_effective_needs_the_minimum_talk_time(seconds: str, effective: bool) -> None:
    record = build("call-1", talked(seconds), DEFAULT_RULE)
    assert (record.talk_ms, record.effective) == (round(float(seconds) * 1000), effective)


def test_a_machine_answer_is_never_effective_when_a_live_person_is_required() -> None:
    events = talked("90", "5.000 classified machine")
    assert build("call-1", events, DEFAULT_RULE).effective is False
    lenient = EffectiveRule(name="any", version=3, live_person_required=False)
    record = build("call-1", events, lenient)
    assert (record.effective, record.effective_rule) == (True, "any@3")


def test_an_excluded_disposition_is_not_effective() -> None:
    rule = EffectiveRule(version=2, excluded_dispositions=frozenset({"wrong_person"}))
    excluded = build("call-1", talked("90", "60.000 disposition a1 wrong_person"), rule)
    counted = build("call-1", talked("90", "60.000 disposition a1 sale"), rule)
    assert (excluded.effective, counted.effective) == (False, True)
    assert excluded.effective_rule == "default@2"


@pytest.mark.parametrize(
    ("recording", "effective"),
    [
        ("", False),  # no recording: the speech cannot be measured
        ("60.000 recording customer_speech=9999", False),
        ("60.000 recording customer_speech=10000", True),
    ],
)
def test_minimum_customer_speech(recording: str, effective: bool) -> None:
    rule = EffectiveRule(min_customer_speech_s=10.0)
    assert build("call-1", talked("90", recording), rule).effective is effective


def test_a_call_never_bridged_is_not_effective_whatever_its_length() -> None:
    record = cdr("1.000 answered\n200.000 ended answered status=200 hangup=remote")
    assert (record.billable_ms, record.effective, record.abandoned) == (199_000, False, True)


def test_without_call_assigned_the_start_says_what_it_can() -> None:
    events = table(
        """
  0.000  started target=sip:+861399@gw trunk=t9
  2.000  ended busy status=486 hangup=remote
"""
    )
    record = build("call-1", events, DEFAULT_RULE)
    assert (record.number, record.trunk, record.agent, record.mode) == (
        "sip:+861399@gw",
        "t9",
        None,
        None,
    )
    assert (record.created_at_ms, record.direction) == (ms(0), "outbound")


def test_an_inbound_call_assigned_after_it_arrived() -> None:
    events = table(
        """
  0.000  incoming caller=+8613900000009 target=sip:400@pbx
  0.500  answered
  1.000  assigned agent=a7 mode=inbound direction=inbound number=+8613900000009
  1.020  bridged agent_leg=leg-a7
  61.020 ended answered status=200 hangup=remote
  61.030 agent a7 talking->ready
"""
    )
    record = build("call-1", events, DEFAULT_RULE)
    assert (record.direction, record.number, record.agent, record.talk_ms) == (
        "inbound",
        "+8613900000009",
        "a7",
        60_000,
    )


def test_an_impossible_stream_names_every_problem() -> None:
    events = table(
        HEAD
        + """
  1.000  answered
  1.500  answered
  2.000  progress 180 call=call-9
  3.000  registered 1001
  4.000  ended answered status=200 hangup=remote
  5.000  disposition a2 sale
"""
    )
    with pytest.raises(BuildError) as raised:
        build("call-1", events, DEFAULT_RULE)
    message = str(raised.value)
    assert message.startswith("call call-1: ")
    assert "event 3 (call_answered): a second answer" in message
    assert "event 4 (call_progress) is of call call-9, not of this call" in message
    assert "event 5 (phone_registered) is not a call's event" in message
    assert "events of agents a2 routed to a call of agent a1" in message


def test_no_event_of_the_call() -> None:
    with pytest.raises(BuildError, match="no event of call call-1 in the stream"):
        build("call-1", table("0.000 assigned agent=a1 call=call-2"), DEFAULT_RULE)
    with pytest.raises(BuildError, match="no event of call call-1"):
        build("call-1", [], DEFAULT_RULE)


def test_events_after_the_end_are_refused() -> None:
    with pytest.raises(BuildError, match=r"event 3 \(call_bridged\) after the call ended"):
        cdr("1.000 ended busy status=486\n2.000 bridged agent_leg=x")


def test_an_unknown_answerer_is_refused() -> None:
    with pytest.raises(BuildError, match="'robot' is not one of human, machine, unknown"):
        cdr("1.000 answered\n1.100 classified robot\n2.000 ended answered status=200")


def test_a_bad_scenario_table_names_every_bad_line() -> None:
    with pytest.raises(ScenarioError) as raised:
        table("0.0 assigned colour=red\nsoon ended busy\n1.0 ringing")
    message = str(raised.value)
    assert "line 1 ('0.0 assigned colour=red'): assigned: unknown keys colour" in message
    assert "line 2 ('soon ended busy'): 'soon' is not a time in seconds" in message
    assert "line 3 ('1.0 ringing'): unknown event 'ringing'" in message
