//! The tour: every scenario of the blog post that started solo
//! (`docs/tour.md`), on solo's own runtime, with every figure measured, and a
//! live dashboard at `/`.
//!
//! ```text
//! cargo run --release --example tour -- --port 8080        # then open the printed URL
//! cargo run --release --example tour -- --load --port 8080 # something to watch (60 s)
//! ```
//!
//! | endpoint | what it shows |
//! |---|---|
//! | `/` | the dashboard: the last 60 s of connections, req/s, p50/p99 latency and loop utilisation, live over Server-Sent Events (`/events`) |
//! | `/concurrent` | three awaited steps (10, 5, 3 ms on solo's timer); `X-Request-ID`, `X-Process-Time` |
//! | `/memory` | 1,000 tasks: the process's RSS before, at the peak and after, and the bytes per task the runtime allocated |
//! | `/event-loop` | a CPU task that yields, an I/O task, a mixed one; each one's time and the longest loop turn while they ran |
//! | `/backpressure` | a 100-permit semaphore: 503 "Server too busy" past it, otherwise a 100 ms operation |
//! | `/adaptive` | the loop's real utilisation over the last second: above 0.8 a 50 ms delay, above 0.9 a 503 |
//! | `/pool` | an async connection pool (max 10; waiters queue; a dropped request returns its connection) |
//! | `/stats` | the server's figures: requests, connections, RSS, CPU, latency quantiles, throughput, loop |
//! | `/hello`, `/spin?ms=N` | a fast answer; N ms of CPU in one loop turn (to make the loop busy) |
//!
//! With `--load`, this program is instead a client: for `--duration` seconds
//! (default 60) it holds 300 keep-alive connections and drives a mixed load that
//! rises and falls against the tour at `--port`, then stops by itself.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{json, Value};
use solo::http::{process_usage, AccessEntry, Histogram, Request, Response, Server, StatsHandle};
use solo::sync::{mpsc, Semaphore};
use solo::time::sleep;

/// The blog's request counter.
static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

const DASHBOARD: &str = include_str!("assets/tour-dashboard.html");

fn json_response(value: &Value) -> Response {
    Response::json(value.to_string())
}

// ---- /concurrent ----

async fn concurrent(_req: Request) -> Response {
    let id = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    let start = Instant::now();
    let db = step("database", 10).await;
    let api = step("api", 5).await;
    let file = step("file", 3).await;
    let took = start.elapsed();
    json_response(&json!({
        "request_id": id,
        "steps": [db, api, file],
        "process_time_us": took.as_micros() as u64,
        "note": "three awaited sleeps on solo's timer wheel (10 + 5 + 3 ms); other requests run meanwhile",
    }))
    .header("X-Request-ID", id.to_string())
    .header("X-Process-Time", format!("{}us", took.as_micros()))
}

async fn step(name: &str, ms: u64) -> Value {
    let start = Instant::now();
    sleep(Duration::from_millis(ms)).await;
    json!({"step": name, "asked_ms": ms, "took_us": start.elapsed().as_micros() as u64})
}

// ---- /memory ----

async fn memory(_req: Request) -> Response {
    const TASKS: usize = 1000;
    let rss = || process_usage().0;
    let before_rss = rss();
    let before = solo::stats();
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            solo::spawn(async move {
                sleep(Duration::from_micros(100)).await;
                i
            })
        })
        .collect();
    // Every task exists now (none has run): the peak.
    let spawned = solo::stats();
    let peak_rss = rss();
    let mut completed = 0;
    for t in tasks {
        completed += usize::from(t.await.is_ok());
    }
    let after_rss = rss();
    let task_bytes = spawned.task_bytes - before.task_bytes;
    let n = spawned.tasks_spawned - before.tasks_spawned;
    let delta = |a: Option<u64>, b: Option<u64>| a.zip(b).map(|(a, b)| a as i64 - b as i64);
    json_response(&json!({
        "tasks": TASKS,
        "completed": completed,
        "rss_bytes": {"before": before_rss, "peak": peak_rss, "after": after_rss,
                      "peak_minus_before": delta(peak_rss, before_rss)},
        "runtime_task_bytes": {"total": task_bytes, "per_task": task_bytes / n.max(1)},
        "note": "RSS is the OS's figure for the whole process (pages, so it moves in 4 KiB steps and only when the heap grows); \
                 the task bytes are what the runtime allocated for these tasks (one allocation each)",
    }))
}

