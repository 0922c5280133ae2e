"""Headless Chromium for the page tests: Debian's ``chromium`` driven by Playwright (whose own
browser download cannot be reached here), and a helper that takes screenshots
(kept in docs/ only when MWE_SCREENSHOTS=1)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import REPO

DOCS = REPO / "docs"
#: Where screenshots go unless MWE_SCREENSHOTS=1 asks for docs/ (one folder per process).
SHOTS = Path(tempfile.gettempdir()) / f"mwe-screenshots-{os.getpid()}"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    """The system Chromium; the test command installs it (`apt-get install -y chromium`)."""
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    pytest.fail("no Chromium on PATH: `apt-get install -y chromium` (make setup does it)")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium per test module; each test opens its own page. Not one for the
    session: sync Playwright holds an event loop on the main thread while it runs, and a later
    module's asyncio.run (Inspect's, for one) would find it running."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chrome = pw.chromium.launch(
            executable_path=chromium_path(),
            # As root (CI) Chromium needs --no-sandbox; the pages are our own.
            args=["--no-sandbox", "--disable-gpu"],
        )
        yield chrome
        chrome.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    """A fresh page that records every dialog it opens and fails on any request that leaves
    the machine (the pages must load nothing from the network)."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.dialogs = []  # type: ignore[attr-defined]

    def on_dialog(dialog: object) -> None:
        page.dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.dismiss()  # type: ignore[attr-defined]

    page.on("dialog", on_dialog)
    page.external_requests = []  # type: ignore[attr-defined]
    page.requests = []  # type: ignore[attr-defined]

    def on_request(request: object) -> None:
        url = request.url  # type: ignore[attr-defined]
        page.requests.append(url)  # type: ignore[attr-defined]
        if not url.startswith(("http://127.0.0.1", "file://", "data:", "about:")):
            page.external_requests.append(url)  # type: ignore[attr-defined]

    page.on("request", on_request)
    yield page
    context.close()


def screenshot(target: object, name: str, **options: object) -> Path:
    """Screenshot a page or a locator and return the PNG's path.

    The README's pictures in docs/ are refreshed only when ``MWE_SCREENSHOTS=1`` is set
    (``MWE_SCREENSHOTS=1 make test``): otherwise every run would rewrite tracked files, and a
    clean clone would end the suite dirty. Without it the picture goes to a temporary folder,
    so the rendering is still exercised."""
    folder = DOCS if os.environ.get("MWE_SCREENSHOTS") == "1" else SHOTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    target.screenshot(path=str(path), **options)  # type: ignore[attr-defined]
    return path
