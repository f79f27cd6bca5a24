"""Which event loop runs the service: uvloop where it is installed, else asyncio's own.

uvloop's libuv-based datagram path relays RTP with less CPU per packet (see
bench/media_results.md for the measured ratio). ``DIALER_LOOP=asyncio``
forces the standard loop, for comparison and for debugging with tools that
only know it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

LOOPS = ("uvloop", "asyncio")


def loop_factory(name: str | None = None) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The loop asked for (or by ``DIALER_LOOP``); asyncio's own when uvloop is absent."""
    wanted = name or os.environ.get("DIALER_LOOP", "uvloop")
    if wanted not in LOOPS:
        raise ValueError(f"DIALER_LOOP={wanted!r}: expected one of {', '.join(LOOPS)}")
    if wanted == "uvloop":
        try:
            import uvloop
        except ImportError:
            return "asyncio", asyncio.new_event_loop
        return "uvloop", uvloop.new_event_loop
    return "asyncio", asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], name: str | None = None) -> T:
    _, factory = loop_factory(name)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
