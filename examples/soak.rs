//! soak: steady mixed load against one solo server for a given time, with a
//! progress line every 10 s and a verdict at the end.
//!
//! ```text
//! cargo run --release --example soak [-- --duration 300 --every 10]
//! SOAK_WRAP=heaptrack cargo run --release --example soak   # profile the server
//! ```
//!
//! The server runs in its own process (this binary re-executed with
//! `--serve`), so the memory and descriptors reported are the server's
//! alone, not the load's; the load runs on plain threads with blocking
//! sockets, six kinds at once:
//!
//! - **keep-alive**: 4 connections, one request at a time (their latency is
//!   the p99 reported);
//! - **churn**: a new connection per request, closed after it;
//! - **pipelined**: batches of 32 requests written at once, then read;
//! - **slow**: a head trickled a few bytes every 100 ms (answered), and one
//!   in four stalling for good (the header timeout answers 408);
//! - **resets**: a request for a streamed 256 KiB download, a little read,
//!   then a reset (`SO_LINGER` 0), or a reset halfway through a head;
//! - **bodies**: 512 KiB uploads, read by the handler a chunk at a time and
//!   answered with their length and checksum, which the client checks.
//!
//! Each line: elapsed time, the server process's RSS and open descriptors
//! (from `/proc`; "n/a" where there is none), requests the server parsed, client-side errors (anything but the expected answer),
//! and the keep-alive clients' p99 over the interval. RSS is sampled every
//! second; each line shows the interval's median and peak. After a warm-up
//! (a third of the run, at least 20 s and at most 30 s: the heap of this
//! mix reaches its plateau 20 to 30 s in, measured) every interval's median must stay
//! within 5 % (or one upload's buffering, 320 KiB, if larger) of the median
//! of the warm-up's second half; at the end the descriptors must be back to the count before the
//! load started. Exits non-zero if there was any error, RSS grew, or a
//! descriptor leaked. Loopback only; every loop stops by itself.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use solo::http::{Config, Histogram, Request, Response, Server};
use solo::time::sleep;

/// What the load threads count, shared.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    errors: AtomicU64,
    /// The first few errors, for the report.
    first_errors: Mutex<Vec<String>>,
    /// Keep-alive latencies of the current interval, in µs.
    latency: Mutex<Histogram>,
}

impl Tally {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap();
        if first.len() < 5 {
            first.push(what);
        }
    }

    fn check(&self, kind: &str, result: io::Result<bool>) {
        match result {
            Ok(true) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => self.error(format!("{kind}: wrong answer")),
            Err(e) => self.error(format!("{kind}: {e}")),
        }
    }
}

/// `--serve`: the server process. Prints its address, serves until its
/// stdin closes, then shuts down gracefully.
fn serve(config: Config) -> io::Result<()> {
    let server = Server::bind("127.0.0.1:0")?
        .config(config)
        .get("/", |_req: Request| async { Response::text("Hello, World!") })
        // 256 KiB streamed in 16 KiB chunks, as a large download should be.
        .get("/big", |_req: Request| async {
            let (tx, rx) = solo::sync::mpsc::channel(4);
            solo::spawn(async move {
                let chunk = bytes::Bytes::from_static(&[b'x'; 16 * 1024]);
                for _ in 0..16 {
                    if tx.send(chunk.clone()).await.is_err() {
                        return; // the client went away
                    }
                }
            });
            Response::stream(rx)
        })
        // An upload read a chunk at a time (flow control), answered with its
        // length and checksum: no route holds a whole body.
        .post("/upload", |mut req: Request| async move {
            let (mut len, mut sum) = (0u64, 0u64);
            while let Some(chunk) = req.body_chunk().await {
                let chunk = chunk?;
                len += chunk.len() as u64;
                sum = chunk
                    .iter()
                    .fold(sum, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)));
            }
            Ok::<_, io::Error>(Response::text(format!("{len} {sum}")))
        })
        .get("/slow", |_req: Request| async {
            sleep(Duration::from_millis(5)).await;
            Response::text("slow")
        });
    let stats = server.stats_handle();
    let server = server.get("/requests", move |_req: Request| {
        let n = stats.snapshot().requests;
        async move { Response::text(n.to_string()) }
    });
    println!("{}", server.local_addr()?);
    let stop = server.shutdown_handle();
    thread::spawn(move || {
        let _ = io::copy(&mut io::stdin(), &mut io::sink());
        stop.shutdown();
    });
    server.run()
}

