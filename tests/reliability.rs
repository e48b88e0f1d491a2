//! Faults, hostile clients and overload over real sockets: resets at every
//! stage of a request, clients that die, never read or never send, handlers
//! that hang or spawn 10,000 tasks, memory under a 1 GiB body and 100,000
//! unread pipelined requests, 200,000 connect-request-close cycles, and
//! shedding past every limit. After each fault the server must hold no
//! connection, no descriptor and no handler it should not.
//!
//! Its own test binary, and one test at a time (`serial()`), because it
//! counts the process's descriptors and resident memory.
#![cfg(feature = "http-server")]
#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use solo::http::{process_usage, AtLimit, Config, Request, Response, Server};
use solo::sync::Semaphore;
use solo::time::sleep;

mod common;
use common::{get, reset, start_with, Client, Running};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss() -> u64 {
    process_usage().0.unwrap()
}

/// Anonymous resident memory (heap, stacks): where a leak shows. The whole
/// resident set also counts the binary's and libc's pages, which grow as
/// code runs for the first time (an assertion's path, say) and leak nothing.
fn rss_anon() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// What the handlers report: how many started, finished, and were dropped
/// (a handler's future dropped before or after it finished).
#[derive(Default)]
struct Probe {
    started: AtomicUsize,
    finished: AtomicUsize,
    dropped: AtomicUsize,
}

/// Counts the drop of the handler future that owns it.
struct Guard(Arc<Probe>);

