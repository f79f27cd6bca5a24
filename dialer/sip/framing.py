"""Message framing on stream transports (RFC 3261 §18.3, RFC 5626 §4.4.1).

On TCP/TLS a message ends where Content-Length says, so Content-Length is
mandatory. Between messages a peer may send keep-alives: a double CRLF
("ping", answered with a single CRLF) or a single CRLF ("pong"). A framing
error cannot be recovered from on a stream: after ``feed`` raises, the
framer refuses more data and the connection should be closed.
"""

from __future__ import annotations

from dialer.sip.errors import LocalProtocolError, RemoteProtocolError
from dialer.sip.message import (
    DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_SIZE,
    Request,
    Response,
    content_length,
    parse_head,
    parse_message,
)

_CRLF = b"\r\n"
_PING = b"\r\n\r\n"


class StreamFramer:
    """Accumulates stream bytes and cuts them into SIP messages.

    ``pings`` counts double-CRLF keep-alives received (each deserves a CRLF
    reply); ``pongs`` counts single-CRLF replies. A lone CRLF is only known
    to be a pong once the next octet shows it is not the start of a ping.
    """

    def __init__(
        self, *, max_size: int = DEFAULT_MAX_SIZE, max_headers: int = DEFAULT_MAX_HEADERS
    ) -> None:
        self.max_size = max_size
        self.max_headers = max_headers
        self.pings = 0
        self.pongs = 0
        self._buffer = bytearray()
        # Where to resume looking for the end of headers, so that feeding one
        # byte at a time stays linear.
        self._scan_from = 0
        # Length of the message whose headers are complete but body is not.
        self._total: int | None = None
        self._failed = False

    @property
    def buffered(self) -> int:
        """Octets received but not yet part of a complete message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Request | Response]:
        if self._failed:
            raise LocalProtocolError("stream framing already failed; close the connection")
        self._buffer += data
        messages: list[Request | Response] = []
        try:
            while (message := self._next()) is not None:
                messages.append(message)
        except RemoteProtocolError:
            self._failed = True
            raise
        return messages

    def _skip_keepalives(self) -> bool:
        """Consume keep-alives at the head; False when more octets are needed to decide."""
        buf = self._buffer
        while buf[:1] == b"\r":
            if buf.startswith(_PING):
                del buf[:4]
                self.pings += 1
            elif len(buf) < 4 and _PING.startswith(bytes(buf)):
                return False
            elif buf.startswith(_CRLF):
                del buf[:2]
                self.pongs += 1
            else:
                raise RemoteProtocolError("stray CR between messages")
        return True

    def _next(self) -> Request | Response | None:
        if self._total is None and (not self._skip_keepalives() or not self._buffer):
            return None
        buf = self._buffer
        if self._total is None:
            self._total = self._frame_length()
            if self._total is None:
                return None
        total = self._total
        if len(buf) < total:
            return None
        frame = bytes(buf[:total])
        del buf[:total]
        self._scan_from = 0
        self._total = None
        return parse_message(frame, max_size=self.max_size, max_headers=self.max_headers)

    def _frame_length(self) -> int | None:
        """Total length of the message at the head, once its headers are complete."""
        buf = self._buffer
        end = buf.find(_PING, self._scan_from)
        if end < 0:
            if len(buf) > self.max_size:
                raise RemoteProtocolError(
                    f"message too large: header section exceeds the {self.max_size}-byte limit",
                    513,
                )
            self._scan_from = max(0, len(buf) - 3)
            return None
        _, pairs = parse_head(bytes(buf[:end]), max_headers=self.max_headers)
        length = content_length(pairs)
        if length is None:
            raise RemoteProtocolError("Content-Length is mandatory on stream transports")
        total = end + 4 + length
        if total > self.max_size:
            raise RemoteProtocolError(
                f"message too large: {total} bytes exceeds the {self.max_size}-byte limit", 513
            )
        return total
