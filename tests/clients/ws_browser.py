#!/usr/bin/env python3
"""Opens examples/chat.rs's page in headless Chromium: the browser's own
`new WebSocket(...)` connects, receives a message another client (Python's
`websockets`) sends to the room, sends one the other client receives, and
closes cleanly with 1000.

    python3 tests/clients/ws_browser.py CHAT_BINARY PORT

Exit status 0 on success, 1 on a failed check, 77 when Chromium or the
websockets module is missing.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from devtools import Browser, missing, wait_for  # noqa: E402


def main():
    why = missing()
    if why:
        print(f"websocket browser check: skipped, {why}")
        return 77
    from websockets.sync.client import connect
    binary, port = sys.argv[1], int(sys.argv[2])
    chat = subprocess.Popen([binary, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("the chat to listen", lambda: _up(port), 15)
        with Browser(port + 1) as browser, connect(f"ws://127.0.0.1:{port}/ws?room=web&name=py") as py:
            browser.open(f"http://127.0.0.1:{port}/?room=web&name=page")
            wait_for("the page's WebSocket to open", lambda: browser.evaluate("window.chat && window.chat.open"), 15)
            wait_for("the page's join", lambda: _line(py, "* page joined web"), 10)
            py.send("hello page")
            wait_for("the page to receive the message",
                     lambda: "py: hello page" in (browser.evaluate("window.chat.received") or []), 10)
            browser.evaluate("window.chat.socket.send('hello from chromium')")
            wait_for("the message from the page", lambda: _line(py, "page: hello from chromium"), 10)
            browser.evaluate("window.chat.socket.close(1000, 'bye')")
            closed = wait_for("the page's close", lambda: browser.evaluate("window.chat.closed"), 10)
            assert closed == {"code": 1000, "clean": True}, closed
            wait_for("the page's leave", lambda: _line(py, "* page left"), 10)
        print("websocket browser check: Chromium connected, received, sent and closed cleanly (1000)")
        return 0
    finally:
        chat.terminate()
        chat.wait(timeout=10)


def _line(ws, wanted):
    deadline = time.time() + 0.5
    while time.time() < deadline:
        try:
            if ws.recv(timeout=0.2) == wanted:
                return True
        except TimeoutError:
            return False
    return False


def _up(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print(f"websocket browser check: FAILED: {e}")
        sys.exit(1)
