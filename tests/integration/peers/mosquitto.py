"""A throwaway mosquitto broker on 127.0.0.1 and a port the OS handed out.

Its config, password file and persistence directory live in a temp dir.
Run as root, mosquitto drops to user ``mosquitto``, so that dir and what is
in it are handed to that user. ``stop()`` ends the process this helper
started (by its pid); ``restart()`` starts it again on the same port with
the same files, so persistent sessions and retained messages saved at stop
come back, as after a real broker restart.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from peers.errors import PeerError, PeerMissingError
from peers.lifecycle import Lifecycle
from peers.ports import LOOPBACK, free_tcp_port
from peers.process import ChildProcess

READY = r"mosquitto version [\d.]+ running"
_SEARCH = os.environ.get("PATH", "") + ":/usr/sbin:/usr/local/sbin"


def find_binary(name: str) -> str:
    path = shutil.which(name, path=_SEARCH)
    if path is None:
        raise PeerMissingError(
            f"{name} is not installed; run scripts/install-peers.sh "
            "(packages mosquitto mosquitto-clients)"
        )
    return path


class Mosquitto(Lifecycle):
    """``async with Mosquitto(users={"feed": "pw"}) as broker: ... broker.port``.

    Without ``users`` it accepts anonymous clients; with them it accepts only
    those names and passwords (a file made by ``mosquitto_passwd -b``). With
    ``tls`` it speaks MQTT over TLS only, with a self-signed certificate for
    127.0.0.1 made by ``openssl`` at start (``ca_file``: what clients trust).
    """

    def __init__(
        self,
        *,
        users: Mapping[str, str] | None = None,
        persistence: bool = True,
        tls: bool = False,
    ) -> None:
        self.binary = find_binary("mosquitto")
        self.passwd_tool = find_binary("mosquitto_passwd") if users else None
        self.openssl = find_binary("openssl") if tls else None
        self.users = dict(users or {})
        self.persistence = persistence
        self.tls = tls
        self.host = LOOPBACK
        self.port = free_tcp_port()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._child: ChildProcess | None = None
        self._earlier_output = ""  # of the runs before a restart

    @property
    def workdir(self) -> Path:
        if self._tmp is None:
            raise PeerError("mosquitto not started")
        return Path(self._tmp.name)

    @property
    def ca_file(self) -> Path:
        """The broker's self-signed certificate, for a client's trust store."""
        if not self.tls:
            raise PeerError("this mosquitto does not speak TLS")
        return self.workdir / "cert.pem"

    @property
    def log(self) -> str:
        return self._earlier_output + (self._child.output if self._child is not None else "")

    @property
    def running(self) -> bool:
        return self._child is not None and self._child.returncode is None

    def render_config(self, workdir: Path) -> str:
        lines = [
            f"listener {self.port} {LOOPBACK}",
            f"allow_anonymous {'false' if self.users else 'true'}",
            # stderr, not stdout: stdout to a pipe is block-buffered and the
            # "running" line would arrive only at exit.
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            # Enough for a whole test's stream to wait in an offline persistent session.
            "max_queued_messages 100000",
        ]
        if self.users:
            lines.append(f"password_file {workdir / 'passwd'}")
        if self.tls:
            lines += [f"certfile {workdir / 'cert.pem'}", f"keyfile {workdir / 'key.pem'}"]
        if self.persistence:
            lines += ["persistence true", f"persistence_location {workdir / 'data'}/"]
        return "\n".join(lines) + "\n"

    def _write_files(self, workdir: Path) -> None:
        (workdir / "data").mkdir()
        (workdir / "mosquitto.conf").write_text(self.render_config(workdir))
        passwd = workdir / "passwd"
        for index, (user, password) in enumerate(self.users.items()):
            assert self.passwd_tool is not None
            create = ["-c"] if index == 0 else []
            done = subprocess.run(
                [self.passwd_tool, *create, "-b", str(passwd), user, password],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            if done.returncode != 0:
                raise PeerError(f"mosquitto_passwd failed for {user!r}: {done.stderr}")
        if passwd.exists():
            passwd.chmod(0o600)
        if self.openssl is not None:
            self._make_certificate(self.openssl, workdir)
        if os.geteuid() == 0:
            self._hand_over(workdir)

    @staticmethod
    def _make_certificate(openssl: str, workdir: Path) -> None:
        # An EC key: generated in milliseconds, where RSA takes a noticeable moment.
        done = subprocess.run(
            [
                openssl, "req", "-x509", "-nodes", "-days", "1",
                "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-keyout", str(workdir / "key.pem"), "-out", str(workdir / "cert.pem"),
                "-subj", f"/CN={LOOPBACK}", "-addext", f"subjectAltName=IP:{LOOPBACK}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise PeerError(f"openssl could not make a test certificate: {done.stderr}")

    @staticmethod
    def _hand_over(workdir: Path) -> None:
        try:
            account = pwd.getpwnam("mosquitto")
        except KeyError:
            return  # no such user: mosquitto stays root and reads its files as root
        for path in [workdir, *workdir.rglob("*")]:
            os.chown(path, account.pw_uid, account.pw_gid)

    async def start(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        """Write the files (first start only) and start the broker; wait until it listens."""
        if self.running:
            raise PeerError("mosquitto already running")
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mosquitto-")
            self._write_files(self.workdir)
        self._child = await ChildProcess.spawn(
            [self.binary, "-c", str(self.workdir / "mosquitto.conf")],
            cwd=self.workdir,
            name="mosquitto",
        )
        try:
            await self._child.wait_for_output(READY, timeout)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """SIGTERM the broker this helper started (it saves its persistence on the way out)."""
        if self._child is not None:
            await self._child.stop()
            self._earlier_output += self._child.output
            self._child = None

    async def restart(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        await self.stop()
        await self.start(timeout)

    async def close(self) -> None:
        await self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def release(self) -> None:
        await self.close()
