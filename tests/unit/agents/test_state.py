from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.agents.state import (
    TRANSITIONS,
    Agent,
    AgentInput,
    AgentPolicy,
    AgentState,
    LocalAgentError,
    PauseReason,
)
from dialer.events import AgentStateChanged

S = AgentState
I = AgentInput  # noqa: E741


class Driver:
    """An agent plus a clock that moves one second per input."""

    def __init__(self, policy: AgentPolicy | None = None, agent_id: str = "a1") -> None:
        self.agent = Agent(agent_id, policy)
        self.now = 100.0
        self.at_ms = 1_700_000_000_000

    def step(self, input: AgentInput, **kwargs: str) -> AgentStateChanged | None:
        self.now += 1.0
        self.at_ms += 1000
        return self.agent.apply(input, self.now, self.at_ms, **kwargs)

    def to(self, state: AgentState) -> Driver:
        """Reach ``state`` the ordinary way (phone up, where a phone can be up)."""
        if state is S.SIGNED_OUT:
            return self
        self.step(I.SIGN_IN)
        if state is S.CONNECTING:
            return self
        self.step(I.READY)
        self.step(I.PHONE_CONNECTED)
        if state is S.PAUSED:
            self.step(I.PAUSE, reason="break")
            return self
        if state is S.READY:
            return self
        self.step(I.RESERVE, call_id="c1")
        if state is S.RESERVED:
            return self
        self.step(I.BRIDGED)
        if state is S.TALKING:
            return self
        self.step(I.CALL_ENDED)
        assert state is S.WRAP_UP
        return self


# Expected outcome of every (state, input) pair, written out by hand from the
# rules in the module docstring, not derived from TRANSITIONS. The agent is
# reached by Driver.to (persistent connection, 30 s wrap-up, PAUSED means
# PAUSED("break") with the phone up); PAUSE carries "training", RESERVE "c2".
#   =  allowed, nothing changes     !  refused with LocalAgentError
#   P:xx  PAUSED with reason nr=not_ready pl=phone_lost tr=training wx=wrap_up_exceeded
EXPECTED = """
             SIGN_IN PH_CON PH_LOST READY PAUSE RESERVE RELEASE BRIDGED ENDED WU_DONE WU_TO SIGN_OUT
SIGNED_OUT   CONN    !      =       !     !     !       !       !       !     !       !     =
CONNECTING   =       P:nr   P:pl    =     =     !       !       !       !     !       !     OUT
READY        =       =      P:pl    =     P:tr  RES     !       !       !     !       !     OUT
RESERVED     =       =      P:pl    =     =     !       READY   TALK    !     !       !     !
TALKING      =       =      P:pl    =     =     !       !       !       WRAP  !       !     !
WRAP_UP      =       =      P:pl    READY P:tr  !       !       !       !     READY   P:wx  OUT
PAUSED       =       =      P:pl    READY P:tr  RES     !       !       !     !       !     OUT
"""

COLUMNS = [
    I.SIGN_IN,
    I.PHONE_CONNECTED,
    I.PHONE_LOST,
    I.READY,
    I.PAUSE,
    I.RESERVE,
    I.RELEASE,
    I.BRIDGED,
    I.CALL_ENDED,
    I.WRAP_UP_DONE,
    I.WRAP_UP_TIMEOUT,
    I.SIGN_OUT,
]
CODES = {
    "OUT": (S.SIGNED_OUT, None),
    "CONN": (S.CONNECTING, None),
    "READY": (S.READY, None),
    "RES": (S.RESERVED, None),
    "TALK": (S.TALKING, None),
    "WRAP": (S.WRAP_UP, None),
    "P:nr": (S.PAUSED, "not_ready"),
    "P:pl": (S.PAUSED, "phone_lost"),
    "P:tr": (S.PAUSED, "training"),
    "P:wx": (S.PAUSED, "wrap_up_exceeded"),
}
ARGS: dict[AgentInput, dict[str, str]] = {
    I.PAUSE: {"reason": "training"},
    I.RESERVE: {"call_id": "c2"},
}


def _expectations() -> list[tuple[AgentState, AgentInput, str]]:
    rows = EXPECTED.strip().splitlines()[1:]
    out: list[tuple[AgentState, AgentInput, str]] = []
    for row in rows:
        name, *cells = row.split()
        assert len(cells) == len(COLUMNS), name
        out.extend(
            (AgentState[name], column, cell) for column, cell in zip(COLUMNS, cells, strict=True)
        )
    return out


ALL_PAIRS = _expectations()


