"""The report as a reader gets it: the workflow's own HTML opened in headless Chromium.

Chromium is driven through its DevTools protocol over ``--remote-debugging-pipe`` (JSON
messages separated by NUL bytes on file descriptors 3 and 4), so no websocket client or
browser-automation package is needed.  The checks: every image decodes (naturalWidth > 0),
no request leaves the file, the console shows no errors; a screenshot of the first screen
is saved as results/report_first_screen.png.  The same run's PDF, Snakemake's own report
and the numbers quoted in the text are checked too.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from alliance.report.pdf import CHROMIUM_FLAGS
from testkit import ROOT, SNAKEMAKE, run_snakemake
from testkit.checkout import write_config
from testkit.reports import check_numbers, parse, tables_from_disk

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
if CHROMIUM is None and not os.environ.get("CI"):  # in CI .ci/run installs it, and a missing browser fails
    pytest.skip("chromium not found (apt-get install chromium)", allow_module_level=True)

# the report's own PDF flags (alliance.report.pdf), and no scrollbars in the screenshots
FLAGS = (*CHROMIUM_FLAGS, "--hide-scrollbars")
SCREENSHOT = ROOT / "results" / "report_first_screen.png"


class DevTools:
    """A minimal Chrome DevTools Protocol client over --remote-debugging-pipe."""

    def __init__(self, browser: str, timeout: float = 60) -> None:
        self.timeout = timeout
        self.profile = tempfile.TemporaryDirectory(prefix="report-test-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def child_fds() -> None:  # the browser reads commands on fd 3 and writes replies on fd 4
            a = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.process = subprocess.Popen(
            [browser, *FLAGS, f"--user-data-dir={self.profile.name}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            preexec_fn=child_fds,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.messages: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        while True:
            chunk = os.read(self._from_browser, 65536)
            if not chunk:
                self.messages.put(None)
                return
            buffer += chunk
            *complete, buffer = buffer.split(b"\0")
            for raw in complete:
                self.messages.put(json.loads(raw))

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self.messages.get(timeout=max(deadline - time.monotonic(), 0.1))
            if reply is None:
                raise RuntimeError("chromium closed the pipe")
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + self.timeout
        while True:
            event = self.messages.get(timeout=max(deadline - time.monotonic(), 0.1))
            if event is None:
                raise RuntimeError("chromium closed the pipe")
            self.events.append(event)
            if event.get("method") == method:
                return event

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:  # noqa: BLE001 (the browser may already be gone)
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        self.profile.cleanup()


IMAGE_STATES = "JSON.stringify(Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth, scheme: i.src.split(':')[0]})))"


def open_in_chromium(html: Path, screenshot: Path | None = None) -> dict:
    """Load the file as a reader would and report what the browser saw."""
    tools = DevTools(CHROMIUM)
    try:
        target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.send(f"{domain}.enable", session=session)
        tools.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        url = html.resolve().as_uri()
        tools.send("Page.navigate", {"url": url}, session=session)
        tools.wait_for("Page.loadEventFired")
        images = json.loads(
            tools.send("Runtime.evaluate", {"expression": IMAGE_STATES, "returnByValue": True}, session=session)[
                "result"
            ]["value"]
        )
        title = tools.send(
            "Runtime.evaluate", {"expression": "document.title", "returnByValue": True}, session=session
        )["result"]["value"]
        if screenshot is not None:
            shot = tools.send("Page.captureScreenshot", {"format": "png"}, session=session)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
    finally:
        tools.close()
    events = tools.events
    requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    errors = [
        e["params"]
        for e in events
        if e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert")
    ]
    errors += [e["params"] for e in events if e.get("method") == "Runtime.exceptionThrown"]
    errors += [
        e["params"]["entry"]
        for e in events
        if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"
    ]
    return {
        "url": url,
        "title": title,
        "images": images,
        "leaving": [u for u in requests if u != url and not u.startswith("data:")],
        "errors": errors,
    }


@pytest.fixture(scope="module")
def run(made_run):
    """The workflow run on the small simulated trial: conftest's one `make run`, shared with tests/workflow."""
    assert made_run.returncode == 0, made_run.console[-4000:]
    write_config(made_run.directory / "config.yaml", made_run.config)  # the --configfile of the reruns below
    return made_run.directory, made_run.config


@pytest.mark.slow  # reads the shared `make run` (conftest.made_run): test-slow and CI
@pytest.mark.parametrize("document", ["report", "supplement"])
def test_report_opens_cleanly_in_chromium(run, document):
    workdir, config = run
    html = workdir / "reports" / config["dataset"]["name"] / f"{document}.html"
    seen = open_in_chromium(html, screenshot=SCREENSHOT if document == "report" else None)
    assert seen["title"] == config["run"]["title"]
    expected = len(parse(html.read_text()).images)
    assert expected >= (1 if document == "report" else 5)
    assert len(seen["images"]) == expected
    broken = [i for i in seen["images"] if not (i["complete"] and i["width"] > 0)]
    assert not broken, broken
    assert {i["scheme"] for i in seen["images"]} == {"data"}
    assert seen["leaving"] == [], seen["leaving"]
    assert seen["errors"] == [], seen["errors"]
    assert document != "report" or SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # reads the shared `make run` (conftest.made_run): test-slow and CI
