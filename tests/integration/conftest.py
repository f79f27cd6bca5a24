"""Fixtures for the integration tier: real peers on loopback, started and stopped per test.

Missing peers are installed (CI, or whenever one is absent) and a peer that
still cannot be had fails the session: an integration test that silently
skips proves nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from browser_support import SAVED, Browsers, chromium_problem
from peers.baresip import Baresip
from peers.kamailio import Kamailio
from peers.sipp import Sipp
from playwright.async_api import async_playwright, expect

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO / "scripts" / "install-peers.sh"
REQUIRED_BINARIES = (
    "sipp",
    "baresip",
    "kamailio",
    "tshark",
    "sox",
    "espeak-ng",
    "mosquitto",
    "prometheus",
    "promtool",
    "chromium",
)


def _missing() -> list[str]:
    search = os.environ.get("PATH", "") + ":/usr/sbin:/usr/local/sbin"
    return [name for name in REQUIRED_BINARIES if shutil.which(name, path=search) is None]


@pytest.fixture(scope="session", autouse=True)
def peers_installed() -> None:
    """Run scripts/install-peers.sh when CI=true or a peer is missing; fail if still missing."""
    if os.environ.get("CI") == "true" or _missing():
        done = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            pytest.fail(
                f"{INSTALL_SCRIPT.name} failed ({done.returncode}):\n{done.stdout}{done.stderr}",
                pytrace=False,
            )
    still = _missing()
    if still:
        pytest.fail(f"real peers missing after install: {still}", pytrace=False)


@pytest.fixture
def tone_wav(tmp_path: Path) -> Path:
    """Three seconds of a 440 Hz tone, 8 kHz mono 16-bit: what a desk phone 'says'."""
    path = tmp_path / "tone.wav"
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path), "synth", "3", "sine", "440"],
        check=True,
    )
    return path


@pytest.fixture
async def sipp_factory() -> AsyncIterator[Callable[..., Sipp]]:
    """``sipp_factory(scenario, target, **options)`` -> a not yet started ``Sipp``."""
    made: list[Sipp] = []

    def make(*args: Any, **kwargs: Any) -> Sipp:
        sipp = Sipp(*args, **kwargs)
        made.append(sipp)
        return sipp

    yield make
    for sipp in reversed(made):
        await sipp.stop()


@pytest.fixture
async def kamailio_factory() -> AsyncIterator[Callable[..., Kamailio]]:
    """``kamailio_factory(users=..., static_destination=...)`` -> a not yet started ``Kamailio``.

    Torn down after ``baresip_factory`` (pytest finalizes in reverse request
    order), so list this fixture first: phones unregister from a live registrar.
    """
    made: list[Kamailio] = []

    def make(*args: Any, **kwargs: Any) -> Kamailio:
        kamailio = Kamailio(*args, **kwargs)
        made.append(kamailio)
        return kamailio

    yield make
    for kamailio in reversed(made):
        await kamailio.stop()


@pytest.fixture
async def baresip_factory() -> AsyncIterator[Callable[..., Baresip]]:
    """``baresip_factory(user=, password=, registrar=, audio_file=)`` -> a not yet started phone."""
    made: list[Baresip] = []

    def make(*args: Any, **kwargs: Any) -> Baresip:
        phone = Baresip(*args, **kwargs)
        made.append(phone)
        return phone

    yield make
    for phone in reversed(made):
        await phone.stop()


# -- the browser tests: Chromium (failing, never skipping, when it is absent) ----------

# The shared 2-core machine is slow at times: what a page shows may take a while.
expect.set_options(timeout=10_000)


@pytest_asyncio.fixture
async def browsers(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Browsers]:
    problem = chromium_problem()
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    async with async_playwright() as playwright:
        found = Browsers(playwright, tmp_path, request.node.name)
        try:
            yield found
            report = getattr(request.node, "call_report", None)
            if report is not None and report.failed:
                for context in found.contexts:  # what each page showed when the test failed
                    for n, page in enumerate(context.pages):
                        await found.screenshot(page, f"failed-{n}")
        finally:
            await found.close()
        assert found.page_errors == [], f"script errors on the pages: {found.page_errors}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.call_report = report  # type: ignore[attr-defined]  # read by ``browsers``
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SAVED:
        terminalreporter.section("browser screenshots")
        for path in SAVED:
            terminalreporter.write_line(str(path))