/// The server process, and what is read of it.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    fn start() -> io::Result<ServerProcess> {
        // SOAK_WRAP runs the server under a tool (`SOAK_WRAP=heaptrack`);
        // the figures read from /proc are then the tool's process's.
        let exe = std::env::current_exe()?;
        let mut command = match std::env::var("SOAK_WRAP") {
            Ok(wrapper) => {
                let mut c = Command::new(wrapper);
                c.arg(exe);
                c
            }
            Err(_) => Command::new(exe),
        };
        let mut child = command
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        // The first line that is an address is the server's (a wrapper may
        // print before it).
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let addr = loop {
            match lines.next() {
                Some(line) => match line?.trim().parse() {
                    Ok(addr) => break addr,
                    Err(_) => continue,
                },
                None => return Err(io::Error::other("the server exited before saying its address")),
            }
        };
        Ok(ServerProcess { child, addr })
    }

    /// Resident set size in bytes, from /proc (Linux only).
    fn rss(&self) -> Option<u64> {
        self.status_kib("VmRSS:").map(|k| k * 1024)
    }

    /// Anonymous resident memory (heap, stacks) in bytes: what a leak grows.
    /// The rest of RSS is file pages, the binary's code touched so far.
    fn rss_anon(&self) -> Option<u64> {
        self.status_kib("RssAnon:").map(|k| k * 1024)
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
    }

    fn open_fds(&self) -> Option<usize> {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .ok()
            .map(|d| d.count())
    }

    /// Requests the server has parsed (this one included).
    fn requests(&self) -> Option<u64> {
        let mut s = connect(self.addr).ok()?;
        s.write_all(b"GET /requests HTTP/1.1\r\nHost: soak\r\n\r\n").ok()?;
        let (_, body) = read_response(&mut s, &mut Vec::new()).ok()?;
        std::str::from_utf8(&body).ok()?.parse().ok()
    }

    /// Graceful stop (its stdin closes); whether it exited cleanly.
    fn stop(mut self) -> io::Result<bool> {
        drop(self.child.stdin.take());
        Ok(self.child.wait()?.success())
    }
}

/// Reads one response with a `Content-Length` body; its status and body.
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<(u16, Vec<u8>)> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).map_err(io::Error::other)?;
            let status: u16 = head
                .get(9..12)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| io::Error::other("status"))?;
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| io::Error::other("no Content-Length"))?;
            let total = end + 4 + len;
            while buf.len() < total {
                let n = s.read(&mut chunk)?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..total].to_vec();
            buf.drain(..total);
            return Ok((status, body));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_nodelay(true)?;
    Ok(s)
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n";

fn reset(stream: TcpStream) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt reads a `linger` of the size passed, from a
        // local, on a socket this thread owns.
        unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }
    drop(stream);
}

fn keep_alive(addr: SocketAddr, tally: &Tally, running: &AtomicBool) {
    let result = (|| -> io::Result<()> {
        let mut s = connect(addr)?;
        let mut buf = Vec::new();
        while running.load(Ordering::Relaxed) {
            let t = Instant::now();
            s.write_all(GET)?;
            let (status, body) = read_response(&mut s, &mut buf)?;
            tally.latency.lock().unwrap().record(t.elapsed().as_micros() as u64);
            tally.check("keep-alive", Ok(status == 200 && body == b"Hello, World!"));
            thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    })();
    if let Err(e) = result {
        tally.error(format!("keep-alive: {e}"));
    }
}

fn churn(addr: SocketAddr, tally: &Tally, running: &AtomicBool) {
    while running.load(Ordering::Relaxed) {
        let result = (|| {
            let mut s = connect(addr)?;
            s.write_all(b"GET /slow HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")?;
            let mut reply = Vec::new();
            s.read_to_end(&mut reply)?;
            Ok(reply.starts_with(b"HTTP/1.1 200 ") && reply.ends_with(b"slow"))
        })();
        tally.check("churn", result);
    }
}

fn pipelined(addr: SocketAddr, tally: &Tally, running: &AtomicBool) {
    let batch: Vec<u8> = GET.repeat(32);
    let result = (|| -> io::Result<()> {
        let mut s = connect(addr)?;
        let mut buf = Vec::new();
        while running.load(Ordering::Relaxed) {
            s.write_all(&batch)?;
            for _ in 0..32 {
                let (status, body) = read_response(&mut s, &mut buf)?;
                tally.check("pipelined", Ok(status == 200 && body == b"Hello, World!"));
            }
            thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    })();
    if let Err(e) = result {
        tally.error(format!("pipelined: {e}"));
    }
}

fn slow(addr: SocketAddr, tally: &Tally, running: &AtomicBool) {
    let mut round = 0u64;
    while running.load(Ordering::Relaxed) {
        round += 1;
        let stall = round % 4 == 0;
        let result = (|| {
            let mut s = connect(addr)?;
            for (i, piece) in GET.chunks(4).enumerate() {
                if stall && i == 5 {
                    break; // never finishes: the header timeout answers 408
                }
                s.write_all(piece)?;
                thread::sleep(Duration::from_millis(100));
            }
            let mut buf = Vec::new();
            let (status, _) = read_response(&mut s, &mut buf)?;
            Ok(status == if stall { 408 } else { 200 })
        })();
        tally.check("slow", result);
    }
}

fn resets(addr: SocketAddr, tally: &Tally, running: &AtomicBool) {
    let mut round = 0u64;
    while running.load(Ordering::Relaxed) {
        round += 1;
        let result = (|| {
            let mut s = connect(addr)?;
            if round % 2 == 0 {
                s.write_all(b"GET /big HTTP/1.1\r\nHost: soak\r\n\r\n")?;
                let mut some = [0u8; 4096];
                s.read_exact(&mut some)?;
            } else {
                s.write_all(b"GET / HTTP/1.1\r\nHo")?;
            }
            reset(s);
            Ok(true)
        })();
        tally.check("resets", result);
        thread::sleep(Duration::from_millis(5));
    }
}

fn bodies(addr: SocketAddr, tally: &Tally, running: &AtomicBool) {
    let body: Vec<u8> = (0..512 * 1024).map(|i| (i % 251) as u8).collect();
    let sum = body
        .iter()
        .fold(0u64, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)));
    let expected = format!("{} {sum}", body.len()).into_bytes();
    let mut request = format!(
        "POST /upload HTTP/1.1\r\nHost: soak\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let result = (|| -> io::Result<()> {
        let mut s = connect(addr)?;
        let mut buf = Vec::new();
        while running.load(Ordering::Relaxed) {
            s.write_all(&request)?;
            let (status, answer) = read_response(&mut s, &mut buf)?;
            tally.check("bodies", Ok(status == 200 && answer == expected));
            thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    })();
    if let Err(e) = result {
        tally.error(format!("bodies: {e}"));
    }
}

