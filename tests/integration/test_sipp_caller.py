"""SIPp as a caller (a desk phone dialing out through us): an INVITE without
credentials is challenged, one with a phone's credentials becomes a call, and
a wrong password never places one."""

from __future__ import annotations

import secrets

import pytest
from live import live_endpoint
from peers import Sipp

from dialer.events import CallAnswered, CallEnded, CallOutcome, HangupBy, IncomingCall
from dialer.sip.auth import DigestVerifier, NonceIssuer
from dialer.sip.registrar import Registrar, RegistrarPolicy

pytestmark = pytest.mark.integration


def registrar() -> Registrar:
    verifier = DigestVerifier("dialer.local", NonceIssuer(secrets.token_bytes(32), lifetime=300))
    # SIPp answers only the first challenge and knows only MD5.
    return Registrar(verifier, {"1001": "desk-secret"}, RegistrarPolicy(algorithms=("MD5",)))


async def test_authenticated_caller_is_answered_and_hangs_up() -> None:
    async with live_endpoint(registrar=registrar()) as live:
        live.auto_answer = True
        host, port = live.address
        async with Sipp(
            "uac_auth.xml",
            f"{host}:{port}",
            service="13800138000",
            auth_user="1001",
            auth_password="desk-secret",
            duration_ms=200,
            timeout=20,
        ) as caller:
            result = await caller.wait()
        assert result.ok, result.describe()
        incoming = [e for e in live.events if isinstance(e, IncomingCall)]
        assert len(incoming) == 1
        assert incoming[0].target.startswith("sip:13800138000@")
        call_id = incoming[0].call_id
        ended = await live.ended(call_id)
    kinds = [type(e) for e in live.of_call(call_id)]
    assert kinds == [IncomingCall, CallAnswered, CallEnded]
    assert (ended.outcome, ended.hangup_by) == (CallOutcome.ANSWERED, HangupBy.REMOTE)
    assert live.endpoint.inbound == {}


async def test_wrong_password_never_places_a_call() -> None:
    reg = registrar()
    async with live_endpoint(registrar=reg) as live:
        host, port = live.address
        async with Sipp(
            "uac_auth.xml",
            f"{host}:{port}",
            service="13800138000",
            auth_user="1001",
            auth_password="guess",
            timeout=5,
        ) as caller:
            result = await caller.wait()
        assert not result.ok  # SIPp wanted a 200 and got 403
        assert not [e for e in live.events if isinstance(e, IncomingCall)]
        assert live.endpoint.inbound == {}
        assert reg.counters.auth_failures == 1


async def test_authenticated_caller_over_tcp() -> None:
    async with live_endpoint(registrar=registrar(), tcp=True) as live:
        live.auto_answer = True
        host, port = live.address
        async with Sipp(
            "uac_auth.xml",
            f"{host}:{port}",
            service="13800138000",
            auth_user="1001",
            auth_password="desk-secret",
            duration_ms=200,
            timeout=20,
            transport="t1",
        ) as caller:
            result = await caller.wait()
        assert result.ok, result.describe()
        (incoming,) = [e for e in live.events if isinstance(e, IncomingCall)]
        ended = await live.ended(incoming.call_id)
    assert (ended.outcome, ended.hangup_by) == (CallOutcome.ANSWERED, HangupBy.REMOTE)
    assert live.tcp is not None and live.tcp.framing_errors == 0
    # Nothing went out over UDP: a stream peer is answered on its stream.
    assert live.endpoint.counters.requests_by_method == {"INVITE": 2, "ACK": 2, "BYE": 1}
