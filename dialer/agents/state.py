"""One agent's state machine: sign-in, desk phone, calls, wrap-up and pauses.

Sans-IO: the caller feeds inputs with ``now`` (monotonic seconds) and
``at_ms`` (wall-clock UTC milliseconds) and gets back the ``AgentStateChanged``
to publish, plus the next timer deadline. Legality lives in ``TRANSITIONS``;
a pair missing from it is refused with a ``LocalAgentError`` naming the state
and the input.

Decisions (documented here because callers depend on them):

- The agent is never READY without a phone. ``PHONE_LOST`` from any signed-in
  state goes to PAUSED("phone_lost"), ending any call or wrap-up for this
  agent. When the phone comes back the agent resumes the pause it was in, or
  PAUSED("not_ready") if it was working: an agent whose phone dropped may have
  left the desk, and an auto-answering phone would bridge customers to an
  empty chair.
- With a persistent connection SIGN_IN goes to CONNECTING; PHONE_CONNECTED
  then lands in PAUSED("not_ready") unless READY (or a PAUSE) was asked for
  meanwhile. Without one (manual/preview, the phone is rung per call) SIGN_IN
  goes straight to PAUSED("not_ready"), the registered phone being taken as
  reachable until the caller says PHONE_LOST. Either way calls reach an agent
  only after an explicit READY.
- While a call is attached (RESERVED, TALKING) PAUSE is remembered, not
  applied: when the call is over (after wrap-up, if any) the agent goes to that
  pause instead of READY. READY in those states cancels the remembered pause.
  In WRAP_UP, READY and PAUSE end the after-call work at once.
- SIGN_OUT is refused while RESERVED or TALKING (release or end the call
  first); it is accepted in WRAP_UP and ends it.
- WRAP_UP_TIMEOUT goes to PAUSED("wrap_up_exceeded"), not READY, for the same
  empty-chair reason; a remembered pause takes precedence.
- RESERVE is accepted from PAUSED (with the phone up) for the agent's own
  manual dial; the agent returns to the same pause when the call is over.
- System pause reasons ("not_ready", "phone_lost", "wrap_up_exceeded") are
  not billable and cannot be chosen by agents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum, StrEnum

from dialer.events import AgentStateChanged


class AgentError(Exception):
    """Base of every error raised by ``dialer.agents``."""


class LocalAgentError(AgentError):
    """The caller asked an agent (or a policy) for something it cannot do."""


class AgentState(StrEnum):
    SIGNED_OUT = "signed_out"
    CONNECTING = "connecting"  # the service is calling the desk phone (nailed-up leg)
    READY = "ready"  # waiting for a call
    RESERVED = "reserved"  # a call is being placed or offered for this agent
    TALKING = "talking"  # bridged to a customer
    WRAP_UP = "wrap_up"  # after-call work
    PAUSED = "paused"


class AgentInput(StrEnum):
    SIGN_IN = "sign_in"
    PHONE_CONNECTED = "phone_connected"
    PHONE_LOST = "phone_lost"  # the desk phone dropped or unregistered
    READY = "ready"
    PAUSE = "pause"
    RESERVE = "reserve"
    RELEASE = "release"  # the reservation ended without a bridge
    BRIDGED = "bridged"
    CALL_ENDED = "call_ended"
    WRAP_UP_DONE = "wrap_up_done"
    WRAP_UP_TIMEOUT = "wrap_up_timeout"
    SIGN_OUT = "sign_out"


class Via(Enum):
    """Table targets that depend on the agent's context, resolved by ``Agent``."""

    STAY = "stay"  # allowed; may update what the agent wants next, never the state
    SIGNED_IN = "signed_in"  # CONNECTING with a nailed-up phone, else PAUSED(not_ready)
    AVAILABLE = "available"  # READY, or the pause remembered, or PAUSED(phone_lost)
    AFTER_CALL = "after_call"  # WRAP_UP when a limit is set, else AVAILABLE


_S = AgentState
_I = AgentInput