def test_expectations_cover_every_pair() -> None:
    assert len(ALL_PAIRS) == len(S) * len(I)
    assert {(s, i) for s, i, _ in ALL_PAIRS} == {(s, i) for s in S for i in I}


def test_table_holds_exactly_the_allowed_pairs() -> None:
    assert set(TRANSITIONS) == {(s, i) for s, i, cell in ALL_PAIRS if cell != "!"}


@pytest.mark.parametrize(("state", "input", "cell"), ALL_PAIRS)
def test_every_pair(state: AgentState, input: AgentInput, cell: str) -> None:
    d = Driver().to(state)
    assert d.agent.state is state
    before_reason = d.agent.pause_reason
    if cell == "!":
        with pytest.raises(LocalAgentError) as err:
            d.step(input, **ARGS.get(input, {}))
        assert f"{input.name} is not allowed while {state.name}" in str(err.value)
        assert d.agent.state is state
        return
    event = d.step(input, **ARGS.get(input, {}))
    if cell == "=":
        assert event is None
        assert d.agent.state is state
        assert d.agent.pause_reason == before_reason
        return
    expected_state, expected_reason = CODES[cell]
    assert event is not None
    assert (event.previous, event.state, event.reason) == (
        state.value,
        expected_state.value,
        expected_reason,
    )
    assert (event.mono, event.at_ms, event.agent) == (d.now, d.at_ms, "a1")
    assert d.agent.state is expected_state
    assert d.agent.since == d.now


def test_refusal_while_talking_explains_itself() -> None:
    d = Driver().to(S.TALKING)
    with pytest.raises(LocalAgentError, match=r"SIGN_OUT is not allowed while TALKING \(call c1\)"):
        d.step(I.SIGN_OUT)
    with pytest.raises(LocalAgentError, match="end the call first"):
        d.step(I.SIGN_OUT)


def test_non_persistent_sign_in_is_not_ready_with_phone() -> None:
    d = Driver(AgentPolicy(persistent_connection=False))
    event = d.step(I.SIGN_IN)
    assert event is not None
    assert (event.state, event.reason, event.billable) == ("paused", "not_ready", False)
    assert d.agent.phone_connected
    ready = d.step(I.READY)
    assert ready is not None and ready.state == "ready"


def test_ready_while_connecting_is_applied_at_phone_connected() -> None:
    d = Driver()
    d.step(I.SIGN_IN)
    assert not d.agent.phone_connected
    assert d.step(I.READY) is None
    assert d.agent.state is S.CONNECTING
    event = d.step(I.PHONE_CONNECTED)
    assert event is not None and (event.previous, event.state) == ("connecting", "ready")
    assert d.agent.phone_connected


def test_pause_while_connecting_is_applied_at_phone_connected() -> None:
    d = Driver()
    d.step(I.SIGN_IN)
    d.step(I.READY)
    assert d.step(I.PAUSE, reason="meeting") is None
    event = d.step(I.PHONE_CONNECTED)
    assert event is not None
    assert (event.state, event.reason, event.billable) == ("paused", "meeting", True)


SIGNED_IN = [s for s in S if s is not S.SIGNED_OUT]


@pytest.mark.parametrize("state", SIGNED_IN)
def test_phone_loss_from_every_signed_in_state_pauses(state: AgentState) -> None:
    d = Driver().to(state)
    event = d.step(I.PHONE_LOST)
    assert event is not None
    assert (event.previous, event.state, event.reason, event.billable) == (
        state.value,
        "paused",
        "phone_lost",
        False,
    )
    assert event.call_id == ("c1" if state in (S.RESERVED, S.TALKING, S.WRAP_UP) else None)
    assert d.agent.state is S.PAUSED
    assert not d.agent.phone_connected
    assert d.agent.current_call is None
    assert d.agent.next_deadline() is None
    assert d.step(I.PHONE_LOST) is None
    with pytest.raises(LocalAgentError, match="phone is not connected"):
        d.step(I.RESERVE, call_id="c9")


@pytest.mark.parametrize(
    ("state", "after"),
    [
        (S.READY, ("paused", "not_ready")),
        (S.TALKING, ("paused", "not_ready")),
        (S.PAUSED, ("paused", "break")),
        (S.CONNECTING, ("paused", "not_ready")),
    ],
)
def test_phone_back_resumes_a_safe_state(state: AgentState, after: tuple[str, str | None]) -> None:
    d = Driver().to(state)
    d.step(I.PHONE_LOST)
    event = d.step(I.PHONE_CONNECTED)
    assert event is not None
    assert (event.state, event.reason) == after


