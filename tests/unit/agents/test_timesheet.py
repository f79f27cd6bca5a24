from __future__ import annotations

import contextlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.agents.state import Agent, AgentInput, AgentPolicy, AgentState, LocalAgentError
from dialer.agents.timesheet import Timesheet, TimesheetError
from dialer.events import AgentStateChanged

S = AgentState


def ev(
    mono: float,
    previous: str,
    state: str,
    reason: str | None = None,
    billable: bool | None = None,
    *,
    agent: str = "a1",
) -> AgentStateChanged:
    return AgentStateChanged(
        at_ms=int(mono * 1000),
        mono=mono,
        agent=agent,
        previous=previous,
        state=state,
        reason=reason,
        billable=billable,
        call_id=None,
    )


# One morning, as the event log shows it.
MORNING = [
    #    mono    previous      state         reason       billable
    ev(10.0, "signed_out", "connecting"),
    ev(12.5, "connecting", "paused", "not_ready", False),
    ev(20.0, "paused", "ready"),
    ev(35.0, "ready", "reserved"),
    ev(40.0, "reserved", "talking"),
    ev(160.0, "talking", "wrap_up"),
    ev(180.0, "wrap_up", "paused", "training", True),
    ev(240.0, "paused", "paused", "break", False),
    ev(300.0, "paused", "ready"),
]


def test_a_morning_sums_exactly() -> None:
    sheet = Timesheet.fold("a1", MORNING, 0.0, 400.0)
    assert dict(sheet.seconds) == {
        S.SIGNED_OUT: 10.0,
        S.CONNECTING: 2.5,
        S.PAUSED: 7.5 + 60.0 + 60.0,
        S.READY: 15.0 + 100.0,  # the open READY counts up to the end
        S.RESERVED: 5.0,
        S.TALKING: 120.0,
        S.WRAP_UP: 20.0,
    }
    assert dict(sheet.pause_seconds) == {"not_ready": 7.5, "training": 60.0, "break": 60.0}
    assert sheet.billable_pause_s == 60.0
    assert sheet.unbillable_pause_s == 67.5
    assert (sheet.talk_s, sheet.wait_s, sheet.wrap_up_s, sheet.pause_s) == (
        120.0,
        115.0,
        20.0,
        127.5,
    )
    assert sheet.signed_in_s == 390.0


def test_a_window_clips_both_ends() -> None:
    sheet = Timesheet.fold("a1", MORNING, 100.0, 200.0)
    assert sheet.seconds[S.TALKING] == 60.0
    assert sheet.seconds[S.WRAP_UP] == 20.0
    assert sheet.seconds[S.PAUSED] == 20.0
    assert sheet.seconds[S.READY] == 0.0
    assert dict(sheet.pause_seconds) == {"training": 20.0}
    assert sum(sheet.seconds.values()) == 100.0


def test_state_before_the_first_event_is_its_previous_with_unknown_reason() -> None:
    events = [ev(50.0, "paused", "ready")]
    sheet = Timesheet.fold("a1", events, 20.0, 60.0)
    assert sheet.seconds[S.PAUSED] == 30.0
    assert dict(sheet.pause_seconds) == {None: 30.0}
    assert sheet.unbillable_pause_s == 30.0
    assert sheet.seconds[S.READY] == 10.0


def test_no_events_means_the_initial_state_throughout() -> None:
    assert Timesheet.fold("a1", [], 0.0, 8.0).seconds[S.SIGNED_OUT] == 8.0
    sheet = Timesheet.fold("a1", [], 0.0, 8.0, initial=S.READY)
    assert sheet.wait_s == 8.0
    assert sheet.signed_in_s == 8.0


def test_an_empty_period_is_all_zero() -> None:
    sheet = Timesheet.fold("a1", MORNING, 50.0, 50.0)
    assert set(sheet.seconds.values()) == {0.0}


