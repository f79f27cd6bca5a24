"""SIPp as a scripted caller or customer.

Scenario files live in ``tests/integration/scenarios``. SIPp reads a response's
status code and an ``rtp_stream`` file name when it loads the scenario, before
``-key`` values exist, so those spots are written ``{{name}}`` and filled in
here from the same ``keys`` that are also passed as ``-key name value``.
"""

from __future__ import annotations

import asyncio
import csv
import re
import shutil
import socket
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from peers.errors import PeerError, PeerMissingError, PeerTimeoutError
from peers.lifecycle import Lifecycle
from peers.ports import LOOPBACK, free_port_pair, free_udp_port, free_udp_tcp_port, listening
from peers.process import ChildProcess

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

# Reason phrases of RFC 3261 §21 for the statuses customers send us.
REASON_PHRASES: Mapping[str, str] = {
    "200": "OK",
    "403": "Forbidden",
    "404": "Not Found",
    "480": "Temporarily Unavailable",
    "486": "Busy Here",
    "487": "Request Terminated",
    "500": "Server Internal Error",
    "503": "Service Unavailable",
    "603": "Decline",
}

# What a scenario needs when the test does not say; Q.850 cause 17 is "user busy".
SCENARIO_DEFAULTS: Mapping[str, Mapping[str, str]] = {
    "uas_reject.xml": {"status": "486", "cause": "17"},
    "uas_early_media.xml": {"final": "486", "cause": "17"},
}

_PLACEHOLDER = re.compile(r"\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}")

# One second of PCMU silence (0xFF is μ-law zero), used when no audio is given.
_SILENCE = b"\xff" * 8000


@dataclass(frozen=True, slots=True)
class SippResult:
    """How a SIPp run ended.

    ``returncode`` follows SIPp: 0 all calls succeeded, 1 at least one failed,
    97 stopped by an internal command, 99 ended with no call processed, 255
    (-1) a fatal error such as a bad scenario or a busy port.
    """

    returncode: int
    successful: int
    failed: int
    output: str
    errors: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.failed == 0 and self.successful > 0

    def describe(self) -> str:
        return (
            f"sipp exited {self.returncode}: {self.successful} successful, {self.failed} failed\n"
            f"--- errors ---\n{self.errors[-4000:]}\n--- output ---\n{self.output[-4000:]}"
        )


def parse_stat_csv(text: str) -> tuple[int, int]:
    """Cumulative (successful, failed) call counts from the last row of a ``-trace_stat`` file."""
    rows = [row for row in csv.reader(text.splitlines(), delimiter=";") if row]
    if len(rows) < 2:
        raise PeerError(f"sipp statistics file has no data row: {text[:200]!r}")
    header, last = rows[0], rows[-1]
    try:
        successful = int(last[header.index("SuccessfulCall(C)")])
        failed = int(last[header.index("FailedCall(C)")])
    except (ValueError, IndexError) as exc:
        raise PeerError(f"sipp statistics file has an unexpected layout: {header[:12]}") from exc
    return successful, failed


_SCREEN_COUNTS = re.compile(
    r"Successful call\s*\|\s*\d+\s*\|\s*(\d+).*?Failed call\s*\|\s*\d+\s*\|\s*(\d+)", re.S
)


def parse_screen(text: str) -> tuple[int, int] | None:
    """(successful, failed) from SIPp's final statistics screen, when it printed one."""
    found = _SCREEN_COUNTS.findall(text)
    if not found:
        return None
    successful, failed = found[-1]
    return int(successful), int(failed)


def render_scenario(text: str, values: Mapping[str, str]) -> str:
    """Fill ``{{name}}`` placeholders; an unknown name is a local mistake, reported by name."""
    missing = sorted({name for name in _PLACEHOLDER.findall(text) if name not in values})
    if missing:
        raise PeerError(f"scenario needs keys {missing}; pass them in keys=")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


