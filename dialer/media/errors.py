"""Errors of the media layer, split by whose fault they are (h11's convention).

A ``RemoteMediaError`` is a peer's malformed packet: the receive loop counts
it, logs it once and drops the datagram; it must never stop the loop. A
``LocalMediaError`` is our own misuse of the API (a field out of range when
building a packet, a report asked of a source that sent nothing).
"""

from __future__ import annotations


class MediaError(Exception):
    """Base of every error raised by ``dialer.media``."""


class LocalMediaError(MediaError):
    """We asked the media layer to do something it cannot do."""


class RemoteMediaError(MediaError):
    """A peer sent a packet we cannot accept; ``reason`` says precisely why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
