"""Registrar for the floor's desk phones (RFC 3261 §10.3), sans-IO.

Every REGISTER must carry digest credentials for the extension it registers.
An unknown extension and a wrong password get the same answer, computed the
same way (the verifier hashes against a dummy secret), so the registrar never
tells a scanner which extensions exist. A source address that keeps failing
is ignored for a while: scanners send thousands of guesses, and answering each
one costs us a hash and them nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from dialer.events import PhoneRegistered, PhoneUnregistered
from dialer.sip.auth import AuthResult, Credentials, DigestVerifier
from dialer.sip.errors import RemoteProtocolError
from dialer.sip.message import NameAddr, Request, Response
from dialer.sip.uri import SipUri

Address = tuple[str, int]
DEFAULT_EXPIRES = 3600


@dataclass(frozen=True, slots=True)
class Binding:
    extension: str
    contact: str
    expires_at: float
    call_id: str
    cseq: int
    source: Address

    @property
    def destination(self) -> Address:
        """Where requests to the phone go: its Contact's host and port."""
        uri = SipUri.parse(self.contact)
        return uri.host, uri.port or 5060


@dataclass(slots=True)
class _Throttle:
    failures: int = 0
    window_start: float = 0.0
    blocked_until: float = 0.0


@dataclass(frozen=True, slots=True)
class RegistrarPolicy:
    min_expires: int = 60
    max_expires: int = 3600
    failures_before_throttle: int = 5
    throttle_seconds: float = 60.0
    # Offered in this order. RFC 8760 clients pick the best they support, but
    # desk phones, SIPp and baresip 1.0 fail unless MD5 is offered alone.
    algorithms: tuple[str, ...] = ("MD5",)


@dataclass(slots=True)
class RegistrarCounters:
    registered: int = 0
    unregistered: int = 0
    expired: int = 0
    challenged: int = 0
    auth_failures: int = 0
    throttled: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class RegisterOutcome:
    """What to do with one REGISTER: a response to send (or silence) and events."""

    response: Response | None
    events: tuple[PhoneRegistered | PhoneUnregistered, ...] = ()


