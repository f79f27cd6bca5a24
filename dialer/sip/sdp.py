"""SDP (RFC 8866, formerly RFC 4566) and the offer/answer model (RFC 3264) for G.711 audio.

``SessionDescription.parse`` keeps every line it does not interpret (``i=``,
``b=``, ``r=``, unknown attributes ...) so that a description from a phone
serialises back byte for byte. Negotiation covers what the floor needs: one
audio stream, PCMU/PCMA and telephone-event (RFC 4733); other streams are
rejected with port 0 as RFC 3264 §6 prescribes.

Errors: a malformed description is ``RemoteProtocolError`` (400) naming the
line; an offer we cannot match is ``RemoteProtocolError`` with status 488.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TypeVar

from dialer.sip.errors import LocalProtocolError, RemoteProtocolError

_T = TypeVar("_T")

CRLF = "\r\n"
DEFAULT_PTIME = 20
TELEPHONE_EVENT = "telephone-event"
# RFC 4733 §3.2: events we can send and receive: 0-9 * # A-D and flash (16).
SUPPORTED_EVENTS = frozenset(range(17))

# RFC 3551 table 4: the static audio payload types we may meet without rtpmap.
_STATIC: dict[int, tuple[str, int, int]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    18: ("G729", 8000, 1),
}
_OFFERABLE = {"PCMU": 0, "PCMA": 8}

# Fixed order of lines (RFC 8866 §5); "r" shares "t"'s rank so that repeat
# times stay after the "t=" they belong to.
_SESSION_RANK = {"v": 0, "o": 1, "s": 2, "i": 3, "u": 4, "e": 5, "p": 6, "c": 7, "b": 8}
_SESSION_RANK |= {"t": 9, "r": 9, "z": 10, "k": 11, "a": 12}
_MEDIA_RANK = {"i": 1, "c": 2, "b": 3, "k": 4, "a": 5}
_LINE = re.compile(r"([a-z])=(.*)")
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`{|}~]+")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?")


class Direction(StrEnum):
    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def of(cls, sends: bool, receives: bool) -> Direction:
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE

    def reverse(self) -> Direction:
        """The same stream seen from the other end."""
        return Direction.of(self.receives, self.sends)

    def limit(self, other: Direction) -> Direction:
        return Direction.of(self.sends and other.sends, self.receives and other.receives)


class _LineError(Exception):
    """Raised inside line parsers; turned into a RemoteProtocolError naming the line."""


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>``."""

    username: str
    session_id: int
    session_version: int
    address_type: str
    address: str
    network_type: str = "IN"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.network_type} {self.address_type} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=IN IP4 <address>``; ``address`` may be a host name (RFC 8866 §5.7)."""

    address_type: str
    address: str
    network_type: str = "IN"

    @classmethod
    def for_address(cls, address: str) -> Connection:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise LocalProtocolError(f"not an IP address: {address!r}") from None
        return cls("IP6" if ip.version == 6 else "IP4", str(ip))

    @property
    def is_hold(self) -> bool:
        """RFC 2543 hold (``c=IN IP4 0.0.0.0``), still sent by old phones (RFC 3264 §8.4)."""
        return self.address_type == "IP4" and self.address == "0.0.0.0"

    def __str__(self) -> str:
        return f"{self.network_type} {self.address_type} {self.address}"


@dataclass(frozen=True, slots=True)
class Attribute:
    """``a=<name>`` (``value`` None) or ``a=<name>:<value>``."""

    name: str
    value: str | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class Codec:
    payload_type: int
    name: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None

    @property
    def is_telephone_event(self) -> bool:
        return self.name.lower() == TELEPHONE_EVENT


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One ``m=`` section with its lines."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: Connection | None = None
    attributes: tuple[Attribute, ...] = ()
    port_count: int | None = None
    extra_lines: tuple[tuple[str, str], ...] = ()  # (type, value) of i=, b=, k=

    def attribute_values(self, name: str) -> tuple[str | None, ...]:
        return tuple(a.value for a in self.attributes if a.name.lower() == name)

    def codecs(self) -> tuple[Codec, ...]:
        """The formats in preference order, with rtpmap/fmtp applied (RFC 8866 §6.6)."""
        rtpmap: dict[int, tuple[str, int, int]] = {}
        fmtp: dict[int, str] = {}
        for a in self.attributes:
            if a.value is None:
                continue
            if a.name == "rtpmap":
                pt, name, rate, channels = _parse_rtpmap(a.value)
                rtpmap[pt] = (name, rate, channels)
            elif a.name == "fmtp":
                pt_text, _, parameters = a.value.partition(" ")
                if pt_text.isdigit():
                    fmtp[int(pt_text)] = parameters.strip()
        found = []
        for fmt in self.formats:
            if not fmt.isdigit():
                continue
            pt = int(fmt)
            known = rtpmap.get(pt) or _STATIC.get(pt)
            if known is not None:
                found.append(Codec(pt, known[0], known[1], known[2], fmtp.get(pt)))
        return tuple(found)

    def telephone_event(self) -> int | None:
        """The payload type of 8 kHz telephone-event, if offered."""
        for codec in self.codecs():
            if codec.is_telephone_event and codec.clock_rate == 8000:
                return codec.payload_type
        return None

    def ptime(self) -> int | None:
        for value in self.attribute_values("ptime"):
            if value is not None:
                return _parse_ptime(value)
        return None

    def direction(self) -> Direction | None:
        """The media-level direction attribute (the last wins), if any."""
        return _direction_of(self.attributes)

    def with_attributes(self, attributes: Iterable[Attribute]) -> MediaDescription:
        return replace(self, attributes=tuple(attributes))


@dataclass(frozen=True, slots=True)
class SessionDescription:
    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    timing: tuple[int, int] = (0, 0)
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()
    version: int = 0
    extra_lines: tuple[tuple[str, str], ...] = ()  # i= u= e= p= b= r= z= k= and further t=

    # --- wire format ---------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes) -> SessionDescription:
        return _Parser(data).parse()

    def to_bytes(self) -> bytes:
        fixed = [
            ("v", str(self.version)),
            ("o", str(self.origin)),
            ("s", self.session_name),
        ]
        if self.connection is not None:
            fixed.append(("c", str(self.connection)))
        fixed.append(("t", f"{self.timing[0]} {self.timing[1]}"))
        lines = _in_rank_order(fixed, self.extra_lines, self.attributes, _SESSION_RANK)
        for m in self.media:
            port = str(m.port) if m.port_count is None else f"{m.port}/{m.port_count}"
            lines.append(f"m={m.media} {port} {m.proto} {' '.join(m.formats)}")
            conn = [] if m.connection is None else [("c", str(m.connection))]
            lines.extend(_in_rank_order(conn, m.extra_lines, m.attributes, _MEDIA_RANK))
        return "".join(line + CRLF for line in lines).encode("utf-8")

    # --- reading -------------------------------------------------------------

    def audio(self) -> MediaDescription | None:
        """The first active audio stream (the one we negotiate)."""
        return next((m for m in self.media if _is_usable_audio(m)), None)

    def connection_of(self, media: MediaDescription) -> Connection:
        connection = media.connection or self.connection
        if connection is None:  # parse() refuses this for active streams
            raise LocalProtocolError(f"no c= line for the {media.media} stream")
        return connection

    def rtp_address(self, media: MediaDescription) -> tuple[str, int]:
        return self.connection_of(media).address, media.port

    def rtcp_address(self, media: MediaDescription) -> tuple[str, int]:
        """RFC 3605 ``a=rtcp``, else the RTP port + 1 (RFC 3550 §11)."""
        host, port = self.rtp_address(media)
        for value in media.attribute_values("rtcp"):
            if value is not None:
                return _parse_rtcp(value, host)
        return host, port + 1

    def direction(self, media: MediaDescription) -> Direction:
        """The direction as the describing side means it, from its own point of view.

        Media-level attribute, else session-level, else sendrecv (RFC 3264
        §5.1); the old ``c=0.0.0.0`` hold means "do not send to me".
        """
        stated = media.direction() or _direction_of(self.attributes) or Direction.SENDRECV
        if self.connection_of(media).is_hold:
            stated = stated.limit(Direction.SENDONLY)
        return stated

    def with_version(self, version: int) -> SessionDescription:
        return replace(self, origin=replace(self.origin, session_version=version))


def _in_rank_order(
    fixed: list[tuple[str, str]],
    extra: Iterable[tuple[str, str]],
    attributes: Iterable[Attribute],
    rank: dict[str, int],
) -> list[str]:
    # A stable sort keeps the original order of lines of equal rank.
    every = [*fixed, *extra, *(("a", str(a)) for a in attributes)]
    every.sort(key=lambda item: rank[item[0]])
    return [f"{kind}={value}" for kind, value in every]


def _direction_of(attributes: Iterable[Attribute]) -> Direction | None:
    found = None
    for a in attributes:
        if a.value is None and a.name in Direction._value2member_map_:
            found = Direction(a.name)
    return found


def _is_usable_audio(m: MediaDescription) -> bool:
    return m.media == "audio" and m.port != 0 and m.proto in ("RTP/AVP", "RTP/AVPF")


# --- parsing -----------------------------------------------------------------


def _parse_rtpmap(value: str) -> tuple[int, str, int, int]:
    # a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]
    match = re.fullmatch(r"(\d{1,3}) +([^/ ]+)/(\d+)(?:/(\d+))? *", value)
    if match is None or int(match.group(1)) > 127:
        raise _LineError("bad rtpmap")
    channels = int(match.group(4)) if match.group(4) else 1
    return int(match.group(1)), match.group(2), int(match.group(3)), channels


def _parse_ptime(value: str) -> int:
    # Integer milliseconds (RFC 8866 §6.4); some phones write "20.0".
    match = re.fullmatch(r"(\d{1,4})(?:\.0+)?", value.strip())
    if match is None or int(match.group(1)) == 0:
        raise _LineError("bad ptime")
    return int(match.group(1))


def _parse_rtcp(value: str, default_host: str) -> tuple[str, int]:
    # RFC 3605: a=rtcp:<port> [<nettype> <addrtype> <connection-address>]
    fields = value.split()
    if not fields or not fields[0].isdigit() or int(fields[0]) > 65535:
        raise _LineError("bad rtcp attribute")
    if len(fields) == 1:
        return default_host, int(fields[0])
    if len(fields) != 4:
        raise _LineError("bad rtcp attribute")
    return _parse_connection(" ".join(fields[1:])).address, int(fields[0])


def _parse_connection(value: str) -> Connection:
    fields = value.split(" ")
    if len(fields) != 3:
        raise _LineError("c= needs 3 fields")
    network_type, address_type, address = fields
    if network_type != "IN":
        raise _LineError(f"unsupported network type {network_type!r}")
    if address_type not in ("IP4", "IP6"):
        raise _LineError(f"unsupported address type {address_type!r}")
    _check_address(address_type, address)
    return Connection(address_type, address, network_type)


def _check_address(address_type: str, address: str) -> None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        # A host name is legal; a multicast "/ttl" or garbage is not for us.
        if _HOST.fullmatch(address) and not address.replace(".", "").isdigit():
            return
        raise _LineError(f"bad {address_type} address {address!r}") from None
    if ip.version != (6 if address_type == "IP6" else 4):
        raise _LineError(f"{address!r} is not an {address_type} address")


def _parse_origin(value: str) -> Origin:
    fields = value.split(" ")
    if len(fields) != 6:
        raise _LineError("o= needs 6 fields")
    username, session_id, session_version, network_type, address_type, address = fields
    if not session_id.isdigit() or not session_version.isdigit():
        raise _LineError("session id and version must be numbers")
    connection = _parse_connection(f"{network_type} {address_type} {address}")
    return Origin(
        username,
        int(session_id),
        int(session_version),
        address_type,
        address,
        connection.network_type,
    )


def _parse_media(value: str) -> MediaDescription:
    # m=<media> <port>[/<number of ports>] <proto> <fmt> ...
    fields = value.split(" ")
    if len(fields) < 4 or "" in fields:
        raise _LineError("m= needs media, port, proto and at least one format")
    media, port_text, proto, *formats = fields
    port, _, count = port_text.partition("/")
    if not port.isdigit() or int(port) > 65535 or (count and not count.isdigit()):
        raise _LineError(f"bad port {port_text!r}")
    if not _TOKEN.fullmatch(media):
        raise _LineError(f"bad media type {media!r}")
    return MediaDescription(
        media, int(port), proto, tuple(formats), port_count=int(count) if count else None
    )


def _parse_attribute(value: str) -> Attribute:
    name, colon, rest = value.partition(":")
    if not _TOKEN.fullmatch(name):
        raise _LineError("bad attribute name")
    attribute = Attribute(name, rest if colon else None)
    # Check the attributes we interpret now, so that errors name their line.
    if attribute.name == "rtpmap":
        _parse_rtpmap(rest)
    elif attribute.name == "ptime":
        _parse_ptime(rest)
    elif attribute.name == "rtcp":
        _parse_rtcp(rest, "0.0.0.0")
    elif attribute.name == "fmtp" and not re.match(r"\d{1,3}( |$)", rest):
        raise _LineError("bad fmtp")
    elif attribute.name in Direction._value2member_map_ and colon:
        raise _LineError(f"{attribute.name} takes no value")
    return attribute


class _Parser:
    __slots__ = ("lines",)

    def __init__(self, data: bytes) -> None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise RemoteProtocolError("SDP is not UTF-8") from None
        # RFC 8866 §5: CRLF, but parsers should accept a bare LF.
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        self.lines = [line.removesuffix("\r") for line in lines]

    def parse(self) -> SessionDescription:
        if not self.lines:
            raise RemoteProtocolError("SDP is empty")
        kinds = []
        values = []
        for number, line in enumerate(self.lines, 1):
            match = _LINE.fullmatch(line)
            if match is None:
                raise _bad_line(number, line, "not a <type>=<value> line")
            kinds.append(match.group(1))
            values.append(match.group(2))
        if kinds[:3] != ["v", "o", "s"]:
            raise RemoteProtocolError("SDP must start with v=, o= and s= lines")
        if values[0] != "0":
            raise _bad_line(1, self.lines[0], "unsupported SDP version")

        origin = self._guard(2, _parse_origin, values[1])
        connection: Connection | None = None
        timing: tuple[int, int] | None = None
        attributes: list[Attribute] = []
        extra: list[tuple[str, str]] = []
        media: list[MediaDescription] = []
        current: _MediaBuilder | None = None
        for index in range(3, len(kinds)):
            kind, value, number = kinds[index], values[index], index + 1
            if kind == "m":
                if timing is None:
                    raise _bad_line(number, self.lines[index], "m= before any t= line")
                if current is not None:
                    media.append(current.build())
                current = _MediaBuilder(self._guard(number, _parse_media, value))
            elif current is not None:
                if kind not in _MEDIA_RANK:
                    raise _bad_line(number, self.lines[index], f"{kind}= not allowed in media")
                current.add(kind, value, number, self)
            elif kind == "c":
                if connection is not None:
                    raise _bad_line(number, self.lines[index], "second session c= line")
                connection = self._guard(number, _parse_connection, value)
            elif kind == "t" and timing is None:
                timing = self._guard(number, _parse_timing, value)
            elif kind == "a":
                attributes.append(self._guard(number, _parse_attribute, value))
            elif kind in _SESSION_RANK and kind not in "vos":
                extra.append((kind, value))
            else:
                raise _bad_line(number, self.lines[index], f"unexpected {kind}= line")
        if timing is None:
            raise RemoteProtocolError("SDP has no t= line")
        if current is not None:
            media.append(current.build())
        for position, m in enumerate(media, 1):
            if m.port != 0 and m.connection is None and connection is None:
                raise RemoteProtocolError(f"SDP media {position} ({m.media}) has no c= line")
        return SessionDescription(
            origin=origin,
            session_name=values[2],
            connection=connection,
            timing=timing,
            attributes=tuple(attributes),
            media=tuple(media),
            extra_lines=tuple(extra),
        )

    def _guard(self, number: int, parse: Callable[[str], _T], value: str) -> _T:
        try:
            return parse(value)
        except _LineError as exc:
            raise _bad_line(number, self.lines[number - 1], str(exc)) from None


def _parse_timing(value: str) -> tuple[int, int]:
    fields = value.split(" ")
    if len(fields) != 2 or not all(f.isdigit() for f in fields):
        raise _LineError("t= needs start and stop times")
    return int(fields[0]), int(fields[1])


class _MediaBuilder:
    __slots__ = ("attributes", "connection", "extra", "media")

    def __init__(self, media: MediaDescription) -> None:
        self.media = media
        self.connection: Connection | None = None
        self.attributes: list[Attribute] = []
        self.extra: list[tuple[str, str]] = []

    def add(self, kind: str, value: str, number: int, parser: _Parser) -> None:
        if kind == "a":
            self.attributes.append(parser._guard(number, _parse_attribute, value))
        elif kind == "c" and self.connection is None:
            self.connection = parser._guard(number, _parse_connection, value)
        else:
            self.extra.append((kind, value))

    def build(self) -> MediaDescription:
        return replace(
            self.media,
            connection=self.connection,
            attributes=tuple(self.attributes),
            extra_lines=tuple(self.extra),
        )


def _bad_line(number: int, line: str, why: str) -> RemoteProtocolError:
    shown = line if len(line) <= 80 else line[:77] + "..."
    return RemoteProtocolError(f"bad SDP line {number} {shown!r}: {why}")


# --- offer/answer (RFC 3264) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """What the media layer needs from one completed offer/answer exchange."""

    remote: tuple[str, int]  # where we send RTP
    remote_rtcp: tuple[str, int]
    payload_type: int  # the codec we send and expect
    codec: str  # "PCMU" or "PCMA"
    telephone_event: int | None  # RFC 4733 payload type, None without DTMF events
    direction: Direction  # from our point of view: do we send, do we receive
    ptime: int  # packetisation the remote asked to receive, in ms


def make_offer(
    address: str,
    port: int,
    codecs: Iterable[str] = ("PCMU", "PCMA"),
    telephone_event: int | None = 101,
    direction: Direction | str = Direction.SENDRECV,
    *,
    session_id: int,
    version: int,
    ptime: int = DEFAULT_PTIME,
) -> SessionDescription:
    """Our offer: one audio stream with ``codecs`` in preference order."""
    connection = Connection.for_address(address)
    payloads = []
    for name in codecs:
        try:
            payloads.append(Codec(_OFFERABLE[name.upper()], name.upper(), 8000))
        except KeyError:
            raise LocalProtocolError(f"cannot offer codec {name!r}") from None
    if not payloads:
        raise LocalProtocolError("an offer needs at least one codec")
    events = None
    if telephone_event is not None:
        if not 96 <= telephone_event <= 127:
            raise LocalProtocolError(
                f"telephone-event needs a dynamic payload type, not {telephone_event}"
            )
        events = _format_events(SUPPORTED_EVENTS)
    section = _audio_section(
        payloads,
        te=telephone_event,
        events=events,
        direction=Direction(direction),
        ptime=ptime,
        port=port,
    )
    return SessionDescription(
        origin=Origin("-", session_id, version, connection.address_type, connection.address),
        connection=connection,
        media=(section,),
    )


def answer(
    offer: SessionDescription,
    local_address: str,
    local_port: int,
    supported: Iterable[str] = ("PCMU", "PCMA"),
    *,
    session_id: int,
    version: int,
    direction: Direction | str = Direction.SENDRECV,
    ptime: int = DEFAULT_PTIME,
    telephone_event: bool = True,
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer ``offer`` (RFC 3264 §6): the first offered codec we support wins.

    ``direction`` is what we want (e.g. sendonly to put the remote on hold);
    the answer is that limited by what the offerer allows (§6.1). Every stream
    but the first usable audio one is rejected with port 0.
    """
    wanted = [name.upper() for name in supported]
    connection = Connection.for_address(local_address)
    sections: list[MediaDescription] = []
    negotiated: NegotiatedMedia | None = None
    for m in offer.media:
        codec = _first_supported(m, wanted) if negotiated is None and _is_usable_audio(m) else None
        if codec is None:
            # RFC 3264 §6: a rejected stream keeps its place, port 0, same formats.
            sections.append(MediaDescription(m.media, 0, m.proto, m.formats))
            continue
        te, events = None, None
        offered_te = m.telephone_event()
        if telephone_event and offered_te is not None:
            fmtp = next((c.fmtp for c in m.codecs() if c.payload_type == offered_te), None)
            common = _parse_events(fmtp) & SUPPORTED_EVENTS
            if common:
                te, events = offered_te, _format_events(common)
        ours = Direction(direction).limit(offer.direction(m).reverse())
        sections.append(
            _audio_section(
                [codec],
                te=te,
                events=events,
                direction=ours,
                ptime=ptime,
                port=local_port,
                proto=m.proto,
            )
        )
        negotiated = NegotiatedMedia(
            remote=offer.rtp_address(m),
            remote_rtcp=offer.rtcp_address(m),
            payload_type=codec.payload_type,
            codec=codec.name.upper(),
            telephone_event=te,
            direction=ours,
            ptime=m.ptime() or DEFAULT_PTIME,
        )
    if negotiated is None:
        raise RemoteProtocolError(
            f"no acceptable audio in offer ({_describe(offer)}); we support {', '.join(wanted)}",
            status=488,
        )
    description = SessionDescription(
        origin=Origin("-", session_id, version, connection.address_type, connection.address),
        connection=connection,
        # RFC 3264 §6: the t= line of the answer MUST equal that of the offer.
        timing=offer.timing,
        media=tuple(sections),
    )
    return description, negotiated


