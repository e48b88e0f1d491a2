#!/usr/bin/env python3
"""Scrapes a running examples/hello's /metrics and parses it with the official
Prometheus client library's parser, so the exposition format is checked by a
parser nobody here wrote.

    python3 tests/clients/prometheus_check.py PORT

Sends a few requests first, then checks: every family parses with its type;
the request counter moved by at least what was sent; the latency histogram's
buckets are cumulative and end at its count; the runtime figures are there.
Exit status 0 on success, 1 on a failed check, 77 when prometheus_client is
not installed.
"""
import http.client
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("prometheus check: skipped, prometheus_client is not installed (pip install prometheus_client)")
    sys.exit(77)


def scrape(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/metrics")
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    assert r.status == 200, r.status
    assert r.getheader("content-type").startswith("text/plain; version=0.0.4"), r.getheader("content-type")
    return {f.name: f for f in text_string_to_metric_families(body)}


def value(families, name, labels=None):
    for s in families[name].samples:
        if labels is None or all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError((name, labels))


def main():
    port = int(sys.argv[1])
    before = scrape(port)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(50):
        c.request("GET", "/")
        assert c.getresponse().read() == b"Hello, World!"
    c.close()
    after = scrape(port)
    # The parser strips _total from counter family names.
    expect = {
        "solo_http_requests": "counter",
        "solo_http_responses": "counter",
        "solo_http_connections_active": "gauge",
        "solo_http_request_duration_seconds": "histogram",
        "process_cpu_seconds": "counter",
        "solo_runtime_busy_seconds": "counter",
        "solo_runtime_utilisation_ratio": "gauge",
        "solo_runtime_tasks_alive": "gauge",
    }
    for name, kind in expect.items():
        assert name in after, f"{name} missing; have {sorted(after)}"
        assert after[name].type == kind, f"{name} is {after[name].type}, not {kind}"
    moved = value(after, "solo_http_requests") - value(before, "solo_http_requests")
    assert moved >= 51, f"requests_total moved by {moved} for 51 requests"
    ok = value(after, "solo_http_responses", {"class": "2xx"})
    assert ok >= 50, ok
    hist = after["solo_http_request_duration_seconds"]
    buckets = [(s.labels["le"], s.value) for s in hist.samples if s.name.endswith("_bucket")]
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), f"buckets not cumulative: {buckets}"
    assert buckets[-1][0] == "+Inf"
    count = [s.value for s in hist.samples if s.name.endswith("_count")][0]
    assert buckets[-1][1] == count, (buckets[-1], count)
    assert count >= 50, count
    print(f"prometheus check: {len(after)} families parsed by prometheus_client; "
          f"{int(moved)} requests counted, histogram of {int(count)} with {len(buckets)} buckets")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print(f"prometheus check: FAILED: {e}")
        sys.exit(1)
