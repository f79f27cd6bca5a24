"""The SIP transaction layer (RFC 3261 §17, with RFC 6026's Accepted state).

Sans-IO: a transaction is fed messages and ``now`` and hands back events for
the TU, the messages to put on the wire (``take_outgoing``) and its next
deadline. Nothing here owns a socket or reads a clock.

Each transaction's behaviour is one table, ``(state, input) -> next state``.
A peer message with no entry is a stray: it is counted and reported, never
raised, because retransmissions and reordering are normal on UDP. An API call
with no entry (a response sent after the final one, say) is our own bug and
raises ``LocalProtocolError``. Timers are inputs too, and a timer is only
armed while the table says it means something in the current state, so a
transition silently drops the timers the new state has no use for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import ClassVar

from dialer.sip.errors import LocalProtocolError, RemoteProtocolError
from dialer.sip.message import Headers, Request, Response
from dialer.sip.timers import Timer, TimerConfig

MAGIC_COOKIE = "z9hG4bK"  # §8.1.1.7: branches minted by RFC 3261 elements start with it

Message = Request | Response


class TransactionState(StrEnum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"  # RFC 6026 §7.1/§7.2
    TERMINATED = "Terminated"


class Input(StrEnum):
    """What can happen to a transaction, apart from its timers firing."""

    PROVISIONAL = "1xx received"
    SUCCESS = "2xx received"
    FAILURE = "300-699 received"
    REQUEST = "request received"
    ACK = "ACK received"
    SEND_PROVISIONAL = "1xx sent"
    SEND_SUCCESS = "2xx sent"
    SEND_FAILURE = "300-699 sent"


Key = tuple[TransactionState, Input | Timer]
S = TransactionState


# --- events -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for the TU: every 1xx, the first final, and (INVITE) every 2xx."""

    response: Response


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request for the TU (emitted by the layer when it creates a server transaction)."""

    request: Request


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK: for a non-2xx it ends an INVITE server transaction; for a 2xx it is the core's."""

    request: Request


@dataclass(frozen=True, slots=True)
class RetransmissionAbsorbed:
    """A retransmission the transaction answered itself (re-ACK, last response resent, or
    nothing), so the TU need not see it."""

    message: Message


@dataclass(frozen=True, slots=True)
class StrayIgnored:
    """A peer message the current state has no use for (e.g. a 1xx after the final)."""

    message: Message
    state: TransactionState