def accept_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedMedia:
    """Read the answer to one of our offers (RFC 3264 §7)."""
    if len(answer.media) != len(offer.media):
        raise RemoteProtocolError(
            f"SDP answer has {len(answer.media)} media lines, the offer had {len(offer.media)}"
        )
    index = next((i for i, m in enumerate(offer.media) if _is_usable_audio(m)), None)
    if index is None:
        raise LocalProtocolError("our offer has no audio stream")
    ours, theirs = offer.media[index], answer.media[index]
    if theirs.media != ours.media:
        raise RemoteProtocolError(f"SDP answer media {index + 1} is {theirs.media}, not audio")
    if theirs.port == 0:
        raise RemoteProtocolError("SDP answer rejected the audio stream", status=488)
    offered = {c.payload_type: c.name.upper() for c in ours.codecs()}
    chosen = next(
        (
            c
            for c in theirs.codecs()
            if not c.is_telephone_event and offered.get(c.payload_type) == c.name.upper()
        ),
        None,
    )
    if chosen is None:
        raise RemoteProtocolError(
            f"SDP answer selects none of our codecs (answered: {' '.join(theirs.formats)})",
            status=488,
        )
    te = theirs.telephone_event() if ours.telephone_event() is not None else None
    return NegotiatedMedia(
        remote=answer.rtp_address(theirs),
        remote_rtcp=answer.rtcp_address(theirs),
        payload_type=chosen.payload_type,
        codec=chosen.name.upper(),
        telephone_event=te,
        direction=offer.direction(ours).limit(answer.direction(theirs).reverse()),
        ptime=theirs.ptime() or DEFAULT_PTIME,
    )