@dataclass
class Registrar:
    verifier: DigestVerifier
    passwords: Mapping[str, str]
    policy: RegistrarPolicy = field(default_factory=RegistrarPolicy)
    counters: RegistrarCounters = field(default_factory=RegistrarCounters)
    _bindings: dict[str, dict[str, Binding]] = field(default_factory=dict)
    _throttles: dict[str, _Throttle] = field(default_factory=dict)

    def lookup(self, extension: str, now: float) -> tuple[Binding, ...]:
        return tuple(b for b in self._bindings.get(extension, {}).values() if b.expires_at > now)

    def newest(self, extension: str, now: float) -> Binding | None:
        """The binding refreshed last: where a phone that moved (rebooted, new port) is now."""
        return max(self.lookup(extension, now), key=lambda b: b.expires_at, default=None)

    def registered_extensions(self, now: float) -> tuple[str, ...]:
        return tuple(sorted(e for e in self._bindings if self.lookup(e, now)))

    def next_deadline(self) -> float | None:
        return min(
            (b.expires_at for bs in self._bindings.values() for b in bs.values()), default=None
        )

    def expire(self, now: float, at_ms: int) -> list[PhoneUnregistered]:
        """Drop bindings whose time is up; a phone that stops refreshing is gone."""
        events: list[PhoneUnregistered] = []
        for extension, bindings in list(self._bindings.items()):
            for contact, binding in list(bindings.items()):
                if binding.expires_at <= now:
                    del bindings[contact]
                    self.counters.expired += 1
                    events.append(
                        PhoneUnregistered(
                            at_ms=at_ms,
                            mono=now,
                            extension=extension,
                            contact=contact,
                            reason="expired",
                        )
                    )
            if not bindings:
                del self._bindings[extension]
        return events

    def handle_register(
        self, request: Request, source: Address, now: float, at_ms: int
    ) -> RegisterOutcome:
        throttle = self._throttles.get(source[0])
        if throttle is not None and throttle.blocked_until > now:
            self.counters.throttled += 1
            return RegisterOutcome(None)
        try:
            extension = _extension_of(request.to)
        except RemoteProtocolError as exc:
            self.counters.rejected += 1
            return RegisterOutcome(request.make_response(exc.status, exc.reason))
        header = request.headers.get("Authorization")
        if header is None:
            return self._challenge(request, now, stale=False)
        try:
            credentials = Credentials.parse(header)
        except RemoteProtocolError as exc:
            self.counters.rejected += 1
            return RegisterOutcome(request.make_response(400, exc.reason))
        if credentials.realm != self.verifier.realm:
            return self._challenge(request, now, stale=False)
        # The credentials must be for the extension being registered; otherwise
        # one phone's password would register any other extension.
        user_matches = credentials.username == extension
        password = self.passwords.get(credentials.username) if user_matches else None
        result = self.verifier.verify(credentials, request.method, password, now)
        if result is AuthResult.STALE:
            return self._challenge(request, now, stale=True)
        if result is not AuthResult.OK:
            return self._failed(request, source, now)
        self._throttles.pop(source[0], None)
        try:
            return self._update_bindings(request, extension, source, now, at_ms)
        except RemoteProtocolError as exc:
            self.counters.rejected += 1
            return RegisterOutcome(request.make_response(exc.status, exc.reason))

    def _challenge(self, request: Request, now: float, *, stale: bool) -> RegisterOutcome:
        self.counters.challenged += 1
        headers = [
            ("WWW-Authenticate", str(c))
            for c in self.verifier.challenge(now, stale=stale, algorithms=self.policy.algorithms)
        ]
        return RegisterOutcome(
            request.make_response(401, "Unauthorized", to_tag=_tag(request), headers=headers)
        )

    def _failed(self, request: Request, source: Address, now: float) -> RegisterOutcome:
        self.counters.auth_failures += 1
        throttle = self._throttles.setdefault(source[0], _Throttle(window_start=now))
        if now - throttle.window_start > self.policy.throttle_seconds:
            throttle.failures, throttle.window_start = 0, now
        throttle.failures += 1
        if throttle.failures >= self.policy.failures_before_throttle:
            throttle.blocked_until = now + self.policy.throttle_seconds
        return RegisterOutcome(request.make_response(403, "Forbidden", to_tag=_tag(request)))

    def _update_bindings(
        self, request: Request, extension: str, source: Address, now: float, at_ms: int
    ) -> RegisterOutcome:
        contacts = request.headers.get_all("Contact")
        default_expires = _int_header(request, "Expires", DEFAULT_EXPIRES)
        bindings = self._bindings.setdefault(extension, {})
        events: list[PhoneRegistered | PhoneUnregistered] = []
        call_id, cseq = request.call_id, request.cseq.seq
        if [c.strip() for c in contacts] == ["*"]:
            # §10.3 step 6: "*" is only allowed with Expires: 0 and alone.
            if default_expires != 0:
                raise RemoteProtocolError("Contact: * requires Expires: 0", 400)
            for contact in list(bindings):
                del bindings[contact]
                events.append(_gone(extension, contact, now, at_ms, "unregistered"))
            self.counters.unregistered += len(events)
        else:
            for value in contacts:
                address = NameAddr.parse(value)
                expires = default_expires
                for name, param in address.params:
                    if name.lower() == "expires" and param is not None:
                        expires = _parse_int(param, "Contact expires")
                if 0 < expires < self.policy.min_expires:
                    response = request.make_response(
                        423,
                        "Interval Too Brief",
                        to_tag=_tag(request),
                        headers=[("Min-Expires", str(self.policy.min_expires))],
                    )
                    return RegisterOutcome(response)
                expires = min(expires, self.policy.max_expires)
                existing = bindings.get(address.uri)
                if existing is not None and existing.call_id == call_id and existing.cseq >= cseq:
                    # §10.3 step 7: an out-of-order retransmission must not resurrect state.
                    raise RemoteProtocolError("CSeq is not higher than the binding's", 500)
                if expires == 0:
                    if bindings.pop(address.uri, None) is not None:
                        self.counters.unregistered += 1
                        events.append(_gone(extension, address.uri, now, at_ms, "unregistered"))
                    continue
                bindings[address.uri] = Binding(
                    extension, address.uri, now + expires, call_id, cseq, source
                )
                self.counters.registered += 1
                events.append(
                    PhoneRegistered(
                        at_ms=at_ms,
                        mono=now,
                        extension=extension,
                        contact=address.uri,
                        expires=expires,
                    )
                )
        if not bindings:
            del self._bindings[extension]
        current = [
            ("Contact", f"<{b.contact}>;expires={max(0, int(b.expires_at - now))}")
            for b in self.lookup(extension, now)
        ]
        response = request.make_response(200, "OK", to_tag=_tag(request), headers=current)
        return RegisterOutcome(response, tuple(events))


def _extension_of(to: NameAddr) -> str:
    uri = SipUri.parse(to.uri)
    if not uri.user:
        raise RemoteProtocolError("To: the address of record has no user part", 404)
    return uri.user


def _tag(request: Request) -> str:
    # A stable tag per request keeps retransmitted answers identical.
    digest = hashlib.sha256(f"{request.call_id}/{request.cseq.seq}".encode()).hexdigest()
    return f"r{digest[:12]}"


def _int_header(request: Request, name: str, default: int) -> int:
    value = request.headers.get(name)
    return default if value is None else _parse_int(value, name)


def _parse_int(value: str, what: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise RemoteProtocolError(f"{what}: {value!r} is not a number", 400) from None
    if number < 0:
        raise RemoteProtocolError(f"{what}: {value!r} is negative", 400)
    return number


def _gone(extension: str, contact: str, now: float, at_ms: int, reason: str) -> PhoneUnregistered:
    return PhoneUnregistered(
        at_ms=at_ms, mono=now, extension=extension, contact=contact, reason=reason
    )
