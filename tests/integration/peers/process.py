"""A child process whose output is always drained and which is stopped by its own pid.

Peers log a lot; if nobody reads the pipe they block on write and look hung.
So a reader task keeps the merged stdout/stderr in memory for assertions and
failure messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Sequence
from pathlib import Path

from peers.errors import PeerTimeoutError

# Keep the tail only: a long load test must not grow memory without bound.
_MAX_OUTPUT = 1_000_000


class ChildProcess:
    """A started peer process; use ``spawn`` to create one."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self._chunks: list[str] = []
        self._size = 0
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._drain(), name=f"{name}-output")

    @classmethod
    async def spawn(
        cls,
        argv: Sequence[str],
        *,
        cwd: Path,
        name: str,
        stdin: int = asyncio.subprocess.DEVNULL,
    ) -> ChildProcess:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            stdin=stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Its own process group, so stop() also ends the workers a peer
            # forks (Kamailio does): killing only the main pid orphans them.
            start_new_session=True,
        )
        return cls(proc, name)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    @property
    def output(self) -> str:
        return "".join(self._chunks)

    async def _drain(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        while chunk := await stream.read(65536):
            text = chunk.decode(errors="replace")
            async with self._changed:
                self._chunks.append(text)
                self._size += len(text)
                while self._size > _MAX_OUTPUT and len(self._chunks) > 1:
                    self._size -= len(self._chunks.pop(0))
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    async def wait_for_output(self, pattern: str, timeout: float) -> re.Match[str]:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        """The first match of ``pattern`` in the output, waiting up to ``timeout`` seconds."""
        regex = re.compile(pattern)

        async def _match() -> re.Match[str]:
            async with self._changed:
                while True:
                    found = regex.search(self.output)
                    if found is not None:
                        return found
                    if self._reader.done():
                        raise PeerTimeoutError(
                            f"{self.name} exited ({self.returncode}) before printing "
                            f"{pattern!r}:\n{self.output[-4000:]}"
                        )
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(_match(), timeout)
        except TimeoutError:
            raise PeerTimeoutError(
                f"{self.name} did not print {pattern!r} within {timeout}s:\n{self.output[-4000:]}"
            ) from None

    async def wait(self, timeout: float) -> int:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        """The exit status, waiting up to ``timeout`` seconds; output is fully read after."""
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            raise PeerTimeoutError(
                f"{self.name} (pid {self.pid}) still running after {timeout}s:\n"
                f"{self.output[-4000:]}"
            ) from None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), 2.0)
        return code

    async def stop(self, grace: float = 5.0) -> int:
        """SIGTERM this pid's process group, SIGKILL it after ``grace`` seconds; idempotent.

        Every wait is bounded: a teardown that hangs would stall the whole CI run.
        """
        if self.proc.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                self._signal_group(signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), grace)
        # Workers may outlive their parent's exit: make sure the group is gone.
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), 2.0)
        if not self._reader.done():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        code = self.proc.returncode
        return -9 if code is None else code

    def _signal_group(self, signum: int) -> None:
        # The group id is the child's pid (start_new_session): only what we started.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)