@dataclass(frozen=True, slots=True)
class Timeout:
    """Timer B, F or H fired: the transaction failed for want of an answer."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class Terminated:
    """The transaction reached Terminated and can be forgotten."""


TransactionEvent = (
    ResponseReceived
    | RequestReceived
    | AckReceived
    | RetransmissionAbsorbed
    | StrayIgnored
    | Timeout
    | Terminated
)


def _response_input(status: int) -> Input:
    if 100 <= status < 200:
        return Input.PROVISIONAL
    if 200 <= status < 300:
        return Input.SUCCESS
    if 300 <= status < 700:
        return Input.FAILURE
    raise RemoteProtocolError(f"status code {status} is outside 100-699", 400)


def _send_input(status: int) -> Input:
    kind = _response_input(status)
    return {
        Input.PROVISIONAL: Input.SEND_PROVISIONAL,
        Input.SUCCESS: Input.SEND_SUCCESS,
        Input.FAILURE: Input.SEND_FAILURE,
    }[kind]


# --- common machinery -------------------------------------------------------


class _Transaction:
    TABLE: ClassVar[Mapping[Key, TransactionState]]
    INITIAL: ClassVar[TransactionState]

    def __init__(self, request: Request, now: float, reliable: bool, timers: TimerConfig) -> None:
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.state = self.INITIAL
        self.strays = 0  # peer messages that matched us but meant nothing in our state
        self.retransmissions = 0  # messages we put on the wire again
        self._deadlines: dict[Timer, float] = {}
        self._intervals: dict[Timer, float] = {}
        self._outgoing: list[Message] = []

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    def take_outgoing(self) -> list[Message]:
        out, self._outgoing = self._outgoing, []
        return out

    def handle_timer(self, now: float) -> list[TransactionEvent]:
        events: list[TransactionEvent] = []
        self._fire_due(now, events)
        return events

    # Subclasses implement what a fired timer does.
    def _on_timer(self, timer: Timer, at: float, events: list[TransactionEvent]) -> None:
        raise NotImplementedError

    def _advance(self, event: Input | Timer) -> TransactionState | None:
        """Take the table's transition; return the state we left, or None if there is none."""
        nxt = self.TABLE.get((self.state, event))
        if nxt is None:
            return None
        before, self.state = self.state, nxt
        if nxt is not before:
            self._deadlines = {t: at for t, at in self._deadlines.items() if (nxt, t) in self.TABLE}
        return before

    def _arm(self, timer: Timer, at: float, interval: float | None = None) -> None:
        self._deadlines[timer] = at
        if interval is not None:
            self._intervals[timer] = interval

    def _fire_due(self, now: float, events: list[TransactionEvent]) -> None:
        # Reschedule from the instant a timer was due, not from ``now``, so a late
        # ``handle_timer`` call does not stretch the retransmission schedule.
        while self._deadlines:
            timer, at = min(self._deadlines.items(), key=lambda item: item[1])
            if at > now:
                return
            del self._deadlines[timer]
            if self._advance(timer) is None:  # pragma: no cover - _advance prunes such timers
                raise LocalProtocolError(f"timer {timer} armed in state {self.state}")
            self._on_timer(timer, at, events)
            if self.state is S.TERMINATED:
                self._deadlines.clear()
                events.append(Terminated())
                return

    def _send(self, message: Message, *, again: bool = False) -> None:
        self._outgoing.append(message)
        if again:
            self.retransmissions += 1

    def _stray(self, message: Message, events: list[TransactionEvent]) -> None:
        self.strays += 1
        events.append(StrayIgnored(message, self.state))

    def _finish(self, now: float, events: list[TransactionEvent]) -> list[TransactionEvent]:
        # Zero-length timers (D, I, J, K on reliable transports) fire right here.
        self._fire_due(now, events)
        return events

    def _doubling(self, timer: Timer, at: float, cap: float | None) -> None:
        interval = 2 * self._intervals[timer]
        if cap is not None:
            interval = min(interval, cap)
        self._arm(timer, at + interval, interval)


class _ClientTransaction(_Transaction):
    def __init__(self, request: Request, now: float, reliable: bool, timers: TimerConfig) -> None:
        super().__init__(request, now, reliable, timers)
        self._send(request)

    def receive(self, message: Message, now: float) -> list[TransactionEvent]:
        if not isinstance(message, Response):
            raise LocalProtocolError("a client transaction is fed responses, not requests")
        events: list[TransactionEvent] = []
        kind = _response_input(message.status)
        before = self._advance(kind)
        if before is None:
            self._stray(message, events)
        else:
            self._on_response(before, kind, message, now, events)
        return self._finish(now, events)

    def _on_response(
        self,
        before: TransactionState,
        kind: Input,
        response: Response,
        now: float,
        events: list[TransactionEvent],
    ) -> None:
        raise NotImplementedError


