#!/usr/bin/env python3
"""Opens the tour's dashboard in headless Chromium while a load runs, and checks
through the DevTools protocol that what the page plots moves and matches the
server's own /stats.

    python3 tests/clients/tour_browser.py TOUR_BINARY PORT [--samples N] [--screenshot PATH]

Starts the tour on PORT and its --load client, then Chromium with a debugging
port, navigates to the dashboard, waits for N samples (default 8), reads `window.tour` (the
samples received and the values each chart plotted), fetches /stats and
compares. Every process it starts is stopped by PID. Exit status 0 on success,
1 on a failed check, 77 when Chromium or the websockets module is missing.
"""
import json
import os
import signal
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from devtools import Browser, get_json, missing, wait_for  # noqa: E402


def main():
    why = missing()
    if why:
        print(f"tour browser check: skipped, {why}")
        return 77
    binary, port = sys.argv[1], int(sys.argv[2])
    screenshot = sys.argv[sys.argv.index("--screenshot") + 1] if "--screenshot" in sys.argv else None
    samples = int(sys.argv[sys.argv.index("--samples") + 1]) if "--samples" in sys.argv else 8
    base = f"http://127.0.0.1:{port}"
    procs = []
    try:
        tour = subprocess.Popen([binary, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        procs.append(tour)
        wait_for("the tour to listen", lambda: _up(base), 15)
        load = subprocess.Popen([binary, "--load", "--port", str(port), "--duration", str(samples + 25)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(load)
        with Browser(port + 1) as browser:
            browser.open(base + "/")
            # Enough samples for the load's wave to move the plots.
            wait_for(f"{samples} samples on the page",
                     lambda: (browser.evaluate("window.tour ? window.tour.samples.length : 0") or 0) >= samples,
                     samples + 30)
            page = json.loads(browser.evaluate("JSON.stringify(window.tour)"))
            stats = get_json(base + "/stats")
            check(page, stats)
            if screenshot:
                browser.screenshot(screenshot)
                print(f"tour browser check: screenshot written to {screenshot}")
        return 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def _up(base):
    try:
        with urllib.request.urlopen(base + "/hello", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def check(page, stats):
    samples, plotted = page["samples"], page["plotted"]
    for chart in ("connections", "rps", "latency", "loop"):
        assert chart in plotted and plotted[chart] and plotted[chart][0], f"chart {chart} plotted nothing"
    conns = [p["v"] for p in plotted["connections"][0]]
    rps = [p["v"] for p in plotted["rps"][0]]
    p50 = [p["v"] for p in plotted["latency"][0]]
    p99 = [p["v"] for p in plotted["latency"][1]]
    busy = [p["v"] for p in plotted["loop"][0]]
    # The plots are the samples received, not something the page made up.
    assert [s["rps"] for s in samples[-len(rps):]] == rps, "the throughput plot is not the samples"
    # They move: the load rises and falls, and answers requests.
    assert max(rps) > 100 and len(set(round(v) for v in rps)) > 2, f"req/s did not move: {rps}"
    assert max(conns) >= 300, f"the load holds 300 idle connections; plotted {conns}"
    assert all(b >= a for a, b in zip(p50, p99)), "a p99 below its p50"
    assert all(0 <= v <= 100 for v in busy) and max(busy) > 0, f"loop utilisation {busy}"
    # And they match /stats, read just after, within what a second changes.
    last = samples[-1]
    assert abs(stats["active_connections"] - last["connections"]) <= max(40, 0.15 * last["connections"]), \
        (stats["active_connections"], last["connections"])
    behind = stats["total_requests"] - last["requests"]
    assert 0 <= behind <= 3 * max(rps) + 50, f"/stats has {stats['total_requests']} requests, the page {last['requests']}"
    window = stats["throughput_rps_last_10s"]
    recent = rps[-10:]
    assert window is not None and min(recent) * 0.8 - 50 <= window <= max(recent) * 1.2 + 50, (window, recent)
    print(f"tour browser check: {len(samples)} samples plotted; req/s {min(rps):.0f}..{max(rps):.0f}, "
          f"connections {min(conns):.0f}..{max(conns):.0f}, p99 up to {max(p99):.2f} ms; "
          f"/stats: {stats['total_requests']} requests ({behind} after the page's last sample), "
          f"{stats['active_connections']} connections, {window:.0f} req/s over 10 s")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print(f"tour browser check: FAILED: {e}")
        sys.exit(1)
