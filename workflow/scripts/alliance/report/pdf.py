"""The PDF of the report: the HTML file printed by headless Chromium (the same document a
reader sees, laid out by the template's print stylesheet), and how the browser is found.

The workflow imports ``find_browser`` when it loads (to decide whether the PDF is made), so
this module imports nothing heavy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_MAC = "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--mute-audio",
)
INSTALL_HINT = (
    "The PDF of the report is printed by headless Chromium, which was not found. Install it "
    "(Debian/Ubuntu: `sudo apt-get install chromium`; Fedora: `sudo dnf install chromium`; macOS: install Google Chrome) "
    "or point the environment variable ALLIANCE_CHROMIUM at a Chromium or Chrome executable, then rerun."
)


class BrowserNotFound(RuntimeError):
    """No Chromium/Chrome to print the PDF with."""


def find_browser() -> str:
    """The Chromium executable: $ALLIANCE_CHROMIUM, else chromium/chrome on PATH, else macOS Chrome."""
    explicit = os.environ.get("ALLIANCE_CHROMIUM")
    if explicit:
        if shutil.which(explicit) or Path(explicit).is_file():
            return shutil.which(explicit) or explicit
        raise BrowserNotFound(f"ALLIANCE_CHROMIUM={explicit!r} is not an executable. " + INSTALL_HINT)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    if Path(CHROMIUM_MAC).is_file():
        return CHROMIUM_MAC
    raise BrowserNotFound(INSTALL_HINT)


def browser_or_none(skipped: str) -> str | None:
    """The browser of :func:`find_browser`, or None with a note on stderr that ``skipped`` (a PDF) is not
    made: the workflow then makes the HTML report alone, so that a machine with only Python runs it."""
    try:
        return find_browser()
    except BrowserNotFound as error:
        print(f"Note: {skipped} is skipped. {error}", file=sys.stderr)
        return None


def browser_version(browser: str) -> str:
    """'Chromium 156.0...' (the first line of --version)."""
    try:
        out = subprocess.run([browser, "--version"], capture_output=True, text=True, timeout=60)
        return (out.stdout.strip().splitlines() or ["unknown"])[-1].strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def html_to_pdf(html: str | Path, pdf: str | Path, browser: str | None = None, timeout: float = 180) -> None:
    """Print the HTML file to PDF with headless Chromium (the same document a reader sees,
    laid out by the print stylesheet of the template), without network access or profile."""
    browser = browser or find_browser()
    html, pdf = Path(html).resolve(), Path(pdf).resolve()
    with tempfile.TemporaryDirectory(prefix="alliance-chromium-") as profile:
        command = [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            html.as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not pdf.exists() or pdf.read_bytes()[:5] != b"%PDF-":
        raise RuntimeError(f"Chromium did not write a PDF (exit {done.returncode}): {done.stderr[-2000:]}")
