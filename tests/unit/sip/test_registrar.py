from __future__ import annotations

import dataclasses
import random

from dialer.events import PhoneRegistered, PhoneUnregistered
from dialer.sip.auth import DigestVerifier, NonceIssuer
from dialer.sip.message import Request, Response
from dialer.sip.registrar import Registrar, RegistrarPolicy
from dialer.sip.registration import RegistrationClient, RegistrationState, RegistrationTarget

REALM = "dialer.local"
SOURCE = ("127.0.0.1", 5062)


def make_registrar(policy: RegistrarPolicy | None = None) -> Registrar:
    verifier = DigestVerifier(REALM, NonceIssuer(b"k" * 32, lifetime=300.0))
    return Registrar(verifier, {"1001": "right", "1002": "other"}, policy or RegistrarPolicy())


def phone(
    extension: str = "1001", password: str = "right", expires: int = 600
) -> RegistrationClient:
    target = RegistrationTarget(
        registrar_uri=f"sip:{REALM}",
        aor=f"sip:{extension}@{REALM}",
        contact=f"sip:{extension}@127.0.0.1:5062",
        via_host="127.0.0.1",
        via_port=5062,
        username=extension,
        password=password,
        expires=expires,
    )
    return RegistrationClient(target, random.Random(7))


def exchange(registrar: Registrar, request: Request, now: float) -> Response:
    # Through bytes, as on the wire.
    from dialer.sip.message import parse_message

    wire = parse_message(request.to_bytes())
    assert isinstance(wire, Request)
    outcome = registrar.handle_register(wire, SOURCE, now, at_ms=int(now * 1000))
    assert outcome.response is not None
    parsed = parse_message(outcome.response.to_bytes())
    assert isinstance(parsed, Response)
    return parsed


def register(registrar: Registrar, client: RegistrationClient, now: float) -> list[int]:
    """Run one registration to its end; return the statuses seen."""
    statuses = []
    request: Request | None = client.start(now)
    while request is not None:
        response = exchange(registrar, request, now)
        statuses.append(response.status)
        request = client.receive_response(response, now)
    return statuses


def test_good_password_registers_after_one_challenge() -> None:
    registrar = make_registrar()
    client = phone()
    assert register(registrar, client, 0.0) == [401, 200]
    assert client.state is RegistrationState.REGISTERED
    assert client.granted_expires == 600
    bindings = registrar.lookup("1001", 1.0)
    assert [b.contact for b in bindings] == ["sip:1001@127.0.0.1:5062"]
    # refreshed before expiry: 10 % margin of 600 s
    assert client.next_deadline() == 540.0


def test_wrong_password_and_unknown_user_get_the_same_answer() -> None:
    registrar = make_registrar()
    wrong = phone("1001", "wrong")
    unknown = phone("9999", "whatever")
    assert register(registrar, wrong, 0.0) == [401, 403]
    assert register(registrar, unknown, 0.0) == [401, 403]
    assert wrong.state is RegistrationState.BACKING_OFF
    assert registrar.lookup("1001", 1.0) == ()
    assert registrar.counters.auth_failures == 2


def test_one_phones_password_cannot_register_another_extension() -> None:
    registrar = make_registrar()
    client = phone("1002", "right")  # 1001's password used for 1002
    assert register(registrar, client, 0.0) == [401, 403]


def test_repeated_failures_from_one_source_are_throttled() -> None:
    registrar = make_registrar(RegistrarPolicy(failures_before_throttle=3, throttle_seconds=60))
    for i in range(3):
        assert register(registrar, phone("1001", f"guess{i}"), float(i)) == [401, 403]
    request = phone().start(3.0)
    outcome = registrar.handle_register(request, SOURCE, 3.0, at_ms=3000)
    assert outcome.response is None  # silently dropped while blocked
    assert registrar.counters.throttled == 1
    # after the block the right password works again
    assert register(registrar, phone(), 64.0) == [401, 200]


def test_binding_expires_and_unregister_removes_it() -> None:
    registrar = make_registrar()
    register(registrar, phone(expires=120), 0.0)
    assert registrar.next_deadline() == 120.0
    events = registrar.expire(120.0, at_ms=120_000)
    assert [type(e) for e in events] == [PhoneUnregistered]
    assert registrar.lookup("1001", 120.0) == ()

    client = phone()
    register(registrar, client, 200.0)
    request = client.stop(201.0)
    assert request is not None
    response = exchange(registrar, request, 201.0)
    assert response.status == 401  # unregistering needs credentials too
    request = client.receive_response(response, 201.0)
    assert request is not None
    assert exchange(registrar, request, 201.0).status == 200
    assert registrar.lookup("1001", 202.0) == ()


def test_too_brief_interval_is_answered_with_min_expires_and_retried() -> None:
    registrar = make_registrar(RegistrarPolicy(min_expires=60))
    client = phone(expires=10)
    assert register(registrar, client, 0.0) == [401, 423, 401, 200]
    assert client.granted_expires == 60


def test_registration_event_carries_extension_and_expiry() -> None:
    registrar = make_registrar()
    client = phone()
    request = client.start(0.0)
    challenge = exchange(registrar, request, 0.0)
    retry = client.receive_response(challenge, 0.0)
    assert retry is not None
    outcome = registrar.handle_register(retry, SOURCE, 0.0, at_ms=0)
    (event,) = outcome.events
    assert isinstance(event, PhoneRegistered)
    assert (event.extension, event.expires) == ("1001", 600)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    client = phone()
    client.start(0.0)
    deadlines = []
    now = 0.0
    for _ in range(12):
        client.transaction_failed(now)
        deadline = client.next_deadline()
        assert deadline is not None
        deadlines.append(deadline - now)
        now = deadline
        assert client.handle_timer(now) is not None
    assert all(1.0 <= d <= 300.0 for d in deadlines)
    assert max(deadlines[:2]) <= 4.0


def test_several_contacts_per_extension_are_kept_and_listed() -> None:
    registrar = make_registrar()
    desk = phone()
    soft = RegistrationClient(
        dataclasses.replace(desk.target, contact="sip:1001@127.0.0.1:5070", via_port=5070),
        random.Random(9),
    )
    assert register(registrar, desk, 0.0) == [401, 200]
    request: Request | None = soft.start(1.0)
    last = None
    while request is not None:
        last = exchange(registrar, request, 1.0)
        request = soft.receive_response(last, 1.0)
    assert last is not None and last.status == 200
    # The 200 lists every current binding of the extension (§10.3 step 8).
    assert sorted(last.headers.get_all("Contact")) == [
        "<sip:1001@127.0.0.1:5062>;expires=599",
        "<sip:1001@127.0.0.1:5070>;expires=600",
    ]
    assert len(registrar.lookup("1001", 2.0)) == 2