class Sipp(Lifecycle):
    """One SIPp run of a scenario; an async context manager that stops it on exit.

    ``target`` is ``host:port`` for a UAC and ``None`` for a UAS, which then
    listens on ``address``. Every socket is on 127.0.0.1 with OS-chosen ports.
    """

    def __init__(
        self,
        scenario: str | Path,
        target: str | None = None,
        *,
        calls: int = 1,
        rate: float = 1.0,
        rate_period_ms: int = 1000,
        limit: int | None = None,
        service: str | None = None,
        auth_user: str | None = None,
        auth_password: str | None = None,
        keys: Mapping[str, str] | None = None,
        duration_ms: int = 1000,
        timeout: float = 30.0,
        transport: str = "u1",
        rtp_file: Path | None = None,
        port: int | None = None,
        media_port: int | None = None,
        extra_args: Sequence[str] = (),
        binary: str = "sipp",
    ) -> None:
        path = shutil.which(binary)
        if path is None:
            raise PeerMissingError(
                f"{binary} is not installed; run scripts/install-peers.sh (package sip-tester)"
            )
        self.binary = path
        source = Path(scenario)
        if not source.is_absolute() and not source.exists():
            source = SCENARIOS / source
        if not source.exists():
            raise PeerError(f"no SIPp scenario {scenario} (looked in {SCENARIOS})")
        self.scenario = source
        self.target = target
        self.calls = calls
        self.rate = rate
        self.rate_period_ms = rate_period_ms
        self.limit = limit
        self.service = service
        self.auth_user = auth_user
        self.auth_password = auth_password
        self.keys = dict(SCENARIO_DEFAULTS.get(source.name, {}))
        self.keys.update(keys or {})
        for code_key in ("status", "final"):
            if code_key in self.keys and "reason" not in (keys or {}):
                self.keys["reason"] = REASON_PHRASES.get(self.keys[code_key], "Refused")
        self.duration_ms = duration_ms
        self.timeout = timeout
        self.transport = transport
        self.rtp_file = rtp_file
        if port is None:
            port = free_udp_port() if transport.startswith("u") else free_udp_tcp_port()
        self.port = port
        self.media_port = media_port if media_port is not None else free_port_pair(span=4)
        self.extra_args = tuple(extra_args)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._child: ChildProcess | None = None
        self._result: SippResult | None = None

    @property
    def address(self) -> str:
        """``host:port`` SIPp's SIP socket listens on."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def argv(self, workdir: Path) -> list[str]:
        """The command line for a run whose files go to ``workdir``."""
        argv = [
            self.binary,
            *([self.target] if self.target is not None else []),
            "-sf",
            str(workdir / self.scenario.name),
            "-i",
            LOOPBACK,
            "-p",
            str(self.port),
            "-mi",
            LOOPBACK,
            "-mp",
            str(self.media_port),
            "-cp",
            str(free_udp_port()),
            "-t",
            self.transport,
            "-m",
            str(self.calls),
            "-r",
            f"{self.rate:g}",
            "-rp",
            str(self.rate_period_ms),
            "-d",
            str(self.duration_ms),
            "-timeout",
            f"{self.timeout:g}s",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
            "-error_file",
            str(workdir / "errors.log"),
            "-trace_stat",
            "-stf",
            str(workdir / "stats.csv"),
            "-fd",
            "1",
        ]
        if self.limit is not None:
            argv += ["-l", str(self.limit)]
        if self.service is not None:
            argv += ["-s", self.service]
        if self.auth_user is not None:
            argv += ["-au", self.auth_user]
        if self.auth_password is not None:
            argv += ["-ap", self.auth_password]
        for name, value in self.keys.items():
            argv += ["-key", name, value]
        argv += self.extra_args
        return argv

    async def start(self) -> None:
        """Write the filled-in scenario to a temp dir and start SIPp there."""
        if self._child is not None:
            raise PeerError("sipp already started")
        self._tmp = tempfile.TemporaryDirectory(prefix="sipp-")
        workdir = Path(self._tmp.name)
        rtp_file = self.rtp_file
        if rtp_file is None:
            rtp_file = workdir / "silence.ul"
            rtp_file.write_bytes(_SILENCE)
        values = {"rtp_file": str(rtp_file.resolve()), **self.keys}
        (workdir / self.scenario.name).write_text(
            render_scenario(self.scenario.read_text(), values), encoding="iso-8859-1"
        )
        self._child = await ChildProcess.spawn(self.argv(workdir), cwd=workdir, name="sipp")
        if self.target is None:
            await self._until_listening(self._child)

    async def _until_listening(self, child: ChildProcess, within: float = 10.0) -> None:
        """A UAS is ready when its SIP socket is bound; one that died first says why, here,
        rather than as a call that silently never connects."""
        kind = socket.SOCK_DGRAM if self.transport.startswith("u") else socket.SOCK_STREAM
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not listening(self.port, kind):
            if child.returncode is not None:
                await child.wait(5.0)  # its output, drained
                raise PeerError(
                    f"sipp exited ({child.returncode}) before listening on {self.address}:\n"
                    f"{child.output[-2000:]}"
                )
            if loop.time() > deadline:
                raise PeerTimeoutError(f"sipp did not listen on {self.address} within {within}s")
            await asyncio.sleep(0.02)

    async def wait(self, timeout: float | None = None) -> SippResult:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        """Wait for SIPp to finish its calls (default: its own timeout plus slack)."""
        if self._result is not None:
            return self._result
        if self._child is None:
            raise PeerError("sipp not started")
        code = await self._child.wait(self.timeout + 10.0 if timeout is None else timeout)
        return self._finish(code)

    async def stop(self) -> SippResult | None:
        """Stop the SIPp this helper started (by pid) if it still runs; remove its files."""
        result = self._result
        if self._child is not None and result is None:
            result = self._finish(await self._child.stop())
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return result

    def _finish(self, code: int) -> SippResult:
        assert self._child is not None and self._tmp is not None
        workdir = Path(self._tmp.name)
        output = self._child.output
        errors_path = workdir / "errors.log"
        errors = errors_path.read_text(errors="replace") if errors_path.exists() else ""
        stats = workdir / "stats.csv"
        counts: tuple[int, int] | None = None
        if stats.exists() and stats.stat().st_size > 0:
            counts = parse_stat_csv(stats.read_text(errors="replace"))
        else:
            counts = parse_screen(output)
        successful, failed = counts if counts is not None else (0, 0)
        self._result = SippResult(code, successful, failed, output, errors)
        return self._result