TRANSITIONS: dict[tuple[AgentState, AgentInput], AgentState | Via] = {
    (_S.SIGNED_OUT, _I.SIGN_IN): Via.SIGNED_IN,
    # The nailed-up leg's BYE can arrive after we signed the agent out.
    (_S.SIGNED_OUT, _I.PHONE_LOST): Via.STAY,
    (_S.SIGNED_OUT, _I.SIGN_OUT): Via.STAY,
    (_S.CONNECTING, _I.SIGN_IN): Via.STAY,
    (_S.CONNECTING, _I.PHONE_CONNECTED): Via.AVAILABLE,
    (_S.CONNECTING, _I.PHONE_LOST): _S.PAUSED,
    (_S.CONNECTING, _I.READY): Via.STAY,
    (_S.CONNECTING, _I.PAUSE): Via.STAY,
    (_S.CONNECTING, _I.SIGN_OUT): _S.SIGNED_OUT,
    (_S.READY, _I.SIGN_IN): Via.STAY,
    (_S.READY, _I.PHONE_CONNECTED): Via.STAY,
    (_S.READY, _I.PHONE_LOST): _S.PAUSED,
    (_S.READY, _I.READY): Via.STAY,
    (_S.READY, _I.PAUSE): _S.PAUSED,
    (_S.READY, _I.RESERVE): _S.RESERVED,
    (_S.READY, _I.SIGN_OUT): _S.SIGNED_OUT,
    (_S.RESERVED, _I.SIGN_IN): Via.STAY,
    (_S.RESERVED, _I.PHONE_CONNECTED): Via.STAY,
    (_S.RESERVED, _I.PHONE_LOST): _S.PAUSED,
    (_S.RESERVED, _I.READY): Via.STAY,
    (_S.RESERVED, _I.PAUSE): Via.STAY,
    (_S.RESERVED, _I.RELEASE): Via.AVAILABLE,
    (_S.RESERVED, _I.BRIDGED): _S.TALKING,
    (_S.TALKING, _I.SIGN_IN): Via.STAY,
    (_S.TALKING, _I.PHONE_CONNECTED): Via.STAY,
    (_S.TALKING, _I.PHONE_LOST): _S.PAUSED,
    (_S.TALKING, _I.READY): Via.STAY,
    (_S.TALKING, _I.PAUSE): Via.STAY,
    (_S.TALKING, _I.CALL_ENDED): Via.AFTER_CALL,
    (_S.WRAP_UP, _I.SIGN_IN): Via.STAY,
    (_S.WRAP_UP, _I.PHONE_CONNECTED): Via.STAY,
    (_S.WRAP_UP, _I.PHONE_LOST): _S.PAUSED,
    (_S.WRAP_UP, _I.READY): Via.AVAILABLE,
    (_S.WRAP_UP, _I.PAUSE): _S.PAUSED,
    (_S.WRAP_UP, _I.WRAP_UP_DONE): Via.AVAILABLE,
    (_S.WRAP_UP, _I.WRAP_UP_TIMEOUT): _S.PAUSED,
    (_S.WRAP_UP, _I.SIGN_OUT): _S.SIGNED_OUT,
    (_S.PAUSED, _I.SIGN_IN): Via.STAY,
    (_S.PAUSED, _I.PHONE_CONNECTED): Via.AVAILABLE,
    (_S.PAUSED, _I.PHONE_LOST): _S.PAUSED,
    (_S.PAUSED, _I.READY): Via.AVAILABLE,
    (_S.PAUSED, _I.PAUSE): _S.PAUSED,
    (_S.PAUSED, _I.RESERVE): _S.RESERVED,
    (_S.PAUSED, _I.SIGN_OUT): _S.SIGNED_OUT,
}

# Why some missing pairs are missing, for an error the desk UI can show as is.
_REFUSALS: dict[tuple[AgentState, AgentInput], str] = {
    (_S.RESERVED, _I.SIGN_OUT): "release the reservation first",
    (_S.TALKING, _I.SIGN_OUT): "end the call first",
    (_S.RESERVED, _I.RESERVE): "it already has a call",
    (_S.TALKING, _I.RESERVE): "it already has a call",
    (_S.WRAP_UP, _I.RESERVE): "it is still in wrap-up",
    (_S.RESERVED, _I.CALL_ENDED): "a call that was never bridged is RELEASEd",
}

_WITH_CALL = frozenset({_S.RESERVED, _S.TALKING, _S.WRAP_UP})
_CALL_INPUTS = frozenset({_I.BRIDGED, _I.RELEASE, _I.CALL_ENDED, _I.WRAP_UP_DONE})


