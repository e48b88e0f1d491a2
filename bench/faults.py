#!/usr/bin/env python3
"""Hostile inputs and faults against any HTTP/1.1 server, and what it did.

    python3 bench/faults.py PORT [NAME]

For each case: the status line the server sent (or none), whether it closed
the connection, and how long it took. It asserts nothing; it measures, so the
same cases can be run against solo (examples/hello, default Config) and nginx
(bench/faults-nginx.conf: one worker, its header timeout set to solo's 10 s)
and compared in docs/reliability.md. Loopback only; every case is bounded in
time (at most 15 s).
"""

import socket
import struct
import sys
import time

HOST = "127.0.0.1"


def connect(port):
    s = socket.create_connection((HOST, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_all(s, limit=15.0):
    """Reads until close or `limit` s; (bytes, closed, elapsed)."""
    start = time.time()
    data = b""
    s.settimeout(0.2)
    while time.time() - start < limit:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            if data and b"\r\n\r\n" in data and not closed_after(data):
                # A complete answer that keeps the connection: stop waiting.
                break
            continue
        except ConnectionResetError:
            return data, "reset", time.time() - start
        if not chunk:
            return data, "closed", time.time() - start
        data += chunk
    return data, "open", time.time() - start


def closed_after(data):
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    return b"connection: close" in head


def status(data):
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    return line[9:12] if line.startswith("HTTP/1.") else ("(none)" if not data else "(garbage)")


def send_case(port, raw, limit=15.0):
    s = connect(port)
    s.sendall(raw)
    data, how, took = read_all(s, limit)
    s.close()
    # Two responses to one request would be a smuggling success.
    n = data.count(b"HTTP/1.1 ") + data.count(b"HTTP/1.0 ")
    return f"{status(data)}{' ×%d' % n if n > 1 else ''}", how, took


def slowloris(port):
    s = connect(port)
    start = time.time()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    while time.time() - start < 15:
        try:
            s.sendall(b"X-a: b\r\n")
        except OSError:
            break
        time.sleep(0.5)
        s.settimeout(0.01)
        try:
            chunk = s.recv(65536)
            if chunk or chunk == b"":
                data = chunk
                s.settimeout(2)
                try:
                    while True:
                        more = s.recv(65536)
                        if not more:
                            break
                        data += more
                except OSError:
                    pass
                s.close()
                return status(data), "closed", time.time() - start
        except socket.timeout:
            pass
        except OSError:
            return "(none)", "reset", time.time() - start
    s.close()
    return "(none)", "open", time.time() - start


def silent(port):
    s = connect(port)
    data, how, took = read_all(s, 15)
    s.close()
    return status(data), how, took


def reset_then_serve(port):
    s = connect(port)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Half: ")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    return send_case(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")


CASES = [
    ("valid GET", lambda p: send_case(p, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")),
    ("Content-Length and Transfer-Encoding both", lambda p: send_case(
        p, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")),
    ("two different Content-Length", lambda p: send_case(
        p, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")),
    ("Content-Length: 1, 2", lambda p: send_case(p, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\nab")),
    ("Content-Length: +5", lambda p: send_case(p, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello")),
    ("space before colon", lambda p: send_case(p, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello")),
    ("obs-fold continuation line", lambda p: send_case(p, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n")),
    ("Transfer-Encoding: xchunked", lambda p: send_case(p, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n")),
    ("Transfer-Encoding: chunked, identity", lambda p: send_case(
        p, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n")),
    ("chunk size overflowing 64 bits", lambda p: send_case(
        p, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nx\r\n0\r\n\r\n")),
    ("chunk size with a bare LF", lambda p: send_case(
        p, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n")),
    ("two Host fields", lambda p: send_case(p, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")),
    ("no Host (HTTP/1.1)", lambda p: send_case(p, b"GET / HTTP/1.1\r\n\r\n")),
    ("bare CR in a field value", lambda p: send_case(p, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n")),
    ("NUL in the target", lambda p: send_case(p, b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n")),
    ("HTTP/2.0 request line", lambda p: send_case(p, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")),
    ("a TLS ClientHello", lambda p: send_case(p, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40)),
    ("64 KiB header field", lambda p: send_case(p, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n")),
    ("silent connection", silent),
    ("slowloris (a field every 0.5 s)", slowloris),
    ("reset mid-head, then a new request", reset_then_serve),
]


def main():
    port = int(sys.argv[1])
    name = sys.argv[2] if len(sys.argv) > 2 else f"port {port}"
    print(f"| case | {name}: status | connection | after |")
    print("|---|---|---|---|")
    for label, case in CASES:
        try:
            st, how, took = case(port)
        except OSError as e:
            st, how, took = f"error {e}", "-", 0.0
        print(f"| {label} | {st} | {how} | {took:.2f} s |")


if __name__ == "__main__":
    main()