// ---- /event-loop ----

async fn event_loop(_req: Request) -> Response {
    let watch = solo::watch_turns();
    let start = Instant::now();
    let timed = |f: Pin<Box<dyn Future<Output = Value>>>| {
        solo::spawn(async move {
            let t = Instant::now();
            let result = f.await;
            (t.elapsed(), result)
        })
    };
    let cpu = timed(Box::pin(async {
        let mut sum = 0u64;
        for i in 0..1_000_000u64 {
            sum = sum.wrapping_add(i);
            if i % 10_000 == 0 {
                solo::yield_now().await;
            }
        }
        json!(sum)
    }));
    let io = timed(Box::pin(async {
        for _ in 0..100 {
            sleep(Duration::from_millis(1)).await;
        }
        json!("100 sleeps of 1 ms")
    }));
    let mixed = timed(Box::pin(async {
        let mut sum = 0u64;
        for _ in 0..50 {
            sum += (0..1000u64).sum::<u64>();
            sleep(Duration::from_micros(500)).await;
            solo::yield_now().await;
        }
        json!(sum)
    }));
    let mut out = Vec::new();
    for (name, task) in [("cpu", cpu), ("io", io), ("mixed", mixed)] {
        let (took, result) = task.await.expect("a tour task does not panic");
        out.push(json!({"task": name, "took_us": took.as_micros() as u64, "result": result}));
    }
    json_response(&json!({
        "total_us": start.elapsed().as_micros() as u64,
        "tasks": out,
        "longest_turn_us": watch.longest().as_micros() as u64,
        "note": "longest_turn_us is the longest stretch the loop spent between two polls while these ran \
                 (solo::watch_turns), measured, where the post computed an 'efficiency' from the elapsed time",
    }))
}

// ---- /backpressure ----

async fn backpressure(gate: Rc<Semaphore>) -> Response {
    let Ok(_permit) = gate.try_acquire() else {
        return json_response(&json!({"error": "Server too busy", "permits": 100, "available": 0})).with_status(503);
    };
    sleep(Duration::from_millis(100)).await;
    json_response(
        &json!({"result": "processed with backpressure control", "available_after": gate.available_permits()}),
    )
}

// ---- /adaptive ----

async fn adaptive(_req: Request) -> Response {
    let load = solo::stats().utilisation_last_second();
    if load > 0.9 {
        return json_response(&json!({
            "load": load, "mode": "shed",
            "why": "the loop was busy more than 90 % of the last second: answering 503 now costs less than queueing",
        }))
        .with_status(503)
        .header("Retry-After", "1");
    }
    let delayed = load > 0.8;
    if delayed {
        sleep(Duration::from_millis(50)).await;
    }
    json_response(&json!({
        "load": load,
        "mode": if delayed { "delayed" } else { "normal" },
        "why": if delayed { "the loop was busy 80-90 % of the last second: this request waited 50 ms" }
               else { "the loop was busy at most 80 % of the last second" },
        "source": "solo::stats().utilisation_last_second(): time busy over time busy + waiting in epoll_wait/kevent",
    }))
}

// ---- /pool ----

/// An async pool of (simulated) database connections: at most `max` exist;
/// a request waits on the semaphore for one; a `Pooled` guard gives its
/// connection back when dropped, also when the request is cancelled.
struct Pool {
    max: usize,
    idle: RefCell<Vec<DbConnection>>,
    created: Cell<usize>,
    in_use: Cell<usize>,
    waiting: Cell<usize>,
    most_in_use: Cell<usize>,
    permits: Semaphore,
}

struct DbConnection {
    id: usize,
    queries: u64,
}

struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<DbConnection>,
    _permit: solo::sync::SemaphorePermit<'a>,
}

impl Pool {
    fn new(max: usize) -> Pool {
        Pool {
            max,
            idle: RefCell::new(Vec::new()),
            created: Cell::new(0),
            in_use: Cell::new(0),
            waiting: Cell::new(0),
            most_in_use: Cell::new(0),
            permits: Semaphore::new(max),
        }
    }