@dataclass(frozen=True, slots=True)
class PauseReason:
    """Why an agent is paused; ``billable`` says whether it is paid working time."""

    code: str
    label: str
    billable: bool

    def __post_init__(self) -> None:
        if not self.code or self.code != self.code.strip() or " " in self.code:
            raise LocalAgentError(f"pause reason code {self.code!r} must be a non-empty word")
        if not self.label.strip():
            raise LocalAgentError(f"pause reason {self.code!r} needs a label")


NOT_READY = PauseReason("not_ready", "Signed in, not ready", billable=False)
PHONE_LOST = PauseReason("phone_lost", "Desk phone lost", billable=False)
WRAP_UP_EXCEEDED = PauseReason("wrap_up_exceeded", "Wrap-up time exceeded", billable=False)
SYSTEM_REASONS: tuple[PauseReason, ...] = (NOT_READY, PHONE_LOST, WRAP_UP_EXCEEDED)

DEFAULT_PAUSE_REASONS: tuple[PauseReason, ...] = (
    PauseReason("break", "Break", billable=False),
    PauseReason("toilet", "Toilet", billable=False),
    PauseReason("training", "Training", billable=True),
    PauseReason("meeting", "Meeting", billable=True),
)


@dataclass(frozen=True, slots=True)
class AgentPolicy:
    """How agents of a floor work; every problem is reported at once, by setting name."""

    pause_reasons: tuple[PauseReason, ...] = DEFAULT_PAUSE_REASONS
    wrap_up_limit_s: float = 30.0  # 0 disables wrap-up: CALL_ENDED goes straight on
    persistent_connection: bool = True

    def __post_init__(self) -> None:
        problems: list[str] = []
        codes = [r.code for r in self.pause_reasons]
        if not codes:
            problems.append("pause_reasons must not be empty")
        duplicated = sorted({c for c in codes if codes.count(c) > 1})
        if duplicated:
            problems.append(f"pause_reasons has duplicate codes: {', '.join(duplicated)}")
        reserved = sorted(set(codes) & {r.code for r in SYSTEM_REASONS})
        if reserved:
            problems.append(f"pause_reasons uses system codes: {', '.join(reserved)}")
        if not math.isfinite(self.wrap_up_limit_s) or self.wrap_up_limit_s < 0:
            problems.append(
                f"wrap_up_limit_s must be a finite number >= 0, got {self.wrap_up_limit_s!r}"
            )
        if problems:
            raise LocalAgentError("invalid agent policy: " + "; ".join(problems))

    def pause_reason(self, code: str) -> PauseReason:
        for reason in self.pause_reasons:
            if reason.code == code:
                return reason
        known = ", ".join(r.code for r in self.pause_reasons)
        raise LocalAgentError(f"unknown pause reason {code!r}; known reasons: {known}")


