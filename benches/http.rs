//! The HTTP fast path: its pieces in isolation (parsing request heads — a
//! browser's, wrk's, a 16-deep pipeline — and serialising a response), then
//! one whole connection turn in memory (bytes in → parse → route → handler →
//! bytes out, no system call), with heap allocations per request counted by
//! a counting global allocator. Whole-server costs, system calls included,
//! are measured side by side with the peers by `bench/compare.sh`, and in
//! instructions by callgrind (docs/benchmarks.md).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use solo::http::__bench::{parse_all, serialize_text, ConnectionTurn};
use solo::http::{Request, Response, Server};
use solo::Runtime;

/// Counts every allocation and reallocation in the process.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    let date = b"Date: Tue, 24 Nov 2026 12:00:00 GMT\r\n";
    g.bench_function("text 13 bytes", |b| {
        b.iter(|| {
            out.clear();
            serialize_text(&mut out, date, black_box("Hello, World!"));
            black_box(out.len())
        })
    });
    g.finish();
}

/// A browser's request to a route with a parameter.
const BROWSER_USER: &[u8] = b"GET /users/42?tab=posts HTTP/1.1\r\n\
Host: example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Connection: keep-alive\r\n\r\n";

/// A small POST whose body arrives with its head.
const POST_ECHO: &[u8] = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 13\r\n\r\nHello, World!";

fn server() -> Server {
    Server::bind("127.0.0.1:0")
        .expect("bind")
        .get("/", |_req: Request| async { Response::text("Hello, World!") })
        .get("/users/:id", |req: Request| async move {
            let id: u64 = req.param("id").and_then(|id| id.parse().ok()).unwrap_or(0);
            Response::text(if id == 42 { "user 42" } else { "someone else" })
        })
        .post("/echo", |mut req: Request| async move {
            req.body().await.map(Response::bytes)
        })
}

/// One turn per iteration: `input` in, every response out, `responses` of them.
fn bench_turn(c: &mut Criterion, turn: &mut ConnectionTurn, name: &str, input: &[u8], responses: usize) {
    let mut out = Vec::with_capacity(64 * 1024);
    // Warm up the buffers and the handler's slot, check the answer, then
    // count allocations over many turns.
    for _ in 0..100 {
        out.clear();
        turn.turn(input, &mut out).expect("a keep-alive turn");
    }
    assert_eq!(
        count_responses(&out),
        responses,
        "{name}: {}",
        String::from_utf8_lossy(&out)
    );
    let turns = 10_000;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..turns {
        out.clear();
        turn.turn(input, &mut out).expect("a keep-alive turn");
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!(
        "connection turn/{name}: {:.3} heap allocations per request (over {} requests)",
        allocations as f64 / (turns * responses) as f64,
        turns * responses
    );
    let mut g = c.benchmark_group("connection turn");
    g.throughput(Throughput::Elements(responses as u64));
    g.bench_function(name, |b| {
        b.iter(|| {
            out.clear();
            turn.turn(black_box(input), &mut out).expect("a keep-alive turn");
            black_box(out.len())
        })
    });
    g.finish();
}

fn count_responses(out: &[u8]) -> usize {
    out.windows(17).filter(|w| w == b"HTTP/1.1 200 OK\r\n").count()
}

fn connection_turn(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut turn = ConnectionTurn::new(server()).expect("connection");
        bench_turn(c, &mut turn, "wrk GET / (plaintext)", WRK, 1);
        bench_turn(c, &mut turn, "wrk pipeline of 16", &WRK.repeat(16), 16);
        bench_turn(c, &mut turn, "browser GET /users/:id", BROWSER_USER, 1);
        bench_turn(c, &mut turn, "POST /echo, 13-byte body", POST_ECHO, 1);
    });
}

criterion_group!(benches, parsing, serialising, connection_turn);
criterion_main!(benches);
