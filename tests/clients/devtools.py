"""Headless Chromium driven through its DevTools protocol, for the browser
checks (tour_browser.py, ws_browser.py): start it, open a page, evaluate
JavaScript, take a screenshot. Every process it starts is ended by PID.
"""
import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
try:
    from websockets.sync.client import connect
except ImportError:
    connect = None


def missing():
    """Why a browser check cannot run here, or None."""
    if CHROMIUM is None:
        return "Chromium is not installed"
    if connect is None:
        return "the websockets module is not installed (pip install websockets)"
    return None


def get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read().decode())


def wait_for(what, check, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


class Browser:
    """A headless Chromium with one page, as a context manager."""

    def __init__(self, debug_port):
        self.port = debug_port
        self.profile = tempfile.mkdtemp(prefix="solo-chromium-")
        self.proc = None
        self.ws = None
        self.next_id = 0

    def __enter__(self):
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--remote-debugging-port={self.port}", "--remote-allow-origins=*",
             f"--user-data-dir={self.profile}", "--window-size=1400,1100", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pages = wait_for("Chromium's DevTools endpoint",
                         lambda: [t for t in self._targets() if t.get("type") == "page"], 20)
        self.ws = connect(pages[0]["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024, open_timeout=10)
        self.call("Page.enable")
        return self

    def __exit__(self, *exc):
        if self.ws is not None:
            self.ws.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _targets(self):
        try:
            return get_json(f"http://127.0.0.1:{self.port}/json/list", timeout=1)
        except OSError:
            return []

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def open(self, url):
        self.call("Page.navigate", url=url)

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path):
        shot = self.call("Page.captureScreenshot", format="png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
