"""Errors of the SIP layer, split by whose fault they are (h11's convention).

A ``RemoteProtocolError`` is a peer's malformed or unacceptable message: it is
counted, logged once and answered with ``status`` (or dropped when it cannot
be answered). A ``LocalProtocolError`` is our own misuse of the API.
"""

from __future__ import annotations


class SipError(Exception):
    """Base of every error raised by ``dialer.sip``."""


class LocalProtocolError(SipError):
    """We asked the SIP layer to do something it cannot do."""


class RemoteProtocolError(SipError):
    """A peer sent something we cannot accept.

    ``status`` is the response the message deserves (400 unless a more precise
    code applies, e.g. 505 for a wrong version, 416 for an unsupported URI
    scheme, 488 for an SDP offer we cannot match).
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
