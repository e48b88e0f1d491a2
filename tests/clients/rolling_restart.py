#!/usr/bin/env python3
"""Two solo instances behind HAProxy, steady load through the balancer, then a
rolling restart: SIGTERM one instance, start it again once it has exited, then
the other. Passes only if the client saw zero failed requests, HAProxy's own
log shows no 5xx (and it may not retry: `retries 0`), every instance exited cleanly,
and both served traffic after their restart.

    python3 tests/clients/rolling_restart.py HELLO_BINARY [BASE_PORT] [--haproxy | --nginx]

HELLO_BINARY is examples/hello built by cargo (it has /ready and
--drain-delay). Loopback only; every process it starts is stopped by PID.
With --nginx, nginx is the balancer instead (no active health checks: it
retries a refused or reset upstream on the other one; its access log must
show only 200s). Exit status 0 on success, 1 on a failed check, 77 when the
balancer is not installed.
"""

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HAPROXY_CFG = """\
global
    log stdout format raw local0 info
    stats socket {sock} mode 600 level user

defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    # No retry-on, no redispatch: a request that fails reaches the client,
    # so the test sees it.
    retries 0

frontend fe
    bind 127.0.0.1:{front}
    default_backend solo

backend solo
    balance roundrobin
    option httpchk GET /ready
    http-check expect status 200
    # 100 ms checks, out after one failure, back after two passes.
    default-server inter 100ms fall 1 rise 2
    server a 127.0.0.1:{a} check
    server b 127.0.0.1:{b} check
"""