def bump_version(description: SessionDescription) -> SessionDescription:
    """The same description with ``o=`` version + 1, for a changed re-offer (RFC 3264 §8)."""
    return description.with_version(description.origin.session_version + 1)


def revise(previous: SessionDescription, updated: SessionDescription) -> SessionDescription:
    """``updated`` as the next description of the session ``previous`` started.

    RFC 3264 §8: same session id; the version stays when nothing changed and
    goes up by one when anything did.
    """
    same_origin = replace(
        updated.origin,
        session_id=previous.origin.session_id,
        session_version=previous.origin.session_version,
    )
    candidate = replace(updated, origin=same_origin)
    return previous if candidate == previous else bump_version(candidate)


def _audio_section(
    codecs: list[Codec],
    *,
    te: int | None,
    events: str | None,
    direction: Direction,
    ptime: int,
    port: int,
    proto: str = "RTP/AVP",
) -> MediaDescription:
    formats = [str(c.payload_type) for c in codecs]
    attributes = [Attribute("rtpmap", f"{c.payload_type} {c.name}/{c.clock_rate}") for c in codecs]
    if te is not None:
        formats.append(str(te))
        attributes.append(Attribute("rtpmap", f"{te} {TELEPHONE_EVENT}/8000"))
        if events is not None:
            attributes.append(Attribute("fmtp", f"{te} {events}"))
    attributes.append(Attribute("ptime", str(ptime)))
    attributes.append(Attribute(direction.value))
    return MediaDescription("audio", port, proto, tuple(formats), attributes=tuple(attributes))


