"""One SIP element on one UDP address, sans-IO: the core the adapter drives.

It owns the transaction layer, answers what it can itself (OPTIONS,
REGISTER through the registrar, malformed requests with 400), runs the
registration clients, and turns the rest into domain events. Datagrams to send
come out of ``take_datagrams`` with their destination; ``now`` is the
monotonic clock, and wall-clock milliseconds are derived from the one epoch
pair the composition root hands in, so nothing here reads a clock.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass, field

from dialer.events import Event
from dialer.sip.call import LegConfig, LegState, OutboundCall
from dialer.sip.errors import RemoteProtocolError
from dialer.sip.headers import split_commas
from dialer.sip.message import Headers, Request, Response, parse_message
from dialer.sip.registrar import Registrar
from dialer.sip.registration import RegistrationClient
from dialer.sip.timers import TimerConfig
from dialer.sip.transaction import (
    AckReceived,
    RequestReceived,
    ResponseReceived,
    Timeout,
    TransactionKey,
    TransactionLayer,
)

Address = tuple[str, int]
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REGISTER"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Clock:
    """The wall-clock instant (UTC ms) that corresponds to monotonic ``mono``."""

    wall_ms: int = 0
    mono: float = 0.0

    def wall(self, now: float) -> int:
        return self.wall_ms + round((now - self.mono) * 1000)


@dataclass(slots=True)
class EndpointCounters:
    received: int = 0
    malformed: int = 0
    answered_malformed: int = 0
    requests_by_method: dict[str, int] = field(default_factory=dict)
    responses_by_class: dict[str, int] = field(default_factory=dict)
    transaction_timeouts: int = 0
    unmatched: int = 0


class SipEndpoint:
    def __init__(
        self,
        local: Address,
        *,
        registrar: Registrar | None = None,
        timers: TimerConfig | None = None,
        clock: Clock | None = None,
        max_message_bytes: int = 65536,
        max_headers: int = 100,
        rng: random.Random | None = None,
    ) -> None:
        self.rng = rng or random.Random()
        self.local = local
        self.registrar = registrar
        self.clock = clock or Clock()
        self.counters = EndpointCounters()
        self.transactions = TransactionLayer(timers)
        self.max_message_bytes = max_message_bytes
        self.max_headers = max_headers
        self._destinations: dict[TransactionKey, Address] = {}
        self._registrations: dict[TransactionKey, RegistrationClient] = {}
        self._clients: list[tuple[RegistrationClient, Address]] = []
        self._out: list[tuple[bytes, Address]] = []
        self._events: list[Event] = []
        self.calls: dict[str, OutboundCall] = {}
        self._call_keys: dict[TransactionKey, tuple[OutboundCall, str]] = {}
        self._call_destinations: dict[str, Address] = {}

    # --- what the adapter calls -------------------------------------------

    def receive_datagram(self, data: bytes, source: Address, now: float) -> None:
        self.counters.received += 1
        if not data.strip(b"\r\n"):
            return  # RFC 5626 keep-alive
        try:
            message = parse_message(
                data, max_size=self.max_message_bytes, max_headers=self.max_headers
            )
        except RemoteProtocolError as exc:
            self._malformed(data, source, exc)
            return
        if isinstance(message, Request):
            message = _stamp_received(message, source)
            self._count(self.counters.requests_by_method, message.method)
        else:
            self._count(self.counters.responses_by_class, f"{message.status // 100}xx")
        try:
            tagged = self.transactions.receive(message, now, reliable=False)
        except RemoteProtocolError as exc:
            self._malformed(data, source, exc)
            return
        for item in tagged:
            event = item.event
            if isinstance(event, RequestReceived) and item.key is not None:
                self._destinations[item.key] = _response_destination(event.request, source)
                self._on_request(item.key, event.request, source, now)
            elif isinstance(event, ResponseReceived) and item.key is not None:
                self._on_response(item.key, event.response, now)
            elif isinstance(event, Timeout) and item.key is not None:
                self._on_timeout(item.key, now)
            elif isinstance(event, ResponseReceived):
                self._on_stray_response(event.response, now)
            elif isinstance(event, AckReceived):
                pass  # the ACK for a 2xx we sent: nothing more to do (no UAS calls yet)
        self._collect()

    def handle_timer(self, now: float) -> None:
        for item in self.transactions.handle_timer(now):
            if isinstance(item.event, Timeout) and item.key is not None:
                self._on_timeout(item.key, now)
        for client, destination in self._clients:
            request = client.handle_timer(now)
            if request is not None:
                self._send_registration(client, request, destination, now)
        if self.registrar is not None:
            self._events.extend(self.registrar.expire(now, self.clock.wall(now)))
        self._collect()

    def next_deadline(self) -> float | None:
        deadlines = [self.transactions.next_deadline()]
        deadlines += [client.next_deadline() for client, _ in self._clients]
        if self.registrar is not None:
            deadlines.append(self.registrar.next_deadline())
        return min((d for d in deadlines if d is not None), default=None)

    def take_datagrams(self) -> list[tuple[bytes, Address]]:
        out, self._out = self._out, []
        return out

    def take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    # --- what the service calls -------------------------------------------

    def add_registration(self, client: RegistrationClient, registrar: Address, now: float) -> None:
        """Keep ``client`` registered at ``registrar`` from now on."""
        self._clients.append((client, registrar))
        self._send_registration(client, client.start(now), registrar, now)
        self._collect()

    def stop_registrations(self, now: float) -> None:
        for client, destination in self._clients:
            request = client.stop(now)
            if request is not None:
                self._send_registration(client, request, destination, now)
        self._collect()

    def place_call(self, config: LegConfig, destination: Address, now: float) -> OutboundCall:
        """Send an INVITE; the call's events arrive through ``take_events``."""
        if config.call_id in self.calls:
            raise ValueError(f"call id {config.call_id} is already in use")
        call = OutboundCall(config, self.rng)
        self.calls[config.call_id] = call
        self._call_destinations[config.call_id] = destination
        self._send_for_call(call, call.start(now, self.clock.wall(now)), now)
        self._after_call(call)
        self._collect()
        return call

    def hangup(self, call_id: str, now: float) -> None:
        """BYE a confirmed call, CANCEL a ringing one."""
        call = self.calls.get(call_id)
        if call is None:
            return
        request = call.hangup(now)
        if request is not None:
            self._send_for_call(call, request, now)
        self._after_call(call)
        self._collect()

    def send_request(self, request: Request, destination: Address, now: float) -> TransactionKey:
        key = self.transactions.send_request(request, now, reliable=False)
        self._destinations[key] = destination
        self._collect()
        return key

    # --- internals ----------------------------------------------------------

    def _send_registration(
        self, client: RegistrationClient, request: Request, destination: Address, now: float
    ) -> None:
        key = self.transactions.send_request(request, now, reliable=False)
        self._destinations[key] = destination
        self._registrations[key] = client

    def _send_for_call(self, call: OutboundCall, request: Request, now: float) -> None:
        destination = self._call_destinations[call.call_id]
        key = self.transactions.send_request(request, now, reliable=False)
        self._destinations[key] = destination
        self._call_keys[key] = (call, request.method)

    def _after_call(self, call: OutboundCall) -> None:
        ack = call.take_ack()
        if ack is not None:
            self._out.append((ack.to_bytes(), self._call_destinations[call.call_id]))
        if call.events:
            self._events.extend(call.events)
            call.events.clear()
        if call.state is LegState.ENDED:
            self.calls.pop(call.call_id, None)
            self._call_destinations.pop(call.call_id, None)
            for key in [k for k, (c, _) in self._call_keys.items() if c is call]:
                del self._call_keys[key]

    def _on_call_response(
        self, call: OutboundCall, method: str, response: Response, now: float
    ) -> None:
        at_ms = self.clock.wall(now)
        if method == "INVITE":
            follow_up = call.on_invite_response(response, now, at_ms)
            if follow_up is not None:
                self._send_for_call(call, follow_up, now)
        elif method == "BYE" and response.status >= 200:
            call.on_bye_done(now, at_ms, response.status)
        self._after_call(call)

    def _on_stray_response(self, response: Response, now: float) -> None:
        # A 2xx retransmitted after its transaction ended must still be ACKed.
        self.counters.unmatched += 1
        call = self.calls.get(response.call_id)
        if call is not None and response.cseq.method == "INVITE":
            self._on_call_response(call, "INVITE", response, now)

    def _on_request(
        self, key: TransactionKey, request: Request, source: Address, now: float
    ) -> None:
        method = request.method
        call = self.calls.get(request.call_id)
        if call is not None and call.matches_dialog(request) and method != "CANCEL":
            self.transactions.send_response(key, self._in_dialog(call, request, now), now)
            self._after_call(call)
            return
        if method == "OPTIONS":
            response = request.make_response(
                200,
                to_tag=_local_tag(request),
                headers=[("Allow", ALLOW), ("Accept", "application/sdp")],
            )
        elif method == "REGISTER" and self.registrar is not None:
            outcome = self.registrar.handle_register(request, source, now, self.clock.wall(now))
            self._events.extend(outcome.events)
            if outcome.response is None:
                return  # throttled source: say nothing
            response = outcome.response
        elif method == "REGISTER":
            response = request.make_response(405, headers=[("Allow", ALLOW)])
        elif method == "INVITE":
            # Nothing reaching us unannounced may place a call.
            response = request.make_response(
                403, "Calls are not accepted here", to_tag=_local_tag(request)
            )
        elif method in ("BYE", "CANCEL", "INFO"):
            response = request.make_response(481, to_tag=_local_tag(request))
        else:
            response = request.make_response(501, headers=[("Allow", ALLOW)])
        self.transactions.send_response(key, response, now)

    def _in_dialog(self, call: OutboundCall, request: Request, now: float) -> Response:
        if request.method == "BYE":
            return call.on_remote_bye(request, now, self.clock.wall(now))
        if request.method == "INVITE":
            # A re-INVITE (hold/unhold, new ports): accept with our session as it is.
            headers = [("Contact", f"<{call.config.contact}>"), ("Content-Type", "application/sdp")]
            return Response(
                200, "OK", request.make_response(200, headers=headers).headers, call.config.sdp
            )
        return request.make_response(200)

    def _on_response(self, key: TransactionKey, response: Response, now: float) -> None:
        owner = self._call_keys.get(key)
        if owner is not None:
            self._on_call_response(owner[0], owner[1], response, now)
            return
        client = self._registrations.get(key)
        if client is None:
            return
        if response.status >= 200:
            del self._registrations[key]
        retry = client.receive_response(response, now)
        if retry is not None:
            self._send_registration(client, retry, self._destinations[key], now)

    def _on_timeout(self, key: TransactionKey, now: float) -> None:
        self.counters.transaction_timeouts += 1
        owner = self._call_keys.pop(key, None)
        if owner is not None:
            call, method = owner
            if method == "INVITE":
                call.on_invite_timeout(now, self.clock.wall(now))
            elif method == "BYE":
                call.on_bye_done(now, self.clock.wall(now), None)
            self._after_call(call)
            return
        client = self._registrations.pop(key, None)
        if client is not None:
            client.transaction_failed(now)

    def _collect(self) -> None:
        for outgoing in self.transactions.take_outgoing():
            destination = self._destinations.get(outgoing.key)
            if destination is None:
                continue
            self._out.append((outgoing.message.to_bytes(), destination))
        live = set(self.transactions)
        for key in [k for k in self._destinations if k not in live]:
            del self._destinations[key]

    def _malformed(self, data: bytes, source: Address, exc: RemoteProtocolError) -> None:
        self.counters.malformed += 1
        log.info("malformed SIP from %s:%d: %s", source[0], source[1], exc.reason)
        response = _answer_for_unparseable(data, exc)
        if response is not None:
            self.counters.answered_malformed += 1
            self._out.append((response, source))

    @staticmethod
    def _count(table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1


def _stamp_received(request: Request, source: Address) -> Request:
    """RFC 3261 §18.2.1 and RFC 3581: record where the request really came from."""
    via = request.top_via
    stamped = via
    if via.host != source[0]:
        stamped = stamped.with_param("received", source[0])
    if via.param("rport") is not None:
        stamped = stamped.with_param("received", source[0]).with_param("rport", str(source[1]))
    if stamped is via:
        return request
    pairs = list(request.headers)
    for i, (name, value) in enumerate(pairs):
        if name == "Via":
            parts = split_commas(value)
            parts[0] = str(stamped)
            pairs[i] = ("Via", ", ".join(parts))
            break
    return Request(request.method, request.uri, Headers.of(pairs), request.body)


def _response_destination(request: Request, source: Address) -> Address:
    """§18.2.2 with RFC 3581: answer to received/rport when present, else sent-by."""
    via = request.top_via
    host = via.param("received") or via.host
    rport = via.param("rport")
    if rport and rport.isdigit():
        return host, int(rport)
    return host, via.port or 5060


def _local_tag(request: Request) -> str:
    return "t" + hashlib.sha256(f"{request.call_id}/{request.cseq}".encode()).hexdigest()[:12]


def _answer_for_unparseable(data: bytes, exc: RemoteProtocolError) -> bytes | None:
    """A 400-class answer for a request we could not parse, if it can be addressed.

    §16.3/§8.2.6 need Via, From, To, Call-ID and CSeq copied; if a request is
    too broken to find them (or is a response), it is dropped instead.
    """
    head = data.split(b"\r\n\r\n", 1)[0]
    try:
        lines = head.decode("utf-8").split("\r\n")
    except UnicodeDecodeError:
        return None
    if not lines or lines[0].startswith("SIP/") or " SIP/" not in lines[0]:
        return None
    if lines[0].startswith("ACK "):
        return None  # an ACK is never answered
    wanted = {
        "via": "Via",
        "v": "Via",
        "from": "From",
        "f": "From",
        "to": "To",
        "t": "To",
        "call-id": "Call-ID",
        "i": "Call-ID",
        "cseq": "CSeq",
    }
    found: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        key = name.strip().lower()
        if sep and key in wanted:
            found.append((wanted[key], value.strip()))
    if {n for n, _ in found} != {"Via", "From", "To", "Call-ID", "CSeq"}:
        return None
    reason = exc.reason.replace("\r", " ").replace("\n", " ")[:200]
    phrase = {
        400: "Bad Request",
        505: "Version Not Supported",
        513: "Message Too Large",
        416: "Unsupported URI Scheme",
    }.get(exc.status, "Bad Request")
    status = exc.status if 400 <= exc.status < 700 else 400
    text = f"SIP/2.0 {status} {phrase}\r\n"
    text += "".join(f"{n}: {v}\r\n" for n, v in found)
    text += f'Warning: 399 dialer "{reason.replace(chr(34), chr(39))}"\r\nContent-Length: 0\r\n\r\n'
    return text.encode("utf-8")
