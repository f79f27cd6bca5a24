"""Kamailio as the floor's PBX: our endpoint registers to it with digest (401)
and places calls through it (407 on the INVITE) to a SIPp customer it relays to."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from live import LiveEndpoint, live_endpoint
from peers import Kamailio, Sipp

from dialer.events import CallAnswered, CallEnded, CallOutcome, CallProgress, HangupBy
from dialer.sip.registration import RegistrationClient, RegistrationState, RegistrationTarget

pytestmark = pytest.mark.integration

KamailioFactory = Callable[..., Kamailio]
SippFactory = Callable[..., Sipp]

TRUNK_USER, TRUNK_PASSWORD = "dialer", "trunk-secret-1"
CUSTOMER_NUMBER = "4930123456"


def split(address: str) -> tuple[str, int]:
    host, port = address.split(":")
    return host, int(port)


def client_for(live: LiveEndpoint, pbx: Kamailio, password: str) -> RegistrationClient:
    host, port = live.address
    target = RegistrationTarget(
        registrar_uri=f"sip:{pbx.address}",
        aor=f"sip:{TRUNK_USER}@{pbx.address}",
        contact=f"sip:{TRUNK_USER}@{host}:{port}",
        via_host=host,
        via_port=port,
        username=TRUNK_USER,
        password=password,
        expires=120,
    )
    return RegistrationClient(target, random.Random())


async def settle(
    live: LiveEndpoint, client: RegistrationClient, states: set[RegistrationState]
) -> None:
    """Wait (on endpoint activity, no polling) until ``client`` reaches one of ``states``."""
    async with asyncio.timeout(10):
        while client.state not in states:
            live.changed.clear()
            await live.changed.wait()


async def call_own_extension(live: LiveEndpoint, pbx: Kamailio) -> CallEnded:
    """INVITE sip:dialer@pbx through the PBX: where it goes says what Kamailio's location holds.

    Registered, Kamailio forwards it to our contact, which refuses unannounced
    calls with 403; not registered, there is no trunk in this PBX, so 404.
    """
    call = live.call(
        f"sip:{TRUNK_USER}@{pbx.address}",
        split(pbx.address),
        username=TRUNK_USER,
        password=TRUNK_PASSWORD,
    )
    return await live.ended(call.call_id, within=10)


_RECEIVED = re.compile(r"UDP message received \[\d+\] bytes :\s*\n\n(.*?)(?=\n\n|\Z)", re.S)


def received_requests(trace: Path) -> list[str]:
    """Header blocks of the requests a SIPp run received (from its -trace_msg file)."""
    text = trace.read_text(errors="replace").replace("\r\n", "\n")
    return [m for m in _RECEIVED.findall(text) if not m.startswith("SIP/2.0")]


def top_via(message: str) -> str:
    for line in message.split("\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() in ("via", "v"):
            return value.strip()
    raise AssertionError(f"no Via in {message!r}")


async def test_registers_with_digest(kamailio_factory: KamailioFactory) -> None:
    pbx = kamailio_factory(users={TRUNK_USER: TRUNK_PASSWORD})
    await pbx.start()
    async with live_endpoint() as live:
        client = client_for(live, pbx, TRUNK_PASSWORD)
        live.endpoint.add_registration(client, split(pbx.address), live.now())
        live.adapter.flush()
        await settle(live, client, {RegistrationState.REGISTERED, RegistrationState.BACKING_OFF})
        assert (client.state, client.last_status, client.failures) == (
            RegistrationState.REGISTERED,
            200,
            0,
        )
        # Kamailio grants what we asked for (max_expires is 3600).
        assert client.granted_expires == 120
        # The bare REGISTER drew a 401, its digest answer the 200.
        assert live.endpoint.counters.responses_by_class == {"4xx": 1, "2xx": 1}
        reached = await call_own_extension(live, pbx)
        assert (reached.outcome, reached.status, reached.reason) == (
            CallOutcome.DECLINED,
            403,
            "Calls are not accepted here",
        )
        assert live.endpoint.counters.requests_by_method.get("INVITE") == 1
        live.endpoint.stop_registrations(live.now())
        live.adapter.flush()
        await settle(live, client, {RegistrationState.STOPPED})
        assert client.last_status == 200
        gone = await call_own_extension(live, pbx)
    assert (gone.outcome, gone.status) == (CallOutcome.INVALID_NUMBER, 404)


async def test_wrong_password_does_not_register(kamailio_factory: KamailioFactory) -> None:
    pbx = kamailio_factory(users={TRUNK_USER: TRUNK_PASSWORD})
    await pbx.start()
    async with live_endpoint() as live:
        client = client_for(live, pbx, "not-" + TRUNK_PASSWORD)
        live.endpoint.add_registration(client, split(pbx.address), live.now())
        live.adapter.flush()
        await settle(live, client, {RegistrationState.REGISTERED, RegistrationState.BACKING_OFF})
        assert client.state is RegistrationState.BACKING_OFF
        # Kamailio answers wrong credentials with a fresh challenge, not 403.
        assert client.last_status == 401
        assert live.endpoint.counters.responses_by_class == {"4xx": 2}
        assert client.failures == 1
        assert client.granted_expires is None
        # The retry waits a jittered back-off of at least one second.
        deadline = client.next_deadline()
        assert deadline is not None and deadline >= live.now() + 0.5
        nowhere = await call_own_extension(live, pbx)
        assert live.endpoint.counters.requests_by_method.get("INVITE") is None
    assert (nowhere.outcome, nowhere.status) == (CallOutcome.INVALID_NUMBER, 404)


async def test_call_through_pbx_with_proxy_auth(
    kamailio_factory: KamailioFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    trace = tmp_path / "customer.msg"
    customer = sipp_factory(
        "uas_answer.xml", timeout=30, extra_args=("-trace_msg", "-message_file", str(trace))
    )
    pbx = kamailio_factory(users={TRUNK_USER: TRUNK_PASSWORD}, static_destination=customer.address)
    await pbx.start()
    await customer.start()
    async with live_endpoint() as live:
        call = live.call(
            f"sip:{CUSTOMER_NUMBER}@{pbx.address}",
            split(pbx.address),
            username=TRUNK_USER,
            password=TRUNK_PASSWORD,
        )
        answered = await live.wait_for(call.call_id, CallAnswered)
        assert isinstance(answered, CallAnswered) and answered.status == 200
        assert call.remote_sdp is not None and b"m=audio" in call.remote_sdp
        # Talk time before the BYE: Kamailio's worker processes may relay two
        # back-to-back datagrams out of order, and a BYE overtaking our ACK
        # makes SIPp abort the call (seen once in CI).
        await asyncio.sleep(0.5)
        live.hangup(call.call_id)
        ended = await live.ended(call.call_id)
        result = await customer.wait()
    assert (ended.outcome, ended.status, ended.hangup_by) == (
        CallOutcome.ANSWERED,
        200,
        HangupBy.LOCAL,
    )
    assert result.ok, result.describe()  # SIPp got INVITE, ACK and our BYE
    received = received_requests(trace)
    assert [r.split(" ", 1)[0] for r in received] == ["INVITE", "ACK", "BYE"]
    for request in received:
        # Record-routed: every request reached the customer through Kamailio
        # (its Via on top); Kamailio consumed our credentials before relaying.
        assert top_via(request).startswith(f"SIP/2.0/UDP {pbx.address};branch=")
        assert "Proxy-Authorization" not in request
    # The one 4xx we saw was Kamailio's 407 challenge, answered on the first try.
    assert live.endpoint.counters.responses_by_class.get("4xx") == 1
    progress = [e for e in live.of_call(call.call_id) if isinstance(e, CallProgress)]
    assert [p.status for p in progress] == [180]
    kinds = [type(e).__name__ for e in live.of_call(call.call_id)]
    assert kinds == ["CallStarted", "CallProgress", "CallAnswered", "CallEnded"]


async def test_call_with_wrong_credentials_fails_auth(
    kamailio_factory: KamailioFactory, sipp_factory: SippFactory, tmp_path: Path
) -> None:
    trace = tmp_path / "customer.msg"
    customer = sipp_factory(
        "uas_answer.xml", timeout=30, extra_args=("-trace_msg", "-message_file", str(trace))
    )
    pbx = kamailio_factory(users={TRUNK_USER: TRUNK_PASSWORD}, static_destination=customer.address)
    await pbx.start()
    await customer.start()
    async with live_endpoint() as live:
        refused = live.call(
            f"sip:{CUSTOMER_NUMBER}@{pbx.address}",
            split(pbx.address),
            username=TRUNK_USER,
            password="not-" + TRUNK_PASSWORD,
        )
        ended = await live.ended(refused.call_id, within=10)
        # Two 407s: the first challenge, then the refusal of our answer.
        assert live.endpoint.counters.responses_by_class.get("4xx") == 2
        # The same customer, now with the right password: the one call it ever sees.
        good = live.call(
            f"sip:{CUSTOMER_NUMBER}@{pbx.address}",
            split(pbx.address),
            username=TRUNK_USER,
            password=TRUNK_PASSWORD,
        )
        await live.wait_for(good.call_id, CallAnswered)
        live.hangup(good.call_id)
        await live.ended(good.call_id)
        result = await customer.wait()
    assert (ended.outcome, ended.status, ended.hangup_by) == (
        CallOutcome.AUTH_FAILED,
        407,
        None,
    )
    kinds = [type(e).__name__ for e in live.of_call(refused.call_id)]
    assert kinds == ["CallStarted", "CallEnded"]
    assert result.ok, result.describe()
    # Kamailio relayed nothing of the refused call: the customer saw only the good one.
    invites = [r for r in received_requests(trace) if r.startswith("INVITE ")]
    assert len(invites) == 1
    assert f"Call-ID: {good.call_id}" in invites[0]
