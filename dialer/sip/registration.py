"""Registration client (RFC 3261 §10.2) for trunks, PBXes and simulated phones.

Sans-IO: it hands out REGISTER requests and takes final responses (or the
news that a transaction timed out), with ``now`` as an argument. The
transaction layer underneath does the retransmissions. A registration is
refreshed before it expires; when the registrar is down or refuses us the
client backs off exponentially with full jitter so that a PBX restarting under
a hundred trunks and phones is not hit by all of them in the same second.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum

from dialer.sip.auth import Challenge, DigestClient, choose
from dialer.sip.message import Headers, Request, Response

BACKOFF_BASE = 1.0
BACKOFF_CAP = 300.0
REFRESH_MARGIN = 0.1  # refresh when 10 % of the granted time is left (at least 5 s)


class RegistrationState(StrEnum):
    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    BACKING_OFF = "backing_off"
    UNREGISTERING = "unregistering"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class RegistrationTarget:
    registrar_uri: str  # Request-URI, e.g. sip:pbx.example.com:5060
    aor: str  # address of record, e.g. sip:1001@pbx.example.com
    contact: str  # where we can be reached, e.g. sip:1001@127.0.0.1:5062
    via_host: str
    via_port: int
    transport: str = "UDP"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    expires: int = 600


@dataclass
class RegistrationClient:
    target: RegistrationTarget
    rng: random.Random
    state: RegistrationState = RegistrationState.IDLE
    granted_expires: int | None = None
    failures: int = 0
    last_status: int | None = None
    _deadline: float | None = None
    _cseq: int = 0
    _call_id: str = ""
    _from_tag: str = ""
    _auth_tries: int = 0
    _digest: DigestClient | None = None
    _pending: Request | None = None

    def __post_init__(self) -> None:
        self._call_id = f"{self.rng.getrandbits(64):016x}@{self.target.via_host}"
        self._from_tag = f"{self.rng.getrandbits(32):08x}"
        if self.target.username is not None and self.target.password is not None:
            self._digest = DigestClient(self.target.username, self.target.password)

    def start(self, now: float) -> Request:
        return self._register(self.target.expires, now, authorization=None)

    def stop(self, now: float) -> Request | None:
        """Unregister (Expires: 0) if we are registered; then stay stopped."""
        registered = self.state is RegistrationState.REGISTERED
        self._deadline = None
        if not registered:
            self.state = RegistrationState.STOPPED
            return None
        request = self._register(0, now, authorization=None)
        self.state = RegistrationState.UNREGISTERING
        return request

    def next_deadline(self) -> float | None:
        return self._deadline

    def handle_timer(self, now: float) -> Request | None:
        if self._deadline is None or now < self._deadline:
            return None
        self._deadline = None
        if self.state in (RegistrationState.REGISTERED, RegistrationState.BACKING_OFF):
            return self._register(self.target.expires, now, authorization=None)
        return None

    def transaction_failed(self, now: float) -> None:
        """Timer F fired or the transport failed: the registrar is unreachable."""
        self.last_status = 408
        self._back_off(now)

    def receive_response(self, response: Response, now: float) -> Request | None:
        """Take a final response to our last REGISTER; maybe answer a challenge."""
        if response.status < 200:
            return None
        self.last_status = response.status
        if response.status not in (401, 407):
            self._auth_tries = 0
        if self.state is RegistrationState.UNREGISTERING and response.status not in (401, 407):
            self.state = RegistrationState.STOPPED
            return None
        if response.status in (401, 407):
            header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
            challenges = [Challenge.parse(v) for v in response.headers.get_all(header)]
            # A second challenge right after our answer means wrong credentials,
            # unless the registrar says the nonce was merely stale.
            stale = any(c.stale for c in challenges)
            if self._digest is None or not challenges or (self._auth_tries >= 1 and not stale):
                self._back_off(now)
                return None
            self._auth_tries += 1
            challenge = choose(challenges)
            credentials = self._digest.respond(
                challenge,
                "REGISTER",
                self.target.registrar_uri,
                cnonce=f"{self.rng.getrandbits(64):016x}",
            )
            auth_header = "Authorization" if response.status == 401 else "Proxy-Authorization"
            assert self._pending is not None
            expires = int(self._pending.headers.get("Expires") or self.target.expires)
            return self._register(expires, now, authorization=(auth_header, str(credentials)))
        if 200 <= response.status < 300:
            self._auth_tries = 0
            self.failures = 0
            granted = self._granted(response)
            self.granted_expires = granted
            self.state = RegistrationState.REGISTERED
            margin = max(5.0, granted * REFRESH_MARGIN)
            self._deadline = now + max(1.0, granted - margin)
            return None
        if response.status == 423:
            minimum = response.headers.get("Min-Expires")
            if minimum is not None and minimum.strip().isdigit():
                return self._register(int(minimum), now, authorization=None)
        self._back_off(now)
        return None

    def _granted(self, response: Response) -> int:
        ours = self.target.contact
        for value in response.headers.get_all("Contact"):
            if ours in value:
                for part in value.split(";")[1:]:
                    name, _, number = part.partition("=")
                    if name.strip().lower() == "expires" and number.strip().isdigit():
                        return int(number)
        header = response.headers.get("Expires")
        if header is not None and header.strip().isdigit():
            return int(header)
        return self.target.expires

    def _back_off(self, now: float) -> None:
        self.failures += 1
        self._auth_tries = 0
        self.state = RegistrationState.BACKING_OFF
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(self.failures, 16))
        self._deadline = now + self.rng.uniform(BACKOFF_BASE, ceiling)

    def _register(self, expires: int, now: float, authorization: tuple[str, str] | None) -> Request:
        self._cseq += 1
        if self.state is not RegistrationState.UNREGISTERING:
            self.state = RegistrationState.REGISTERING
        t = self.target
        branch = f"z9hG4bK{self.rng.getrandbits(64):016x}"
        pairs = [
            ("Via", f"SIP/2.0/{t.transport} {t.via_host}:{t.via_port};branch={branch};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<{t.aor}>;tag={self._from_tag}"),
            ("To", f"<{t.aor}>"),
            ("Call-ID", self._call_id),
            ("CSeq", f"{self._cseq} REGISTER"),
            ("Contact", f"<{t.contact}>"),
            ("Expires", str(expires)),
            ("User-Agent", "telesales-dialer"),
        ]
        if authorization is not None:
            pairs.append(authorization)
        request = Request("REGISTER", t.registrar_uri, Headers.of(pairs))
        self._pending = request
        return request