class _ServerTransaction(_Transaction):
    def __init__(self, request: Request, now: float, reliable: bool, timers: TimerConfig) -> None:
        super().__init__(request, now, reliable, timers)
        self.last_response: Response | None = None

    def receive(self, message: Message, now: float) -> list[TransactionEvent]:
        if not isinstance(message, Request):
            raise LocalProtocolError("a server transaction is fed requests, not responses")
        events: list[TransactionEvent] = []
        kind = Input.ACK if message.method == "ACK" else Input.REQUEST
        before = self._advance(kind)
        if before is None:
            self._stray(message, events)
        elif kind is Input.ACK:
            self._on_ack(before, message, now, events)
        else:
            # §17.2.1/§17.2.2: a retransmitted request is answered with the most
            # recent response, if any; RFC 6026 §7.1: in Accepted it is only absorbed
            # because the 2xx is the UAS core's to retransmit.
            if self.last_response is not None and self.state is not S.ACCEPTED:
                self._send(self.last_response, again=True)
            events.append(RetransmissionAbsorbed(message))
        return self._finish(now, events)

    def send_response(self, response: Response, now: float) -> list[TransactionEvent]:
        if response.cseq.method != self.request.method:
            raise LocalProtocolError(
                f"response for {response.cseq.method} sent on a {self.request.method} transaction"
            )
        kind = _send_input(response.status)
        before = self._advance(kind)
        if before is None:
            raise LocalProtocolError(
                f"cannot send a {response.status} response in state {self.state}"
            )
        self.last_response = response
        self._send(response)
        self._on_sent(before, kind, now)
        return self._finish(now, [])

    def _on_ack(
        self,
        before: TransactionState,
        ack: Request,
        now: float,
        events: list[TransactionEvent],
    ) -> None:
        self._stray(ack, events)  # pragma: no cover - only INVITE servers have ACK entries

    def _on_sent(self, before: TransactionState, kind: Input, now: float) -> None:
        raise NotImplementedError