def _first_supported(m: MediaDescription, wanted: list[str]) -> Codec | None:
    for codec in m.codecs():
        if codec.name.upper() in wanted and codec.clock_rate == 8000 and codec.channels == 1:
            return codec
    return None


def _parse_events(fmtp: str | None) -> frozenset[int]:
    """RFC 4733 §2.4.1 event list ("0-15,66"); absent means 0-15; junk means none."""
    if fmtp is None:
        return frozenset(range(16))
    events: set[int] = set()
    for part in fmtp.replace(" ", "").split(","):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            return frozenset()
        events.update(range(int(low), int(high or low) + 1))
    return frozenset(e for e in events if e <= 255)


def _format_events(events: Iterable[int]) -> str:
    ordered = sorted(events)
    ranges: list[str] = []
    start = prev = ordered[0]
    for event in [*ordered[1:], None]:
        if event is not None and event == prev + 1:
            prev = event
            continue
        ranges.append(str(start) if start == prev else f"{start}-{prev}")
        if event is not None:
            start = prev = event
    return ",".join(ranges)


def _describe(offer: SessionDescription) -> str:
    if not offer.media:
        return "no media"
    parts = []
    for m in offer.media:
        if m.port == 0:
            parts.append(f"{m.media} rejected")
            continue
        named = {c.payload_type: f"{c.name}/{c.clock_rate}" for c in m.codecs()}
        formats = [named.get(int(f), f) if f.isdigit() else f for f in m.formats]
        parts.append(f"{m.media} {m.proto} {' '.join(formats)}")
    return "; ".join(parts)
