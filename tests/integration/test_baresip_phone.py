"""baresip as an agent's desk phone: it registers with a password to our
registrar, and the service calls the registered contact with the auto-answer
headers; either side may hang up."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from live import LiveEndpoint, live_endpoint
from peers import Baresip

from dialer.events import CallAnswered, CallOutcome, HangupBy, PhoneRegistered
from dialer.sip.auth import DigestVerifier, NonceIssuer
from dialer.sip.autoanswer import auto_answer_headers
from dialer.sip.call import OutboundCall
from dialer.sip.registrar import Binding, Registrar, RegistrarPolicy
from dialer.sip.uri import SipUri

pytestmark = pytest.mark.integration

BaresipFactory = Callable[..., Baresip]

REALM = "floor.test"
EXTENSION, PASSWORD = "1002", "desk-phone-1002"


# Our default offer is SHA-256 then MD5 (RFC 8760 §2.4). baresip 1.0 on libre
# 1.1 fails the registration ("Function not implemented") when any challenge
# names an algorithm it lacks, even with MD5 offered first, so the desk phones'
# registrar offers MD5 alone.
PHONE_OFFER = ("MD5",)


def desk_registrar(algorithms: tuple[str, ...] = PHONE_OFFER) -> Registrar:
    issuer = NonceIssuer(secrets.token_bytes(32), lifetime=300.0)
    policy = RegistrarPolicy(algorithms=algorithms)
    return Registrar(DigestVerifier(REALM, issuer), {EXTENSION: PASSWORD}, policy)


@dataclass
class Desk:
    live: LiveEndpoint
    registrar: Registrar
    phone: Baresip
    registered: PhoneRegistered
    binding: Binding


async def phone_registered(live: LiveEndpoint, extension: str) -> PhoneRegistered:
    async with asyncio.timeout(10):
        while True:
            for event in live.events:
                if isinstance(event, PhoneRegistered) and event.extension == extension:
                    return event
            live.changed.clear()
            await live.changed.wait()


@asynccontextmanager
async def registered_desk(baresip_factory: BaresipFactory, audio: Path) -> AsyncIterator[Desk]:
    registrar = desk_registrar()
    async with live_endpoint(registrar=registrar) as live:
        host, port = live.address
        phone = baresip_factory(
            user=EXTENSION, password=PASSWORD, registrar=f"{host}:{port}", audio_file=audio
        )
        try:
            await phone.start()
            ok = await phone.wait_event("REGISTER_OK", timeout=10)
            assert ok.param == "200 OK"
            assert ok.account == f"sip:{EXTENSION}@{host}:{port}"
            registered = await phone_registered(live, EXTENSION)
            bindings = registrar.lookup(EXTENSION, live.now())
            assert len(bindings) == 1
            yield Desk(live, registrar, phone, registered, bindings[0])
        finally:
            # baresip unregisters on exit: stop it while our registrar still answers.
            await phone.stop()


def call_desk(desk: Desk) -> OutboundCall:
    # baresip 1.0.0 ignores Call-Info answer-after (a manual-answer account only
    # rings); it picks up because its account says answermode=auto. The headers
    # are still what the service sends every desk phone of this vendor.
    contact = SipUri.parse(desk.binding.contact)
    assert contact.port is not None
    return desk.live.call(
        desk.binding.contact,
        (contact.host, contact.port),
        extra_headers=auto_answer_headers("baresip"),
    )


async def test_phone_registers_with_its_password(
    baresip_factory: BaresipFactory, tone_wav: Path
) -> None:
    async with registered_desk(baresip_factory, tone_wav) as desk:
        contact = SipUri.parse(desk.binding.contact)
        assert (contact.host, contact.port) == ("127.0.0.1", desk.phone.sip_port)
        # baresip makes its contact user unique per UA instance: "1002-0x55...".
        assert contact.user is not None and contact.user.startswith(f"{EXTENSION}-")
        assert desk.registered.contact == desk.binding.contact
        assert desk.registered.expires == 300  # the phone's regint, within policy
        assert desk.binding.source == ("127.0.0.1", desk.phone.sip_port)
        # baresip's first REGISTER was challenged, its digest answer accepted.
        assert desk.registrar.counters.challenged >= 1
        assert desk.registrar.counters.auth_failures == 0
        live = desk.live
    # The phone unregistered when it stopped.
    assert desk.registrar.lookup(EXTENSION, live.now()) == ()


async def test_phone_with_wrong_password_is_refused(
    baresip_factory: BaresipFactory, tone_wav: Path
) -> None:
    registrar = desk_registrar()
    async with live_endpoint(registrar=registrar) as live:
        host, port = live.address
        phone = baresip_factory(
            user=EXTENSION,
            password="not-" + PASSWORD,
            registrar=f"{host}:{port}",
            audio_file=tone_wav,
        )
        await phone.start()
        failed = await phone.wait_event("REGISTER_FAIL", timeout=10)
        bindings = registrar.lookup(EXTENSION, live.now())
        registered = [e for e in live.events if isinstance(e, PhoneRegistered)]
        await phone.stop()
    assert failed.param.startswith("403"), failed.param
    assert bindings == ()
    assert registered == []
    assert registrar.counters.auth_failures >= 1


async def test_we_hang_up_the_auto_answered_phone(
    baresip_factory: BaresipFactory, tone_wav: Path
) -> None:
    async with registered_desk(baresip_factory, tone_wav) as desk:
        call = call_desk(desk)
        answered = await desk.live.wait_for(call.call_id, CallAnswered, within=10)
        established = await desk.phone.wait_event("CALL_ESTABLISHED", timeout=10)
        assert call.remote_sdp is not None and b"m=audio" in call.remote_sdp
        desk.live.hangup(call.call_id)
        ended = await desk.live.ended(call.call_id, within=10)
        closed = await desk.phone.wait_event("CALL_CLOSED", timeout=10)
        events = desk.live.of_call(call.call_id)
    assert isinstance(answered, CallAnswered) and answered.status == 200
    assert established.peer_uri.startswith("sip:dialer@127.0.0.1")
    assert (ended.outcome, ended.status, ended.hangup_by) == (
        CallOutcome.ANSWERED,
        200,
        HangupBy.LOCAL,
    )
    assert closed.peer_uri == established.peer_uri
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["CallStarted", "CallProgress", "CallAnswered", "CallEnded"]


async def test_phone_hangs_up(baresip_factory: BaresipFactory, tone_wav: Path) -> None:
    async with registered_desk(baresip_factory, tone_wav) as desk:
        call = call_desk(desk)
        await desk.live.wait_for(call.call_id, CallAnswered, within=10)
        await desk.phone.wait_event("CALL_ESTABLISHED", timeout=10)
        reply = await desk.phone.hangup()
        assert reply.ok, reply.data
        ended = await desk.live.ended(call.call_id, within=10)
        closed = await desk.phone.wait_event("CALL_CLOSED", timeout=10)
    assert (ended.outcome, ended.status, ended.hangup_by) == (
        CallOutcome.ANSWERED,
        200,
        HangupBy.REMOTE,
    )
    assert closed.peer_uri.startswith("sip:dialer@127.0.0.1")