    async fn get(&self) -> Pooled<'_> {
        self.waiting.set(self.waiting.get() + 1);
        // Counted down however the wait ends (the request may be dropped).
        let _waiting = Defer(|| self.waiting.set(self.waiting.get() - 1));
        let permit = self
            .permits
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        let conn = self.idle.borrow_mut().pop().unwrap_or_else(|| {
            self.created.set(self.created.get() + 1);
            DbConnection {
                id: self.created.get(),
                queries: 0,
            }
        });
        self.in_use.set(self.in_use.get() + 1);
        self.most_in_use.set(self.most_in_use.get().max(self.in_use.get()));
        debug_assert!(self.in_use.get() <= self.max);
        Pooled {
            pool: self,
            conn: Some(conn),
            _permit: permit,
        }
    }

    fn figures(&self) -> Value {
        json!({"max_size": self.max, "size": self.created.get(), "idle": self.idle.borrow().len(),
               "in_use": self.in_use.get(), "waiting": self.waiting.get(), "most_in_use": self.most_in_use.get()})
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.idle.borrow_mut().push(conn);
            self.pool.in_use.set(self.pool.in_use.get() - 1);
        }
    }
}

struct Defer<F: FnMut()>(F);

impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

async fn pooled_query(req: Request, pool: Rc<Pool>) -> Response {
    let hold_ms: u64 = req
        .query_param("hold_ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .min(10_000);
    let waited = Instant::now();
    let mut conn = pool.get().await;
    let waited = waited.elapsed();
    sleep(Duration::from_millis(hold_ms)).await; // the query
    let c = conn.conn.as_mut().expect("held until dropped");
    c.queries += 1;
    let (id, queries) = (c.id, c.queries);
    let during = pool.figures();
    drop(conn);
    json_response(
        &json!({"connection": id, "its_queries": queries, "waited_us": waited.as_micros() as u64,
                          "pool_during": during, "pool_after": pool.figures()}),
    )
}

// ---- live figures: one sample a second, for /stats and the dashboard ----

#[derive(Clone)]
struct Sample {
    unix_ms: u64,
    connections: u64,
    requests: u64,
    rps: f64,
    p50_us: u64,
    p99_us: u64,
    utilisation: f64,
    cpu_percent: Option<f64>,
    rss_bytes: Option<u64>,
}

impl Sample {
    fn to_json(&self) -> Value {
        json!({"unix_ms": self.unix_ms, "connections": self.connections, "requests": self.requests,
               "rps": self.rps, "p50_us": self.p50_us, "p99_us": self.p99_us, "utilisation": self.utilisation,
               "cpu_percent": self.cpu_percent, "rss_bytes": self.rss_bytes})
    }
}

/// What the sampler keeps: the current second's latencies (filled by the
/// access log), the last 60 samples and their histograms, and the
/// dashboards listening.
#[derive(Default)]
struct Live {
    this_second: RefCell<Histogram>,
    samples: RefCell<VecDeque<(Sample, Histogram)>>,
    listeners: RefCell<Vec<mpsc::Sender<Bytes>>>,
}

const HISTORY: usize = 60;

async fn sample_every_second(live: Rc<Live>, stats: StatsHandle) {
    let mut tick = solo::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (mut last_requests, mut last_cpu, mut last_at) = (stats.snapshot().requests, process_usage().1, Instant::now());
    loop {
        tick.tick().await;
        let now = Instant::now();
        let s = stats.snapshot();
        let (rss, cpu) = process_usage();
        let secs = now.duration_since(last_at).as_secs_f64();
        let latencies = live.this_second.replace(Histogram::default());
        let sample = Sample {
            unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            connections: s.active,
            requests: s.requests,
            rps: (s.requests - last_requests) as f64 / secs,
            p50_us: latencies.quantile(0.50),
            p99_us: latencies.quantile(0.99),
            utilisation: solo::stats().utilisation_last_second(),
            cpu_percent: cpu.zip(last_cpu).map(|(c, l)| (c - l).as_secs_f64() / secs * 100.0),
            rss_bytes: rss,
        };
        (last_requests, last_cpu, last_at) = (s.requests, cpu, now);
        let frame = Bytes::from(format!("event: sample\ndata: {}\n\n", sample.to_json()));
        // A dashboard that is gone (or stuck) is dropped, never waited for.
        live.listeners
            .borrow_mut()
            .retain(|tx| tx.try_send(frame.clone()).is_ok());
        let mut samples = live.samples.borrow_mut();
        if samples.len() == HISTORY {
            samples.pop_front();
        }
        samples.push_back((sample, latencies));
    }
}

async fn events(live: Rc<Live>) -> Response {
    let (tx, rx) = mpsc::channel(64);
    let history: Vec<Value> = live.samples.borrow().iter().map(|(s, _)| s.to_json()).collect();
    let first = format!("retry: 2000\nevent: history\ndata: {}\n\n", Value::Array(history));
    let _ = tx.try_send(Bytes::from(first));
    live.listeners.borrow_mut().push(tx);
    Response::stream(rx)
        .content_type("text/event-stream")
        .header("Cache-Control", "no-cache")
}

fn stats_json(live: &Live, stats: &StatsHandle) -> Value {
    let s = stats.snapshot();
    let rt = solo::stats();
    let samples = live.samples.borrow();
    // The last ten seconds: eleven samples span ten intervals.
    let recent: Vec<&(Sample, Histogram)> = samples.iter().rev().take(11).collect();
    let window = Histogram::default();
    for (_, h) in recent.iter().take(10) {
        window.merge(h);
    }
    let (oldest, newest) = (recent.last().map(|(s, _)| s), recent.first().map(|(s, _)| s));
    let throughput = match (oldest, newest) {
        (Some(o), Some(n)) if n.unix_ms > o.unix_ms => {
            Some((n.requests - o.requests) as f64 / ((n.unix_ms - o.unix_ms) as f64 / 1000.0))
        }
        (Some(o), Some(_)) => Some(o.rps),
        _ => None,
    };
    json!({
        "total_requests": s.requests,
        "active_connections": s.active,
        "connections_accepted": s.accepted,
        "rss_bytes": s.rss_bytes,
        "cpu_percent_last_second": newest.and_then(|n| n.cpu_percent),
        "cpu_seconds_total": s.cpu_time.map(|t| t.as_secs_f64()),
        "latency_us_last_10s": {"count": window.count(), "p50": window.quantile(0.5), "p99": window.quantile(0.99),
                                "p999": window.quantile(0.999), "max": window.max()},
        "latency_us_since_start": {"count": s.latency_count, "p50": s.latency_p50_us, "p99": s.latency_p99_us,
                                   "p999": s.latency_p999_us, "max": s.latency_max_us},
        "throughput_rps_last_10s": throughput,
        "loop": {"utilisation_last_second": rt.utilisation_last_second(), "utilisation_since_start": rt.utilisation(),
                 "longest_turn_last_second_us": rt.longest_turn_last_second.as_micros() as u64,
                 "tasks_alive": rt.tasks_alive, "tasks_spawned": rt.tasks_spawned, "timers_pending": rt.timers_pending,
                 "io_sources": rt.io_sources, "remote_wakeups": rt.remote_wakeups},
        "samples": samples.len(),
        "source": "server counters (solo::http::Stats), the runtime's (solo::stats()), the OS (/proc/self/statm, getrusage)",
    })
}

// ---- the server ----

/// The sampler a tour needs running next to it.
type Sampler = Pin<Box<dyn Future<Output = ()>>>;

fn tour(port: u16) -> std::io::Result<(Server, Sampler)> {
    let live = Rc::new(Live::default());
    let gate = Rc::new(Semaphore::new(100));
    let pool = Rc::new(Pool::new(10));
    let server = Server::bind(("127.0.0.1", port))?;
    let stats = server.stats_handle();
    let server = server
        .access_log({
            let live = live.clone();
            move |e: &AccessEntry<'_>| {
                // Streams (the dashboards' own) would count their lifetime.
                if e.request.path() != "/events" {
                    live.this_second.borrow().record(e.latency.as_micros() as u64);
                }
            }
        })
        .get("/", |_req: Request| async {
            Response::text(DASHBOARD).content_type("text/html; charset=utf-8")
        })
        .get("/events", {
            let live = live.clone();
            move |_req: Request| events(live.clone())
        })
        .get("/hello", |_req: Request| async { Response::text("Hello, World!") })
        .get("/spin", |req: Request| {
            let ms: u64 = req
                .query_param("ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(10)
                .min(1000);
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(ms) {
                std::hint::spin_loop();
            }
            async move { Response::text(format!("spun {ms} ms in one loop turn\n")) }
        })
        .get("/concurrent", concurrent)
        .get("/memory", memory)
        .get("/event-loop", event_loop)
        .get("/backpressure", move |_req: Request| backpressure(gate.clone()))
        .get("/adaptive", adaptive)
        .get("/pool", move |req: Request| pooled_query(req, pool.clone()))
        .get("/stats", {
            let (live, stats) = (live.clone(), stats.clone());
            move |_req: Request| {
                let body = stats_json(&live, &stats);
                async move { json_response(&body) }
            }
        });
    Ok((server, Box::pin(sample_every_second(live, stats))))
}

// ---- --load: a client with something to watch ----

async fn http_get(conn: &mut solo::net::TcpStream, path: &str, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: tour\r\n\r\n").as_bytes())
        .await?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&buf[..end]).map_err(std::io::Error::other)?;
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or(std::io::ErrorKind::InvalidData)?;
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            })
            .and_then(|(_, v)| v.trim().parse().ok())
            .ok_or(std::io::ErrorKind::InvalidData)?;
        if buf.len() >= end + 4 + len {
            return Ok(status);
        }
    }
}

