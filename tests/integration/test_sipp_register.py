"""SIPp phones against our registrar on a real UDP socket: digest REGISTER with
the right password binds, a wrong one is refused, an unknown extension cannot
be told apart from a wrong password, and OPTIONS is answered."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from live import LiveEndpoint, live_endpoint
from peers import Sipp

from dialer.events import PhoneRegistered
from dialer.sip.auth import DigestVerifier, NonceIssuer
from dialer.sip.registrar import Registrar, RegistrarPolicy

pytestmark = pytest.mark.integration

SippFactory = Callable[..., Sipp]

REALM = "floor.test"
EXTENSION, PASSWORD = "1001", "pw-1001-secret"


# Our default offer is SHA-256 then MD5 (RFC 8760 §2.4). SIPp 3.6.1 only tries
# the first challenge and cannot do SHA-256, so the floor's phones are offered
# MD5 first (alone, or ahead of SHA-256: the order is what matters to them).
OFFERS = [("MD5",), ("MD5", "SHA-256")]


def registrar(algorithms: tuple[str, ...] = ("MD5",)) -> Registrar:
    issuer = NonceIssuer(secrets.token_bytes(32), lifetime=300.0)
    policy = RegistrarPolicy(algorithms=algorithms)
    return Registrar(DigestVerifier(REALM, issuer), {EXTENSION: PASSWORD}, policy)


def address_of(live: LiveEndpoint) -> str:
    host, port = live.address
    return f"{host}:{port}"


def traced(
    sipp_factory: SippFactory, tmp_path: Path, name: str, scenario: str, target: str, **kw: object
) -> tuple[Sipp, Path]:
    """A SIPp run that also writes every message it sent and received to a file."""
    trace = tmp_path / f"{name}.msg"
    sipp = sipp_factory(
        scenario,
        target,
        timeout=10,
        extra_args=("-trace_msg", "-message_file", str(trace)),
        **kw,
    )
    return sipp, trace


_RECEIVED = re.compile(
    r"UDP message received \[\d+\] bytes :\s*\n\n(SIP/2\.0 .*?)(?=\n\n|\Z)", re.S
)


def received_responses(trace: Path) -> list[str]:
    """The header blocks of every response SIPp received, in order."""
    text = trace.read_text(errors="replace").replace("\r\n", "\n")
    return _RECEIVED.findall(text)


def status_lines(responses: list[str]) -> list[str]:
    return [r.split("\n", 1)[0].strip() for r in responses]


def shape(response: str) -> list[tuple[str, str]]:
    """Header names with the values that may differ between two requests blanked out.

    Tags, nonces, Call-IDs, branches and ports depend on the request; everything
    else (status, reason, which headers, challenge parameters) must be identical.
    """
    out: list[tuple[str, str]] = []
    for line in response.split("\n")[1:]:
        name, _, value = line.partition(":")
        value = value.strip()
        value = re.sub(r'nonce="[^"]*"', 'nonce="*"', value)
        value = re.sub(r";tag=[^;>\s]+", ";tag=*", value)
        value = re.sub(r"branch=[^;\s]+", "branch=*", value)
        value = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:*", value)
        value = re.sub(r"rport=\d+", "rport=*", value)
        if name.strip().lower() in ("call-id", "i"):
            value = "*"
        out.append((name.strip(), value))
    return out


async def wait_for_registered(live: LiveEndpoint, extension: str) -> PhoneRegistered:
    async with asyncio.timeout(10):
        while True:
            for event in live.events:
                if isinstance(event, PhoneRegistered) and event.extension == extension:
                    return event
            live.changed.clear()
            await live.changed.wait()


@pytest.mark.parametrize("offer", OFFERS, ids="+".join)
async def test_right_password_registers(
    sipp_factory: SippFactory, tmp_path: Path, offer: tuple[str, ...]
) -> None:
    reg = registrar(offer)
    async with live_endpoint(registrar=reg) as live:
        phone, trace = traced(
            sipp_factory,
            tmp_path,
            "good",
            "uac_register.xml",
            address_of(live),
            service=EXTENSION,
            auth_user=EXTENSION,
            auth_password=PASSWORD,
        )
        await phone.start()
        result = await phone.wait()
        assert result.ok, result.describe()
        assert (result.successful, result.failed) == (1, 0)
        event = await wait_for_registered(live, EXTENSION)
        bindings = reg.lookup(EXTENSION, live.now())
    responses = received_responses(trace)
    assert status_lines(responses) == ["SIP/2.0 401 Unauthorized", "SIP/2.0 200 OK"]
    offered = [v for n, v in shape(responses[0]) if n.lower() == "www-authenticate"]
    assert [re.search(r"algorithm=([\w-]+)", v).group(1) for v in offered] == list(offer)  # type: ignore[union-attr]
    assert all(f'realm="{REALM}"' in v and 'qop="auth"' in v for v in offered)
    assert len(bindings) == 1
    binding = bindings[0]
    assert binding.contact == f"sip:{EXTENSION}@{phone.address};transport=UDP"
    assert binding.source == ("127.0.0.1", phone.port)
    assert (event.contact, event.expires) == (binding.contact, 300)
    assert reg.counters.registered == 1
    assert reg.counters.auth_failures == 0


async def test_wrong_password_is_refused_and_binds_nothing(
    sipp_factory: SippFactory, tmp_path: Path
) -> None:
    reg = registrar()
    async with live_endpoint(registrar=reg) as live:
        phone, trace = traced(
            sipp_factory,
            tmp_path,
            "bad",
            "uac_register_bad.xml",
            address_of(live),
            service=EXTENSION,
            auth_user=EXTENSION,
            auth_password="not-" + PASSWORD,
        )
        await phone.start()
        result = await phone.wait()
        assert result.ok, result.describe()
        assert reg.lookup(EXTENSION, live.now()) == ()
        registered = [e for e in live.events if isinstance(e, PhoneRegistered)]
    # The scenario accepts 401 or 403; our registrar must say 403 exactly.
    assert status_lines(received_responses(trace)) == [
        "SIP/2.0 401 Unauthorized",
        "SIP/2.0 403 Forbidden",
    ]
    assert registered == []
    assert reg.registered_extensions(live.now()) == ()
    assert (reg.counters.auth_failures, reg.counters.registered) == (1, 0)


async def test_right_password_fails_the_bad_scenario(
    sipp_factory: SippFactory, tmp_path: Path
) -> None:
    # The refusal scenario must be able to fail, or its passing above proves nothing.
    reg = registrar()
    async with live_endpoint(registrar=reg) as live:
        phone, trace = traced(
            sipp_factory,
            tmp_path,
            "control",
            "uac_register_bad.xml",
            address_of(live),
            service=EXTENSION,
            auth_user=EXTENSION,
            auth_password=PASSWORD,
        )
        await phone.start()
        result = await phone.wait()
    assert (result.returncode, result.successful, result.failed) == (1, 0, 1), result.describe()
    assert status_lines(received_responses(trace)) == ["SIP/2.0 401 Unauthorized", "SIP/2.0 200 OK"]


async def test_unknown_user_looks_exactly_like_a_wrong_password(
    sipp_factory: SippFactory, tmp_path: Path
) -> None:
    reg = registrar()
    async with live_endpoint(registrar=reg) as live:
        wrong, wrong_trace = traced(
            sipp_factory,
            tmp_path,
            "wrong",
            "uac_register_bad.xml",
            address_of(live),
            service=EXTENSION,
            auth_user=EXTENSION,
            auth_password="not-" + PASSWORD,
        )
        await wrong.start()
        wrong_result = await wrong.wait()
        unknown, unknown_trace = traced(
            sipp_factory,
            tmp_path,
            "unknown",
            "uac_register_bad.xml",
            address_of(live),
            service="1999",
            auth_user="1999",
            auth_password="not-" + PASSWORD,
        )
        await unknown.start()
        unknown_result = await unknown.wait()
        registered = [e for e in live.events if isinstance(e, PhoneRegistered)]
        assert reg.registered_extensions(live.now()) == ()
    assert wrong_result.ok, wrong_result.describe()
    assert unknown_result.ok, unknown_result.describe()
    wrong_responses = received_responses(wrong_trace)
    unknown_responses = received_responses(unknown_trace)
    assert status_lines(unknown_responses) == ["SIP/2.0 401 Unauthorized", "SIP/2.0 403 Forbidden"]
    assert status_lines(wrong_responses) == status_lines(unknown_responses)
    # Same headers in the same order with the same challenge: only the AOR differs.
    wrong_shapes = [shape(r) for r in wrong_responses]
    unknown_shapes = [
        [(n, v.replace("sip:1999@", f"sip:{EXTENSION}@")) for n, v in shape(r)]
        for r in unknown_responses
    ]
    assert wrong_shapes == unknown_shapes
    assert registered == []
    assert reg.counters.auth_failures == 2


async def test_options_is_answered_with_200(sipp_factory: SippFactory, tmp_path: Path) -> None:
    async with live_endpoint(registrar=registrar()) as live:
        probe, trace = traced(
            sipp_factory, tmp_path, "options", "uac_options.xml", address_of(live)
        )
        await probe.start()
        result = await probe.wait()
        options = live.endpoint.counters.requests_by_method.get("OPTIONS", 0)
    assert result.ok, result.describe()
    responses = received_responses(trace)
    assert status_lines(responses) == ["SIP/2.0 200 OK"]
    headers = dict(shape(responses[0]))
    assert headers["Allow"] == "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REGISTER"
    assert headers["Accept"] == "application/sdp"
    assert options == 1
