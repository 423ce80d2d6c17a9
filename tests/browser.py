"""Headless Chromium driven through chromedriver's W3C WebDriver protocol, with the standard
library only (no pip package that downloads a browser): Debian's ``chromium`` and
``chromium-driver`` are all it needs."""
from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
# Root needs --no-sandbox; without the background-networking flags Chromium's own connections
# are refused on a closed network and slow every page.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """One headless Chromium session (a fresh profile); use as a context manager."""

    def __init__(self, timeout: float = 60):
        self.timeout = timeout
        self.port = _free_port()
        self.profile = tempfile.TemporaryDirectory(prefix="qmlr-chromium-")
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:  # chromedriver answers /status once it listens
            try:
                if self._call("GET", "/status")["ready"]:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromedriver did not start on port {self.port}")
            time.sleep(0.2)
        options = {"binary": CHROMIUM, "args": [*FLAGS, f"--user-data-dir={self.profile.name}"]}
        capabilities = {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}
        try:
            self.session = self._call("POST", "/session", {"capabilities": capabilities})["sessionId"]
        except BaseException:  # no session (a browser that does not start): no driver left running
            self.close()
            raise

    def _call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read())["value"]

    def _session(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, path: str | Path) -> None:
        """Load a local file and wait until it has loaded (WebDriver's normal page-load strategy)."""
        self._session("POST", "/url", {"url": Path(path).resolve().as_uri()})

    def run(self, script: str, *args):
        """The value of ``script`` (a function body that ``return``s) in the page."""
        return self._session("POST", "/execute/sync", {"script": script, "args": list(args)})

    def images(self) -> list[dict]:
        """Every ``<img>`` of the page: its source (first 80 characters), whether it finished
        loading and its natural width (0 for an image that did not decode)."""
        return self.run("return Array.from(document.images).map(i => "
                        "({src: i.src.slice(0, 80), complete: i.complete, width: i.naturalWidth}));")

    def links(self) -> list[str]:
        """The absolute target of every ``<a href>`` of the page."""
        return self.run("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href);")

    def screenshot(self, path: str | Path) -> Path:
        """The whole page (beyond the window) as a PNG at ``path``."""
        shot = self._session("POST", "/goog/cdp/execute",
                             {"cmd": "Page.captureScreenshot", "params": {"format": "png", "captureBeyondViewport": True}})
        Path(path).write_bytes(base64.b64decode(shot["data"]))
        return Path(path)

    def close(self) -> None:
        if getattr(self, "session", None):
            try:
                self._session("DELETE", "")
            except OSError:
                pass
        self.driver.terminate()
        try:
            self.driver.wait(10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
        self.profile.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