# --- INVITE client, §17.1.1 and RFC 6026 §7.2 ---------------------------------


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response (§17.1.1.3).

    Same Request-URI, Call-ID, From and CSeq number as the INVITE, the To of the
    response (it carries the UAS's tag), a single Via equal to the INVITE's top
    Via (so the branch is the INVITE's) and the INVITE's Route set.
    """
    pairs: list[tuple[str, str]] = [("Via", invite.headers.get_all("Via")[0])]
    pairs += [("Route", route) for route in invite.headers.get_all("Route")]
    pairs += [
        ("Max-Forwards", invite.headers.get("Max-Forwards") or "70"),
        ("From", _required(invite.headers, "From")),
        ("To", _required(response.headers, "To")),
        ("Call-ID", _required(invite.headers, "Call-ID")),
        ("CSeq", f"{invite.cseq.seq} ACK"),
    ]
    return Request("ACK", invite.uri, Headers.of(pairs))


def _required(headers: Headers, name: str) -> str:
    value = headers.get(name)
    if value is None:
        raise RemoteProtocolError(f"missing {name} header", 400)
    return value


class InviteClientTransaction(_ClientTransaction):
    INITIAL = S.CALLING
    TABLE = MappingProxyType(
        {
            (S.CALLING, Timer.A): S.CALLING,
            (S.CALLING, Timer.B): S.TERMINATED,
            (S.CALLING, Input.PROVISIONAL): S.PROCEEDING,
            (S.PROCEEDING, Input.PROVISIONAL): S.PROCEEDING,
            (S.CALLING, Input.SUCCESS): S.ACCEPTED,
            (S.PROCEEDING, Input.SUCCESS): S.ACCEPTED,
            (S.CALLING, Input.FAILURE): S.COMPLETED,
            (S.PROCEEDING, Input.FAILURE): S.COMPLETED,
            (S.COMPLETED, Input.FAILURE): S.COMPLETED,  # retransmitted final: ACK again
            (S.COMPLETED, Timer.D): S.TERMINATED,
            # RFC 6026 §7.2: further 2xx (retransmissions, forks) go up so the TU ACKs them.
            (S.ACCEPTED, Input.SUCCESS): S.ACCEPTED,
            (S.ACCEPTED, Timer.M): S.TERMINATED,
        }
    )

    def __init__(
        self, request: Request, now: float, reliable: bool, timers: TimerConfig | None = None
    ) -> None:
        if request.method != "INVITE":
            raise LocalProtocolError(f"an INVITE client transaction cannot send {request.method}")
        super().__init__(request, now, reliable, timers or TimerConfig())
        self.ack: Request | None = None
        t = self.timers
        if not reliable:
            self._arm(Timer.A, now + t.t1, t.t1)
        self._arm(Timer.B, now + t.transaction_timeout)

    def _on_timer(self, timer: Timer, at: float, events: list[TransactionEvent]) -> None:
        if timer is Timer.A:
            self._send(self.request, again=True)
            self._doubling(Timer.A, at, cap=None)
        elif timer is Timer.B:
            events.append(Timeout(Timer.B))

    def _on_response(
        self,
        before: TransactionState,
        kind: Input,
        response: Response,
        now: float,
        events: list[TransactionEvent],
    ) -> None:
        if kind is Input.FAILURE:
            if before is S.COMPLETED:
                assert self.ack is not None
                self._send(self.ack, again=True)
                events.append(RetransmissionAbsorbed(response))
                return
            self.ack = build_ack(self.request, response)
            self._send(self.ack)
            self._arm(Timer.D, now + self.timers.d(self.reliable))
        elif kind is Input.SUCCESS and before is not S.ACCEPTED:
            self._arm(Timer.M, now + self.timers.transaction_timeout)
        events.append(ResponseReceived(response))


# --- non-INVITE client, §17.1.2 ---------------------------------------------


class NonInviteClientTransaction(_ClientTransaction):
    INITIAL = S.TRYING
    TABLE = MappingProxyType(
        {
            (S.TRYING, Timer.E): S.TRYING,
            (S.PROCEEDING, Timer.E): S.PROCEEDING,
            (S.TRYING, Timer.F): S.TERMINATED,
            (S.PROCEEDING, Timer.F): S.TERMINATED,
            (S.TRYING, Input.PROVISIONAL): S.PROCEEDING,
            (S.PROCEEDING, Input.PROVISIONAL): S.PROCEEDING,
            (S.TRYING, Input.SUCCESS): S.COMPLETED,
            (S.TRYING, Input.FAILURE): S.COMPLETED,
            (S.PROCEEDING, Input.SUCCESS): S.COMPLETED,
            (S.PROCEEDING, Input.FAILURE): S.COMPLETED,
            (S.COMPLETED, Input.SUCCESS): S.COMPLETED,  # retransmitted final: absorbed
            (S.COMPLETED, Input.FAILURE): S.COMPLETED,
            (S.COMPLETED, Timer.K): S.TERMINATED,
        }
    )

    def __init__(
        self, request: Request, now: float, reliable: bool, timers: TimerConfig | None = None
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise LocalProtocolError(
                f"a non-INVITE client transaction cannot send {request.method}"
            )
        super().__init__(request, now, reliable, timers or TimerConfig())
        t = self.timers
        if not reliable:
            self._arm(Timer.E, now + t.t1, t.t1)
        self._arm(Timer.F, now + t.transaction_timeout)

    def _on_timer(self, timer: Timer, at: float, events: list[TransactionEvent]) -> None:
        if timer is Timer.E:
            self._send(self.request, again=True)
            if self.state is S.PROCEEDING:
                self._arm(Timer.E, at + self.timers.t2, self.timers.t2)
            else:
                self._doubling(Timer.E, at, cap=self.timers.t2)
        elif timer is Timer.F:
            events.append(Timeout(Timer.F))

    def _on_response(
        self,
        before: TransactionState,
        kind: Input,
        response: Response,
        now: float,
        events: list[TransactionEvent],
    ) -> None:
        if before is S.COMPLETED:
            events.append(RetransmissionAbsorbed(response))
            return
        if self.state is S.COMPLETED:
            self._arm(Timer.K, now + self.timers.k(self.reliable))
        events.append(ResponseReceived(response))


# --- INVITE server, §17.2.1 and RFC 6026 §7.1 ---------------------------------


class InviteServerTransaction(_ServerTransaction):
    INITIAL = S.PROCEEDING
    TABLE = MappingProxyType(
        {
            (S.PROCEEDING, Input.REQUEST): S.PROCEEDING,
            (S.PROCEEDING, Input.SEND_PROVISIONAL): S.PROCEEDING,
            (S.PROCEEDING, Input.SEND_SUCCESS): S.ACCEPTED,
            (S.PROCEEDING, Input.SEND_FAILURE): S.COMPLETED,
            (S.ACCEPTED, Input.REQUEST): S.ACCEPTED,
            # The UAS core's 2xx retransmissions (§13.3.1.4) may pass through us.
            (S.ACCEPTED, Input.SEND_SUCCESS): S.ACCEPTED,
            # An ACK for the 2xx normally has its own branch; one that reuses ours
            # (a non-conforming peer) still belongs to the core, so pass it up.
            (S.ACCEPTED, Input.ACK): S.ACCEPTED,
            (S.ACCEPTED, Timer.L): S.TERMINATED,
            (S.COMPLETED, Input.REQUEST): S.COMPLETED,
            (S.COMPLETED, Input.ACK): S.CONFIRMED,
            (S.COMPLETED, Timer.G): S.COMPLETED,
            (S.COMPLETED, Timer.H): S.TERMINATED,
            (S.CONFIRMED, Input.ACK): S.CONFIRMED,  # ACK retransmissions: absorbed
            (S.CONFIRMED, Timer.I): S.TERMINATED,
        }
    )

    def __init__(
        self,
        request: Request,
        now: float,
        reliable: bool,
        timers: TimerConfig | None = None,
        *,
        send_trying: bool = True,
    ) -> None:
        if request.method != "INVITE":
            raise LocalProtocolError(f"an INVITE server transaction cannot serve {request.method}")
        super().__init__(request, now, reliable, timers or TimerConfig())
        # §17.2.1: the transaction answers 100 itself unless the TU is known to
        # respond within 200 ms; we cannot know that, so by default it always does.
        if send_trying:
            self.send_response(request.make_response(100), now)

    def _on_sent(self, before: TransactionState, kind: Input, now: float) -> None:
        t = self.timers
        if kind is Input.SEND_FAILURE:
            if not self.reliable:
                self._arm(Timer.G, now + t.t1, t.t1)
            self._arm(Timer.H, now + t.transaction_timeout)
        elif kind is Input.SEND_SUCCESS and before is not S.ACCEPTED:
            self._arm(Timer.L, now + t.transaction_timeout)

    def _on_ack(
        self,
        before: TransactionState,
        ack: Request,
        now: float,
        events: list[TransactionEvent],
    ) -> None:
        if before is S.COMPLETED:
            self._arm(Timer.I, now + self.timers.i(self.reliable))
            events.append(AckReceived(ack))
        elif before is S.ACCEPTED:
            events.append(AckReceived(ack))
        else:
            events.append(RetransmissionAbsorbed(ack))

    def _on_timer(self, timer: Timer, at: float, events: list[TransactionEvent]) -> None:
        if timer is Timer.G:
            assert self.last_response is not None
            self._send(self.last_response, again=True)
            self._doubling(Timer.G, at, cap=self.timers.t2)
        elif timer is Timer.H:
            events.append(Timeout(Timer.H))


# --- non-INVITE server, §17.2.2 ---------------------------------------------


class NonInviteServerTransaction(_ServerTransaction):
    INITIAL = S.TRYING
    TABLE = MappingProxyType(
        {
            (S.TRYING, Input.REQUEST): S.TRYING,  # absorbed, nothing to resend yet
            (S.TRYING, Input.SEND_PROVISIONAL): S.PROCEEDING,
            (S.TRYING, Input.SEND_SUCCESS): S.COMPLETED,
            (S.TRYING, Input.SEND_FAILURE): S.COMPLETED,
            (S.PROCEEDING, Input.REQUEST): S.PROCEEDING,
            (S.PROCEEDING, Input.SEND_PROVISIONAL): S.PROCEEDING,
            (S.PROCEEDING, Input.SEND_SUCCESS): S.COMPLETED,
            (S.PROCEEDING, Input.SEND_FAILURE): S.COMPLETED,
            (S.COMPLETED, Input.REQUEST): S.COMPLETED,
            (S.COMPLETED, Timer.J): S.TERMINATED,
        }
    )

    def __init__(
        self, request: Request, now: float, reliable: bool, timers: TimerConfig | None = None
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise LocalProtocolError(
                f"a non-INVITE server transaction cannot serve {request.method}"
            )
        super().__init__(request, now, reliable, timers or TimerConfig())

    def _on_sent(self, before: TransactionState, kind: Input, now: float) -> None:
        if self.state is S.COMPLETED:
            self._arm(Timer.J, now + self.timers.j(self.reliable))

    def _on_timer(self, timer: Timer, at: float, events: list[TransactionEvent]) -> None:
        pass  # J only ends the transaction, which the table already did


ClientTransaction = InviteClientTransaction | NonInviteClientTransaction
ServerTransaction = InviteServerTransaction | NonInviteServerTransaction
Transaction = ClientTransaction | ServerTransaction


# --- matching and the layer, §17.1.3 and §17.2.3 ------------------------------


class Role(StrEnum):
    CLIENT = "client"
    SERVER = "server"


@dataclass(frozen=True, slots=True)
class TransactionKey:
    role: Role
    branch: str
    method: str  # ACK is filed under INVITE: it belongs to the INVITE's transaction
    sent_by: str = ""  # server side only: the top Via's host[:port]

    @classmethod
    def of_sent_request(cls, request: Request) -> TransactionKey:
        return cls(Role.CLIENT, _branch(request.top_via.branch), request.method)

    @classmethod
    def of_response(cls, response: Response) -> TransactionKey:
        """§17.1.3: top Via branch and CSeq method (CANCEL shares the INVITE's branch)."""
        return cls(Role.CLIENT, _branch(response.top_via.branch), response.cseq.method)

    @classmethod
    def of_received_request(cls, request: Request) -> TransactionKey:
        """§17.2.3: branch, sent-by and method, with ACK matching INVITE."""
        via = request.top_via
        branch = _branch(via.branch)
        if not branch.startswith(MAGIC_COOKIE):
            raise RemoteProtocolError(
                f"Via branch {branch!r} lacks the RFC 3261 magic cookie {MAGIC_COOKIE}", 400
            )
        method = "INVITE" if request.method == "ACK" else request.method
        sent_by = via.host.lower() if via.port is None else f"{via.host.lower()}:{via.port}"
        return cls(Role.SERVER, branch, method, sent_by)


def _branch(branch: str | None) -> str:
    if not branch:
        raise RemoteProtocolError("top Via has no branch parameter", 400)
    return branch


@dataclass(frozen=True, slots=True)
class TaggedEvent:
    """An event and the transaction it came from; ``key`` is None for messages that
    matched none (an ACK for a 2xx, a stray response) and go to the core."""

    key: TransactionKey | None
    event: TransactionEvent


@dataclass(frozen=True, slots=True)
class Outgoing:
    key: TransactionKey
    message: Message


class TransactionLayer:
    """Owns the live transactions of one element, routes messages to them and
    forgets them once Terminated."""

    def __init__(self, timers: TimerConfig | None = None, *, send_trying: bool = True) -> None:
        self.timers = timers or TimerConfig()
        self.send_trying = send_trying
        self.unmatched = 0  # responses and ACKs that matched no transaction
        self._transactions: dict[TransactionKey, Transaction] = {}
        self._outgoing: list[Outgoing] = []

    def __len__(self) -> int:
        return len(self._transactions)

    def __contains__(self, key: object) -> bool:
        return key in self._transactions

    def __iter__(self) -> Iterator[TransactionKey]:
        return iter(self._transactions)

    def get(self, key: TransactionKey) -> Transaction | None:
        return self._transactions.get(key)

    def send_request(self, request: Request, now: float, *, reliable: bool) -> TransactionKey:
        """Start a client transaction; its request is in the next ``take_outgoing``."""
        if request.method == "ACK":
            raise LocalProtocolError(
                "an ACK is sent without a transaction (a 2xx's ACK by the TU, §13.2.2.4; "
                "a non-2xx's by the INVITE client transaction)"
            )
        key = TransactionKey.of_sent_request(request)
        if key in self._transactions:
            raise LocalProtocolError(f"a client transaction for {key} already exists")
        tx: Transaction
        if request.method == "INVITE":
            tx = InviteClientTransaction(request, now, reliable, self.timers)
        else:
            tx = NonInviteClientTransaction(request, now, reliable, self.timers)
        self._transactions[key] = tx
        self._collect(key, tx, [])
        return key

    def receive(self, message: Message, now: float, *, reliable: bool) -> list[TaggedEvent]:
        """Route a message from the wire. Raises RemoteProtocolError for a request we
        cannot match (no branch, or an RFC 2543 branch without the magic cookie)."""
        if isinstance(message, Response):
            key = TransactionKey.of_response(message)
            tx = self._transactions.get(key)
            if tx is None:
                # §18.1.2: a response matching no transaction goes to the core
                # (typically a 2xx retransmission after Timer M, to be ACKed again).
                self.unmatched += 1
                return [TaggedEvent(None, ResponseReceived(message))]
            return self._collect(key, tx, tx.receive(message, now))
        key = TransactionKey.of_received_request(message)
        tx = self._transactions.get(key)
        if tx is not None:
            return self._collect(key, tx, tx.receive(message, now))
        if message.method == "ACK":
            # The ACK for a 2xx has a branch of its own (§13.2.2.4): the core's.
            self.unmatched += 1
            return [TaggedEvent(None, AckReceived(message))]
        if message.method == "INVITE":
            tx = InviteServerTransaction(
                message, now, reliable, self.timers, send_trying=self.send_trying
            )
        else:
            tx = NonInviteServerTransaction(message, now, reliable, self.timers)
        self._transactions[key] = tx
        return self._collect(key, tx, [RequestReceived(message)])

    def send_response(
        self, key: TransactionKey, response: Response, now: float
    ) -> list[TaggedEvent]:
        tx = self._transactions.get(key)
        if tx is None:
            raise LocalProtocolError(f"no transaction {key} to send a {response.status} on")
        if not isinstance(tx, InviteServerTransaction | NonInviteServerTransaction):
            raise LocalProtocolError(f"{key} is a client transaction; it cannot send responses")
        return self._collect(key, tx, tx.send_response(response, now))

    def invite_for_cancel(self, cancel: Request) -> TransactionKey | None:
        """§9.2: the INVITE server transaction a CANCEL targets, if it is still alive."""
        key = TransactionKey.of_received_request(cancel)
        invite = TransactionKey(Role.SERVER, key.branch, "INVITE", key.sent_by)
        return invite if invite in self._transactions else None

    def next_deadline(self) -> float | None:
        deadlines = [
            d for tx in self._transactions.values() if (d := tx.next_deadline()) is not None
        ]
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> list[TaggedEvent]:
        # One timer at a time, earliest first across all transactions, so a late
        # call still reports events in the order they were due. A linear scan per
        # firing is fine for the few hundred transactions of one node.
        events: list[TaggedEvent] = []
        while True:
            due: tuple[float, TransactionKey, Transaction] | None = None
            for key, tx in self._transactions.items():
                deadline = tx.next_deadline()
                if deadline is not None and deadline <= now and (due is None or deadline < due[0]):
                    due = (deadline, key, tx)
            if due is None:
                return events
            deadline, key, tx = due
            events += self._collect(key, tx, tx.handle_timer(deadline))

    def take_outgoing(self) -> list[Outgoing]:
        out, self._outgoing = self._outgoing, []
        return out

    def _collect(
        self, key: TransactionKey, tx: Transaction, events: list[TransactionEvent]
    ) -> list[TaggedEvent]:
        self._outgoing += [Outgoing(key, message) for message in tx.take_outgoing()]
        if tx.state is S.TERMINATED:
            del self._transactions[key]
        return [TaggedEvent(key, event) for event in events]
