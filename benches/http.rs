//! The HTTP fast path's pieces, in isolation: parsing request heads (a
//! browser's, wrk's, a 16-deep pipeline) and serialising a response.
//! Whole-server costs are measured side by side with the peers by
//! `bench/compare.sh`, and in instructions by callgrind (docs/benchmarks.md).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use solo::http::__bench::{parse_all, serialize_text};

/// About 200 bytes... and then some: what a browser sends for a page.
const BROWSER: &[u8] = b"GET /articles/2026/solo?ref=home HTTP/1.1\r\n\
Host: example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Connection: keep-alive\r\n\
Upgrade-Insecure-Requests: 1\r\n\r\n";

/// What wrk sends.
const WRK: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

fn parsing(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse request head");
    g.throughput(Throughput::Elements(1));
    g.bench_function("browser", |b| b.iter(|| assert_eq!(parse_all(black_box(BROWSER)), 1)));
    g.bench_function("wrk", |b| b.iter(|| assert_eq!(parse_all(black_box(WRK)), 1)));
    let pipeline = WRK.repeat(16);
    g.throughput(Throughput::Elements(16));
    g.bench_function("wrk pipeline of 16", |b| {
        b.iter(|| assert_eq!(parse_all(black_box(&pipeline)), 16))
    });
    g.finish();
}

fn serialising(c: &mut Criterion) {
    let mut g = c.benchmark_group("serialise response");
    g.throughput(Throughput::Elements(1));
    let mut out = BytesMut::with_capacity(4096);
    let date = b"Tue, 24 Nov 2026 12:00:00 GMT";
    g.bench_function("text 13 bytes", |b| {
        b.iter(|| {
            out.clear();
            serialize_text(&mut out, date, black_box("Hello, World!"));
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, parsing, serialising);
criterion_main!(benches);