impl Guard {
    fn new(probe: &Arc<Probe>) -> Guard {
        probe.started.fetch_add(1, Ordering::SeqCst);
        Guard(probe.clone())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

fn app(config: Config, probe: Arc<Probe>) -> Server {
    let server = Server::bind("127.0.0.1:0").unwrap().config(config);
    let stats = server.stats_handle();
    let (p1, p2, p3) = (probe.clone(), probe.clone(), probe);
    let guarded = Rc::new(Semaphore::new(10));
    server
        .get("/", |_req: Request| async { Response::text("ok") })
        // Connections open now, this one included.
        .get("/active", move |_req: Request| {
            let n = stats.snapshot().active;
            async move { Response::text(n.to_string()) }
        })
        .get("/hang/:ms", move |req: Request| {
            let guard = Guard::new(&p1);
            async move {
                let ms: u64 = req.param("ms").unwrap().parse().unwrap();
                sleep(Duration::from_millis(ms)).await;
                guard.0.finished.fetch_add(1, Ordering::SeqCst);
                Response::text("late")
            }
        })
        .get("/never", move |_req: Request| {
            let _guard = Guard::new(&p2);
            async move {
                std::future::pending::<()>().await;
                Response::text("unreachable")
            }
        })
        // Reads its body with flow control: a chunk at a time, counted.
        .post("/sink", move |mut req: Request| {
            let _guard = Guard::new(&p3);
            async move {
                let mut n = 0u64;
                while let Some(chunk) = req.body_chunk().await {
                    n += chunk?.len() as u64;
                }
                Ok::<_, std::io::Error>(Response::text(n.to_string()))
            }
        })
        .get("/big/:n", |req: Request| async move {
            let n: usize = req.param("n").unwrap().parse().unwrap();
            Response::bytes(vec![b'x'; n])
        })
        .get("/spawn/:n", |req: Request| async move {
            let n: usize = req.param("n").unwrap().parse().unwrap();
            let tasks: Vec<_> = (0..n)
                .map(|i| {
                    solo::spawn(async move {
                        sleep(Duration::from_millis(1 + (i % 5) as u64)).await;
                        1usize
                    })
                })
                .collect();
            let mut done = 0;
            for t in tasks {
                done += t.await.unwrap();
            }
            Response::text(done.to_string())
        })
        .get("/guarded", move |_req: Request| {
            let guarded = guarded.clone();
            async move {
                let Ok(_permit) = guarded.try_acquire() else {
                    return Response::text("busy").with_status(503);
                };
                sleep(Duration::from_millis(300)).await;
                Response::text("ok")
            }
        })
}

fn start(config: Config) -> (Running, Arc<Probe>) {
    let probe = Arc::new(Probe::default());
    let p = probe.clone();
    (start_with(move || app(config, p)), probe)
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Connections the server holds (besides the one asking).
fn held(addr: SocketAddr) -> usize {
    let mut c = Client::connect(addr);
    let n: usize = c.request(&get("/active")).text().parse().unwrap();
    n - 1
}

/// The process's descriptors with the server serving and idle (once it
/// has answered, its signal pipe and reactor exist).
fn baseline(addr: SocketAddr) -> usize {
    wait_until("the server idle", Duration::from_secs(3), || held(addr) == 0);
    thread::sleep(Duration::from_millis(50));
    open_fds()
}

/// The server holds no connection and the process no descriptor beyond
/// `fds` (counted with the server idle).
fn assert_clean(addr: SocketAddr, fds: usize, after: &str) {
    wait_until(
        &format!("the server still holds a connection after {after}"),
        Duration::from_secs(3),
        || held(addr) == 0,
    );
    wait_until(
        &format!("descriptors leaked after {after}"),
        Duration::from_secs(3),
        || open_fds() == fds,
    );
}

#[test]
fn resets_at_every_stage_free_the_connection_and_drop_the_handler() {
    let _s = serial();
    let (server, probe) = start(Config::default());
    let addr = server.addr;
    let fds = baseline(addr);

    // Mid-head.
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-Half: ").unwrap();
    thread::sleep(Duration::from_millis(20));
    reset(c);
    assert_clean(addr, fds, "a reset mid-head");

    // Mid-body: the handler reading it is dropped.
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n")
        .unwrap();
    c.write_all(&[b'b'; 10_000]).unwrap();
    wait_until("the sink handler started", Duration::from_secs(2), || {
        probe.started.load(Ordering::SeqCst) == 1
    });
    reset(c);
    wait_until("the sink handler dropped", Duration::from_secs(2), || {
        probe.dropped.load(Ordering::SeqCst) == 1
    });
    assert_clean(addr, fds, "a reset mid-body");

    // Mid-response: 16 MB cannot sit in the socket buffers.
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(get("/big/16000000").as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    c.read_exact(&mut buf).unwrap();
    reset(c);
    assert_clean(addr, fds, "a reset mid-response");

    // While the handler is pending: its future is dropped, never finished.
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(get("/hang/400").as_bytes()).unwrap();
    wait_until("the hang handler started", Duration::from_secs(2), || {
        probe.started.load(Ordering::SeqCst) == 2
    });
    let reset_at = Instant::now();
    reset(c);
    wait_until("the pending handler dropped", Duration::from_secs(2), || {
        probe.dropped.load(Ordering::SeqCst) == 2
    });
    assert!(
        reset_at.elapsed() < Duration::from_millis(300),
        "dropped only when it would have finished"
    );
    // The freed slot is reused by the next connection (the slab hands out
    // the latest freed key); had the old handler lived, it would write
    // "late" into it at 400 ms.
    let mut next = Client::connect(addr);
    thread::sleep(Duration::from_millis(500).saturating_sub(reset_at.elapsed()));
    assert_eq!(next.request(&get("/")).text(), "ok");
    next.reader
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut extra = [0u8; 64];
    assert!(
        next.reader.read(&mut extra).is_err(),
        "bytes after the only response on a reused slot"
    );
    assert_eq!(
        probe.finished.load(Ordering::SeqCst),
        0,
        "a reset request's handler ran to the end"
    );
    drop(next);
    assert_clean(addr, fds, "the reused slot");
}

#[test]
fn dead_silent_and_non_reading_clients_are_freed() {
    let _s = serial();
    let config = Config {
        header_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let (server, _probe) = start(config);
    let addr = server.addr;
    let fds = baseline(addr);

    // The client dies with the response unread: the write meets EPIPE or
    // ECONNRESET (its close with unread data sent a reset).
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(get("/big/16000000").as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    c.read_exact(&mut buf).unwrap();
    drop(c);
    assert_clean(addr, fds, "a client that closed mid-response");

    // Half-close after a full request, with a pending handler: the answer
    // still goes out, then the server closes.
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(get("/hang/100").as_bytes()).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 200 ") && reply.ends_with("late"),
        "{reply:?}"
    );
    drop(c);
    assert_clean(addr, fds, "a half-closed client");

    // A client that never reads a large response: the write timeout.
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(get("/big/16000000").as_bytes()).unwrap();
    wait_until("the non-reading client freed", Duration::from_secs(3), || {
        held(addr) == 0
    });
    drop(c);
    assert_clean(addr, fds, "a client that never reads");

    // A client that sends nothing: the header timeout, counted from accept.
    let mut c = TcpStream::connect(addr).unwrap();
    let connected = Instant::now();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = c.read(&mut buf).unwrap_or(0);
    let waited = connected.elapsed();
    assert_eq!(n, 0, "a silent connection got bytes");
    assert!(
        (Duration::from_millis(250)..Duration::from_secs(3)).contains(&waited),
        "a silent connection was closed after {waited:?}, not at the 300 ms header timeout"
    );
    drop(c);
    assert_clean(addr, fds, "a silent client");
}

#[test]
fn handlers_that_hang_panic_or_spawn_ten_thousand_tasks() {
    let _s = serial();
    let config = Config {
        handler_timeout: Some(Duration::from_millis(200)),
        ..Config::default()
    };
    let (server, probe) = start(config);
    let addr = server.addr;
    // A panic is a 500 and the server lives on (the full story in http.rs).
    // First, as the panic hook may keep the binary open for its backtraces.
    let mut c = Client::connect(addr);
    assert_eq!(c.request(&get("/big/notanumber")).status, 500);
    let mut c = Client::connect(addr);
    assert_eq!(c.request(&get("/")).text(), "ok");
    drop(c);
    let fds = baseline(addr);

    // Past the handler timeout: 503, the future dropped, the connection
    // closed.
    let mut c = Client::connect(addr);
    let asked = Instant::now();
    let r = c.request(&get("/never"));
    assert_eq!(r.status, 503);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        asked.elapsed() >= Duration::from_millis(150),
        "timed out early: {:?}",
        asked.elapsed()
    );
    assert!(c.is_closed());
    assert_eq!(probe.dropped.load(Ordering::SeqCst), 1);
    drop(c);

    // A handler that never completes, and a client that resets: freed at
    // the reset, long before the handler timeout.
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(get("/never").as_bytes()).unwrap();
    wait_until("the second never handler started", Duration::from_secs(2), || {
        probe.started.load(Ordering::SeqCst) == 2
    });
    reset(c);
    wait_until(
        "the never handler dropped at the reset",
        Duration::from_millis(150),
        || probe.dropped.load(Ordering::SeqCst) == 2,
    );
    assert_clean(addr, fds, "a hung handler's client reset");

    // 10,000 tasks from one handler; other connections are served meanwhile.
    let mut spawner = Client::connect(addr);
    spawner.send(get("/spawn/10000").as_bytes());
    let mut other = Client::connect(addr);
    for _ in 0..20 {
        assert_eq!(other.request(&get("/")).text(), "ok");
    }
    assert_eq!(spawner.read(false).text(), "10000");
    drop((spawner, other));
    assert_clean(addr, fds, "the handler tests");
}

/// The most a server with `config` may grow by for `connections` busy
/// connections: every buffer its limits allow each one (a head, the output
/// watermark, the two pooled buffers, the 256 KiB body window and one read
/// past it), plus 4 MiB for the allocator's and the test's own slack.
fn rss_ceiling(config: &Config, connections: u64) -> u64 {
    let body_window = 256 * 1024 + 64 * 1024;
    let per_connection = config.max_head + config.output_high_watermark + 2 * config.buffer_size + body_window;
    4 * 1024 * 1024 + connections * per_connection as u64
}

#[test]
fn memory_stays_bounded_under_a_1_gib_body_and_100_000_unread_requests() {
    let _s = serial();
    let config = Config {
        max_body: 2 << 30,
        ..Config::default()
    };
    let ceiling = rss_ceiling(&config, 2);
    let (server, _probe) = start(config);
    let addr = server.addr;

    // 1 GiB in 64 KiB chunks to a handler that reads it a chunk at a time.
    let chunk = vec![b'z'; 64 * 1024];
    let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
    frame.extend_from_slice(&chunk);
    frame.extend_from_slice(b"\r\n");
    let mut c = Client::connect(addr);
    c.request(&get("/")); // warm: the connection's buffers exist
    let base = rss();
    let mut peak = base;
    c.send(b"POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    for i in 0..16 * 1024 {
        c.send(&frame);
        if i % 256 == 0 {
            peak = peak.max(rss());
        }
    }
    c.send(b"0\r\n\r\n");
    assert_eq!(c.read(false).text(), (1u64 << 30).to_string());
    let grew = peak.saturating_sub(base);
    assert!(
        grew < ceiling,
        "RSS grew {grew} B while streaming 1 GiB (ceiling {ceiling} B)"
    );
    eprintln!("1 GiB chunked body: RSS grew {grew} B (ceiling {ceiling} B)");

    // 100,000 pipelined requests, none of the responses read for a while:
    // the server stops parsing at its output watermark instead of queueing.
    let mut pipeline = Vec::new();
    for _ in 0..100_000 {
        pipeline.extend_from_slice(get("/").as_bytes());
    }
    let mut writer = TcpStream::connect(addr).unwrap();
    let mut reader = writer.try_clone().unwrap();
    let base = rss();
    let sender = thread::spawn(move || writer.write_all(&pipeline).map(|_| writer));
    let mut peak = base;
    for _ in 0..20 {
        thread::sleep(Duration::from_millis(25));
        peak = peak.max(rss());
    }
    let grew = peak.saturating_sub(base);
    assert!(
        grew < ceiling,
        "RSS grew {grew} B under 100,000 unread requests (ceiling {ceiling} B)"
    );
    eprintln!("100,000 unread pipelined requests: RSS grew {grew} B (ceiling {ceiling} B)");
    // Then every one is answered, in order, exactly once.
    let one = b"HTTP/1.1 200 OK\r\n";
    let (mut answered, mut carry) = (0, Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    reader.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while answered < 100_000 {
        let n = reader.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {answered} responses");
        // Status lines in what arrived, one split across reads included
        // (the carry is shorter than a status line, so none counts twice).
        carry.extend_from_slice(&buf[..n]);
        answered += carry.windows(one.len()).filter(|w| w == one).count();
        carry.drain(..carry.len() - (one.len() - 1).min(carry.len()));
    }
    let writer = sender.join().unwrap().unwrap();
    assert_eq!(answered, 100_000);
    drop(writer);
}

/// One connect-request-close cycle; whether it got its 200.
fn cycle(addr: SocketAddr, buf: &mut [u8]) -> bool {
    let Ok(mut c) = TcpStream::connect(addr) else {
        return false;
    };
    if c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut got = 0;
    loop {
        match c.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => return false,
        }
    }
    buf[..got].starts_with(b"HTTP/1.1 200 ") && buf[..got].ends_with(b"ok")
}

#[test]
fn churn_of_200_000_connections_leaves_nothing_behind() {
    let _s = serial();
    let (server, _probe) = start(Config::default());
    let addr = server.addr;
    // Two client threads warm up first (the slab, the buffer pool, the
    // allocator, and their own stacks and malloc arenas reach their steady
    // size), then wait while the baseline is taken.
    let warm = Arc::new(std::sync::Barrier::new(3));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let warm = warm.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let warm_failed = (0..1_000).filter(|_| !cycle(addr, &mut buf)).count();
                warm.wait();
                warm.wait();
                warm_failed + (0..100_000).filter(|_| !cycle(addr, &mut buf)).count()
            })
        })
        .collect();
    warm.wait();
    let (fds, base) = (baseline(addr), rss_anon());
    warm.wait();
    let failed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(failed, 0, "{failed} of 202,000 cycles failed");
    assert_clean(addr, fds, "200,000 cycles");
    let after = rss_anon();
    // One leaked allocation per cycle, of malloc's smallest 32 B chunk, would
    // be 6.4 MB; the ceiling is a fiftieth of that. Measured here: 8 KiB of
    // growth (the whole resident set, file pages included, 70–210 KiB).
    let ceiling = 128 * 1024;
    assert!(
        after.saturating_sub(base) <= ceiling,
        "anonymous RSS grew from {base} to {after} B over 200,000 cycles (ceiling: {ceiling} B of growth)"
    );
    eprintln!("200,000 cycles: anonymous RSS {base} → {after} B, descriptors back to {fds}");
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// Latency of `rounds` requests spread over `clients`.
fn latencies(clients: &mut [Client], rounds: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let c = &mut clients[i % clients.len()];
        let t = Instant::now();
        assert_eq!(c.request(&get("/")).status, 200);
        out.push(t.elapsed());
    }
    out
}

