"""A real browser on the real server: Debian's Chromium driven by Playwright against
pytest-django's ``live_server``.

Every page's console errors and uncaught exceptions are collected, and a test that
saw any fails at teardown. Screenshots go to ``$FLEET_DATA_DIR/console-shots`` as
the run's artifacts. Playwright's own browser download cannot work here (and is not
wanted): the browser is the distribution's, at ``/usr/bin/chromium``, which
``scripts/services.sh`` installs.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

CHROMIUM = Path(os.environ.get("FLEET_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDE, NARROW = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


def shots_dir() -> Path:
    path = Path(settings.DATA_DIR) / "console-shots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        pytest.fail(f"{CHROMIUM} is missing: scripts/services.sh installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; Django's ORM refuses to
    # run where a loop runs unless told that this thread is not serving async code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@dataclass
class Console:
    """One person's browser on the console: a context of its own (cookies), one page."""

    base_url: str
    page: object
    password: str
    errors: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base_url + path

    def goto(self, path: str) -> None:
        response = self.page.goto(self.url(path))
        assert response is not None and response.ok, f"{path}: HTTP {response.status if response else '?'}"

    def sign_in(self, username: str) -> None:
        self.page.goto(self.url("/login/"))
        self.page.get_by_label("User name").fill(username)
        self.page.get_by_label("Password").fill(self.password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(self.url("/"))

    def shot(self, name: str, *, full_page: bool = True) -> Path:
        path = shots_dir() / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def csrf(self) -> str:
        return next(c["value"] for c in self.page.context.cookies() if c["name"] == "csrftoken")


@pytest.fixture
def flushable_audit(transactional_db) -> Iterator[None]:
    """A live-server test commits, and its database is emptied afterwards: PostgreSQL
    truncates (which the append-only triggers allow), SQLite deletes (which they
    refuse). On SQLite the delete trigger is dropped for the flush, and restored."""
    triggers = importlib.import_module("fleet.audit.migrations.0002_append_only_triggers")
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(triggers.SQLITE_UP[1].replace("CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS", 1))
    yield
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(triggers.SQLITE_DOWN[1])


@pytest.fixture
def open_console(chromium, live_server, flushable_audit, password) -> Iterator:
    """``open_console()`` (optionally with a viewport): a fresh browser context, whose
    ``sign_in`` uses the test people's ``password``; fails the test if any page of it
    logged an error or threw."""
    consoles: list[Console] = []

    def open_(viewport: dict[str, int] = WIDE) -> Console:
        context = chromium.new_context(viewport=viewport)
        page = context.new_page()
        console = Console(live_server.url, page, password)
        page.on("console", lambda message: message.type == "error" and console.errors.append(
            f"console: {message.text} ({message.location.get('url', '')})"))
        page.on("pageerror", lambda error: console.errors.append(f"page error: {error}"))
        consoles.append(console)
        return console

    yield open_
    errors = [error for console in consoles for error in console.errors]
    for console in consoles:
        console.page.context.close()
    assert errors == [], "the browser reported errors:\n" + "\n".join(errors)