def test_ready_asked_while_connecting_survives_a_failed_attempt() -> None:
    d = Driver().to(S.CONNECTING)
    d.step(I.READY)
    lost = d.step(I.PHONE_LOST)
    assert lost is not None and (lost.previous, lost.reason) == ("connecting", "phone_lost")
    event = d.step(I.PHONE_CONNECTED)
    assert event is not None and (event.previous, event.state) == ("paused", "ready")


def test_ready_while_phone_is_down_waits_for_the_phone() -> None:
    d = Driver().to(S.PAUSED)
    d.step(I.PHONE_LOST)
    d.step(I.PAUSE, reason="toilet")
    assert d.agent.pause_reason is not None and d.agent.pause_reason.code == "toilet"
    event = d.step(I.READY)
    assert event is not None and (event.state, event.reason) == ("paused", "phone_lost")
    event = d.step(I.PHONE_CONNECTED)
    assert event is not None and event.state == "ready"


def test_pause_while_talking_applies_after_wrap_up() -> None:
    d = Driver().to(S.TALKING)
    assert d.step(I.PAUSE, reason="break") is None
    assert d.agent.state is S.TALKING
    assert d.agent.pending_pause is not None and d.agent.pending_pause.code == "break"
    wrap = d.step(I.CALL_ENDED)
    assert wrap is not None and wrap.state == "wrap_up"
    done = d.step(I.WRAP_UP_DONE)
    assert done is not None
    assert (done.previous, done.state, done.reason, done.call_id) == (
        "wrap_up",
        "paused",
        "break",
        "c1",
    )
    assert d.agent.pending_pause is None
    assert d.agent.current_call is None


def test_pause_while_talking_without_wrap_up_applies_at_call_end() -> None:
    d = Driver(AgentPolicy(wrap_up_limit_s=0)).to(S.TALKING)
    d.step(I.PAUSE, reason="training")
    event = d.step(I.CALL_ENDED)
    assert event is not None
    assert (event.previous, event.state, event.reason, event.billable) == (
        "talking",
        "paused",
        "training",
        True,
    )
    assert d.agent.next_deadline() is None


def test_ready_while_talking_cancels_the_pending_pause() -> None:
    d = Driver(AgentPolicy(wrap_up_limit_s=0)).to(S.TALKING)
    d.step(I.PAUSE, reason="break")
    d.step(I.READY)
    event = d.step(I.CALL_ENDED)
    assert event is not None and event.state == "ready"


def test_pause_while_reserved_applies_at_release() -> None:
    d = Driver().to(S.RESERVED)
    d.step(I.PAUSE, reason="meeting")
    event = d.step(I.RELEASE, call_id="c1")
    assert event is not None and (event.state, event.reason) == ("paused", "meeting")


def test_manual_dial_from_a_pause_returns_to_it() -> None:
    d = Driver().to(S.PAUSED)
    d.step(I.RESERVE, call_id="m1")
    d.step(I.BRIDGED)
    d.step(I.CALL_ENDED)
    event = d.step(I.WRAP_UP_DONE)
    assert event is not None and (event.state, event.reason, event.call_id) == (
        "paused",
        "break",
        "m1",
    )


def test_wrap_up_times_out_at_the_limit_with_stepped_time() -> None:
    d = Driver(AgentPolicy(wrap_up_limit_s=30.0)).to(S.TALKING)
    d.now = 200.0
    wrap = d.agent.apply(I.CALL_ENDED, 200.0, 5_000)
    assert wrap is not None and wrap.state == "wrap_up"
    assert d.agent.next_deadline() == 230.0
    assert d.agent.handle_timer(229.999, 34_999) is None
    assert d.agent.state is S.WRAP_UP
    event = d.agent.handle_timer(230.25, 35_250)
    assert event is not None
    assert (event.mono, event.at_ms) == (230.0, 35_000)  # cut at the limit, not when late
    assert (event.state, event.reason, event.billable) == ("paused", "wrap_up_exceeded", False)
    assert d.agent.next_deadline() is None
    assert d.agent.handle_timer(1000.0, 0) is None


def test_wrap_up_timeout_prefers_the_pending_pause() -> None:
    d = Driver(AgentPolicy(wrap_up_limit_s=5.0)).to(S.TALKING)
    d.step(I.PAUSE, reason="toilet")
    d.step(I.CALL_ENDED)
    deadline = d.agent.next_deadline()
    assert deadline == d.now + 5.0
    event = d.agent.handle_timer(deadline, 0)
    assert event is not None and event.reason == "toilet"