DRAIN_MS = 600  # > check interval × fall, with room for a slow VM
LOAD_THREADS = 8


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                c.close()
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Instance:
    def __init__(self, binary, port, name, logdir):
        self.binary, self.port, self.name, self.logdir = binary, port, name, logdir
        self.proc = None
        self.generation = 0

    def start(self):
        self.generation += 1
        log = open(os.path.join(self.logdir, f"{self.name}-{self.generation}.log"), "w")
        self.proc = subprocess.Popen(
            [self.binary, str(self.port), "--drain-delay", str(DRAIN_MS)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        if not wait_port(self.port):
            raise SystemExit(f"{self.name} did not start on port {self.port}")

    def stop(self):
        """SIGTERM, then wait: a graceful drain must end by itself."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=DRAIN_MS / 1000 + 15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return f"{self.name} did not exit after SIGTERM"
        return None if code == 0 else f"{self.name} exited with {code}"


class Load:
    """Keep-alive clients through the balancer, counting every outcome."""

    def __init__(self, port):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures = []

    def run(self):
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/")
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200 or body != b"Hello, World!":
                    with self.lock:
                        self.failures.append(f"status {resp.status} body {body[:60]!r}")
                else:
                    with self.lock:
                        self.ok += 1
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.failures.append(f"{type(e).__name__}: {e}")
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(0.001)
        if conn is not None:
            conn.close()


def show_stat(path):
    """HAProxy's own counters ("show stat" on its stats socket), by proxy/server."""
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    s.sendall(b"show stat\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    rows = data.decode().splitlines()
    header = rows[0].lstrip("# ").split(",")
    out = {}
    for row in rows[1:]:
        if row:
            fields = dict(zip(header, row.split(",")))
            out[fields["pxname"] + "/" + fields["svname"]] = fields
    return out


def count(stats, key, field):
    v = stats.get(key, {}).get(field, "")
    return int(v) if v.isdigit() else 0


NGINX_CFG = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format balanced '$status $upstream_addr $upstream_status';
    access_log {dir}/access.log balanced;
    upstream solo {{
        server 127.0.0.1:{a} max_fails=1 fail_timeout=2s;
        server 127.0.0.1:{b} max_fails=1 fail_timeout=2s;
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{front};
        location / {{
            proxy_pass http://solo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_503;
            proxy_next_upstream_tries 2;
        }}
    }}
}}
"""


def find_binary(name):
    return shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)


def stop_process(proc, sig):
    """Asks `proc` to stop with `sig`, waits, kills it if it will not."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Haproxy:
    name = "HAProxy"
    # Back in rotation after rise 2 × 100 ms; a second is plenty.
    settle = 1.0

    def __init__(self, logdir, front, a, b):
        self.binary = find_binary("haproxy")
        self.logdir = logdir
        self.sock = os.path.join(logdir, "haproxy.sock")
        self.log = os.path.join(logdir, "haproxy.log")
        self.cfg = os.path.join(logdir, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write(HAPROXY_CFG.format(front=front, a=a, b=b, sock=self.sock))
        self.proc = None
        self.stats = {}

    def start(self):
        self.proc = subprocess.Popen([self.binary, "-db", "-f", self.cfg],
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT)

    def stop(self):
        self.stats = show_stat(self.sock)
        stop_process(self.proc, signal.SIGUSR1)  # soft stop: finish, flush logs

    def verdict(self, load):
        """(summary, problems) from HAProxy's counters and log."""
        with open(self.log) as f:
            log = f.read()
        # The counters are the authority on what it saw; its log (which it
        # may thin under load) is scanned for any 5xx line as well.
        stats, fe, be = self.stats, "fe/FRONTEND", "solo/BACKEND"
        fe_5xx, be_5xx = count(stats, fe, "hrsp_5xx"), count(stats, be, "hrsp_5xx")
        errors = {f: count(stats, be, f) for f in ("econ", "eresp", "wretr", "wredis")}
        served_by = {n: count(stats, "solo/" + n, "hrsp_2xx") for n in ("a", "b")}
        total = count(stats, fe, "req_tot")
        logged_5xx = [l for l in log.splitlines() if re.search(r" fe \S+/\S+ \S+ 5\d\d ", l)]
        problems = []
        if fe_5xx or be_5xx or logged_5xx:
            problems.append(f"HAProxy answered 5xx: frontend {fe_5xx}, backend {be_5xx}, logged {logged_5xx[:3]}")
        if any(errors.values()):
            problems.append(f"HAProxy saw backend errors: {errors}")
        if total < load.ok:
            problems.append(f"HAProxy counted {total} requests for {load.ok} answered")
        if "Server solo/a is DOWN" not in log or "Server solo/b is DOWN" not in log:
            problems.append("HAProxy never saw an instance leave rotation (readiness did not turn 503?)")
        summary = (f"HAProxy: {total} requests ({served_by['a']} to a, {served_by['b']} to b), "
                   f"{fe_5xx} 5xx, backend errors {errors}")
        return summary, problems


class Nginx:
    name = "nginx"
    # nginx keeps a failed upstream out for fail_timeout (2 s) even after it
    # is back: restarting the other one sooner leaves no live upstream (502).
    settle = 3.0

    def __init__(self, logdir, front, a, b):
        self.binary = find_binary("nginx")
        self.logdir = logdir
        self.cfg = os.path.join(logdir, "nginx.conf")
        with open(self.cfg, "w") as f:
            f.write(NGINX_CFG.format(front=front, a=a, b=b, dir=logdir))
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([self.binary, "-p", self.logdir, "-c", self.cfg],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def stop(self):
        stop_process(self.proc, signal.SIGQUIT)  # graceful: finish, flush logs

    def verdict(self, load):
        """(summary, problems) from nginx's access log: the status it sent, and
        the upstream attempts behind it (a retry shows as "502, 200")."""
        with open(os.path.join(self.logdir, "access.log")) as f:
            lines = f.read().splitlines()
        statuses = [l.split(" ", 1)[0] for l in lines]
        bad = [l for l in lines if not l.startswith("200 ")]
        retried = [l for l in lines if "," in l]
        problems = []
        if bad:
            problems.append(f"nginx answered {len(bad)} non-200: {bad[:3]}")
        if len(statuses) < load.ok:
            problems.append(f"nginx logged {len(statuses)} requests for {load.ok} answered")
        summary = (f"nginx: {len(statuses)} requests logged, {len(bad)} not 200, "
                   f"{len(retried)} retried on the other instance (first: {retried[:2]})")
        return summary, problems


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    balancer_kind = "nginx" if "--nginx" in sys.argv else "haproxy"  # --haproxy is the default
    if not args:
        print(__doc__)
        return 2
    binary = os.path.abspath(args[0])
    base = int(args[1]) if len(args) > 1 else 18300
    front, port_a, port_b = base, base + 1, base + 2
    logdir = tempfile.mkdtemp(prefix="solo-rolling-")
    balancer = (Nginx if balancer_kind == "nginx" else Haproxy)(logdir, front, port_a, port_b)
    if balancer.binary is None:
        print(f"rolling restart: skipped, {balancer_kind} is not installed")
        return 77
    a = Instance(binary, port_a, "a", logdir)
    b = Instance(binary, port_b, "b", logdir)
    problems = []
    started = False
    threads = []
    marks = []
    load = Load(front)
    try:
        a.start()
        b.start()
        balancer.start()
        started = True
        if not wait_port(front):
            raise SystemExit(f"{balancer.name} did not start")
        time.sleep(0.5)  # both servers pass their first checks
        threads = [threading.Thread(target=load.run) for _ in range(LOAD_THREADS)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        for inst in (a, b):
            marks.append(("before restart of " + inst.name, load.ok))
            err = inst.stop()
            if err:
                problems.append(err)
            inst.start()
            time.sleep(balancer.settle)  # back in rotation and serving
        time.sleep(1.0)
    finally:
        load.stop.set()
        for t in threads:
            t.join(timeout=10)
        if started:
            balancer.stop()
        for inst in (a, b):
            if inst.proc and inst.proc.poll() is None:
                err = inst.stop()
                if err:
                    problems.append(err + " (at the end)")

    summary, balancer_problems = balancer.verdict(load)
    problems += balancer_problems
    print(f"rolling restart behind {balancer.name}: {load.ok} requests ok, {len(load.failures)} failed; "
          f"{summary}; load at each restart {marks}")
    if load.failures:
        problems.append(f"{len(load.failures)} failed requests, first: {load.failures[:3]}")
    if load.ok < 500:
        problems.append(f"only {load.ok} requests: the load did not run")
    # Each instance served after its restart: its newest log counts requests.
    for inst in (a, b):
        with open(os.path.join(logdir, f"{inst.name}-{inst.generation}.log")) as f:
            m = re.search(r"(\d+) requests", f.read())
        if not (m and int(m.group(1)) > 0):
            problems.append(f"instance {inst.name} served nothing after its restart")
    if problems:
        print("rolling restart: FAILED")
        for p in problems:
            print("  -", p)
        print("logs in", logdir)
        return 1
    shutil.rmtree(logdir, ignore_errors=True)
    print("rolling restart: zero failed requests, no 5xx")
    return 0


if __name__ == "__main__":
    sys.exit(main())