#[test]
fn past_the_connection_limit_new_connections_are_refused_quickly() {
    let _s = serial();
    let limit = 16;
    let config = Config {
        max_connections: limit,
        ..Config::default()
    };
    let (server, _probe) = start(config);
    let addr = server.addr;
    let mut clients: Vec<Client> = (0..limit).map(|_| Client::connect(addr)).collect();
    latencies(&mut clients, 500); // warm
                                  // A flood of new connections while all the slots are held, switched on
                                  // and off so that unloaded and loaded rounds alternate: one scheduler
                                  // hiccup on this shared VM then moves one round's p99, not the verdict,
                                  // which compares the medians of five rounds each.
    let flooding = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (f, d) = (flooding.clone(), done.clone());
    let flood = thread::spawn(move || {
        let mut worst = Duration::ZERO;
        let (mut n, mut served) = (0u64, 0u64);
        while !d.load(Ordering::SeqCst) {
            if !f.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_micros(200));
                continue;
            }
            n += 1;
            let t = Instant::now();
            let Ok(mut c) = TcpStream::connect(addr) else { continue };
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = c.write_all(get("/").as_bytes());
            let mut b = [0u8; 64];
            if matches!(c.read(&mut b), Ok(n) if n > 0) {
                served += 1;
            }
            worst = worst.max(t.elapsed());
            // About 2,000 attempts a second: an overload, not a CPU hog.
            thread::sleep(Duration::from_micros(500));
        }
        (n, served, worst)
    });
    let (mut unloaded, mut loaded) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        flooding.store(false, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(5));
        unloaded.push(p99(latencies(&mut clients, 1_000)));
        flooding.store(true, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(20)); // the flood is under way
        loaded.push(p99(latencies(&mut clients, 1_000)));
    }
    done.store(true, Ordering::SeqCst);
    let (attempts, served, worst) = flood.join().unwrap();
    let (unloaded, loaded) = (p99_median(unloaded), p99_median(loaded));
    assert!(attempts > 100, "the flood did not run ({attempts} attempts)");
    assert_eq!(served, 0, "{served} of {attempts} connections past the limit got bytes");
    assert!(worst < Duration::from_secs(1), "a refusal took {worst:?}");
    assert!(
        loaded <= unloaded * 2 + Duration::from_micros(100),
        "established p99 {loaded:?} under the flood vs {unloaded:?} unloaded (medians of 5 rounds)"
    );
    eprintln!("refused {attempts} (worst {worst:?}); established p99 {unloaded:?} → {loaded:?}");
}