def test_wrap_up_done_early_disarms_the_timer() -> None:
    d = Driver(AgentPolicy(wrap_up_limit_s=30.0)).to(S.WRAP_UP)
    deadline = d.agent.next_deadline()
    assert deadline is not None
    d.step(I.WRAP_UP_DONE)
    assert d.agent.next_deadline() is None
    assert d.agent.handle_timer(deadline + 1, 0) is None
    assert d.agent.state is S.READY


def test_pause_reason_is_checked() -> None:
    d = Driver().to(S.READY)
    with pytest.raises(LocalAgentError) as err:
        d.step(I.PAUSE, reason="smoke")
    assert str(err.value) == (
        "unknown pause reason 'smoke'; known reasons: break, toilet, training, meeting"
    )
    with pytest.raises(LocalAgentError, match="PAUSE needs a reason; known reasons: break"):
        d.step(I.PAUSE)
    with pytest.raises(LocalAgentError, match="unknown pause reason 'phone_lost'"):
        d.step(I.PAUSE, reason="phone_lost")
    with pytest.raises(LocalAgentError, match="READY takes no reason"):
        d.step(I.READY, reason="break")
    assert d.agent.state is S.READY


def test_call_ids_are_checked() -> None:
    d = Driver().to(S.READY)
    with pytest.raises(LocalAgentError, match="RESERVE needs a call_id"):
        d.step(I.RESERVE)
    d.step(I.RESERVE, call_id="c1")
    with pytest.raises(
        LocalAgentError, match="BRIDGED for call 'c7', but the agent's call is 'c1'"
    ):
        d.step(I.BRIDGED, call_id="c7")
    with pytest.raises(LocalAgentError, match="PAUSE takes no call_id"):
        d.step(I.PAUSE, reason="break", call_id="c1")
    event = d.step(I.BRIDGED, call_id="c1")
    assert event is not None and event.call_id == "c1"
    assert d.agent.current_call == "c1"


def test_time_must_not_go_backwards() -> None:
    d = Driver().to(S.READY)
    with pytest.raises(LocalAgentError, match="time must not go backwards"):
        d.agent.apply(I.PAUSE, d.now - 0.5, 0, reason="break")


def test_sign_out_resets_everything() -> None:
    d = Driver().to(S.WRAP_UP)
    event = d.step(I.SIGN_OUT)
    assert event is not None and (event.previous, event.state, event.call_id) == (
        "wrap_up",
        "signed_out",
        "c1",
    )
    assert not d.agent.phone_connected
    assert d.agent.current_call is None
    assert d.agent.next_deadline() is None
    assert d.agent.pending_pause is None


# --- policy -------------------------------------------------------------------


def test_policy_defaults() -> None:
    policy = AgentPolicy()
    assert {r.code: r.billable for r in policy.pause_reasons} == {
        "break": False,
        "toilet": False,
        "training": True,
        "meeting": True,
    }
    assert policy.persistent_connection
    assert policy.wrap_up_limit_s == 30.0


def test_policy_reports_every_bad_setting_at_once() -> None:
    dup = PauseReason("lunch", "Lunch", billable=False)
    with pytest.raises(LocalAgentError) as err:
        AgentPolicy(pause_reasons=(dup, dup), wrap_up_limit_s=-1)
    assert str(err.value) == (
        "invalid agent policy: pause_reasons has duplicate codes: lunch; "
        "wrap_up_limit_s must be a finite number >= 0, got -1"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pause_reasons": ()}, "pause_reasons must not be empty"),
        (
            {"pause_reasons": (PauseReason("phone_lost", "x", billable=True),)},
            "pause_reasons uses system codes: phone_lost",
        ),
        ({"wrap_up_limit_s": math.nan}, "wrap_up_limit_s must be a finite number >= 0"),
        ({"wrap_up_limit_s": math.inf}, "wrap_up_limit_s must be a finite number >= 0"),
    ],
)
def test_policy_rejects(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(LocalAgentError, match=message):
        AgentPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("code", "label"), [("", "x"), ("two words", "x"), ("ok", " ")])
def test_pause_reason_rejects(code: str, label: str) -> None:
    with pytest.raises(LocalAgentError):
        PauseReason(code, label, billable=False)


# --- reconciliation -------------------------------------------------------------


def test_reconcile_when_beliefs_match_changes_nothing() -> None:
    for state, phone, call in [
        (S.SIGNED_OUT, False, None),
        (S.CONNECTING, False, None),
        (S.READY, True, None),
        (S.RESERVED, True, None),  # still ringing or previewed: not drift
        (S.TALKING, True, "c1"),
        (S.WRAP_UP, True, None),
        (S.PAUSED, True, None),
    ]:
        d = Driver().to(state)
        assert d.agent.reconcile(phone, call, d.now + 1, 0) == [], state
        assert d.agent.drift_corrections == 0
        assert d.agent.state is state


