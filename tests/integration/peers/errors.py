"""Errors raised by the peer harness."""


class PeerError(Exception):
    """A real peer could not be started, driven or stopped as the test asked."""


class PeerMissingError(PeerError):
    """The peer's binary is not installed; tests fail on this rather than skip."""


class PeerTimeoutError(PeerError):
    """A peer did not reach the awaited state in time."""
