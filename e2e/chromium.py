"""A real headless Chromium (Debian's `chromium`) driven over the Chrome DevTools Protocol, for tests that must
see what a user's browser sees (the dashboard). The lightest driver that works here: no WebDriver, no browser
download, only websocket-client (which the kubernetes client already brings).

The browser gets a fresh profile folder, resolves no host names (only 127.0.0.1 URLs are used: the network rule),
uses no proxy, and is stopped by its PID (its whole process group) when the test ends."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-default-browser-check", "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage",
         "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0")


class BrowserError(AssertionError):
    pass


class Chromium:
    """with Chromium() as b: b.goto(url); b.wait_for("js expression"); b.screenshot(path)"""

    def __init__(self, binary: str = "/usr/bin/chromium", width: int = 1440, height: int = 900,
                 start_timeout: float = 60.0) -> None:
        self.binary = binary
        self.size = (width, height)
        self.start_timeout = start_timeout
        self.profile = Path(tempfile.mkdtemp(prefix="minisand-chromium-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self._ws: Any = None
        self._id = 0
        self.log = self.profile.parent / f"{self.profile.name}.log"

    def __enter__(self) -> Chromium:
        self.start()
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        argv = [self.binary, *FLAGS, f"--user-data-dir={self.profile}",
                f"--window-size={self.size[0]},{self.size[1]}", "about:blank"]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.start_timeout
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BrowserError(f"chromium did not start: {self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        port = int(port_file.read_text().splitlines()[0])
        self._ws = self._connect(self._page_target(port))
        self.call("Page.enable")
        self.call("Runtime.enable")

    def _page_target(self, port: int) -> str:
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + self.start_timeout
        while True:
            with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
                targets = json.loads(resp.read())
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"])
            if time.monotonic() > deadline:
                raise BrowserError(f"chromium shows no page target: {targets}")
            time.sleep(0.2)

    @staticmethod
    def _connect(url: str) -> Any:
        import websocket  # websocket-client

        return websocket.create_connection(url, timeout=120, suppress_origin=True, http_proxy_host=None)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One CDP command; events that arrive before its answer are skipped."""
        self._id += 1
        self._ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self._ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise BrowserError(f"{expression[:80]}: {res['exceptionDetails'].get('text')} "
                               f"{res['exceptionDetails'].get('exception', {}).get('description', '')}")
        return res.get("result", {}).get("value")

    def goto(self, url: str) -> None:
        res = self.call("Page.navigate", url=url)
        if res.get("errorText"):
            raise BrowserError(f"navigating to {url}: {res['errorText']}")

    def wait_for(self, expression: str, timeout: float = 120.0, interval: float = 0.5) -> Any:
        """Evaluates expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            with contextlib.suppress(BrowserError):
                last = self.evaluate(expression)
                if last:
                    return last
            if time.monotonic() > deadline:
                raise BrowserError(f"not true after {timeout:.0f}s: {expression} (last value {last!r}); "
                                   f"page: {self.text()[:800]!r}")
            time.sleep(interval)

    def text(self) -> str:
        with contextlib.suppress(BrowserError):
            return str(self.evaluate("document.body ? document.body.innerText : ''") or "")
        return ""

    def screenshot(self, dest: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(base64.b64decode(data))
        return dest

    def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self.call("Browser.close")
            with contextlib.suppress(Exception):
                self._ws.close()
            self._ws = None
        proc = self.proc
        if proc is not None:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            with contextlib.suppress(ProcessLookupError):  # helpers (zygote, renderers) left in its group
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(self.profile, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.log.unlink()
