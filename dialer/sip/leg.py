"""What the outbound and inbound call legs share: their state tables' lookup."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from dialer.sip.errors import LocalProtocolError

S = TypeVar("S", bound=StrEnum)


def transition(table: Mapping[tuple[S, str], S], state: S, kind: str, what: str) -> S:
    """The next state; an input the table lacks is our own misuse, named in the error."""
    try:
        return table[(state, kind)]
    except KeyError:
        raise LocalProtocolError(f"{what} cannot take {kind!r} in state {state}") from None
