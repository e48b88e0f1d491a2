"""Python's http.client against a running solo server (examples/hello.rs).

Usage: python3 tests/clients/http_client.py PORT
Exits non-zero with a message on the first wrong answer.
"""
import http.client
import socket
import sys

port = int(sys.argv[1])


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)
    print(f"ok: {what}")


conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
for i in range(100):
    conn.request("GET", "/")
    r = conn.getresponse()
    body = r.read()
    if r.status != 200 or body != b"Hello, World!":
        check(False, f"keep-alive request {i}: {r.status} {body!r}")
check(True, "100 keep-alive GETs on one connection")

conn.request("HEAD", "/")
r = conn.getresponse()
check(r.status == 200 and r.getheader("Content-Length") == "13" and r.read() == b"", "HEAD")

payload = bytes(range(256)) * 400
conn.request("POST", "/echo", body=payload, headers={"Content-Type": "application/octet-stream"})
r = conn.getresponse()
check(r.status == 200 and r.read() == payload, "POST /echo of 100 KB with Content-Length")


def chunks():
    for i in range(50):
        yield f"chunk {i};".encode()


conn.request("POST", "/echo", body=chunks(), encode_chunked=True)
r = conn.getresponse()
check(r.read() == b"".join(chunks()), "POST /echo chunked")

conn.request("GET", "/missing")
r = conn.getresponse()
r.read()
check(r.status == 404, "404 for an unknown path")

conn.request("DELETE", "/")
r = conn.getresponse()
r.read()
# OPTIONS is answered for every routed path, so Allow lists it.
check(r.status == 405 and r.getheader("Allow") == "GET, HEAD, OPTIONS", "405 with Allow")

conn.request("OPTIONS", "*")
r = conn.getresponse()
r.read()
check(r.status == 204 and r.getheader("Allow") == "GET, POST, HEAD, OPTIONS", "OPTIONS * with Allow")

s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
reply = b""
while True:
    data = s.recv(4096)
    if not data:
        break
    reply += data
check(reply.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in reply, "400 and close for CL + TE")

conn.request("GET", "/")
r = conn.getresponse()
check(r.status == 200 and r.read() == b"Hello, World!", "still serving after a bad request")
print("python http.client: all checks passed")
