"""``async with peer:`` for every peer helper: start on entry, release on exit.

Releasing is stopping the process (by its pid) unless a peer also keeps
state that outlives a stop (a database's data directory): then it says so
by overriding ``release``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Lifecycle:
    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> object:  # some peers report how they ended
        raise NotImplementedError

    async def release(self) -> None:
        await self.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()