/// One upload's worth of server buffering: the 256 KiB body window and one
/// 64 KiB read past it.
const UPLOAD_BUFFERING: u64 = (256 + 64) * 1024;

fn median(samples: &mut [u64]) -> Option<u64> {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() -> io::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("--serve") {
        return serve(Config {
            header_timeout: Duration::from_secs(2),
            body_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(5),
            ..Config::default()
        });
    }
    let mut duration = Duration::from_secs(300);
    let mut every = Duration::from_secs(10);
    let mut args = std::env::args().skip(1);
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| invalid(format!("{arg} needs a value")))?;
        let secs: u64 = value.parse().map_err(|e| invalid(format!("{arg}: {e}")))?;
        match arg.as_str() {
            "--duration" => duration = Duration::from_secs(secs),
            "--every" => every = Duration::from_secs(secs.max(1)),
            _ => return Err(invalid(format!("unknown flag {arg} (--duration S, --every S)"))),
        }
    }
    let warm_up = (duration / 3).clamp(Duration::from_secs(20).min(duration / 2), Duration::from_secs(30));
    let server = ServerProcess::start()?;
    let addr = server.addr;
    let tally = Arc::new(Tally::default());
    // The baseline: the server is up and has answered once.
    server
        .requests()
        .ok_or_else(|| io::Error::other("the server does not answer"))?;
    thread::sleep(Duration::from_millis(100));
    let fds_before = server.open_fds();
    println!(
        "soak: {} s of mixed load on http://{addr} (keep-alive ×4, churn, pipelined ×32, slow ×2, resets, 512 KiB uploads); warm-up {} s",
        duration.as_secs(),
        warm_up.as_secs()
    );
    let running = Arc::new(AtomicBool::new(true));
    type Kind = fn(SocketAddr, &Tally, &AtomicBool);
    let kinds: [(Kind, usize); 6] = [
        (keep_alive, 4),
        (churn, 1),
        (pipelined, 1),
        (slow, 2),
        (resets, 1),
        (bodies, 1),
    ];
    let mut threads = Vec::new();
    for (kind, n) in kinds {
        for _ in 0..n {
            let (tally, running) = (tally.clone(), running.clone());
            threads.push(thread::spawn(move || kind(addr, &tally, &running)));
        }
    }
    let start = Instant::now();
    // RSS is sampled every second; each interval's median is compared with
    // the median of the warm-up's second half (a leak moves the median; a
    // transient peak does not). The allowance is 5 % or one upload's worth
    // of buffering (the 256 KiB body window and one 64 KiB read past it),
    // whichever is larger: the server is a ~4 MiB process whose live heap
    // moves by a few hundred KB with the bodies in flight (heaptrack:
    // 0.6-1.25 MB), so 5 % alone would call one upload a leak. The line also
    // shows the anonymous part (heap and stacks; the rest is the binary's
    // code paged in) and the interval's peak.
    let mut warm_samples: Vec<u64> = Vec::new();
    let mut rss_after_warm_up = None;
    let mut worst_growth = 0.0f64;
    let mut next = every;
    while start.elapsed() < duration {
        let (mut anon, mut total): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
        while start.elapsed() < next.min(duration) {
            thread::sleep(Duration::from_secs(1).min(next.min(duration).saturating_sub(start.elapsed())));
            if let (Some(a), Some(t)) = (server.rss_anon(), server.rss()) {
                anon.push(a);
                total.push(t);
                if start.elapsed() >= warm_up / 2 && start.elapsed() <= warm_up + Duration::from_millis(500) {
                    warm_samples.push(t);
                }
            }
        }
        let (middle, peak, anon) = (median(&mut total), total.iter().copied().max(), median(&mut anon));
        next += every;
        let p99 = std::mem::take(&mut *tally.latency.lock().unwrap()).quantile(0.99);
        let elapsed = start.elapsed();
        let growth = match (rss_after_warm_up, middle) {
            (_, None) => "not measured here".to_string(),
            (None, Some(_)) if elapsed >= warm_up => {
                rss_after_warm_up = median(&mut warm_samples);
                "baseline".to_string()
            }
            (None, Some(_)) => "warming up".to_string(),
            (Some(base), Some(now)) => {
                let grew = now as i64 - base as i64;
                worst_growth = worst_growth.max(grew as f64);
                format!("{:+.1} %, {:+} KiB", grew as f64 / base as f64 * 100.0, grew / 1024)
            }
        };
        println!(
            "soak: {:>4} s  server RSS {} ({growth}; peak {}, anonymous {})  fds {}  requests {}  answers ok {}  errors {}  keep-alive p99 {} µs",
            elapsed.as_secs(),
            middle.map_or("n/a".into(), |b| format!("{:.2} MiB", mib(b))),
            peak.map_or("n/a".into(), |b| format!("{:.2} MiB", mib(b))),
            anon.map_or("n/a".into(), |b| format!("{:.2} MiB", mib(b))),
            server.open_fds().map_or("n/a".into(), |n| n.to_string()),
            server.requests().map_or("n/a".into(), |n| n.to_string()),
            tally.ok.load(Ordering::Relaxed),
            tally.errors.load(Ordering::Relaxed),
            p99
        );
    }
    running.store(false, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    // Let the server close what the clients just closed, then count.
    let mut fds_after = server.open_fds();
    for _ in 0..100 {
        if fds_after == fds_before {
            break;
        }
        thread::sleep(Duration::from_millis(20));
        fds_after = server.open_fds();
    }
    let clean_exit = server.stop()?;

    let errors = tally.errors.load(Ordering::Relaxed);
    let mut failed = Vec::new();
    if errors > 0 {
        failed.push(format!(
            "{errors} errors, first: {:?}",
            tally.first_errors.lock().unwrap()
        ));
    }
    if !clean_exit {
        failed.push("the server did not exit cleanly on shutdown".into());
    }
    if rss_after_warm_up.is_none() && cfg!(target_os = "linux") {
        failed.push("the run ended before the warm-up did: no RSS verdict".into());
    }
    let allowance = rss_after_warm_up.map_or(0.0, |base| (base as f64 * 0.05).max(UPLOAD_BUFFERING as f64));
    if rss_after_warm_up.is_some() && worst_growth > allowance {
        failed.push(format!(
            "RSS (interval median) grew {:.0} KiB after the warm-up (allowance {:.0} KiB)",
            worst_growth / 1024.0,
            allowance / 1024.0
        ));
    }
    if fds_after != fds_before {
        failed.push(format!(
            "descriptors {fds_before:?} before the load, {fds_after:?} after"
        ));
    }
    if tally.ok.load(Ordering::Relaxed) == 0 {
        failed.push("no request was answered".into());
    }
    println!(
        "soak: {} answers checked, {errors} errors, RSS median after warm-up at most {:+.0} KiB above its baseline (allowance {:.0} KiB), descriptors {} → {}",
        tally.ok.load(Ordering::Relaxed),
        worst_growth / 1024.0,
        allowance / 1024.0,
        fds_before.map_or("n/a".into(), |n| n.to_string()),
        fds_after.map_or("n/a".into(), |n| n.to_string())
    );
    if failed.is_empty() {
        println!("soak: passed");
        Ok(())
    } else {
        for f in &failed {
            println!("soak: FAILED: {f}");
        }
        std::process::exit(1)
    }
}
