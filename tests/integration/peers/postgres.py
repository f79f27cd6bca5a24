"""A throwaway PostgreSQL server for the integration tier: initdb + pg_ctl in a temp dir.

PostgreSQL refuses to run as root, so when the tests run as root the cluster
directory belongs to the ``postgres`` user and every server command runs
through ``runuser -u postgres --``. The server listens on 127.0.0.1 only, on a
port the OS handed out, with its socket in the temp dir (never the shared
``/var/run/postgresql``), trust authentication and ``fsync=off`` (a test
cluster must be fast, not durable).

``stop()`` and ``start()`` may be called again and again on the same data
directory: tests stop the database under a running service and restart it.
pg_ctl stops the server by the pid in its own data directory, so only the
server this helper started is ever signalled.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from peers.errors import PeerError, PeerMissingError, PeerTimeoutError
from peers.lifecycle import Lifecycle
from peers.ports import LOOPBACK, free_tcp_port

PG_ROOT = Path("/usr/lib/postgresql")
SERVICE_USER = "postgres"
STOP_MODES = ("smart", "fast", "immediate")

# A plain lower-case identifier needs no quoting rules in CREATE DATABASE.
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def find_bin_dir(root: Path = PG_ROOT) -> Path:
    """The newest installed ``/usr/lib/postgresql/<version>/bin``, or PeerMissingError."""
    found = [
        candidate.parent
        for candidate in root.glob("*/bin/initdb")
        if candidate.parent.name == "bin" and candidate.parents[1].name.isdigit()
    ]
    if not found:
        raise PeerMissingError(
            f"PostgreSQL server binaries not found under {root}/*/bin"
            " (initdb, pg_ctl); install the 'postgresql' package"
            " (scripts/install-peers.sh does)"
        )
    return max(found, key=lambda path: int(path.parent.name))


class PostgresServer(Lifecycle):
    """One PostgreSQL cluster in a temp dir; ``async with PostgresServer() as pg: ...``."""

    def __init__(self, *, port: int | None = None, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir if bin_dir is not None else find_bin_dir()
        for tool in ("initdb", "pg_ctl"):
            if not (self.bin_dir / tool).is_file():
                raise PeerMissingError(f"{self.bin_dir / tool} is missing")
        self._as_root = os.geteuid() == 0
        if self._as_root:
            if shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin") is None:
                raise PeerMissingError("runuser is needed to run PostgreSQL as user postgres")
            try:
                self._owner = pwd.getpwnam(SERVICE_USER)
            except KeyError:
                raise PeerMissingError(
                    f"user {SERVICE_USER!r} does not exist; the postgresql package creates it"
                ) from None
        self.port = port if port is not None else free_tcp_port()
        self._tmp: Path | None = None
        self._running = False

    # -- where things are ----------------------------------------------------------

    @property
    def base(self) -> Path:
        if self._tmp is None:
            raise PeerError("PostgreSQL has no cluster yet: call start() first")
        return self._tmp

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log_file(self) -> Path:
        return self.base / "server.log"

    @property
    def running(self) -> bool:
        return self._running

    @property
    def log(self) -> str:
        """The server log so far (empty before the first start)."""
        try:
            return self.log_file.read_text(errors="replace")
        except (OSError, PeerError):
            return ""

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy async URL of ``database`` on this server."""
        return f"postgresql+asyncpg://postgres@{LOOPBACK}:{self.port}/{database}"

    # -- lifecycle -------------------------------------------------------------------

    async def start(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        """Create the cluster on first use, start the server, return once it accepts connections."""
        if self._running:
            raise PeerError(f"PostgreSQL on port {self.port} is already running")
        if self._tmp is None:
            await self._init_cluster(timeout)
        options = (
            f"-c listen_addresses={LOOPBACK} -p {self.port} -k {self.base / 'sock'}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        started = await self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "-t",
            str(max(1, int(timeout))),
            "start",
            timeout=timeout + 5,
        )
        if started is not None:
            raise PeerError(f"pg_ctl start failed on port {self.port}:\n{started}\n{self.log}")
        self._running = True
        await self._check_accepts(timeout)

    async def stop(self, mode: str = "fast", timeout: float = 30.0) -> None:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        """Stop the server (``smart``, ``fast`` or ``immediate``); the cluster stays for start()."""
        if mode not in STOP_MODES:
            raise PeerError(f"stop mode must be one of {', '.join(STOP_MODES)}, got {mode!r}")
        if not self._running:
            return
        failed = await self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-m",
            mode,
            "-w",
            "-t",
            str(max(1, int(timeout))),
            "stop",
            timeout=timeout + 5,
        )
        if failed is not None:
            raise PeerError(f"pg_ctl stop -m {mode} failed:\n{failed}\n{self.log}")
        self._running = False

    async def remove(self) -> None:
        """Stop the server if it runs and delete the cluster directory."""
        try:
            await self.stop("immediate")
        finally:
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None

    async def create_database(self, name: str) -> str:
        """CREATE DATABASE ``name`` (a plain lower-case identifier) and return its URL."""
        if not _DB_NAME.fullmatch(name):
            raise PeerError(f"database name {name!r} must match {_DB_NAME.pattern}")
        engine = create_async_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            await engine.dispose()
        return self.url(name)

    async def release(self) -> None:
        await self.remove()

    # -- helpers -----------------------------------------------------------------------

    async def _init_cluster(self, timeout: float) -> None:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        base = Path(tempfile.mkdtemp(prefix="pg-"))
        self._tmp = base
        (base / "sock").mkdir()
        if self._as_root:
            for path in (base, base / "sock"):
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
        failed = await self._run(
            "initdb",
            "-A",
            "trust",
            "-U",
            SERVICE_USER,
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
            str(self.data_dir),
            timeout=timeout,
        )
        if failed is not None:
            shutil.rmtree(base, ignore_errors=True)
            self._tmp = None
            raise PeerError(f"initdb failed:\n{failed}")

    async def _run(self, tool: str, *args: str, timeout: float) -> str | None:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        """Run a server tool as the service user; None on success, else its output."""
        argv = [str(self.bin_dir / tool), *args]
        if self._as_root:
            argv = ["runuser", "-u", SERVICE_USER, "--", *argv]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=self.base,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            # Only the tool we just started (pg_ctl waits; the server is its own process).
            proc.kill()
            await proc.wait()
            raise PeerTimeoutError(f"{tool} {' '.join(args)} took longer than {timeout}s") from None
        if proc.returncode != 0:
            return f"{tool} exited with {proc.returncode}: {out.decode(errors='replace')}"
        return None

    async def _check_accepts(self, timeout: float) -> None:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        # pg_ctl -w already waited for "ready"; prove it over TCP as the tests connect.
        engine = create_async_engine(self.url(), connect_args={"timeout": timeout})
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            raise PeerError(
                f"PostgreSQL on {LOOPBACK}:{self.port} does not accept connections: {exc}\n"
                f"{self.log}"
            ) from exc
        finally:
            await engine.dispose()
