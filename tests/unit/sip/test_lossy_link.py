"""Two sans-IO endpoints back to back over a lossy, delayed link in simulated time.

A UAC and a UAS each own a ``TransactionLayer``; datagrams travel as bytes
(``to_bytes`` -> ``parse_message``), a seeded RNG or an explicit rule drops
some, and a tiny event loop delivers them and fires the earliest deadline.
The call is INVITE -> 100/180 -> 200 -> ACK, then BYE -> 200. The 2xx is
retransmitted by the UAS core (``SuccessRetransmitter``), the ACK for it by
the UAC core on every 2xx it sees (§13.2.2.4).
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from dialer.sip.errors import LocalProtocolError
from dialer.sip.message import Headers, Request, Response, parse_message
from dialer.sip.reliability import AckTimeout, SuccessRetransmitter, SuccessState
from dialer.sip.timers import TimerConfig
from dialer.sip.transaction import (
    AckReceived,
    RequestReceived,
    ResponseReceived,
    TaggedEvent,
    Timeout,
    TransactionKey,
    TransactionLayer,
)

T = TimerConfig()
DELAY = 0.05  # one way
UAC, UAS = "uac", "uas"
CALL_ID = "lossy-1@uac.example.com"


def uac_request(
    method: str, cseq: int, branch: str, to: str = "<sip:bob@uas.example.com>"
) -> Request:
    return Request(
        method,
        "sip:bob@uas.example.com",
        Headers.of(
            [
                ("Via", f"SIP/2.0/UDP uac.example.com:5060;branch={branch}"),
                ("Max-Forwards", "70"),
                ("From", "<sip:alice@uac.example.com>;tag=uac1"),
                ("To", to),
                ("Call-ID", CALL_ID),
                ("CSeq", f"{cseq} {method}"),
                ("Contact", "<sip:alice@uac.example.com>"),
            ]
        ),
    )


Drop = Callable[[str, bytes], bool]  # (destination, datagram) -> lose it?


@dataclass(order=True)
class _InFlight:
    at: float
    seq: int
    to: str = field(compare=False)
    data: bytes = field(compare=False)


@dataclass
class Link:
    drop: Drop
    queue: list[_InFlight] = field(default_factory=list)
    sent: Counter[bytes] = field(default_factory=Counter)
    lost: list[bytes] = field(default_factory=list)
    _seq: int = 0

    def send(self, now: float, to: str, message: Request | Response) -> None:
        data = message.to_bytes()
        self.sent[data] += 1
        if self.drop(to, data):
            self.lost.append(data)
            return
        self._seq += 1
        heapq.heappush(self.queue, _InFlight(now + DELAY, self._seq, to, data))

    def next_at(self) -> float | None:
        return self.queue[0].at if self.queue else None

    @property
    def dropped(self) -> int:
        return len(self.lost)

    @property
    def retransmissions(self) -> int:
        return sum(n - 1 for n in self.sent.values())


class Uac:
    def __init__(self) -> None:
        self.layer = TransactionLayer(T)
        self.wire: list[Request] = []  # ACKs for 2xx: sent by the core, not a transaction
        self.invite_statuses: list[int] = []
        self.bye_status: int | None = None
        self.bye_at: float | None = None
        self.bye_key: TransactionKey | None = None
        self.timeouts: list[Timeout] = []
        self.remote_to = ""

    def start(self, now: float) -> None:
        self.layer.send_request(uac_request("INVITE", 1, "z9hG4bKinvite"), now, reliable=False)

    def next_deadline(self) -> float | None:
        pending = [d for d in (self.layer.next_deadline(), self.bye_at) if d is not None]
        return min(pending, default=None)

    def receive(self, message: Request | Response, now: float) -> None:
        self._handle(self.layer.receive(message, now, reliable=False), now)

    def handle_timer(self, now: float) -> None:
        if self.bye_at is not None and self.bye_at <= now:
            self.bye_at = None
            bye = uac_request("BYE", 2, "z9hG4bKbye", to=self.remote_to)
            self.bye_key = self.layer.send_request(bye, now, reliable=False)
        self._handle(self.layer.handle_timer(now), now)

    def _handle(self, events: list[TaggedEvent], now: float) -> None:
        for tagged in events:
            event = tagged.event
            if isinstance(event, Timeout):
                self.timeouts.append(event)
            if not isinstance(event, ResponseReceived):
                continue
            response = event.response
            if response.cseq.method == "BYE":
                self.bye_status = response.status
                continue
            self.invite_statuses.append(response.status)
            if 200 <= response.status < 300:
                # Every 2xx, first or retransmitted, in a transaction or stray, is ACKed.
                self.remote_to = response.headers.get("To") or ""
                ack = uac_request("ACK", 1, "z9hG4bKack", to=self.remote_to)
                self.wire.append(ack)
                if self.bye_key is None and self.bye_at is None:
                    self.bye_at = now + 2.0

    def take_outgoing(self) -> list[Request | Response]:
        out: list[Request | Response] = [o.message for o in self.layer.take_outgoing()]
        out += self.wire
        self.wire = []
        return out


class Uas:
    def __init__(self) -> None:
        self.layer = TransactionLayer(T)
        self.invite_key: TransactionKey | None = None
        self.invite: Request | None = None
        self.answer_at: float | None = None
        self.retransmitter: SuccessRetransmitter | None = None
        self.acks = 0
        self.byes = 0
        self.gave_up: list[AckTimeout] = []

    def next_deadline(self) -> float | None:
        pending = [self.layer.next_deadline(), self.answer_at]
        if self.retransmitter is not None:
            pending.append(self.retransmitter.next_deadline())
        return min((d for d in pending if d is not None), default=None)

    def receive(self, message: Request | Response, now: float) -> None:
        for tagged in self.layer.receive(message, now, reliable=False):
            event = tagged.event
            if isinstance(event, RequestReceived):
                assert tagged.key is not None
                req = event.request
                if req.method == "INVITE":
                    self.invite_key, self.invite = tagged.key, req
                    self.layer.send_response(tagged.key, req.make_response(180, to_tag="uas1"), now)
                    self.answer_at = now + 1.0
                elif req.method == "BYE":
                    self.byes += 1
                    self.layer.send_response(tagged.key, req.make_response(200), now)
            elif isinstance(event, AckReceived) and tagged.key is None:
                assert self.retransmitter is not None
                assert self.retransmitter.receive_ack(event.request, now)
                self.acks += 1

    def handle_timer(self, now: float) -> None:
        if self.answer_at is not None and self.answer_at <= now:
            self.answer_at = None
            assert self.invite is not None and self.invite_key is not None
            ok = self.invite.make_response(
                200, to_tag="uas1", headers=[("Contact", "<sip:bob@uas.example.com>")]
            )
            self.layer.send_response(self.invite_key, ok, now)
            self.retransmitter = SuccessRetransmitter(ok, now, T)
        if self.retransmitter is not None:
            self.gave_up += self.retransmitter.handle_timer(now)
        self.layer.handle_timer(now)

    def take_outgoing(self) -> list[Request | Response]:
        out: list[Request | Response] = [o.message for o in self.layer.take_outgoing()]
        if self.retransmitter is not None:
            out += self.retransmitter.take_outgoing()
        return out


@dataclass
class Outcome:
    uac: Uac
    uas: Uas
    link: Link
    end: float


def simulate(drop: Drop, horizon: float = 200.0) -> Outcome:
    link, uac, uas = Link(drop), Uac(), Uas()
    now = 0.0
    uac.start(now)

    def flush() -> None:
        for message in uac.take_outgoing():
            link.send(now, UAS, message)
        for message in uas.take_outgoing():
            link.send(now, UAC, message)

    flush()
    while True:
        pending = [
            d for d in (link.next_at(), uac.next_deadline(), uas.next_deadline()) if d is not None
        ]
        if not pending:
            return Outcome(uac, uas, link, now)
        now = min(pending)
        assert now < horizon, "the call never settled"
        while link.queue and link.queue[0].at <= now:
            datagram = heapq.heappop(link.queue)
            message = parse_message(datagram.data)
            (uas if datagram.to == UAS else uac).receive(message, now)
            flush()
        uac.handle_timer(now)
        uas.handle_timer(now)
        flush()


def assert_call_completed(outcome: Outcome) -> None:
    uac, uas = outcome.uac, outcome.uas
    assert 200 in uac.invite_statuses
    assert uac.bye_status == 200
    assert uac.timeouts == []
    assert uas.retransmitter is not None
    assert uas.retransmitter.state is SuccessState.ACKED
    assert uas.gave_up == []
    assert uas.acks >= 1
    assert uas.byes >= 1
    # Every transaction ran its course and was forgotten; nothing is left armed.
    assert len(uac.layer) == 0
    assert len(uas.layer) == 0
    assert outcome.link.queue == []


SEEDS = range(60)
LOSS = 0.3


def seeded_loss(seed: int) -> Drop:
    rng = random.Random(seed)
    return lambda _to, _data: rng.random() < LOSS


@pytest.mark.parametrize("seed", SEEDS)
def test_call_survives_30_percent_loss(seed: int) -> None:
    outcome = simulate(seeded_loss(seed))
    assert_call_completed(outcome)
    # Every lost request, final response or ACK was sent again (a lost 1xx may
    # be made redundant by the next response, so it need not be).
    for data in outcome.link.lost:
        if not data.startswith(b"SIP/2.0 1"):
            assert outcome.link.sent[data] >= 2, data.split(b"\r\n", 1)[0]


def test_loss_is_real_across_seeds() -> None:
    dropped = retransmitted = 0
    for seed in SEEDS:
        outcome = simulate(seeded_loss(seed))
        dropped += outcome.link.dropped
        retransmitted += outcome.link.retransmissions
    assert dropped > 3 * len(SEEDS)
    assert retransmitted > dropped


def test_lossless_call_needs_no_retransmission() -> None:
    outcome = simulate(lambda _to, _data: False)
    assert_call_completed(outcome)
    assert outcome.link.retransmissions == 0
    assert outcome.uac.invite_statuses == [100, 180, 200]
    # INVITE, 100, 180, 200, ACK, BYE, 200.
    assert sum(outcome.link.sent.values()) == 7
    # BYE's server transaction lives longest: the BYE leaves 2 s after the 200
    # arrived (1.1), lands at 3.15, and Timer J = 64*T1 runs from there.
    assert outcome.end == pytest.approx(3.15 + 32.0)


def first_of(kinds: set[str]) -> Drop:
    """Drop the first datagram of each kind, a kind being its first line."""
    seen: set[str] = set()

    def drop(_to: str, data: bytes) -> bool:
        line = data.split(b"\r\n", 1)[0].decode()
        method = data.split(b"CSeq: ", 1)[1].split(b"\r\n", 1)[0].decode().split()[1]
        kind = f"{line} / {method}"
        if kind in kinds and kind not in seen:
            seen.add(kind)
            return True
        return False

    return drop


def test_each_lost_message_is_retransmitted_by_its_owner() -> None:
    lost = {
        "INVITE sip:bob@uas.example.com SIP/2.0 / INVITE",  # Timer A
        "SIP/2.0 200 OK / INVITE",  # UAS core, T1 doubling
        "ACK sip:bob@uas.example.com SIP/2.0 / ACK",  # UAC core, on the 2xx retransmission
        "BYE sip:bob@uas.example.com SIP/2.0 / BYE",  # Timer E
        "SIP/2.0 200 OK / BYE",  # Completed NIST on the BYE retransmission
    }
    outcome = simulate(first_of(lost))
    assert_call_completed(outcome)
    assert outcome.link.dropped == 5
    by_kind = {
        data.split(b"\r\n", 1)[0].decode()
        + " / "
        + data.split(b"CSeq: ", 1)[1].split(b"\r\n", 1)[0].decode().split()[1]: n
        for data, n in outcome.link.sent.items()
    }
    assert by_kind["INVITE sip:bob@uas.example.com SIP/2.0 / INVITE"] == 2  # 0.0 and 0.5
    # 200 sent at 1.55 (lost), retransmitted at 2.05 (arrives 2.1, ACK lost),
    # again at 3.05: the UAC ACKs every 2xx it sees.
    assert by_kind["SIP/2.0 200 OK / INVITE"] == 3
    assert by_kind["ACK sip:bob@uas.example.com SIP/2.0 / ACK"] == 2
    assert by_kind["BYE sip:bob@uas.example.com SIP/2.0 / BYE"] == 3
    assert by_kind["SIP/2.0 200 OK / BYE"] == 2
    # Only the second INVITE arrived, so the provisionals went out once each.
    assert by_kind["SIP/2.0 100 Trying / INVITE"] == 1
    assert by_kind["SIP/2.0 180 Ringing / INVITE"] == 1


# --- the 2xx retransmitter on its own ----------------------------------------


def ok_response() -> Response:
    return uac_request("INVITE", 1, "z9hG4bKx").make_response(200, to_tag="uas1")


def test_2xx_retransmitted_t1_doubling_to_t2_then_gives_up_at_64_t1() -> None:
    ok = ok_response()
    r = SuccessRetransmitter(ok, 0.0, T)
    instants = []
    while (deadline := r.next_deadline()) is not None:
        timeouts = r.handle_timer(deadline)
        if r.take_outgoing():
            instants.append(deadline)
    assert instants == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert timeouts == [AckTimeout(ok)]
    assert r.state is SuccessState.GAVE_UP
    assert r.retransmissions == 10


def test_2xx_retransmission_stops_on_the_dialogs_ack_only() -> None:
    ok = ok_response()
    r = SuccessRetransmitter(ok, 0.0, T)
    to = ok.headers.get("To") or ""
    wrong_cseq = uac_request("ACK", 2, "z9hG4bKa", to=to)
    wrong_tag = uac_request("ACK", 1, "z9hG4bKa", to="<sip:bob@uas.example.com>;tag=other")
    assert not r.receive_ack(wrong_cseq, 0.1)
    assert not r.receive_ack(wrong_tag, 0.1)
    assert r.next_deadline() == 0.5
    assert r.receive_ack(uac_request("ACK", 1, "z9hG4bKa", to=to), 0.2)
    assert r.next_deadline() is None
    assert r.handle_timer(100.0) == []
    assert r.take_outgoing() == []
    assert r.state is SuccessState.ACKED


def test_2xx_retransmitter_refuses_other_responses() -> None:
    bye_ok = uac_request("BYE", 2, "z9hG4bKb").make_response(200)
    with pytest.raises(LocalProtocolError, match="not a 200 to BYE"):
        SuccessRetransmitter(bye_ok, 0.0, T)
