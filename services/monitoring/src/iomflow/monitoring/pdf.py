"""The printable report as a PDF: the page printed by headless Chromium where it is
installed, else by WeasyPrint if it can be imported; else the service says, in Russian,
what to install (503).

``render`` blocks (a browser process, up to ``TIMEOUT_S``): call it off the event loop. One
print runs at a time — a browser per request would take a small server's every core.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path

from iomflow.shared.errors import Refused

log = logging.getLogger(__name__)

PDF = "application/pdf"
TIMEOUT_S = 90.0
BROWSERS = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--hide-scrollbars",
    "--no-pdf-header-footer",  # no date, file path and page title printed around the page
    "--print-to-pdf-no-header",  # the same, as older Chromium calls it
)
UNAVAILABLE = (
    "PDF не может быть сформирован: на сервере нет ни Chromium, ни WeasyPrint. Установите "
    "Chromium (Debian: apt-get install chromium) или пакет Python weasyprint "
    "(uv add weasyprint) и перезапустите сервис. Печатная версия справки доступна без них: "
    "/v1/reports/{год}/print."
)
_one_at_a_time = threading.Lock()


def chromium() -> str | None:
    """The Chromium binary, if there is one."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def engine() -> str | None:
    """What would print: "chromium", "weasyprint" or None."""
    if chromium():
        return "chromium"
    if importlib.util.find_spec("weasyprint") is not None:
        return "weasyprint"
    return None


def render(html: str, timeout_s: float = TIMEOUT_S) -> bytes:
    """The page as a PDF (A4, as its styles say)."""
    browser = chromium()
    with _one_at_a_time:
        if browser:
            return _chromium(browser, html, timeout_s)
        if importlib.util.find_spec("weasyprint") is not None:
            weasyprint = importlib.import_module("weasyprint")
            out: bytes = weasyprint.HTML(string=html).write_pdf()
            return out
    raise Refused("pdf_unavailable", UNAVAILABLE, 503)


def _chromium(browser: str, html: str, timeout_s: float) -> bytes:
    with tempfile.TemporaryDirectory(prefix="iomflow-pdf-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        page, out = work / "report.html", work / "report.pdf"
        page.write_text(html, encoding="utf-8")
        command = [
            browser,
            *FLAGS,
            f"--user-data-dir={work / 'profile'}",
            f"--print-to-pdf={out}",
            page.as_uri(),
        ]
        # Its own session: on a timeout the browser and every process it started are ended.
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env={**os.environ, "HOME": str(work)},
        )
        try:
            _, errors = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise Refused(
                "pdf_timeout",
                f"PDF не сформирован: Chromium не закончил печать за {timeout_s:.0f} с. "
                "Повторите запрос позже или воспользуйтесь печатной версией справки.",
                503,
            ) from None
        pdf = out.read_bytes() if out.exists() else b""
        if process.returncode != 0 or not pdf.startswith(b"%PDF"):
            tail = errors.decode("utf-8", "replace").strip().splitlines()[-3:]
            log.error("chromium printed no PDF (exit %s): %s", process.returncode, tail)
            raise Refused(
                "pdf_failed",
                "PDF не сформирован: Chromium завершился с ошибкой. Печатная версия справки "
                "доступна по ссылке «для печати».",
                503,
            )
        return pdf
