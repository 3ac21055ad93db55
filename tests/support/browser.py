"""A real browser for the board's tests: Debian's Chromium, driven by Playwright.

Playwright's own browser download cannot reach the network here (and is never
used): it drives ``/usr/bin/chromium`` as ``executable_path``, headless, with a
fresh profile directory, and the flags that keep Chromium from calling out (its
connections would be refused by the closed network, many at a time). A machine
without Chromium fails the test with the command that installs it.

Every page opened through :func:`open_page` records its console errors and
uncaught exceptions (a Content-Security-Policy violation is one), so a test can
check the board runs clean.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page, ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
INSTALL = "apt-get install -y chromium chromium-driver (scripts/test installs them as root)"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = Path(__file__).resolve().parents[1] / "output" / "board"
"""Screenshots the tests take (not committed; docs/ holds the README's one)."""

PHONE: ViewportSize = {"width": 360, "height": 740}
DESKTOP: ViewportSize = {"width": 1920, "height": 1080}


def require_chromium() -> Path:
    if not CHROMIUM.exists():
        found = shutil.which("chromium")
        detail = f" (a chromium at {found} is not Debian's)" if found else ""
        pytest.fail(f"Chromium is not installed at {CHROMIUM}{detail}: {INSTALL}")
    return CHROMIUM


@dataclass
class Problems:
    """What went wrong in the page: console errors and uncaught exceptions."""

    console: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # answers of 400 and above, by URL

    def __bool__(self) -> bool:
        return bool(self.console or self.exceptions or self.dialogs or self.failed)


@asynccontextmanager
async def chromium(profile: Path, **options: Any) -> AsyncIterator[BrowserContext]:
    """A headless Chromium with a fresh profile in ``profile``; ``options`` go to the context
    (viewport, java_script_enabled, ...)."""
    executable = require_chromium()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("playwright is not installed: run .venv/bin/pip install -e '.[test]'")
    profile.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as driver:
        context = await driver.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(executable),
            headless=True,
            args=FLAGS,
            viewport=options.pop("viewport", DESKTOP),
            **options,
        )
        try:
            yield context
        finally:
            await context.close()


async def open_page(context: BrowserContext) -> tuple[Page, Problems]:
    page = await context.new_page()
    problems = Problems()
    page.on(
        "console",
        lambda message: problems.console.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: problems.exceptions.append(str(error)))
    page.on(
        "response",
        lambda r: problems.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )

    async def dialog(d: Any) -> None:  # an alert() would be injected script running
        problems.dialogs.append(d.message)
        await d.dismiss()

    page.on("dialog", dialog)
    return page, problems


async def sign_in(page: Page, base_url: str, token: str, then: str = "/") -> None:
    """Through the board's own login form, as a person would."""
    await page.goto(f"{base_url}/login?next={then}")
    await page.fill("input[name=token]", token)
    await page.click("#login button[type=submit]")
    await page.wait_for_url(f"{base_url}{then}")


def screenshot_path(name: str) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT / f"{name}.png"