class Agent:
    """One agent's machine. Not thread-safe; owned by the loop that feeds it."""

    __slots__ = (
        "_call",
        "_deadline",
        "_pending",
        "_phone",
        "_reason",
        "_since",
        "_state",
        "agent_id",
        "drift_corrections",
        "policy",
    )

    def __init__(self, agent_id: str, policy: AgentPolicy | None = None) -> None:
        self.agent_id = agent_id
        self.policy = policy if policy is not None else AgentPolicy()
        self.drift_corrections = 0  # exported as a counter by metrics
        self._state = AgentState.SIGNED_OUT
        self._reason: PauseReason | None = None  # set only while PAUSED
        # What the agent becomes when it is next available: that pause, or READY if None.
        self._pending: PauseReason | None = None
        self._phone = False
        self._call: str | None = None
        self._deadline: float | None = None
        self._since: float | None = None

    @property
    def state(self) -> AgentState:
        return self._state

    @property
    def since(self) -> float | None:
        """Monotonic instant of the last state change; None before the first."""
        return self._since

    @property
    def phone_connected(self) -> bool:
        return self._phone

    @property
    def current_call(self) -> str | None:
        return self._call

    @property
    def pause_reason(self) -> PauseReason | None:
        return self._reason

    @property
    def pending_pause(self) -> PauseReason | None:
        """The pause the agent goes to instead of READY when next available."""
        return self._pending

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` must be called next (the end of wrap-up)."""
        return self._deadline

    def handle_timer(self, now: float, at_ms: int) -> AgentStateChanged | None:
        if self._deadline is None or now < self._deadline:
            return None
        # Wrap-up ends at the limit, not when a late timer happened to fire, so
        # the timesheet shows exactly the configured wrap-up seconds.
        late_ms = round((now - self._deadline) * 1000)
        return self.apply(AgentInput.WRAP_UP_TIMEOUT, self._deadline, at_ms - late_ms)

    def apply(
        self,
        input: AgentInput,
        now: float,
        at_ms: int,
        *,
        reason: str | None = None,
        call_id: str | None = None,
    ) -> AgentStateChanged | None:
        """Feed one input; the event to publish, or None if nothing changed."""
        target = TRANSITIONS.get((self._state, input))
        if target is None:
            raise LocalAgentError(self._refusal(input))
        if self._since is not None and now < self._since:
            raise LocalAgentError(
                f"agent {self.agent_id}: {input.name} at {now} is before the last change "
                f"at {self._since}; time must not go backwards"
            )
        pause = self._check_arguments(input, reason, call_id)
        if input is AgentInput.PHONE_CONNECTED and self._phone:
            target = Via.STAY  # a re-registration or a repeated report
        if input is AgentInput.PHONE_LOST and not self._phone and self._state is _S.PAUSED:
            target = Via.STAY

        match target:
            case Via.STAY:
                if input is AgentInput.READY:
                    self._pending = None
                elif input is AgentInput.PAUSE:
                    self._pending = pause
                return None
            case Via.SIGNED_IN:
                if self.policy.persistent_connection:
                    self._phone = False
                    self._pending = NOT_READY
                    return self._move(_S.CONNECTING, None, now, at_ms)
                self._phone = True
                return self._move(_S.PAUSED, NOT_READY, now, at_ms)
            case Via.AVAILABLE:
                if input is AgentInput.READY:
                    self._pending = None
                elif input is AgentInput.PHONE_CONNECTED:
                    self._phone = True
                return self._available(now, at_ms)
            case Via.AFTER_CALL:
                if self.policy.wrap_up_limit_s > 0:
                    self._deadline = now + self.policy.wrap_up_limit_s
                    return self._move(_S.WRAP_UP, None, now, at_ms, call=self._call)
                return self._available(now, at_ms)
            case AgentState.PAUSED:
                return self._to_paused(input, pause, now, at_ms)
            case AgentState.RESERVED:
                if not self._phone:
                    raise LocalAgentError(
                        f"agent {self.agent_id}: RESERVE is not allowed while its phone "
                        "is not connected"
                    )
                # A manual dial from a pause returns to that pause afterwards.
                self._pending = self._reason
                return self._move(_S.RESERVED, None, now, at_ms, call=call_id)
            case AgentState.TALKING:
                return self._move(_S.TALKING, None, now, at_ms, call=self._call)
            case AgentState.SIGNED_OUT:
                self._phone = False
                self._pending = None
                self._deadline = None
                return self._move(_S.SIGNED_OUT, None, now, at_ms)
            case _:
                raise AssertionError(f"unhandled table target {target!r}")

    def reconcile(
        self, actual_phone_up: bool, actual_call: str | None, now: float, at_ms: int
    ) -> list[AgentStateChanged]:
        """Make the machine agree with the real legs, through ordinary transitions.

        ``actual_phone_up`` is whether the desk phone is connected (nailed-up leg
        answered, or registered for per-call agents); ``actual_call`` is the call
        the agent is bridged to right now, if any. A RESERVED agent with no
        bridged call is not drift: the call may still be ringing or previewed.
        Each correction adds one to ``drift_corrections``.
        """
        events: list[AgentStateChanged] = []

        def run(input: AgentInput, call_id: str | None = None) -> None:
            event = self.apply(input, now, at_ms, call_id=call_id)
            if event is not None:
                events.append(event)

        if self._state is _S.SIGNED_OUT:
            return events
        if self._phone != actual_phone_up:
            self.drift_corrections += 1
            run(AgentInput.PHONE_CONNECTED if actual_phone_up else AgentInput.PHONE_LOST)
        if not self._phone:
            return events  # nothing can be bridged to a phone that is down
        if self._state is _S.TALKING and actual_call != self._call:
            self.drift_corrections += 1
            run(AgentInput.CALL_ENDED)
        elif self._state is _S.RESERVED and actual_call is not None:
            self.drift_corrections += 1
            if actual_call == self._call:
                run(AgentInput.BRIDGED)  # the bridge was missed
                return events
            run(AgentInput.RELEASE)
        if actual_call is not None and self._state is not _S.TALKING:
            self.drift_corrections += 1  # bridged to a call we did not know of: adopt it
            if self._state is _S.WRAP_UP:
                run(AgentInput.WRAP_UP_DONE)
            run(AgentInput.RESERVE, call_id=actual_call)
            run(AgentInput.BRIDGED)
        return events

    def _check_arguments(
        self, input: AgentInput, reason: str | None, call_id: str | None
    ) -> PauseReason | None:
        who = f"agent {self.agent_id}: {input.name}"
        pause: PauseReason | None = None
        if input is AgentInput.PAUSE:
            if reason is None:
                known = ", ".join(r.code for r in self.policy.pause_reasons)
                raise LocalAgentError(f"{who} needs a reason; known reasons: {known}")
            pause = self.policy.pause_reason(reason)
        elif reason is not None:
            raise LocalAgentError(f"{who} takes no reason (got {reason!r})")
        if input is AgentInput.RESERVE:
            if not call_id:
                raise LocalAgentError(f"{who} needs a call_id")
        elif input in _CALL_INPUTS:
            if call_id is not None and call_id != self._call:
                raise LocalAgentError(
                    f"{who} for call {call_id!r}, but the agent's call is {self._call!r}"
                )
        elif call_id is not None:
            raise LocalAgentError(f"{who} takes no call_id (got {call_id!r})")
        return pause

    def _refusal(self, input: AgentInput) -> str:
        message = f"agent {self.agent_id}: {input.name} is not allowed while {self._state.name}"
        why = _REFUSALS.get((self._state, input))
        if why is not None:
            call = f" (call {self._call})" if self._call else ""
            message += f"{call}: {why}"
        return message

    def _available(self, now: float, at_ms: int) -> AgentStateChanged | None:
        self._deadline = None
        if not self._phone:
            # READY asked while the phone is down: remembered (pending is None) for
            # PHONE_CONNECTED; meanwhile the pause is the system's, not the agent's.
            return self._move(_S.PAUSED, PHONE_LOST, now, at_ms)
        pending, self._pending = self._pending, None
        if pending is not None:
            return self._move(_S.PAUSED, pending, now, at_ms)
        return self._move(_S.READY, None, now, at_ms)

    def _to_paused(
        self, input: AgentInput, pause: PauseReason | None, now: float, at_ms: int
    ) -> AgentStateChanged | None:
        self._deadline = None
        if input is AgentInput.PHONE_LOST:
            if self._state is _S.PAUSED:
                self._pending = self._reason  # resume that pause when the phone is back
            elif self._state is not _S.CONNECTING:  # CONNECTING keeps what was asked
                self._pending = self._pending or NOT_READY
            self._phone = False
            return self._move(_S.PAUSED, PHONE_LOST, now, at_ms)
        if input is AgentInput.WRAP_UP_TIMEOUT:
            reason, self._pending = self._pending or WRAP_UP_EXCEEDED, None
            return self._move(_S.PAUSED, reason, now, at_ms)
        assert pause is not None  # PAUSE always carries a checked reason
        self._pending = None if self._phone else pause
        return self._move(_S.PAUSED, pause, now, at_ms)

    def _move(
        self,
        state: AgentState,
        reason: PauseReason | None,
        now: float,
        at_ms: int,
        *,
        call: str | None = None,
    ) -> AgentStateChanged | None:
        if state is self._state and reason == self._reason:
            return None
        previous, ended_call = self._state, self._call
        self._state, self._reason, self._call, self._since = state, reason, call, now
        return AgentStateChanged(
            at_ms=at_ms,
            mono=now,
            agent=self.agent_id,
            previous=previous.value,
            state=state.value,
            reason=reason.code if reason is not None else None,
            billable=reason.billable if reason is not None else None,
            # The call id lives until the end of wrap-up, so the event leaving a
            # call still carries it.
            call_id=call if call is not None else ended_call,
        )