fn load(port: u16, duration: Duration) -> std::io::Result<()> {
    let rt = solo::Runtime::new()?;
    rt.block_on(async move {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let start = Instant::now();
        let done = Rc::new(Cell::new(0u64));
        let failed = Rc::new(Cell::new(0u64));
        // Idle keep-alive connections: each sends a request now and every
        // 30 s (a connection that never sends one is closed after the
        // header timeout, as it should be).
        let mut idle = Vec::new();
        let mut buf = Vec::new();
        for _ in 0..300 {
            let mut conn = solo::net::TcpStream::connect(addr).await?;
            http_get(&mut conn, "/hello", &mut buf).await?;
            idle.push(conn);
        }
        let keep_idle = solo::spawn(async move {
            let mut buf = Vec::new();
            while start.elapsed() + Duration::from_secs(30) < duration {
                sleep(Duration::from_secs(30)).await;
                for conn in &mut idle {
                    let _ = http_get(conn, "/hello", &mut buf).await;
                }
            }
            idle
        });
        let mut workers = Vec::new();
        // Each worker runs while the wave says so: a load that rises and
        // falls over 20 s, so the dashboard has something to show.
        for w in 0..96usize {
            let (done, failed) = (done.clone(), failed.clone());
            workers.push(solo::spawn(async move {
                let mut buf = Vec::new();
                let Ok(mut conn) = solo::net::TcpStream::connect(addr).await else {
                    failed.set(failed.get() + 1);
                    return;
                };
                let mut i = 0u64;
                while start.elapsed() < duration {
                    let phase = start.elapsed().as_secs_f64() / 20.0 * std::f64::consts::TAU;
                    let active = ((phase.sin() + 1.0) / 2.0 * 96.0) as usize;
                    if w >= active.max(8) {
                        sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    i += 1;
                    let path = match (w % 8, i % 50) {
                        (_, 0) => "/pool",
                        (0, _) => "/concurrent",
                        (1, 7) => "/event-loop",
                        _ => "/hello",
                    };
                    match http_get(&mut conn, path, &mut buf).await {
                        Ok(_) => done.set(done.get() + 1),
                        Err(_) => {
                            failed.set(failed.get() + 1);
                            return;
                        }
                    }
                }
            }));
        }
        let mut report = solo::time::interval(Duration::from_secs(5));
        while start.elapsed() < duration {
            report.tick().await;
            eprintln!(
                "load: {:.0} s, {} requests, {} failed",
                start.elapsed().as_secs_f64(),
                done.get(),
                failed.get()
            );
        }
        for w in workers {
            let _ = w.await;
        }
        keep_idle.abort();
        eprintln!("load: done: {} requests, {} failed", done.get(), failed.get());
        Ok(())
    })
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut port, mut client, mut duration) = (8080u16, false, 60u64);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| {
            args.next()
                .ok_or_else(|| std::io::Error::other(format!("{what} needs a value")))
        };
        match arg.as_str() {
            "--port" => port = value("--port")?.parse().map_err(std::io::Error::other)?,
            "--duration" => duration = value("--duration")?.parse().map_err(std::io::Error::other)?,
            "--load" => client = true,
            other => return Err(std::io::Error::other(format!("unknown argument {other:?}"))),
        }
    }
    if client {
        return load(port, Duration::from_secs(duration));
    }
    let (server, sampler) = tour(port)?;
    println!("tour: open http://{}/", server.local_addr()?);
    solo::Runtime::new()?.block_on(async move {
        solo::spawn(sampler);
        server.serve_watching_signals().await
    })
}