def test_the_browser_check_catches_broken_pages(run, tmp_path):
    """The harness itself: a missing image and an outside request must not pass unnoticed."""
    workdir, config = run
    html = (workdir / "reports" / config["dataset"]["name"] / "report.html").read_text()
    missing = tmp_path / "missing_image.html"
    missing.write_text(html.replace("</body>", '<img alt="x" src="nowhere.png"></body>'))
    seen = open_in_chromium(missing)
    assert [i for i in seen["images"] if i["width"] == 0]
    assert seen["errors"]  # the page's CSP refuses the file and says so on the console
    leaky = tmp_path / "outside_request.html"
    no_csp = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    leaky.write_text(no_csp.replace("</body>", '<img alt="x" src="http://127.0.0.1:9/pixel.png"></body>'))
    seen = open_in_chromium(leaky)
    assert "http://127.0.0.1:9/pixel.png" in seen["leaving"]


@pytest.mark.slow  # reads the shared `make run` (conftest.made_run): test-slow and CI
def test_numbers_in_the_text_tie_to_the_run_tables(run):
    workdir, config = run
    results = workdir / "results" / config["dataset"]["name"]
    reports = workdir / "reports" / config["dataset"]["name"]
    has_effects = (results / "effects" / "alliance_effects.csv").exists()
    truth = workdir / Path(config["dataset"]["sessions"]["path"]).parent / "TRUTH.yaml"  # the simulator's, beside it
    tables = tables_from_disk(results, effects=has_effects, truth=truth)
    assert check_numbers((reports / "report.html").read_text(), tables) > 30
    assert check_numbers((reports / "supplement.html").read_text(), tables) > 60


@pytest.mark.slow  # reads the shared `make run` (conftest.made_run): test-slow and CI
def test_pdf_is_the_printed_report(run):
    workdir, config = run
    reports = workdir / "reports" / config["dataset"]["name"]
    pdf = (reports / "report.pdf").read_bytes()
    assert pdf[:5] == b"%PDF-"
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
    assert 2 <= pages <= 8  # the main report is a few printed pages; the model output is in the supplement
    supplement = (reports / "supplement.pdf").read_bytes()
    assert len(re.findall(rb"/Type\s*/Page(?!s)", supplement)) >= 5
    assert (
        b"Skia/PDF" in pdf or b"Chromium" in pdf or b"HeadlessChrome" in pdf
    )  # printed by the browser, not drawn by matplotlib
    assert len(pdf) < 5_000_000


@pytest.mark.slow
def test_my_outputs_are_deterministic(run):
    """Tables and figures byte-identical on a forced rerun; the HTML apart from the run date."""
    workdir, config = run
    results = workdir / "results" / config["dataset"]["name"]
    names = sorted(
        str(p.relative_to(workdir))
        for p in list((results / "figures").glob("*")) + list((results / "report").glob("*.csv"))
    )
    assert len(names) >= 13

    def digest() -> dict:
        return {n: hashlib.sha256((workdir / n).read_bytes()).hexdigest() for n in names}

    def html_without_date() -> str:
        text = (workdir / "reports" / config["dataset"]["name"] / "report.html").read_text()
        return re.sub(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", "<date>", text)

    before, html_before = digest(), html_without_date()
    rules = [
        "report_tables",
        "render_report",
        "plot_trajectories_symptoms",
        "plot_trajectories_alliance",
        "plot_within_between",
        "plot_missing_data",
        "plot_flow_diagram",
    ]
    # only these rules: mtime triggers keep a concurrent code change elsewhere from rerunning other steps
    result = run_snakemake(workdir, config, "--rerun-triggers", "mtime", "--forcerun", *rules)
    assert result.returncode == 0, result.stderr[-4000:]
    assert digest() == before
    assert html_without_date() == html_before
    assert (workdir / "reports" / config["dataset"]["name"] / "report.html").stat().st_size < 3_000_000


@pytest.mark.slow  # reads the shared `make run` (conftest.made_run): test-slow and CI
def test_snakemakes_own_report_works(run):
    workdir, config = run
    out = workdir / "reports" / "snakemake.html"
    command = [
        str(SNAKEMAKE),
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--report",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=workdir)
    assert result.returncode == 0, result.stderr[-4000:]
    text = out.read_text(errors="replace")
    for name in ("trajectories_symptoms.png", "missing_data.png", "flow_diagram.png", "table1.csv", "report.pdf"):
        assert name in text, name
