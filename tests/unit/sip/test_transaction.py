"""RFC 3261 §17 transactions (with RFC 6026), driven by a stepped clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.sip.errors import LocalProtocolError, RemoteProtocolError
from dialer.sip.message import Headers, Request, Response, parse_message
from dialer.sip.timers import Timer, TimerConfig
from dialer.sip.transaction import (
    AckReceived,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Outgoing,
    RequestReceived,
    ResponseReceived,
    RetransmissionAbsorbed,
    Role,
    StrayIgnored,
    TaggedEvent,
    Terminated,
    Timeout,
    TransactionEvent,
    TransactionKey,
    TransactionLayer,
    TransactionState,
    build_ack,
)

S = TransactionState
T = TimerConfig()
VIA = "SIP/2.0/UDP client.example.com:5060;branch=z9hG4bKinv1"

Tx = (
    InviteClientTransaction
    | NonInviteClientTransaction
    | InviteServerTransaction
    | NonInviteServerTransaction
)


def request(
    method: str = "INVITE",
    *,
    branch: str = "z9hG4bKinv1",
    host: str = "client.example.com:5060",
    cseq: int = 1,
    cseq_method: str | None = None,
) -> Request:
    return Request(
        method,
        "sip:bob@example.com",
        Headers.of(
            [
                ("Via", f"SIP/2.0/UDP {host};branch={branch}"),
                ("Via", "SIP/2.0/UDP origin.example.com;branch=z9hG4bKorigin"),
                ("Max-Forwards", "70"),
                ("Route", "<sip:proxy.example.com;lr>"),
                ("From", "Alice <sip:alice@example.com>;tag=a1"),
                ("To", "Bob <sip:bob@example.com>"),
                ("Call-ID", "call-1@client.example.com"),
                ("CSeq", f"{cseq} {cseq_method or method}"),
                ("Contact", "<sip:alice@client.example.com>"),
            ]
        ),
    )


def answer(req: Request, status: int) -> Response:
    return req.make_response(status, to_tag=None if status == 100 else "b2")


def run_timers(tx: Tx, until: float) -> list[tuple[float, list[TransactionEvent], int]]:
    """Fire every deadline up to ``until``: (instant, events, messages sent)."""
    log = []
    while (deadline := tx.next_deadline()) is not None and deadline <= until:
        events = tx.handle_timer(deadline)
        log.append((deadline, events, len(tx.take_outgoing())))
    return log


def expire(tx: Tx) -> float:
    """Run the clock out; the only thing left to happen must be one silent Terminated."""
    [(at, events, sent)] = run_timers(tx, 1e6)
    assert events == [Terminated()]
    assert sent == 0
    return at


def state_of(tx: Tx) -> TransactionState:
    return tx.state  # read through a call so mypy does not pin the state between steps


def instants(log: list[tuple[float, list[TransactionEvent], int]]) -> list[float]:
    return [at for at, _, sent in log if sent]


# --- timers -----------------------------------------------------------------


def test_timer_config_rejects_nonsense() -> None:
    with pytest.raises(LocalProtocolError, match=r"invalid SIP timers: t1=1.0 t2=0.5"):
        TimerConfig(t1=1.0, t2=0.5)
    with pytest.raises(LocalProtocolError, match="timer_d=10"):
        TimerConfig(timer_d=10)
    assert T.transaction_timeout == 32.0
    assert (T.d(False), T.d(True), T.i(False), T.i(True)) == (32.0, 0.0, 5.0, 0.0)
    assert (T.j(False), T.j(True), T.k(False), T.k(True)) == (32.0, 0.0, 5.0, 0.0)


# --- INVITE client ----------------------------------------------------------


def test_invite_client_udp_timer_a_doubles_and_timer_b_times_out_at_32s() -> None:
    tx = InviteClientTransaction(request(), 0.0, reliable=False, timers=T)
    assert tx.state is S.CALLING
    assert tx.take_outgoing() == [tx.request]
    assert tx.handle_timer(0.49) == []
    assert tx.take_outgoing() == []
    log = run_timers(tx, 100.0)
    assert instants(log) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert log[-1] == (32.0, [Timeout(Timer.B), Terminated()], 0)
    assert tx.retransmissions == 6
    assert state_of(tx) is S.TERMINATED
    assert tx.next_deadline() is None


def test_invite_client_late_timer_call_keeps_the_schedule() -> None:
    tx = InviteClientTransaction(request(), 10.0, reliable=False, timers=T)
    tx.take_outgoing()
    assert tx.handle_timer(12.0) == []
    assert tx.take_outgoing() == [tx.request, tx.request]  # A at 10.5 and 11.5
    assert tx.next_deadline() == 13.5


def test_invite_client_reliable_never_retransmits() -> None:
    tx = InviteClientTransaction(request(), 0.0, reliable=True, timers=T)
    tx.take_outgoing()
    assert tx.next_deadline() == 32.0
    log = run_timers(tx, 100.0)
    assert log == [(32.0, [Timeout(Timer.B), Terminated()], 0)]


def test_invite_client_provisional_stops_a_and_b() -> None:
    tx = InviteClientTransaction(request(), 0.0, reliable=False, timers=T)
    ringing = answer(tx.request, 180)
    assert tx.receive(ringing, 0.2) == [ResponseReceived(ringing)]
    assert tx.state is S.PROCEEDING
    assert tx.next_deadline() is None
    assert tx.receive(ringing, 0.3) == [ResponseReceived(ringing)]  # every 1xx goes up


def test_invite_client_non_2xx_is_acked_and_timer_d_absorbs_retransmissions() -> None:
    tx = InviteClientTransaction(request(), 0.0, reliable=False, timers=T)
    tx.take_outgoing()
    busy = answer(tx.request, 486)
    assert tx.receive(busy, 0.3) == [ResponseReceived(busy)]
    assert tx.state is S.COMPLETED
    [ack] = tx.take_outgoing()
    assert ack == tx.ack
    assert tx.next_deadline() == pytest.approx(32.3)
    assert tx.receive(busy, 1.0) == [RetransmissionAbsorbed(busy)]
    assert tx.take_outgoing() == [ack]
    assert tx.receive(answer(tx.request, 180), 1.1) == [
        StrayIgnored(answer(tx.request, 180), S.COMPLETED)
    ]
    assert tx.strays == 1
    assert expire(tx) == pytest.approx(32.3)


def test_ack_for_non_2xx_golden_bytes() -> None:
    invite = request()
    busy = answer(invite, 486)
    assert build_ack(invite, busy).to_bytes() == (
        b"ACK sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP client.example.com:5060;branch=z9hG4bKinv1\r\n"
        b"Route: <sip:proxy.example.com;lr>\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: Alice <sip:alice@example.com>;tag=a1\r\n"
        b"To: Bob <sip:bob@example.com>;tag=b2\r\n"
        b"Call-ID: call-1@client.example.com\r\n"
        b"CSeq: 1 ACK\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    reparsed = parse_message(build_ack(invite, busy).to_bytes())
    assert isinstance(reparsed, Request)
    assert TransactionKey.of_received_request(reparsed) == TransactionKey.of_received_request(
        invite
    )


def test_invite_client_reliable_non_2xx_terminates_at_once() -> None:
    tx = InviteClientTransaction(request(), 0.0, reliable=True, timers=T)
    tx.take_outgoing()
    busy = answer(tx.request, 603)
    assert tx.receive(busy, 0.3) == [ResponseReceived(busy), Terminated()]
    assert [m.method for m in tx.take_outgoing() if isinstance(m, Request)] == ["ACK"]


def test_invite_client_2xx_enters_accepted_and_timer_m_passes_retransmissions_up() -> None:
    tx = InviteClientTransaction(request(), 0.0, reliable=False, timers=T)
    tx.take_outgoing()
    ok = answer(tx.request, 200)
    assert tx.receive(ok, 0.2) == [ResponseReceived(ok)]
    assert tx.state is S.ACCEPTED
    assert tx.take_outgoing() == []  # the 2xx's ACK is the TU's (§13.2.2.4)
    assert tx.next_deadline() == pytest.approx(32.2)
    assert tx.receive(ok, 0.7) == [ResponseReceived(ok)]
    assert tx.receive(answer(tx.request, 180), 0.8)[0] == StrayIgnored(
        answer(tx.request, 180), S.ACCEPTED
    )
    assert tx.next_deadline() == pytest.approx(32.2)  # a retransmission does not restart M
    assert expire(tx) == pytest.approx(32.2)


def test_invite_client_misuse() -> None:
    with pytest.raises(LocalProtocolError, match="cannot send BYE"):
        InviteClientTransaction(request("BYE"), 0.0, reliable=False, timers=T)
    tx = InviteClientTransaction(request(), 0.0, reliable=False, timers=T)
    with pytest.raises(LocalProtocolError, match="fed responses, not requests"):
        tx.receive(request(), 0.1)


# --- non-INVITE client -------------------------------------------------------


def test_non_invite_client_timer_e_capped_at_t2_and_timer_f() -> None:
    tx = NonInviteClientTransaction(request("OPTIONS"), 0.0, reliable=False, timers=T)
    assert tx.state is S.TRYING
    log = run_timers(tx, 100.0)
    assert instants(log) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert log[-1] == (32.0, [Timeout(Timer.F), Terminated()], 0)


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    tx = NonInviteClientTransaction(request("BYE"), 0.0, reliable=False, timers=T)
    run_timers(tx, 0.5)
    trying = answer(tx.request, 100)
    assert tx.receive(trying, 0.7) == [ResponseReceived(trying)]
    assert tx.state is S.PROCEEDING
    log = run_timers(tx, 100.0)
    # The E armed in Trying still fires at 1.5; from then on it is T2.
    assert instants(log) == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert log[-1] == (32.0, [Timeout(Timer.F), Terminated()], 0)


def test_non_invite_client_final_then_timer_k() -> None:
    tx = NonInviteClientTransaction(request("BYE"), 0.0, reliable=False, timers=T)
    tx.take_outgoing()
    ok = answer(tx.request, 200)
    assert tx.receive(ok, 0.1) == [ResponseReceived(ok)]
    assert tx.state is S.COMPLETED
    assert tx.next_deadline() == pytest.approx(5.1)  # K = T4, E and F gone
    assert tx.receive(ok, 0.2) == [RetransmissionAbsorbed(ok)]
    assert expire(tx) == pytest.approx(5.1)


def test_non_invite_client_reliable() -> None:
    tx = NonInviteClientTransaction(request("BYE"), 0.0, reliable=True, timers=T)
    assert tx.next_deadline() == 32.0  # F only
    ok = answer(tx.request, 481)
    assert tx.receive(ok, 0.1) == [ResponseReceived(ok), Terminated()]  # K = 0


def test_non_invite_client_refuses_invite_and_ack() -> None:
    for method in ("INVITE", "ACK"):
        with pytest.raises(LocalProtocolError, match=f"cannot send {method}"):
            NonInviteClientTransaction(request(method), 0.0, reliable=False, timers=T)


@given(
    t1=st.floats(min_value=0.01, max_value=2.0),
    factor=st.integers(min_value=1, max_value=64),
)
def test_timer_e_schedule_for_any_t1_t2(t1: float, factor: int) -> None:
    timers = TimerConfig(t1=t1, t2=t1 * factor)
    tx = NonInviteClientTransaction(request("OPTIONS"), 0.0, reliable=False, timers=timers)
    log = run_timers(tx, 1e6)
    sent = instants(log)
    gaps = [b - a for a, b in zip([0.0, *sent], sent, strict=False)]
    expected_gap = t1
    for gap in gaps:
        assert gap == pytest.approx(expected_gap)
        expected_gap = min(2 * expected_gap, timers.t2)
    assert sent[-1] < 64 * t1 + 1e-9
    assert log[-1][0] == pytest.approx(64 * t1)
    assert log[-1][1] == [Timeout(Timer.F), Terminated()]


# --- INVITE server ----------------------------------------------------------


def test_invite_server_sends_100_and_resends_last_provisional() -> None:
    invite = request()
    tx = InviteServerTransaction(invite, 0.0, reliable=False, timers=T)
    assert tx.state is S.PROCEEDING
    [trying] = tx.take_outgoing()
    assert isinstance(trying, Response)
    assert trying.status == 100
    assert tx.receive(invite, 0.5) == [RetransmissionAbsorbed(invite)]
    assert tx.take_outgoing() == [trying]
    ringing = answer(invite, 180)
    assert tx.send_response(ringing, 0.6) == []
    assert tx.receive(invite, 1.5) == [RetransmissionAbsorbed(invite)]
    assert tx.take_outgoing() == [ringing, ringing]
    assert tx.next_deadline() is None


def test_invite_server_non_2xx_timer_g_until_timer_h() -> None:
    invite = request()
    tx = InviteServerTransaction(invite, 0.0, reliable=False, timers=T, send_trying=False)
    assert tx.take_outgoing() == []
    busy = answer(invite, 486)
    tx.send_response(busy, 1.0)
    assert tx.state is S.COMPLETED
    log = run_timers(tx, 100.0)
    assert instants(log) == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5]
    assert log[-1] == (33.0, [Timeout(Timer.H), Terminated()], 0)


def test_invite_server_ack_confirms_then_timer_i() -> None:
    invite = request()
    tx = InviteServerTransaction(invite, 0.0, reliable=False, timers=T)
    busy = answer(invite, 486)
    tx.send_response(busy, 0.0)
    assert instants(run_timers(tx, 1.6)) == [0.5, 1.5]
    assert tx.receive(invite, 1.7) == [RetransmissionAbsorbed(invite)]
    assert tx.take_outgoing()[-1] == busy  # an INVITE retransmission gets the final again
    ack = build_ack(invite, busy)
    assert tx.receive(ack, 2.0) == [AckReceived(ack)]
    assert tx.state is S.CONFIRMED
    assert tx.next_deadline() == 7.0  # I = T4; G and H are gone
    assert tx.receive(ack, 3.0) == [RetransmissionAbsorbed(ack)]
    assert tx.take_outgoing() == []
    assert tx.receive(invite, 3.1) == [StrayIgnored(invite, S.CONFIRMED)]
    assert run_timers(tx, 100.0) == [(7.0, [Terminated()], 0)]


def test_invite_server_reliable_no_g_and_ack_terminates() -> None:
    invite = request()
    tx = InviteServerTransaction(invite, 0.0, reliable=True, timers=T)
    busy = answer(invite, 500)
    tx.send_response(busy, 0.0)
    assert tx.next_deadline() == 32.0  # H only
    ack = build_ack(invite, busy)
    assert tx.receive(ack, 0.1) == [AckReceived(ack), Terminated()]


def test_invite_server_2xx_accepted_until_timer_l() -> None:
    invite = request()
    tx = InviteServerTransaction(invite, 0.0, reliable=False, timers=T)
    tx.take_outgoing()
    ok = answer(invite, 200)
    tx.send_response(ok, 1.0)
    assert tx.state is S.ACCEPTED
    assert tx.take_outgoing() == [ok]
    assert tx.receive(invite, 1.2) == [RetransmissionAbsorbed(invite)]
    assert tx.take_outgoing() == []  # the UAS core retransmits the 2xx, not us
    tx.send_response(ok, 1.5)  # ... through us, if it likes
    assert tx.take_outgoing() == [ok]
    with pytest.raises(LocalProtocolError, match="cannot send a 180 response in state Accepted"):
        tx.send_response(answer(invite, 180), 2.0)
    assert run_timers(tx, 100.0) == [(33.0, [Terminated()], 0)]


def test_invite_server_misuse() -> None:
    with pytest.raises(LocalProtocolError, match="cannot serve OPTIONS"):
        InviteServerTransaction(request("OPTIONS"), 0.0, reliable=False, timers=T)
    invite = request()
    tx = InviteServerTransaction(invite, 0.0, reliable=False, timers=T)
    with pytest.raises(LocalProtocolError, match="response for BYE sent on a INVITE transaction"):
        tx.send_response(answer(request("BYE"), 200), 0.1)
    with pytest.raises(LocalProtocolError, match="fed requests, not responses"):
        tx.receive(answer(invite, 200), 0.1)
    tx.send_response(answer(invite, 404), 0.2)
    with pytest.raises(LocalProtocolError, match="cannot send a 200 response in state Completed"):
        tx.send_response(answer(invite, 200), 0.3)


# --- non-INVITE server -------------------------------------------------------


def test_non_invite_server_absorbs_then_resends_final_until_timer_j() -> None:
    bye = request("BYE")
    tx = NonInviteServerTransaction(bye, 0.0, reliable=False, timers=T)
    assert tx.state is S.TRYING
    assert tx.receive(bye, 0.5) == [RetransmissionAbsorbed(bye)]
    assert tx.take_outgoing() == []  # nothing to resend yet
    trying = answer(bye, 100)
    tx.send_response(trying, 0.6)
    assert state_of(tx) is S.PROCEEDING
    tx.receive(bye, 1.5)
    assert tx.take_outgoing() == [trying, trying]
    ok = answer(bye, 200)
    tx.send_response(ok, 2.0)
    assert state_of(tx) is S.COMPLETED
    assert tx.next_deadline() == 34.0
    tx.receive(bye, 3.5)
    assert tx.take_outgoing() == [ok, ok]
    assert tx.retransmissions == 2
    with pytest.raises(LocalProtocolError, match="cannot send a 200 response in state Completed"):
        tx.send_response(ok, 4.0)
    assert run_timers(tx, 100.0) == [(34.0, [Terminated()], 0)]


def test_non_invite_server_reliable_terminates_on_final() -> None:
    bye = request("BYE")
    tx = NonInviteServerTransaction(bye, 0.0, reliable=True, timers=T)
    assert tx.send_response(answer(bye, 200), 0.1) == [Terminated()]
    with pytest.raises(LocalProtocolError, match="cannot serve ACK"):
        NonInviteServerTransaction(request("ACK"), 0.0, reliable=False, timers=T)


# --- matching and the layer ---------------------------------------------------


def test_keys_follow_17_1_3_and_17_2_3() -> None:
    invite = request()
    assert TransactionKey.of_sent_request(invite) == TransactionKey(
        Role.CLIENT, "z9hG4bKinv1", "INVITE"
    )
    assert TransactionKey.of_response(answer(request("CANCEL"), 200)) == TransactionKey(
        Role.CLIENT, "z9hG4bKinv1", "CANCEL"
    )
    assert TransactionKey.of_received_request(invite) == TransactionKey(
        Role.SERVER, "z9hG4bKinv1", "INVITE", "client.example.com:5060"
    )
    ack = request("ACK")
    assert TransactionKey.of_received_request(ack).method == "INVITE"
    other_host = request(host="Other.example.com")
    assert TransactionKey.of_received_request(other_host).sent_by == "other.example.com"
    with pytest.raises(RemoteProtocolError, match="lacks the RFC 3261 magic cookie z9hG4bK"):
        TransactionKey.of_received_request(request(branch="1234"))


def test_layer_client_routes_invite_and_cancel_responses_separately() -> None:
    layer = TransactionLayer(T)
    invite, cancel = request(), request("CANCEL")
    ik = layer.send_request(invite, 0.0, reliable=False)
    ck = layer.send_request(cancel, 0.1, reliable=False)
    assert ik != ck
    assert layer.take_outgoing() == [Outgoing(ik, invite), Outgoing(ck, cancel)]
    ok_cancel = answer(cancel, 200)
    assert layer.receive(ok_cancel, 0.2, reliable=False) == [
        TaggedEvent(ck, ResponseReceived(ok_cancel))
    ]
    terminated = answer(invite, 487)
    events = layer.receive(terminated, 0.3, reliable=False)
    assert events == [TaggedEvent(ik, ResponseReceived(terminated))]
    [out] = layer.take_outgoing()
    assert out.key == ik
    assert isinstance(out.message, Request)
    assert out.message.method == "ACK"
    assert layer.get(ck) is not None  # Timer K still running
    assert layer.next_deadline() == pytest.approx(5.2)


def test_layer_unmatched_response_goes_to_the_core() -> None:
    layer = TransactionLayer(T)
    stray = answer(request(), 200)
    assert layer.receive(stray, 0.0, reliable=False) == [TaggedEvent(None, ResponseReceived(stray))]
    assert layer.unmatched == 1


def test_layer_server_cancel_is_its_own_transaction_and_finds_the_invite() -> None:
    layer = TransactionLayer(T)
    invite, cancel = request(), request("CANCEL")
    [received] = layer.receive(invite, 0.0, reliable=False)
    ik = received.key
    assert received == TaggedEvent(ik, RequestReceived(invite))
    [trying] = layer.take_outgoing()
    assert isinstance(trying.message, Response)
    assert trying.message.status == 100
    [got_cancel] = layer.receive(cancel, 0.1, reliable=False)
    assert got_cancel.event == RequestReceived(cancel)
    assert got_cancel.key != ik
    assert got_cancel.key is not None
    assert layer.invite_for_cancel(cancel) == ik
    assert len(layer) == 2
    assert layer.invite_for_cancel(request("CANCEL", branch="z9hG4bKother")) is None
    assert layer.send_response(got_cancel.key, answer(cancel, 200), 0.2) == []
    assert ik is not None
    layer.send_response(ik, answer(invite, 487), 0.2)
    # ACK for the non-2xx matches the INVITE server transaction (§17.2.3).
    ack = build_ack(invite, answer(invite, 487))
    assert layer.receive(ack, 0.3, reliable=False) == [TaggedEvent(ik, AckReceived(ack))]
    assert layer.get(ik) is not None
    assert layer.get(ik).state is S.CONFIRMED  # type: ignore[union-attr]


def test_layer_ack_for_2xx_has_its_own_branch_and_goes_to_the_core() -> None:
    layer = TransactionLayer(T)
    invite = request()
    [received] = layer.receive(invite, 0.0, reliable=False)
    assert received.key is not None
    layer.send_response(received.key, answer(invite, 200), 0.1)
    ack = request("ACK", branch="z9hG4bKack2xx")
    assert layer.receive(ack, 0.2, reliable=False) == [TaggedEvent(None, AckReceived(ack))]
    assert layer.unmatched == 1


def test_layer_same_branch_other_sent_by_is_another_transaction() -> None:
    layer = TransactionLayer(T)
    a = request("OPTIONS")
    b = request("OPTIONS", host="elsewhere.example.com")
    [ea] = layer.receive(a, 0.0, reliable=False)
    [eb] = layer.receive(b, 0.0, reliable=False)
    assert ea.key != eb.key
    assert len(layer) == 2
    assert layer.receive(a, 0.5, reliable=False) == [TaggedEvent(ea.key, RetransmissionAbsorbed(a))]


def test_layer_forgets_terminated_and_fires_deadlines_in_order() -> None:
    layer = TransactionLayer(T, send_trying=False)
    bye = request("BYE", branch="z9hG4bKbye")
    [got] = layer.receive(bye, 0.0, reliable=True)
    assert got.key is not None
    assert layer.send_response(got.key, answer(bye, 200), 0.1) == [
        TaggedEvent(got.key, Terminated())
    ]
    assert len(layer) == 0
    assert [o.message for o in layer.take_outgoing()] == [answer(bye, 200)]

    k1 = layer.send_request(request("OPTIONS", branch="z9hG4bKo1"), 0.0, reliable=False)
    k2 = layer.send_request(request("OPTIONS", branch="z9hG4bKo2"), 0.2, reliable=False)
    layer.take_outgoing()
    assert layer.next_deadline() == 0.5
    assert layer.handle_timer(0.6) == []
    assert [o.key for o in layer.take_outgoing()] == [k1]
    assert layer.next_deadline() == 0.7
    events = layer.handle_timer(40.0)
    assert [e for e in events if e.event == Timeout(Timer.F)] == [
        TaggedEvent(k1, Timeout(Timer.F)),
        TaggedEvent(k2, Timeout(Timer.F)),
    ]
    assert len(layer) == 0
    assert layer.next_deadline() is None


def test_layer_misuse() -> None:
    layer = TransactionLayer(T)
    with pytest.raises(LocalProtocolError, match="an ACK is sent without a transaction"):
        layer.send_request(request("ACK"), 0.0, reliable=False)
    key = layer.send_request(request(), 0.0, reliable=False)
    with pytest.raises(LocalProtocolError, match="already exists"):
        layer.send_request(request(), 0.0, reliable=False)
    with pytest.raises(LocalProtocolError, match="is a client transaction"):
        layer.send_response(key, answer(request(), 200), 0.1)
    gone = TransactionKey(Role.SERVER, "z9hG4bKgone", "BYE", "x")
    with pytest.raises(LocalProtocolError, match="no transaction"):
        layer.send_response(gone, answer(request("BYE"), 200), 0.1)
    with pytest.raises(RemoteProtocolError, match="top Via has no branch parameter"):
        layer.receive(
            Request(
                "OPTIONS", "sip:x@y", request("OPTIONS").headers.replace("Via", "SIP/2.0/UDP h")
            ),
            0.0,
            reliable=False,
        )