@pytest.mark.parametrize(
    ("events", "start", "end", "message"),
    [
        ([ev(1.0, "signed_out", "connecting", agent="b2")], 0.0, 2.0, "agent 'b2'"),
        (
            [ev(5.0, "signed_out", "connecting"), ev(4.0, "connecting", "ready")],
            0.0,
            9.0,
            "event at 4.0 is before the one at 5.0",
        ),
        (
            [ev(1.0, "signed_out", "connecting"), ev(2.0, "talking", "wrap_up")],
            0.0,
            9.0,
            "leaves talking but the agent was connecting; an event is missing",
        ),
        ([ev(1.0, "signed_out", "lunching")], 0.0, 9.0, "unknown state 'lunching'"),
        ([], 5.0, 4.0, "period ends at 4.0, before its start 5.0"),
    ],
)
def test_bad_streams_are_refused(
    events: list[AgentStateChanged], start: float, end: float, message: str
) -> None:
    with pytest.raises(TimesheetError, match=message):
        Timesheet.fold("a1", events, start, end)


# --- property: random valid sequences from the real machine ----------------------

STEP = st.tuples(
    st.sampled_from(list(AgentInput)),
    st.sampled_from([None, "break", "training", "meeting"]),
    st.sampled_from([None, "c1"]),
    st.integers(min_value=0, max_value=40),  # quarter seconds: every sum is exact
)


@given(
    steps=st.lists(STEP, max_size=80),
    limit=st.sampled_from([0.0, 5.0]),
    window=st.tuples(st.integers(-20, 800), st.integers(0, 800)),
)
def test_folded_seconds_match_the_machine(
    steps: list[tuple[AgentInput, str | None, str | None, int]],
    limit: float,
    window: tuple[int, int],
) -> None:
    agent = Agent("a1", AgentPolicy(wrap_up_limit_s=limit))
    events: list[AgentStateChanged] = []
    # What the machine itself says after each step: an oracle independent of the events.
    samples: list[tuple[float, AgentState, str | None, bool]] = [
        (-math.inf, agent.state, None, False)
    ]
    now = 0.0

    def record(event: AgentStateChanged | None) -> None:
        if event is None:
            return
        events.append(event)
        reason = agent.pause_reason
        samples.append(
            (
                event.mono,
                agent.state,
                reason.code if reason else None,
                bool(reason and reason.billable),
            )
        )

    for input, reason, call_id, quarters in steps:
        now += quarters / 4
        record(agent.handle_timer(now, 0))
        with contextlib.suppress(LocalAgentError):  # random inputs are often illegal
            record(agent.apply(input, now, 0, reason=reason, call_id=call_id))

    start = window[0] / 4
    end = start + window[1] / 4
    sheet = Timesheet.fold("a1", events, start, end)

    expected = dict.fromkeys(AgentState, 0.0)
    pauses: dict[str | None, float] = {}
    paid = 0.0
    for (t0, state, code, billable), (t1, *_) in zip(
        samples, [*samples[1:], (end, None, None, False)], strict=True
    ):
        span = max(0.0, min(t1, end) - max(t0, start))
        expected[state] += span
        if state is S.PAUSED and span:
            pauses[code] = pauses.get(code, 0.0) + span
            paid += span if billable else 0.0

    assert dict(sheet.seconds) == expected
    assert all(v >= 0 for v in sheet.seconds.values())
    assert sum(sheet.seconds.values()) == end - start
    assert dict(sheet.pause_seconds) == pauses
    assert sheet.billable_pause_s == paid
    assert sheet.billable_pause_s + sheet.unbillable_pause_s == sheet.pause_s


@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=1e4), min_size=1, max_size=30),
    states=st.data(),
)
def test_arbitrary_float_times_never_go_negative(gaps: list[float], states: st.DataObject) -> None:
    names = [s.value for s in AgentState if s is not S.PAUSED]
    events = []
    now, previous = 0.0, "signed_out"
    for gap in gaps:
        now += gap
        state = states.draw(st.sampled_from(names))
        events.append(ev(now, previous, state))
        previous = state
    sheet = Timesheet.fold("a1", events, 0.0, now + 1.0)
    assert all(v >= 0 for v in sheet.seconds.values())
    assert math.fsum(sheet.seconds.values()) == pytest.approx(now + 1.0, rel=1e-12)
