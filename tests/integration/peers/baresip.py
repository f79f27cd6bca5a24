"""baresip as a headless desk phone, driven over its ``ctrl_tcp`` module.

ctrl_tcp speaks netstrings (``<len>:<payload>,``) carrying JSON both ways:
commands ``{"command": ..., "params": ..., "token": ...}`` get a
``{"response": true, "ok": ..., "data": ..., "token": ...}`` back, and UA
events arrive unprompted as ``{"event": true, "type": "CALL_ESTABLISHED", ...}``.
The commands (dial, accept, hangup, ...) come from the ``menu`` module, so it is
loaded too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peers.errors import PeerError, PeerMissingError, PeerTimeoutError
from peers.lifecycle import Lifecycle
from peers.ports import LOOPBACK, free_port_pair, free_sip_tls_port, free_tcp_port
from peers.process import ChildProcess

_MODULE_DIRS = (
    Path("/usr/lib/baresip/modules"),
    Path("/usr/lib/x86_64-linux-gnu/baresip/modules"),
    Path("/usr/local/lib/baresip/modules"),
)

# RFC-less but documented in baresip's ctrl_tcp: lengths are decimal and a
# payload this large means we are out of sync, not that baresip sent 1 MB of JSON.
_MAX_NETSTRING = 1 << 20


class NetstringError(PeerError):
    """The ctrl_tcp byte stream is not a valid netstring sequence."""


def encode_netstring(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


class NetstringDecoder:
    """Incremental netstring decoder: feed any chunking of bytes, get whole payloads."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        payloads: list[bytes] = []
        while True:
            colon = self._buffer.find(b":")
            if colon < 0:
                if len(self._buffer) > len(str(_MAX_NETSTRING)):
                    raise NetstringError(f"no length prefix in {bytes(self._buffer[:20])!r}")
                return payloads
            prefix = bytes(self._buffer[:colon])
            if not prefix.isdigit() or (len(prefix) > 1 and prefix.startswith(b"0")):
                raise NetstringError(f"bad netstring length {prefix[:20]!r}")
            length = int(prefix)
            if length > _MAX_NETSTRING:
                raise NetstringError(f"netstring length {length} exceeds {_MAX_NETSTRING}")
            end = colon + 1 + length
            if len(self._buffer) < end + 1:
                return payloads
            if self._buffer[end : end + 1] != b",":
                raise NetstringError(f"netstring of length {length} not followed by ','")
            payloads.append(bytes(self._buffer[colon + 1 : end]))
            del self._buffer[: end + 1]


@dataclass(frozen=True, slots=True)
class BaresipEvent:
    """One UA event as ctrl_tcp reports it (``type`` is e.g. ``CALL_ESTABLISHED``)."""

    type: str
    event_class: str
    account: str
    peer_uri: str
    param: str
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> BaresipEvent:
        return cls(
            type=str(obj.get("type", "")),
            event_class=str(obj.get("class", "")),
            account=str(obj.get("accountaor", "")),
            peer_uri=str(obj.get("peeruri", "")),
            param=str(obj.get("param", "")),
            raw=dict(obj),
        )


@dataclass(frozen=True, slots=True)
class CommandResponse:
    ok: bool
    data: str


def _module_dir() -> Path:
    for candidate in _MODULE_DIRS:
        if (candidate / "ctrl_tcp.so").exists():
            return candidate
    raise PeerMissingError(
        "baresip modules (ctrl_tcp.so) not found in " + ", ".join(str(d) for d in _MODULE_DIRS)
    )


