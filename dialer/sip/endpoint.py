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

from dialer.events import Event, MediaRenegotiated
from dialer.sip.auth import AuthResult, Credentials
from dialer.sip.call import LegConfig, LegState, OutboundCall
from dialer.sip.errors import RemoteProtocolError
from dialer.sip.headers import split_commas
from dialer.sip.inbound import InboundCall, InboundState
from dialer.sip.message import Headers, Request, Response, parse_message
from dialer.sip.registrar import Registrar
from dialer.sip.registration import RegistrationClient
from dialer.sip.reliability import AckTimeout, SuccessRetransmitter
from dialer.sip.sdp import NegotiatedMedia, SessionDescription, accept_answer, revise
from dialer.sip.sdp import answer as answer_sdp
from dialer.sip.timers import TimerConfig
from dialer.sip.transaction import (
    AckReceived,
    RequestReceived,
    ResponseReceived,
    Timeout,
    TransactionKey,
    TransactionLayer,
)
from dialer.sip.uri import SipUri

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
        accept_calls: bool = False,
    ) -> None:
        self.rng = rng or random.Random()
        # A phone (or a simulated one) takes calls from anyone; the service
        # only from the phones its registrar authenticates.
        self.accept_calls = accept_calls
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
        self.inbound: dict[str, InboundCall] = {}
        self._inbound_invites: dict[str, TransactionKey] = {}
        self._inbound_keys: dict[TransactionKey, InboundCall] = {}
        self._retransmitters: dict[str, SuccessRetransmitter] = {}
        # §9.1: a callee that never answers our CANCEL with a final response
        # must not keep the call (and the agent) forever: give up 64*T1 after it.
        self._cancel_deadlines: dict[str, float] = {}
        self.timers = timers or TimerConfig()
        self._stream_peers: set[Address] = set()
        self._stream_out: list[tuple[bytes, Address]] = []
        self._media: dict[str, NegotiatedMedia] = {}

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
        self._receive(message, data, source, now, reliable=False)

    def stream_opened(self, peer: Address) -> None:
        """A TCP connection to ``peer`` exists: what goes to it leaves on the stream."""
        self._stream_peers.add(peer)

    def stream_closed(self, peer: Address) -> None:
        self._stream_peers.discard(peer)

    def receive_stream_message(
        self, message: Request | Response, source: Address, now: float
    ) -> None:
        """A message the TCP adapter's ``StreamFramer`` cut from ``source``'s stream."""
        self.counters.received += 1
        self._receive(message, message.to_bytes(), source, now, reliable=True)

    def take_stream_messages(self) -> list[tuple[bytes, Address]]:
        out, self._stream_out = self._stream_out, []
        return out

    def _receive(
        self,
        message: Request | Response,
        data: bytes,
        source: Address,
        now: float,
        *,
        reliable: bool,
    ) -> None:
        if isinstance(message, Request):
            try:
                SipUri.parse(message.uri)
            except RemoteProtocolError as exc:
                if exc.status == 416:  # §8.2.2.1: a scheme we do not serve
                    self._malformed(data, source, exc)
                    return
            message = _stamp_received(message, source)
            self._count(self.counters.requests_by_method, message.method)
        else:
            self._count(self.counters.responses_by_class, f"{message.status // 100}xx")
        try:
            tagged = self.transactions.receive(message, now, reliable=reliable)
        except RemoteProtocolError as exc:
            self._malformed(data, source, exc)
            return
        for item in tagged:
            event = item.event
            if isinstance(event, RequestReceived) and item.key is not None:
                # §18.2.2: on a stream the response goes back on the same connection.
                self._destinations[item.key] = (
                    source if reliable else _response_destination(event.request, source)
                )
                self._on_request(item.key, event.request, source, now)
            elif isinstance(event, ResponseReceived) and item.key is not None:
                self._on_response(item.key, event.response, now)
            elif isinstance(event, Timeout) and item.key is not None:
                self._on_timeout(item.key, now)
            elif isinstance(event, ResponseReceived):
                self._on_stray_response(event.response, now)
            elif isinstance(event, AckReceived):
                self._on_ack(event.request)
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
        for call_id, retransmitter in list(self._retransmitters.items()):
            for _ in (e for e in retransmitter.handle_timer(now) if isinstance(e, AckTimeout)):
                self._ack_timeout(call_id, now)
        for call_id, deadline in list(self._cancel_deadlines.items()):
            if deadline <= now:
                del self._cancel_deadlines[call_id]
                call = self.calls.get(call_id)
                if call is not None:
                    call.on_cancel_unanswered(now, self.clock.wall(now))
                    self._after_call(call)
        self._collect()

    def next_deadline(self) -> float | None:
        deadlines = [self.transactions.next_deadline()]
        deadlines += [client.next_deadline() for client, _ in self._clients]
        if self.registrar is not None:
            deadlines.append(self.registrar.next_deadline())
        deadlines += [r.next_deadline() for r in self._retransmitters.values()]
        deadlines += self._cancel_deadlines.values()
        return min((d for d in deadlines if d is not None), default=None)

    def take_datagrams(self) -> list[tuple[bytes, Address]]:
        out, self._out = self._out, []
        return out

    def _emit(self, item: tuple[bytes, Address]) -> None:
        if item[1] in self._stream_peers:
            self._stream_out.append(item)
        else:
            self._out.append(item)

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

    def answer(self, call_id: str, sdp: bytes, now: float) -> None:
        """Answer an offered inbound call; the 2xx is repeated until it is ACKed."""
        call = self.inbound[call_id]
        response = call.answer(sdp, now, self.clock.wall(now))
        self.transactions.send_response(self._inbound_invites.pop(call_id), response, now)
        retransmitter = SuccessRetransmitter(response, now, self.timers)
        self._retransmitters[call_id] = retransmitter
        self._after_inbound(call)
        self._collect()

    def reject(self, call_id: str, status: int, now: float) -> None:
        call = self.inbound[call_id]
        response = call.reject(status, now, self.clock.wall(now))
        self.transactions.send_response(self._inbound_invites.pop(call_id), response, now)
        self._after_inbound(call)
        self._collect()

    def hangup(self, call_id: str, now: float) -> None:
        """BYE a confirmed call, CANCEL a ringing one."""
        inbound = self.inbound.get(call_id)
        if inbound is not None:
            bye = inbound.hangup()
            if bye is not None:
                self._send_inbound(inbound, bye, now)
            self._after_inbound(inbound)
            self._collect()
            return
        call = self.calls.get(call_id)
        if call is None:
            return
        request = call.hangup(now)
        if request is not None:
            self._send_for_call(call, request, now)
        self._after_call(call)
        self._collect()

    def send_request(self, request: Request, destination: Address, now: float) -> TransactionKey:
        key = self.transactions.send_request(
            request, now, reliable=destination in self._stream_peers
        )
        self._destinations[key] = destination
        self._collect()
        return key

    # --- internals ----------------------------------------------------------

    def _send_registration(
        self, client: RegistrationClient, request: Request, destination: Address, now: float
    ) -> None:
        key = self.transactions.send_request(
            request, now, reliable=destination in self._stream_peers
        )
        self._destinations[key] = destination
        self._registrations[key] = client

    def _send_for_call(self, call: OutboundCall, request: Request, now: float) -> None:
        destination = self._call_destinations[call.call_id]
        key = self.transactions.send_request(
            request, now, reliable=destination in self._stream_peers
        )
        self._destinations[key] = destination
        self._call_keys[key] = (call, request.method)
        if request.method == "CANCEL":
            self._cancel_deadlines[call.call_id] = now + self.timers.transaction_timeout

    def _after_call(self, call: OutboundCall) -> None:
        ack = call.take_ack()
        if ack is not None:
            self._emit((ack.to_bytes(), self._call_destinations[call.call_id]))
        if call.events:
            self._events.extend(call.events)
            call.events.clear()
        if call.state is LegState.ENDED:
            self._cancel_deadlines.pop(call.call_id, None)
            self.calls.pop(call.call_id, None)
            self._media.pop(call.call_id, None)
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

    def _send_inbound(self, call: InboundCall, request: Request, now: float) -> None:
        destination = call.source
        key = self.transactions.send_request(
            request, now, reliable=destination in self._stream_peers
        )
        self._destinations[key] = call.source
        self._inbound_keys[key] = call

    def _after_inbound(self, call: InboundCall) -> None:
        if call.events:
            self._events.extend(call.events)
            call.events.clear()
        if call.state is InboundState.ENDED:
            self.inbound.pop(call.call_id, None)
            self._media.pop(call.call_id, None)
            self._inbound_invites.pop(call.call_id, None)
            self._retransmitters.pop(call.call_id, None)
            for key in [k for k, c in self._inbound_keys.items() if c is call]:
                del self._inbound_keys[key]

    def _on_ack(self, ack: Request) -> None:
        retransmitter = self._retransmitters.get(ack.call_id)
        call = self.inbound.get(ack.call_id)
        if retransmitter is None or call is None or not retransmitter.matches(ack):
            self.counters.unmatched += 1
            return
        retransmitter.receive_ack(ack, 0.0)
        del self._retransmitters[ack.call_id]
        call.acked()

    def _ack_timeout(self, call_id: str, now: float) -> None:
        self._retransmitters.pop(call_id, None)
        call = self.inbound.get(call_id)
        if call is not None:
            self._send_inbound(call, call.ack_timed_out(), now)
            self._after_inbound(call)

    def _offer_inbound(
        self, key: TransactionKey, request: Request, source: Address, now: float
    ) -> Response | None:
        """A new INVITE: only an authenticated phone may place a call."""
        refusal = self._authenticate(request, now)
        if refusal is not None:
            return refusal
        if request.body:
            try:
                offer = SessionDescription.parse(request.body)
                answer_sdp(offer, self.local[0], 0, session_id=0, version=0)
            except RemoteProtocolError as exc:
                # RFC 3264 §6: an offer with nothing we can accept gets 488.
                status = exc.status if exc.status in (400, 488) else 400
                return request.make_response(status, exc.reason, to_tag=_local_tag(request))
        host, port = self.local
        call = InboundCall(request, source, f"sip:dialer@{host}:{port}", host, port, self.rng)
        self.inbound[call.call_id] = call
        self._inbound_invites[call.call_id] = key
        call.offered(now, self.clock.wall(now))
        self._after_inbound(call)
        return None

    def _authenticate(self, request: Request, now: float) -> Response | None:
        registrar = self.registrar
        if registrar is None and self.accept_calls:
            return None
        if registrar is None:
            return request.make_response(
                403, "Calls are not accepted here", to_tag=_local_tag(request)
            )
        header = request.headers.get("Proxy-Authorization")
        if header is None:
            challenges = registrar.verifier.challenge(now, algorithms=registrar.policy.algorithms)
            return request.make_response(
                407,
                to_tag=_local_tag(request),
                headers=[("Proxy-Authenticate", str(c)) for c in challenges],
            )
        try:
            credentials = Credentials.parse(header)
        except RemoteProtocolError as exc:
            return request.make_response(400, exc.reason, to_tag=_local_tag(request))
        password = registrar.passwords.get(credentials.username)
        result = registrar.verifier.verify(credentials, request.method, password, now)
        if result is AuthResult.STALE:
            challenges = registrar.verifier.challenge(
                now, stale=True, algorithms=registrar.policy.algorithms
            )
            return request.make_response(
                407,
                to_tag=_local_tag(request),
                headers=[("Proxy-Authenticate", str(c)) for c in challenges],
            )
        if result is not AuthResult.OK:
            registrar.counters.auth_failures += 1
            return request.make_response(403, "Forbidden", to_tag=_local_tag(request))
        return None

    def _on_cancel(self, key: TransactionKey, cancel: Request, now: float) -> Response:
        invite_key = self.transactions.invite_for_cancel(cancel)
        call = self.inbound.get(cancel.call_id)
        if invite_key is None or call is None or call.state is not InboundState.OFFERED:
            return cancel.make_response(481)
        response = call.cancelled(now, self.clock.wall(now))
        self._inbound_invites.pop(call.call_id, None)
        self.transactions.send_response(invite_key, response, now)
        self._after_inbound(call)
        return cancel.make_response(200)

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
        inbound = self.inbound.get(request.call_id)
        if inbound is not None and inbound.matches_dialog(request):
            self.transactions.send_response(
                key, self._in_inbound_dialog(inbound, request, now), now
            )
            self._after_inbound(inbound)
            return
        if method == "CANCEL":
            self.transactions.send_response(key, self._on_cancel(key, request, now), now)
            return
        if method == "INVITE" and request.to.tag is None:
            refusal = self._offer_inbound(key, request, source, now)
            if refusal is not None:
                self.transactions.send_response(key, refusal, now)
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
            # A re-INVITE for a dialog we do not have.
            response = request.make_response(
                403, "Calls are not accepted here", to_tag=_local_tag(request)
            )
        elif method in ("BYE", "CANCEL", "INFO"):
            response = request.make_response(481, to_tag=_local_tag(request))
        else:
            response = request.make_response(501, headers=[("Allow", ALLOW)])
        self.transactions.send_response(key, response, now)

    def _in_inbound_dialog(self, call: InboundCall, request: Request, now: float) -> Response:
        if request.method == "BYE":
            return call.on_remote_bye(request, now, self.clock.wall(now))
        if request.method == "INVITE":
            answer, call.local_sdp, media = _reinvite_answer(request, call.local_sdp, call.contact)
            self._renegotiated(call.call_id, media, now)
            return answer
        return request.make_response(200)

    def _in_dialog(self, call: OutboundCall, request: Request, now: float) -> Response:
        if request.method == "BYE":
            return call.on_remote_bye(request, now, self.clock.wall(now))
        if request.method == "INVITE":
            answer, call.local_sdp, media = _reinvite_answer(
                request, call.local_sdp, call.config.contact
            )
            if media is not None:
                call.remote_sdp = request.body
            self._renegotiated(call.call_id, media, now)
            return answer
        return request.make_response(200)

    def _renegotiated(self, call_id: str, media: NegotiatedMedia | None, now: float) -> None:
        if media is None:
            return
        self._media[call_id] = media
        self._events.append(
            MediaRenegotiated(
                call_id=call_id,
                at_ms=self.clock.wall(now),
                mono=now,
                held=not media.direction.receives,
            )
        )

    def media_of(self, call_id: str) -> NegotiatedMedia | None:
        """The media a leg has agreed on now: its last re-INVITE, else offer and answer."""
        media = self._media.get(call_id)
        if media is not None:
            return media
        call = self.calls.get(call_id)
        if call is None or not call.remote_sdp or not call.local_sdp:
            return None
        try:
            return accept_answer(
                SessionDescription.parse(call.local_sdp), SessionDescription.parse(call.remote_sdp)
            )
        except RemoteProtocolError:
            return None

    def _on_response(self, key: TransactionKey, response: Response, now: float) -> None:
        owner = self._call_keys.get(key)
        if owner is not None:
            self._on_call_response(owner[0], owner[1], response, now)
            return
        inbound = self._inbound_keys.get(key)
        if inbound is not None:
            if response.status >= 200:
                inbound.on_bye_done(now, self.clock.wall(now))
                self._after_inbound(inbound)
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
        inbound = self._inbound_keys.pop(key, None)
        if inbound is not None:
            inbound.on_bye_done(now, self.clock.wall(now))
            self._after_inbound(inbound)
            return
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
        for call_id, retransmitter in self._retransmitters.items():
            call = self.inbound.get(call_id)
            for message in retransmitter.take_outgoing():
                if call is not None:
                    to = _response_destination(call.invite, call.source)
                    self._emit((message.to_bytes(), to))
        for outgoing in self.transactions.take_outgoing():
            destination = self._destinations.get(outgoing.key)
            if destination is not None:
                self._emit((outgoing.message.to_bytes(), destination))
        live = set(self.transactions)
        for key in [k for k in self._destinations if k not in live]:
            del self._destinations[key]

    def _malformed(self, data: bytes, source: Address, exc: RemoteProtocolError) -> None:
        self.counters.malformed += 1
        log.info("malformed SIP from %s:%d: %s", source[0], source[1], exc.reason)
        response = _answer_for_unparseable(data, exc)
        if response is not None:
            self.counters.answered_malformed += 1
            self._emit((response, source))

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


