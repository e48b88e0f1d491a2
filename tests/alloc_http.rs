//! The plaintext fast path allocates nothing once warm: a counting global
//! allocator counts allocations made on the server's thread only, across
//! 10,000 keep-alive requests (and a pipelined burst) after a warm-up. Its own
//! test binary: the allocator is process-wide.
#![cfg(feature = "http-server")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;

use solo::http::{Request, Response, Server};

struct Counting;

static SERVER_ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static ON_SERVER: Cell<bool> = const { Cell::new(false) };
    /// This thread's own count: the server thread of the socket test runs
    /// on after that test (its date timer still ticks), and its allocations
    /// must not land in the in-memory test's count.
    static THREAD_ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    if ON_SERVER.try_with(|s| s.get()).unwrap_or(false) {
        SERVER_ALLOCS.fetch_add(1, Ordering::Relaxed);
        let _ = THREAD_ALLOCS.try_with(|n| n.set(n.get() + 1));
    }
}

fn thread_allocs() -> u64 {
    THREAD_ALLOCS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The two tests share `SERVER_ALLOCS`: one measures while the other may be
/// setting up, so they take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// Sends `n` requests (`depth` at a time) and reads every response whole.
fn exchange(c: &mut TcpStream, n: usize, depth: usize, response_len: usize) {
    let batch = REQUEST.repeat(depth);
    let mut buf = vec![0u8; response_len * depth];
    for _ in 0..n / depth {
        c.write_all(&batch).unwrap();
        c.read_exact(&mut buf).unwrap();
        assert!(buf.starts_with(b"HTTP/1.1 200 OK\r\n"));
    }
}

#[test]
fn warm_plaintext_requests_allocate_nothing() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        ON_SERVER.with(|s| s.set(true));
        let server = Server::bind("127.0.0.1:0")
            .unwrap()
            .get("/", |_req: Request| async { Response::text("Hello, World!") });
        tx.send(server.local_addr().unwrap()).unwrap();
        server.run().unwrap();
    });
    let addr = rx.recv().unwrap();
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    // Learn the response's exact length (it is constant: the Date header has
    // a fixed width).
    c.write_all(REQUEST).unwrap();
    let mut first = vec![0u8; 4096];
    let n = c.read(&mut first).unwrap();
    let response_len = n;
    assert!(first[..n].ends_with(b"Hello, World!"));
    // Warm up: pools, slabs, slots and queues reach their working size.
    exchange(&mut c, 2_000, 1, response_len);
    exchange(&mut c, 2_000, 16, response_len);
    let before = SERVER_ALLOCS.load(Ordering::Relaxed);
    exchange(&mut c, 10_000, 1, response_len);
    exchange(&mut c, 16_000, 16, response_len);
    let allocations = SERVER_ALLOCS.load(Ordering::Relaxed) - before;
    // Nothing per request. A collection of the loop's that grows once more
    // during the measurement (a debug build runs long enough to see a few
    // more date-timer ticks) is not a per-request cost; one per request
    // would count 26,000 here.
    assert!(
        allocations <= 4,
        "{allocations} heap allocations on the server thread over 26,000 warm requests"
    );
}

/// The bench's in-memory connection turn is the server's own path: the same
/// bytes out as over a socket, and nothing allocated once warm — for single
/// requests, a pipeline and a route with a parameter — but the one copy of a
/// small POST's body that came with its head (the body is a `Bytes`, which
/// the read buffer's non-atomic chunk cannot lend: `src/http/read_buf.rs`).
#[test]
fn in_memory_connection_turn_answers_and_allocates_nothing() {
    use solo::http::__bench::ConnectionTurn;
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    ON_SERVER.with(|s| s.set(true));
    let runtime = solo::Runtime::new().unwrap();
    runtime.block_on(async {
        let server = Server::bind("127.0.0.1:0")
            .unwrap()
            .get("/", |_req: Request| async { Response::text("Hello, World!") })
            .post("/echo", |mut req: Request| async move {
                req.body().await.map(Response::bytes)
            })
            .get("/users/:id", |req: Request| async move {
                Response::text(if req.param("id") == Some("42") { "42" } else { "?" })
            });
        let mut turn = ConnectionTurn::new(server).unwrap();
        let user = b"GET /users/42 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
        let post = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
        let pipeline = REQUEST.repeat(16);
        let mut out = Vec::with_capacity(64 * 1024);
        turn.turn(REQUEST, &mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("\r\nContent-Length: 13\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nHello, World!"), "{text}");
        out.clear();
        turn.turn(post, &mut out).unwrap();
        assert!(out.ends_with(b"\r\n\r\nhello"), "{}", String::from_utf8_lossy(&out));
        out.clear();
        turn.turn(user, &mut out).unwrap();
        assert!(out.ends_with(b"\r\n\r\n42"), "{}", String::from_utf8_lossy(&out));
        for _ in 0..100 {
            for input in [REQUEST, &pipeline[..], &post[..], &user[..]] {
                out.clear();
                turn.turn(input, &mut out).unwrap();
            }
        }
        let before = thread_allocs();
        for _ in 0..1_000 {
            for input in [REQUEST, &pipeline[..], &user[..]] {
                out.clear();
                turn.turn(input, &mut out).unwrap();
            }
        }
        assert_eq!(out.windows(17).filter(|w| w == b"HTTP/1.1 200 OK\r\n").count(), 1);
        let allocations = thread_allocs() - before;
        assert_eq!(allocations, 0, "heap allocations over 18,000 in-memory requests");
        let before = thread_allocs();
        for _ in 0..1_000 {
            out.clear();
            turn.turn(post, &mut out).unwrap();
        }
        assert!(out.ends_with(b"\r\n\r\nhello"), "{}", String::from_utf8_lossy(&out));
        let allocations = thread_allocs() - before;
        assert_eq!(
            allocations, 1_000,
            "one allocation a POST (its body's copy), over 1,000"
        );
        // A malformed request gets its error and the turn says it would close.
        out.clear();
        assert!(turn
            .turn(b"GET / HTTP/1.1\r\nHost: a\r\nbad header\r\n\r\n", &mut out)
            .is_err());
        assert!(out.starts_with(b"HTTP/1.1 400 "), "{}", String::from_utf8_lossy(&out));
    });
}
