"""tshark capturing on loopback, as the independent witness of what went on the wire.

tshark prints "Capturing on" before the kernel filter is really attached
(packets of the next few hundred milliseconds, sometimes seconds, are
missed), so ``start`` does not trust it: it sends probe datagrams that match
the capture filter until tshark shows it has seen one. Fields are printed
live, one line per frame (``-l``), rather than written to a pcap file.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from peers.errors import PeerError, PeerMissingError, PeerTimeoutError
from peers.process import ChildProcess

Address = tuple[str, int]

_LEAD = ("frame.time_epoch", "udp.srcport", "udp.dstport")
# A SIP keep-alive (RFC 5626 §4.4.1): every SIP stack ignores it.
_PROBE = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class Frame:
    time: float  # epoch seconds
    source_port: int
    destination_port: int
    values: tuple[str, ...]  # the requested fields, "" where absent


@dataclass(frozen=True, slots=True)
class SipFrame:
    """One SIP message as the capture saw it."""

    time: float
    call_id: str
    method: str  # request method, or "" for a response
    status: int | None
    cseq_method: str


SIP_FIELDS = ("sip.Call-ID", "sip.Method", "sip.Status-Code", "sip.CSeq.method")


class Capture:
    """``tshark -i lo`` printing ``fields`` of every frame the filter passes."""

    def __init__(
        self,
        workdir: Path,
        capture_filter: str,
        fields: Sequence[str],
        *,
        decode_as: Sequence[str] = (),
        binary: str = "tshark",
    ) -> None:
        found = shutil.which(binary)
        if found is None:
            raise PeerMissingError(f"{binary} is not installed; run scripts/install-peers.sh")
        self.binary = found
        self.workdir = workdir
        self.capture_filter = capture_filter
        self.fields = tuple(fields)
        self.decode_as = tuple(decode_as)
        self._child: ChildProcess | None = None
        self._probe_port: int | None = None
        self.frames: list[Frame] = []

    def argv(self) -> list[str]:
        argv = [self.binary, "-i", "lo", "-f", self.capture_filter, "-l", "-n"]
        for rule in self.decode_as:
            argv += ["-d", rule]
        argv += ["-T", "fields", "-E", "separator=\t", "-E", "occurrence=f"]
        for name in (*_LEAD, *self.fields):
            argv += ["-e", name]
        return argv

    async def start(self, probe_to: Address, timeout: float = 20.0) -> None:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        """Start, and return once a probe sent to ``probe_to`` shows in the capture."""
        child = await ChildProcess.spawn(self.argv(), cwd=self.workdir, name="tshark")
        self._child = child
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind(("127.0.0.1", 0))
            probe.setblocking(False)
            self._probe_port = probe.getsockname()[1]
            marker = f"\t{self._probe_port}\t{probe_to[1]}"
            async with asyncio.timeout(timeout):
                while marker not in child.output:
                    if child.returncode is not None:
                        raise PeerError(f"tshark exited {child.returncode}: {child.output[-2000:]}")
                    probe.sendto(_PROBE, probe_to)
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise PeerTimeoutError(
                f"tshark did not see a probe within {timeout} s: {child.output[-2000:]}"
            ) from None
        finally:
            probe.close()

    async def stop(self) -> list[Frame]:
        child = self._child
        if child is None:
            return self.frames
        # Frames of the last milliseconds are still on their way to tshark's output.
        await asyncio.sleep(0.5)
        await child.stop()
        self._child = None
        self.frames = self._parse(child.output)
        return self.frames

    def _parse(self, output: str) -> list[Frame]:
        frames = []
        width = len(_LEAD) + len(self.fields)
        for line in output.splitlines():
            parts = line.split("\t")
            if len(parts) < len(_LEAD):
                continue  # tshark's own messages
            try:
                time, source, destination = float(parts[0]), int(parts[1]), int(parts[2])
            except ValueError:
                continue
            if source == self._probe_port:
                continue
            values = (parts + [""] * width)[len(_LEAD) : width]
            frames.append(Frame(time, source, destination, tuple(values)))
        return frames

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def sip_capture(workdir: Path, sip_port: int) -> Capture:
    """SIP to and from ``sip_port`` (an OS-chosen port, so SIP is decoded on it explicitly)."""
    return Capture(
        workdir, f"udp port {sip_port}", SIP_FIELDS, decode_as=[f"udp.port=={sip_port},sip"]
    )


def sip_frames(frames: Sequence[Frame]) -> list[SipFrame]:
    out = []
    for frame in frames:
        call_id, method, status, cseq = frame.values[:4]
        if not call_id:
            continue
        out.append(SipFrame(frame.time, call_id, method, int(status) if status else None, cseq))
    return out
