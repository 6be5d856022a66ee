"""What the browser tests of the pages share: a service under uvicorn in a thread, a page
cut off from everything but its service, signing in, and the scan for Latin-letter codes."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, Route

VIOLATIONS_JS = """window.__violations = [];
document.addEventListener('securitypolicyviolation',
    e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"""


@contextmanager
def served(app: FastAPI, what: str = "the service") -> Iterator[str]:
    """``app`` under uvicorn, in a thread, on a port of its own: its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, f"{what} did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@dataclass
class Offline:
    """A page that may reach only its service: what else it asked for, and its errors
    (script errors, console errors, CSP violations)."""

    page: Page
    attempted: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def violations(self) -> list[str]:
        return list(self.page.evaluate("window.__violations || []"))


def offline(browser: Browser, base: str, expected: tuple[str, ...] = ()) -> Offline:
    """A new page whose requests off ``base`` are aborted and written down; console errors
    other than ``expected`` (substrings, e.g. "status of 403" for a refusal asked for) are
    problems."""
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="ru-RU")
    # A loaded machine (the whole suite on two cores) is slow, not broken: a minute per
    # wait, as the other browser tests give.
    page.set_default_timeout(60_000)
    seen = Offline(page)

    def only_the_service(route: Route) -> None:
        if route.request.url.startswith(f"{base}/"):
            route.continue_()
        else:
            seen.attempted.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_service)
    page.add_init_script(VIOLATIONS_JS)
    page.on("pageerror", lambda error: seen.problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            seen.problems.append(f"console: {message.text}")
            if message.type == "error" and not any(e in message.text for e in expected)
            else None
        ),
    )
    return seen


def sign_in(page: Page, base: str, key: str, next_path: str = "/signin") -> None:
    """The sign-in page: the key in, «Войти», and on at ``next_path`` (the sign-in page
    itself says who is signed in)."""
    page.goto(f"{base}/signin?next={next_path}")
    page.fill("#key", key)
    page.click("#submit")
    if next_path == "/signin":
        page.locator("#signed").wait_for()
    else:
        page.wait_for_url(f"{base}{next_path}*")


LATIN_CODE = re.compile(r"\b[A-Za-z][A-Za-z0-9]*(?:[_-][A-Za-z0-9]+)*\b")

WORDS = frozenset({"iomflow", "API", "XLSX", "CSV", "PDF", "Excel", "HTTP", "URL", "OIDC"})
"""Latin words a Russian reader reads as words: the product's name, formats, acronyms."""


def latin_codes(text: str, allowed: re.Pattern[str] | None = None) -> list[str]:
    """Words in Latin letters a person would read as codes (``psych_pedagogy``,
    ``general``), after removing what ``allowed`` matches (pseudonymous ids, commands) and
    but for ``WORDS``."""
    if allowed is not None:
        text = allowed.sub(" ", text)
    return [w for w in LATIN_CODE.findall(text) if w not in WORDS]