class Baresip(Lifecycle):
    """One baresip phone with a temp config dir, registered to ``registrar`` (``host:port``).

    It plays ``audio_file`` (a WAV, 8 kHz mono 16-bit is safest) as its
    microphone and, with ``record=True``, the sndfile module writes both
    directions of each call to WAV files under ``recordings``.
    """

    def __init__(
        self,
        *,
        user: str,
        password: str,
        registrar: str,
        audio_file: Path,
        domain: str | None = None,
        auto_answer: bool = True,
        record: bool = False,
        register: bool = True,
        regint: int = 300,
        binary: str = "baresip",
    ) -> None:
        path = shutil.which(binary)
        if path is None:
            raise PeerMissingError(
                f"{binary} is not installed; run scripts/install-peers.sh (package baresip-core)"
            )
        if not audio_file.exists():
            raise PeerError(f"audio file {audio_file} does not exist")
        self.binary = path
        self.user = user
        self.password = password
        self.registrar = registrar
        self.domain = domain or registrar
        self.audio_file = audio_file.resolve()
        self.auto_answer = auto_answer
        self.record = record
        self.register = register
        self.regint = regint
        self.sip_port = free_sip_tls_port()  # baresip takes the next port for SIP over TLS
        self.ctrl_port = free_tcp_port()
        self.rtp_port = free_port_pair()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._child: ChildProcess | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pump: asyncio.Task[None] | None = None
        self._events: list[BaresipEvent] = []
        self._seen = 0
        self._events_changed = asyncio.Condition()
        self._pending: dict[str, asyncio.Future[CommandResponse]] = {}
        self._tokens = itertools.count(1)

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    @property
    def address(self) -> str:
        """``host:port`` of the phone's own SIP socket."""
        return f"{LOOPBACK}:{self.sip_port}"

    @property
    def config_dir(self) -> Path:
        if self._tmp is None:
            raise PeerError("baresip not started")
        return Path(self._tmp.name)

    @property
    def recordings(self) -> Path:
        return self.config_dir / "recordings"

    @property
    def events(self) -> list[BaresipEvent]:
        """Every event received so far, oldest first."""
        return list(self._events)

    @property
    def log(self) -> str:
        return self._child.output if self._child is not None else ""

    def render_config(self, recordings: Path) -> str:
        modules = ["g711.so", "aufile.so", "aubridge.so"]
        if self.record:
            modules.append("sndfile.so")
        lines = [
            "poll_method\t\tepoll",
            f"sip_listen\t\t{LOOPBACK}:{self.sip_port}",
            "call_local_timeout\t120",
            "call_max_calls\t\t4",
            f"audio_source\t\taufile,{self.audio_file}",
            "audio_player\t\taubridge,sink",
            "audio_alert\t\taubridge,alert",
            "ausrc_format\t\ts16",
            "auplay_format\t\ts16",
            "audio_buffer\t\t20-160",
            f"rtp_ports\t\t{self.rtp_port}-{self.rtp_port + 1}",
            "rtcp_mux\t\tno",
            "jitter_buffer_delay\t5-10",
            "dns_server\t\t127.0.0.1:53",
            f"net_interface\t\t{LOOPBACK}",
            f"module_path\t\t{_module_dir()}",
            *(f"module\t\t\t{name}" for name in modules),
            "module_tmp\t\taccount.so",
            "module_app\t\tmenu.so",
            "module_app\t\tctrl_tcp.so",
            f"ctrl_tcp_listen\t\t{LOOPBACK}:{self.ctrl_port}",
            f"snd_path\t\t{recordings}",
        ]
        return "\n".join(lines) + "\n"

    def render_account(self) -> str:
        params = [
            f"auth_user={self.user}",
            f"auth_pass={self.password}",
            f"answermode={'auto' if self.auto_answer else 'manual'}",
            "audio_codecs=PCMU/8000/1,PCMA/8000/1",
            f"regint={self.regint if self.register else 0}",
        ]
        if self.domain != self.registrar:
            params.append(f'outbound="sip:{self.registrar}"')
        return f"<sip:{self.user}@{self.domain}>;" + ";".join(params) + "\n"

    async def start(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        """Write config and accounts, start ``baresip -f dir``, connect to ctrl_tcp."""
        if self._child is not None:
            raise PeerError("baresip already started")
        self._tmp = tempfile.TemporaryDirectory(prefix="baresip-")
        workdir = Path(self._tmp.name)
        self.recordings.mkdir()
        (workdir / "config").write_text(self.render_config(self.recordings))
        (workdir / "accounts").write_text("")
        (workdir / "contacts").write_text("")
        self._child = await ChildProcess.spawn(
            [self.binary, "-f", str(workdir)], cwd=workdir, name="baresip"
        )
        try:
            await self._connect(timeout)
        except BaseException:
            await self.stop()
            raise

    async def _connect(self, timeout: float) -> None:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        assert self._child is not None
        # Modules (ctrl_tcp among them) are up before baresip says it is ready.
        await self._child.wait_for_output(r"baresip is ready\.", timeout)
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(LOOPBACK, self.ctrl_port), timeout
        )
        self._pump = asyncio.create_task(self._read_events(), name="baresip-ctrl")
        # The account is created only now, over ctrl_tcp, so that its first
        # REGISTER_OK/REGISTER_FAIL cannot happen before we listen for events.
        reply = await self.command("uanew", self.render_account().strip(), timeout=timeout)
        if not reply.ok:
            raise PeerError(f"baresip refused account {self.aor}: {reply.data}")

    async def _read_events(self) -> None:
        assert self._reader is not None
        decoder = NetstringDecoder()
        while chunk := await self._reader.read(65536):
            for payload in decoder.feed(chunk):
                message = json.loads(payload)
                if message.get("response"):
                    token = str(message.get("token", ""))
                    future = self._pending.pop(token, None)
                    if future is not None and not future.done():
                        future.set_result(
                            CommandResponse(bool(message.get("ok")), str(message.get("data", "")))
                        )
                elif message.get("event"):
                    async with self._events_changed:
                        self._events.append(BaresipEvent.from_json(message))
                        self._events_changed.notify_all()
        async with self._events_changed:
            self._events_changed.notify_all()

    async def command(self, name: str, params: str = "", timeout: float = 5.0) -> CommandResponse:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        """Run a baresip long command (``dial``, ``accept``, ``hangup``...) and await the reply."""
        if self._writer is None:
            raise PeerError("baresip not started")
        token = str(next(self._tokens))
        future: asyncio.Future[CommandResponse] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        body = json.dumps({"command": name, "params": params, "token": token}).encode()
        self._writer.write(encode_netstring(body))
        await self._writer.drain()
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise PeerTimeoutError(f"baresip did not answer {name!r} within {timeout}s") from None
        finally:
            self._pending.pop(token, None)

    async def dial(self, uri: str) -> CommandResponse:
        return await self.command("dial", uri)

    async def accept(self) -> CommandResponse:
        return await self.command("accept")

    async def hangup(self) -> CommandResponse:
        return await self.command("hangup")

    async def wait_event(self, event_type: str, timeout: float = 10.0) -> BaresipEvent:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        """The next not yet awaited event of ``event_type``; earlier events of other types
        stay in ``events``. Fails fast on REGISTER_FAIL when waiting for REGISTER_OK."""

        async def _next() -> BaresipEvent:
            async with self._events_changed:
                while True:
                    while self._seen < len(self._events):
                        event = self._events[self._seen]
                        self._seen += 1
                        if event.type == event_type:
                            return event
                        if event_type == "REGISTER_OK" and event.type == "REGISTER_FAIL":
                            raise PeerError(f"baresip registration failed: {event.param}")
                    if self._pump is None or self._pump.done():
                        raise PeerError(
                            f"baresip control connection closed while waiting for {event_type}:\n"
                            f"{self.log[-3000:]}"
                        )
                    await self._events_changed.wait()

        try:
            return await asyncio.wait_for(_next(), timeout)
        except TimeoutError:
            seen = [e.type for e in self._events]
            raise PeerTimeoutError(
                f"baresip: no {event_type} within {timeout}s; events so far {seen}\n"
                f"{self.log[-3000:]}"
            ) from None

    async def stop(self) -> None:
        """Close ctrl_tcp, stop the baresip this helper started (by pid), remove its dir.

        baresip unregisters on exit, so stop phones before their registrar.
        """
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
            self._writer = None
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        if self._child is not None:
            await self._child.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
