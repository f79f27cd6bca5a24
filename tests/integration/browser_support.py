"""Headless Chromium for the page tests: Debian's browser, a fresh profile each time.

``Browsers`` opens persistent contexts over ``/usr/bin/chromium`` (each with
its own new user-data directory, so no cookie or cache crosses tests), keeps
every uncaught script error and Content-Security-Policy refusal of their
pages (a test ends by asserting there were none), and saves screenshots
under ``$BROWSER_SCREENSHOTS`` (default ``var/screenshots``), remembering the
paths for the run's summary. ``DemoFloor`` runs ``dialer demo`` with its
pages for the end-to-end tests.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import BrowserContext, ConsoleMessage, Page, Playwright, expect

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The QA player is started by a click, but a test may also start it from script.
    "--autoplay-policy=no-user-gesture-required",
)
# Every screenshot any test saved in this run (shown in the terminal summary).
SAVED: list[Path] = []


def screenshots_dir() -> Path:
    configured = Path(os.environ.get("BROWSER_SCREENSHOTS", "var/screenshots"))
    folder = configured if configured.is_absolute() else REPO / configured
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium_problem() -> str | None:
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        return (
            f"the browser tests drive Debian's Chromium at {CHROMIUM}, which is missing: "
            "install it with `apt-get install chromium`"
        )
    return None


@dataclass
class Browsers:
    playwright: Playwright
    profiles: Path
    test_name: str
    contexts: list[BrowserContext] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    async def open(self, name: str, *, locale: str = "zh-CN") -> Page:
        """A new browser (fresh profile) showing a blank page."""
        profile = self.profiles / f"profile-{len(self.contexts)}-{name}"
        context = await self.playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=list(CHROMIUM_ARGS),
            locale=locale,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(15_000)
        self.contexts.append(context)
        page = context.pages[0] if context.pages else await context.new_page()
        page.on("pageerror", lambda error: self.page_errors.append(f"{name}: {error}"))

        def refused(message: ConsoleMessage) -> None:
            if "Content Security Policy" in message.text:
                self.page_errors.append(f"{name}: {message.text}")

        page.on("console", refused)
        return page

    async def screenshot(self, page: Page, name: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{self.test_name}-{name}").strip("-")
        path = screenshots_dir() / f"{safe}.png"
        await page.screenshot(path=str(path), full_page=True)
        SAVED.append(path)
        print(f"screenshot: {path}")
        return path

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


async def sign_in(page: Page, url: str, username: str, password: str) -> None:
    """Sign in at ``url``'s login page as a person would (the page goes on by role)."""
    await page.goto(f"{url}/login")
    await expect(page.locator("body[data-ready=true]")).to_be_attached()
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(password)
    await page.get_by_test_id("login-submit").click()


# -- the demo floor ------------------------------------------------------------------------

DEMO_START_S = 90.0  # uv, the database, SIP registration: slow on a loaded 2-core machine
_ANNOUNCED = re.compile(r"^demo: API and pages on (http://[\w.:\[\]-]+)")


@dataclass
class DemoFloor:
    """``dialer demo`` as a subprocess with its pages served; the URL it printed."""

    url: str
    password: str
    desk_agent: str
    process: subprocess.Popen[str]
    output: list[str]

    @classmethod
    def start(
        cls,
        data_dir: Path,
        *,
        password: str,
        desk_agent: str,
        phones: int,
        desk_mode: str = "progressive",
    ) -> DemoFloor:
        """The demo; ``desk_mode`` "preview" puts the desk agent on a preview campaign."""
        command = [
            *demo_command(),
            "--phones", str(phones),
            "--duration", "900",
            "--data-dir", str(data_dir),
            "--http-port", "0",
            # As one word: a token that starts with "-" would read as an option.
            f"--password={password}",
            "--desk-agents", desk_agent,
            "--mix", "answer=100",
            "--talk", "4-6",
            "--desk-mode", desk_mode,
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: stopped as a whole
        )
        output: list[str] = []
        found: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:  # drained to the end, so the demo never blocks
                output.append(line.rstrip("\n"))
                matched = _ANNOUNCED.match(line)
                if matched:
                    found.put(matched.group(1))
            found.put(None)

        threading.Thread(target=read, name="demo-output", daemon=True).start()
        demo = cls("", password, desk_agent, process, output)
        try:
            url = found.get(timeout=DEMO_START_S)
        except queue.Empty:
            url = None
        if url is None:
            demo.stop()
            tail = "\n".join(output[-40:])
            raise RuntimeError(f"`{' '.join(command)}` announced no URL; its output:\n{tail}")
        demo.url = url.rstrip("/")
        try:
            with urllib.request.urlopen(f"{demo.url}/login", timeout=10) as page:
                page.read()
        except urllib.error.HTTPError as exc:
            demo.stop()
            raise RuntimeError(
                f"the demo's app serves no pages (GET /login: {exc.code}): create_app must "
                "call dialer.web.pages.mount_pages(app)"
            ) from None
        return demo

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def demo_command() -> list[str]:
    uv = shutil.which("uv")
    if uv is None:
        raise RuntimeError("`uv` is not on PATH: the browser tests start `uv run dialer demo`")
    return [uv, "run", "--no-sync", "dialer", "demo"]


@contextlib.contextmanager
def demo_floor(
    data_dir: Path, *, desk_agent: str, phones: int, desk_mode: str = "progressive"
) -> Iterator[DemoFloor]:
    """A demo floor (a fresh password) for as long as the block runs."""
    floor = DemoFloor.start(
        data_dir,
        password=secrets.token_urlsafe(12),
        desk_agent=desk_agent,
        phones=phones,
        desk_mode=desk_mode,
    )
    try:
        yield floor
    finally:
        floor.stop()


async def open_desk(browsers: Browsers, demo: DemoFloor) -> Page:
    """The desk agent's page, signed in to the site, its live stream open, not yet at work."""
    page = await browsers.open("agent")
    await sign_in(page, demo.url, demo.desk_agent, demo.password)
    await expect(page).to_have_url(f"{demo.url}/desk")
    await expect(page.get_by_test_id("desk-state")).to_have_attribute("data-state", "signed_out")
    await expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "open")
    return page