def _reinvite_answer(
    request: Request, ours: bytes, contact: str
) -> tuple[Response, bytes, NegotiatedMedia | None]:
    """A re-INVITE in a dialog (hold/unhold, new ports): answer its offer, RFC 3264 §8.

    Our address, port and session id stay; the direction mirrors the offer
    (sendonly -> recvonly for hold) and the version goes up when that changes.
    Returns the response, the SDP that is now ours and, when the re-INVITE
    carried an offer we accepted, the media as now agreed.
    """
    headers = [("Contact", f"<{contact}>")]
    if not request.body or not ours:
        # An offerless re-INVITE: our current session is the offer (§14.2).
        response = request.make_response(
            200, headers=[*headers, ("Content-Type", "application/sdp")]
        )
        return Response(200, "OK", response.headers, ours), ours, None
    try:
        previous = SessionDescription.parse(ours)
        section = previous.audio()
        if section is None:
            raise RemoteProtocolError("our own session has no audio stream", 500)
        host, port = previous.rtp_address(section)
        answer, media = answer_sdp(
            SessionDescription.parse(request.body),
            host,
            port,
            session_id=previous.origin.session_id,
            version=previous.origin.session_version,
        )
        updated = revise(previous, answer).to_bytes()
    except RemoteProtocolError as exc:
        status = exc.status if exc.status in (400, 488) else 400
        return request.make_response(status, exc.reason), ours, None
    response = request.make_response(200, headers=[*headers, ("Content-Type", "application/sdp")])
    return Response(200, "OK", response.headers, updated), updated, media


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
    answer = text.encode("utf-8")
    try:
        parse_message(answer)  # the copied headers may be as broken as the request
    except RemoteProtocolError:
        return None
    return answer
