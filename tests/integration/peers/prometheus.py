"""A throwaway Prometheus server for the integration tier, and promtool.

Prometheus runs from a temp dir (config, rule files, TSDB) and listens on a
port the OS handed out on 127.0.0.1; it is stopped by the pid of the process
this helper started. Its HTTP API is read with the standard library in a
worker thread: the answers are small JSON documents, and a test must not
depend on a client library the service does not need.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from peers.errors import PeerError, PeerMissingError, PeerTimeoutError
from peers.lifecycle import Lifecycle
from peers.ports import LOOPBACK, free_tcp_port
from peers.process import ChildProcess

READY_LINE = "Server is ready to receive web requests."
# Between two polls of the query API: Prometheus cannot tell us when a scrape landed.
POLL_INTERVAL = 0.2


def find_binary(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``, or PeerMissingError saying how to get it."""
    path = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/local/bin")
    if path is None:
        raise PeerMissingError(
            f"{name} is not installed; run scripts/install-peers.sh (package prometheus)"
        )
    return path


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool with ``args``; the caller judges the exit status and output."""
    return subprocess.run(
        [find_binary("promtool"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Prometheus(Lifecycle):
    """``async with Prometheus(targets=["127.0.0.1:9464"]) as prom: await prom.query(...)``.

    Scrapes ``targets`` as job ``job`` every ``scrape_interval`` and evaluates
    ``rule_files`` (copied into the temp dir) at the same pace.
    """

    def __init__(
        self,
        *,
        targets: Sequence[str],
        job: str = "dialer",
        scrape_interval: str = "1s",
        rule_files: Sequence[Path] = (),
        port: int | None = None,
    ) -> None:
        self.binary = find_binary("prometheus")
        self.targets = list(targets)
        self.job = job
        self.scrape_interval = scrape_interval
        self.rule_files = list(rule_files)
        self.port = port if port is not None else free_tcp_port()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._child: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def log(self) -> str:
        return self._child.output if self._child is not None else ""

    def config(self, rule_names: Sequence[str]) -> dict[str, Any]:
        """The prometheus.yml content (JSON is YAML, so it is written as JSON)."""
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "rule_files": list(rule_names),
            "scrape_configs": [
                {"job_name": self.job, "static_configs": [{"targets": self.targets}]}
            ],
        }

    async def start(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        if self._child is not None:
            raise PeerError("Prometheus already started")
        self._tmp = tempfile.TemporaryDirectory(prefix="prometheus-")
        workdir = Path(self._tmp.name)
        names = []
        for index, source in enumerate(self.rule_files):
            name = f"rules-{index}-{source.name}"
            shutil.copyfile(source, workdir / name)
            names.append(name)
        config = workdir / "prometheus.yml"
        config.write_text(json.dumps(self.config(names), indent=2))
        self._child = await ChildProcess.spawn(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=info",
            ],
            cwd=workdir,
            name="prometheus",
        )
        try:
            await self._child.wait_for_output(READY_LINE, timeout)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop the process this helper started (by its pid) and remove its temp dir."""
        if self._child is not None:
            await self._child.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def api(self, path: str, **params: str) -> Any:
        """``data`` of a successful ``/api/v1/<path>`` answer; PeerError with the error if not."""
        query = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        body = await asyncio.to_thread(_fetch, url)
        answer = json.loads(body)
        if answer.get("status") != "success":
            raise PeerError(f"Prometheus {path} {params}: {answer.get('error', answer)}")
        return answer["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of ``expr`` now (a scalar comes back as one unlabelled entry)."""
        data = await self.api("query", query=expr)
        if data["resultType"] == "vector":
            result: list[dict[str, Any]] = data["result"]
            return result
        return [{"metric": {}, "value": data["result"]}]

    async def wait_until(
        self,
        expr: str,
        check: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 20.0,  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
    ) -> list[dict[str, Any]]:
        """Poll ``expr`` until ``check`` accepts its result; PeerTimeoutError shows the last."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = await self.query(expr)
            if check(result):
                return result
            if loop.time() >= deadline:
                raise PeerTimeoutError(
                    f"{expr!r} never satisfied the check within {timeout}s; last: {result}"
                )
            await asyncio.sleep(POLL_INTERVAL)

    async def wait_for_value(self, expr: str, expected: float, timeout: float = 20.0) -> None:  # noqa: ASYNC109 (a peer-facing deadline is part of the API)
        """Poll until ``expr`` is exactly one series whose value is ``expected``."""
        await self.wait_until(
            expr,
            lambda result: len(result) == 1 and float(result[0]["value"][1]) == expected,
            timeout,
        )


def _fetch(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            data: bytes = reply.read()
            return data
    except urllib.error.HTTPError as exc:
        # Prometheus answers a bad query with 400 and a JSON error body: pass it on.
        data = exc.read()
        return data
