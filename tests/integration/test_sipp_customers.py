"""Our SIP core placing calls to SIPp customers on loopback: every final outcome
surfaces as one typed CallEnded with the SIP status and the Q.850 cause."""

from __future__ import annotations

import asyncio

import pytest
from live import live_endpoint
from peers import Sipp

from dialer.events import CallAnswered, CallOutcome, CallProgress, HangupBy

pytestmark = pytest.mark.integration


def target_of(sipp: Sipp) -> tuple[str, tuple[str, int]]:
    host, port = sipp.address.split(":")
    return f"sip:customer@{host}:{port}", (host, int(port))


async def test_answered_call_we_hang_up() -> None:
    async with live_endpoint() as live, Sipp("uas_answer.xml", timeout=20) as customer:
        uri, destination = target_of(customer)
        call = live.call(uri, destination)
        answered = await live.wait_for(call.call_id, CallAnswered)
        assert isinstance(answered, CallAnswered) and answered.status == 200
        assert call.remote_sdp is not None and b"m=audio" in call.remote_sdp
        live.hangup(call.call_id)
        ended = await live.ended(call.call_id)
        result = await customer.wait()
    assert (ended.outcome, ended.hangup_by, ended.status) == (
        CallOutcome.ANSWERED,
        HangupBy.LOCAL,
        200,
    )
    assert result.ok, result.describe()
    kinds = [type(e).__name__ for e in live.of_call(call.call_id)]
    assert kinds == ["CallStarted", "CallProgress", "CallAnswered", "CallEnded"]


async def test_customer_hangs_up() -> None:
    async with (
        live_endpoint() as live,
        Sipp("uas_answer_hangup.xml", duration_ms=300, timeout=20) as customer,
    ):
        uri, destination = target_of(customer)
        call = live.call(uri, destination)
        ended = await live.ended(call.call_id)
        result = await customer.wait()
    assert (ended.outcome, ended.hangup_by) == (CallOutcome.ANSWERED, HangupBy.REMOTE)
    assert result.ok, result.describe()


@pytest.mark.parametrize(
    ("status", "cause", "outcome"),
    [
        ("486", "17", CallOutcome.BUSY),
        ("404", "1", CallOutcome.INVALID_NUMBER),
        ("480", "20", CallOutcome.UNAVAILABLE),
        ("603", "21", CallOutcome.DECLINED),
    ],
)
async def test_rejections_carry_status_and_cause(
    status: str, cause: str, outcome: CallOutcome
) -> None:
    async with (
        live_endpoint() as live,
        Sipp("uas_reject.xml", keys={"status": status, "cause": cause}, timeout=20) as customer,
    ):
        uri, destination = target_of(customer)
        call = live.call(uri, destination)
        ended = await live.ended(call.call_id)
        result = await customer.wait()
    assert (ended.outcome, ended.status, ended.q850_cause) == (outcome, int(status), int(cause))
    assert ended.hangup_by is None
    assert result.ok, result.describe()  # SIPp saw our ACK for the non-2xx


async def test_ringing_call_is_cancelled() -> None:
    async with live_endpoint() as live, Sipp("uas_ring_until_cancel.xml", timeout=20) as customer:
        uri, destination = target_of(customer)
        call = live.call(uri, destination)
        progress = await live.wait_for(call.call_id, CallProgress)
        assert isinstance(progress, CallProgress) and progress.status == 180
        live.hangup(call.call_id)
        ended = await live.ended(call.call_id)
        result = await customer.wait()
    assert (ended.outcome, ended.status) == (CallOutcome.CANCELLED, 487)
    assert result.ok, result.describe()


async def test_early_media_then_refusal() -> None:
    async with (
        live_endpoint() as live,
        Sipp(
            "uas_early_media.xml", keys={"final": "480", "cause": "20"}, duration_ms=300, timeout=20
        ) as customer,
    ):
        uri, destination = target_of(customer)
        call = live.call(uri, destination)
        progress = await live.wait_for(call.call_id, CallProgress)
        ended = await live.ended(call.call_id)
        result = await customer.wait()
    assert isinstance(progress, CallProgress)
    assert (progress.status, progress.early_media) == (183, True)
    assert (ended.outcome, ended.q850_cause) == (CallOutcome.UNAVAILABLE, 20)
    assert result.ok, result.describe()


async def test_nobody_there_times_out_with_timer_b() -> None:
    from dialer.sip.timers import TimerConfig

    # T1 of 20 ms makes Timer B (64*T1) 1.28 s: a dead trunk address.
    async with live_endpoint(timers=TimerConfig(t1=0.02, t2=0.08, t4=0.1)) as live:
        sink = ("127.0.0.1", 9)  # discard port: nothing answers
        call = live.call("sip:customer@127.0.0.1:9", sink)
        ended = await live.ended(call.call_id, within=10)
    assert (ended.outcome, ended.status) == (CallOutcome.TIMEOUT, 408)
    assert live.endpoint.counters.transaction_timeouts == 1
    assert not isinstance(ended, CallAnswered)


async def test_answered_call_over_tcp() -> None:
    async with (
        live_endpoint(tcp=True) as live,
        Sipp("uas_answer.xml", timeout=20, transport="t1") as customer,
    ):
        assert live.tcp is not None
        host, port = customer.address.split(":")
        # SIPp needs a moment to listen; the connect is retried briefly.
        for _ in range(50):
            try:
                peer = await live.tcp.connect(host, int(port))
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("SIPp never accepted the TCP connection")
        call = live.call(f"sip:customer@{host}:{port};transport=tcp", peer, transport="TCP")
        await live.wait_for(call.call_id, CallAnswered)
        # A moment of talk: SIPp takes a BYE that reaches it in the same TCP read as the
        # ACK before its scenario has moved past the ACK, and aborts the call.
        await asyncio.sleep(0.2)
        live.hangup(call.call_id)
        ended = await live.ended(call.call_id)
        result = await customer.wait()
    assert (ended.outcome, ended.hangup_by) == (CallOutcome.ANSWERED, HangupBy.LOCAL)
    assert result.ok, result.describe()
    assert live.tcp.framing_errors == 0
    assert live.endpoint.counters.responses_by_class.get("2xx", 0) >= 2  # INVITE and BYE