def test_reconcile_talking_without_a_call_ends_it() -> None:
    d = Driver().to(S.TALKING)
    events = d.agent.reconcile(True, None, d.now + 1, 0)
    assert [(e.previous, e.state, e.call_id) for e in events] == [("talking", "wrap_up", "c1")]
    assert d.agent.drift_corrections == 1
    assert d.agent.next_deadline() == d.now + 31


def test_reconcile_ready_without_phone_pauses() -> None:
    d = Driver().to(S.READY)
    events = d.agent.reconcile(False, None, d.now + 1, 0)
    assert [(e.state, e.reason) for e in events] == [("paused", "phone_lost")]
    assert d.agent.drift_corrections == 1
    assert d.agent.reconcile(False, None, d.now + 2, 0) == []
    assert d.agent.drift_corrections == 1


def test_reconcile_missed_phone_connected() -> None:
    d = Driver().to(S.CONNECTING)
    events = d.agent.reconcile(True, None, d.now + 1, 0)
    assert [(e.previous, e.state, e.reason) for e in events] == [
        ("connecting", "paused", "not_ready")
    ]
    assert d.agent.drift_corrections == 1


def test_reconcile_missed_bridge() -> None:
    d = Driver().to(S.RESERVED)
    events = d.agent.reconcile(True, "c1", d.now + 1, 0)
    assert [(e.previous, e.state) for e in events] == [("reserved", "talking")]
    assert d.agent.drift_corrections == 1


def test_reconcile_adopts_an_unknown_call_from_ready() -> None:
    d = Driver().to(S.READY)
    events = d.agent.reconcile(True, "x9", d.now + 1, 0)
    assert [(e.state, e.call_id) for e in events] == [("reserved", "x9"), ("talking", "x9")]
    assert d.agent.current_call == "x9"
    assert d.agent.drift_corrections == 1


def test_reconcile_talking_on_another_call_counts_two_fixes() -> None:
    d = Driver().to(S.TALKING)
    events = d.agent.reconcile(True, "x9", d.now + 1, 0)
    assert [(e.state, e.call_id) for e in events] == [
        ("wrap_up", "c1"),
        ("ready", "c1"),
        ("reserved", "x9"),
        ("talking", "x9"),
    ]
    assert d.agent.drift_corrections == 2


def test_reconcile_phone_down_while_talking() -> None:
    d = Driver().to(S.TALKING)
    events = d.agent.reconcile(False, None, d.now + 1, 0)
    assert [(e.previous, e.state, e.reason) for e in events] == [
        ("talking", "paused", "phone_lost")
    ]
    assert d.agent.drift_corrections == 1


def test_reconcile_signed_out_is_left_alone() -> None:
    d = Driver()
    assert d.agent.reconcile(True, "c1", 1.0, 0) == []
    assert d.agent.drift_corrections == 0


# --- properties over random input sequences -------------------------------------

STEP = st.tuples(
    st.sampled_from(list(I)),
    st.sampled_from([None, "break", "training", "nope"]),
    st.sampled_from([None, "c1", "c2"]),
    st.floats(min_value=0.0, max_value=50.0),
)


@given(
    steps=st.lists(STEP, max_size=60),
    persistent=st.booleans(),
    limit=st.sampled_from([0.0, 10.0]),
)
def test_random_inputs_keep_the_invariants(
    steps: list[tuple[AgentInput, str | None, str | None, float]],
    persistent: bool,
    limit: float,
) -> None:
    agent = Agent("a1", AgentPolicy(wrap_up_limit_s=limit, persistent_connection=persistent))
    now = 0.0
    for input, reason, call_id, dt in steps:
        now += dt
        before = agent.state
        if agent.handle_timer(now, 0) is not None:
            before = agent.state
        try:
            event = agent.apply(input, now, 0, reason=reason, call_id=call_id)
        except LocalAgentError:
            assert agent.state is before
            continue
        if event is not None:
            assert event.previous == before.value
            assert event.state == agent.state.value
            assert agent.since == now
            assert (event.reason is None) == (agent.state is not S.PAUSED)
        else:
            assert agent.state is before
        if not agent.phone_connected:
            assert agent.state in (S.SIGNED_OUT, S.CONNECTING, S.PAUSED)
        assert (agent.current_call is not None) == (
            agent.state in (S.RESERVED, S.TALKING, S.WRAP_UP)
        )
        assert (agent.next_deadline() is not None) == (agent.state is S.WRAP_UP and limit > 0)
        assert (agent.pause_reason is not None) == (agent.state is S.PAUSED)