fn p99_median(mut rounds: Vec<Duration>) -> Duration {
    rounds.sort();
    rounds[rounds.len() / 2]
}

#[test]
fn past_the_connection_limit_a_503_can_be_the_answer() {
    let _s = serial();
    let config = Config {
        max_connections: 1,
        at_connection_limit: AtLimit::Respond503,
        ..Config::default()
    };
    let (server, _probe) = start(config);
    let mut held = Client::connect(server.addr);
    assert_eq!(held.request(&get("/")).status, 200);
    let mut c = TcpStream::connect(server.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 503 "), "{reply:?}");
    assert!(reply.contains("Retry-After: 1\r\n") && reply.contains("Connection: close\r\n"));
    assert_eq!(held.request(&get("/")).status, 200, "the held connection still serves");
}

/// `n` clients at once each send one `Connection: close` request for
/// `path`; the status each got, after checking each got exactly one.
fn burst(addr: SocketAddr, n: usize, path: &'static str) -> Vec<u16> {
    let go = Arc::new(std::sync::Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let go = go.clone();
            thread::spawn(move || {
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                go.wait();
                c.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
                    .unwrap();
                let mut reply = String::new();
                c.read_to_string(&mut reply).unwrap();
                assert_eq!(reply.matches("HTTP/1.1 ").count(), 1, "not one response: {reply:?}");
                reply[9..12].parse::<u16>().unwrap()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn ten_times_overload_is_shed_with_503_and_nothing_is_lost() {
    let _s = serial();
    let config = Config {
        max_in_flight: Some(8),
        ..Config::default()
    };
    let (server, probe) = start(config);
    // max_in_flight: 80 requests for 8 handler slots.
    let statuses = burst(server.addr, 80, "/hang/300");
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let shed = statuses.iter().filter(|&&s| s == 503).count();
    assert_eq!(ok + shed, 80, "statuses other than 200/503: {statuses:?}");
    assert!((1..=8).contains(&ok), "{ok} handlers ran at once with a cap of 8");
    assert!(shed >= 72 - 8, "only {shed} shed");
    assert_eq!(probe.finished.load(Ordering::SeqCst), ok);
    // A route's own Semaphore of 10, under 100 at once.
    let statuses = burst(server.addr, 100, "/guarded");
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let shed = statuses.iter().filter(|&&s| s == 503).count();
    assert_eq!(ok + shed, 100, "statuses other than 200/503: {statuses:?}");
    assert!((1..=10).contains(&ok), "{ok} got through a semaphore of 10");
}

#[test]
fn graceful_shutdown_turns_readiness_off_then_drains() {
    let _s = serial();
    let config = Config {
        drain_delay: Duration::from_millis(400),
        ..Config::default()
    };
    let mut server = start_with(move || {
        app(config, Arc::new(Probe::default()))
            .readiness("/ready")
            .health("/health")
    });
    let addr = server.addr;
    let mut probe = Client::connect(addr);
    assert_eq!(probe.request(&get("/ready")).text(), "ready\n");
    let mut idle = Client::connect(addr);
    assert_eq!(idle.request(&get("/")).status, 200);
    let mut busy = Client::connect(addr);
    busy.send(get("/hang/700").as_bytes());
    thread::sleep(Duration::from_millis(50));
    let asked = Instant::now();
    server.shutdown.shutdown();
    thread::sleep(Duration::from_millis(50));
    // During the drain delay: not ready, still alive, still accepting and
    // serving as before (keep-alive too).
    let r = probe.request(&get("/ready"));
    assert_eq!(r.status, 503);
    assert!(probe.is_closed(), "a 503 readiness answer closes");
    let mut fresh = Client::connect(addr);
    let r = fresh.request(&get("/health"));
    assert_eq!((r.status, r.header("connection")), (200, None));
    assert_eq!(idle.request(&get("/")).status, 200);
    // After it: idle connections closed, no new ones, the busy one answered
    // with `Connection: close`.
    assert!(idle.is_closed(), "idle connection not closed after the drain delay");
    assert!(
        asked.elapsed() >= Duration::from_millis(350),
        "closed before the drain delay"
    );
    let r = busy.read(false);
    assert_eq!((r.text().as_str(), r.header("connection")), ("late", Some("close")));
    let result = server.thread.take().unwrap().join().unwrap();
    assert!(result.is_ok());
    assert!(TcpStream::connect(addr).is_err(), "still accepting after shutdown");
}
