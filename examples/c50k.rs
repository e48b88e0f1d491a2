//! c50k: 50,000 concurrent keep-alive connections on one core, measured.
//!
//! ```text
//! cargo run --release --example c50k [-- -n 50000 --duration 10 --rate 20000 --active 256 --procs K --port 8090]
//! cargo run --release --example c50k -- --target 127.0.0.1:8086   # load another server
//! ```
//!
//! One command runs everything: solo server process(es) pinned to CPU 0 and
//! load-client process(es) on solo's own runtime pinned to CPU 1 (the same
//! binary, re-executed with `--role`). The orchestrator drives six phases
//! over the children's stdin/stdout, printing a progress line a second, and
//! then what it measured:
//!
//! 1. connect: every connection opened and one request answered on it;
//! 2. idle hold: server RSS growth per connection (user space), and the
//!    kernel's TCP memory from /proc/net/sockstat, separately;
//! 3. held and active: every connection stays open while `--active` K of
//!    them (default 256) run closed loop for `--duration` s: the throughput
//!    and latency a real server's users see with tens of thousands held;
//! 4. all active: every connection sends back to back (a stress figure: with
//!    N requests always outstanding its latency is time in the queue, about
//!    N / throughput, and the report says so);
//! 5. open loop: `--rate` requests/s spread over all connections, latency
//!    measured from each request's *scheduled* time (no coordinated
//!    omission), and server CPU at that fixed offered rate;
//! 6. teardown: everything closed, server descriptors back to the baseline.
//!
//! Phases 3 to 5 report the client processes' CPU next to the server's: a
//! client near 100 % of its core set the rate, not the server.
//!
//! Last, the blog post's five claims, each with the figure of this run that
//! tests it and whether it was met. With `--target`, the server figures are
//! those of the processes holding the target's listening socket (found
//! through /proc/net/tcp and /proc/*/fd), or "not measured".
//!
//! When the per-process descriptor limit (hard `RLIMIT_NOFILE`) is below what
//! one process needs, it says so and runs K server processes that share the
//! port with `SO_REUSEPORT`, all pinned to the same core, so one core still
//! serves every connection. Exits non-zero if any connection failed or any
//! response was wrong. Every figure is measured during the run.

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use solo::http::{Config, Histogram, Request, Response, Server};
use solo::net::TcpStream;
use solo::sync::Semaphore;
use solo::{spawn, Runtime};

/// Descriptors kept free in each process beyond its connections.
const FD_MARGIN: u64 = 100;
/// Most connections given to one source address. One address has ~28k
/// ephemeral ports here, but earlier runs leave tens of thousands of them in
/// TIME_WAIT for a minute; 5,000 per address keeps clear of that.
const PER_SOURCE_IP: usize = 5_000;
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
const BODY: &[u8] = b"Hello, World!";

struct Args {
    connections: usize,
    procs: Option<usize>,
    duration: u64,
    rate: u64,
    port: u16,
    target: Option<SocketAddr>,
    role: Option<String>,
    first: usize,
    active: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        connections: 50_000,
        procs: None,
        duration: 10,
        rate: 20_000,
        port: 8090,
        target: None,
        role: None,
        first: 0,
        active: 256,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "-n" | "--connections" => a.connections = value("-n")?.parse().map_err(|e| format!("-n: {e}"))?,
            "--procs" => a.procs = Some(value("--procs")?.parse().map_err(|e| format!("--procs: {e}"))?),
            "--duration" => a.duration = value("--duration")?.parse().map_err(|e| format!("--duration: {e}"))?,
            "--rate" => a.rate = value("--rate")?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--port" => a.port = value("--port")?.parse().map_err(|e| format!("--port: {e}"))?,
            "--target" => a.target = Some(value("--target")?.parse().map_err(|e| format!("--target: {e}"))?),
            "--role" => a.role = Some(value("--role")?),
            "--first" => a.first = value("--first")?.parse().map_err(|e| format!("--first: {e}"))?,
            "--active" => a.active = value("--active")?.parse().map_err(|e| format!("--active: {e}"))?,
            "-h" | "--help" => {
                return Err(
                    "usage: c50k [-n N] [--procs K] [--duration S] [--rate R] [--active K] [--port P] [--target ADDR]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if a.connections == 0 || a.procs == Some(0) || a.duration == 0 {
        return Err("-n, --procs and --duration must be at least 1".into());
    }
    Ok(a)
}

/// Raises the soft descriptor limit to the hard one; returns the hard limit.
#[cfg(unix)]
fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        lim.rlim_max as u64
    }
}

/// Windows has no descriptor limit to raise (its handle table is ~16 M).
#[cfg(not(unix))]
fn raise_nofile() -> u64 {
    1 << 24
}

/// Pins this process to one CPU (Linux); elsewhere a no-op, said once.
fn pin_to(cpu: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: sched_setaffinity reads a cpu_set_t we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("c50k: {e}");
            std::process::exit(2);
        }
    };
    let code = match args.role.as_deref() {
        Some("server") => run_server(&args),
        Some("client") => run_client(&args),
        Some(other) => {
            eprintln!("c50k: unknown role {other}");
            2
        }
        None => match orchestrate(&args) {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                eprintln!("c50k: {e}");
                1
            }
        },
    };
    std::process::exit(code);
}

// ---------------------------------------------------------------- server

fn run_server(args: &Args) -> i32 {
    raise_nofile();
    pin_to(0);
    let config = Config {
        max_connections: 1_000_000,
        keep_alive_timeout: Duration::from_secs(600),
        ..Config::default()
    };
    // Several server processes share the port where SO_REUSEPORT exists.
    let bound = if cfg!(unix) {
        Server::bind_reuse_port(("127.0.0.1", args.port))
    } else {
        Server::bind(("127.0.0.1", args.port))
    };
    let server = match bound {
        Ok(s) => s
            .config(config)
            .get("/", |_req: Request| async { Response::text("Hello, World!") }),
        Err(e) => {
            eprintln!("c50k server: cannot listen on 127.0.0.1:{}: {e}", args.port);
            return 1;
        }
    };
    println!("READY {}", std::process::id());
    let _ = io::stdout().flush();
    match server.run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("c50k server: {e}");
            1
        }
    }
}

// ---------------------------------------------------------------- client

/// Reads one response to `GET /` and checks it is `200 Hello, World!`.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = &buf[..end];
            let len = head
                .split(|&b| b == b'\n')
                .find_map(|l| l.strip_prefix(b"Content-Length: "))
                .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "response without Content-Length"))?;
            if buf.len() >= end + 4 + len {
                if !buf.starts_with(b"HTTP/1.1 200 ")
                    || &buf[end + 4..end + 4 + len] != BODY
                    || buf.len() != end + 4 + len
                {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "wrong response"));
                }
                return Ok(());
            }
        }
    }
}

async fn request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    stream.write_all(REQUEST).await?;
    read_response(stream, buf).await
}

struct ClientState {
    target: SocketAddr,
    first: usize,
    conns: RefCell<Vec<TcpStream>>,
    errors: Cell<u64>,
    /// Connections opened or requests answered in the current phase, for
    /// the once-a-second progress line.
    progress: Cell<u64>,
}

impl ClientState {
    fn step(&self) {
        self.progress.set(self.progress.get() + 1);
    }
}

/// Prints `progress COUNT` once a second for the orchestrator until the
/// phase ends (the handle is aborted).
fn report_progress(state: &Rc<ClientState>) -> solo::JoinHandle<()> {
    state.progress.set(0);
    let state = state.clone();
    spawn(async move {
        loop {
            solo::time::sleep(Duration::from_secs(1)).await;
            println!("progress {}", state.progress.get());
            let _ = io::stdout().flush();
        }
    })
}

fn run_client(args: &Args) -> i32 {
    raise_nofile();
    if cpus() > 1 {
        pin_to(1);
    }
    let rt = Runtime::new().expect("runtime");
    let state = Rc::new(ClientState {
        target: args.target.expect("client needs --target"),
        first: args.first,
        conns: RefCell::new(Vec::new()),
        errors: Cell::new(0),
        progress: Cell::new(0),
    });
    let stdin = io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["connect", n] => rt.block_on(client_connect(state.clone(), n.parse().unwrap_or(0))),
            ["closed", secs] => rt.block_on(client_closed(state.clone(), usize::MAX, secs.parse().unwrap_or(1))),
            ["active", k, secs] => rt.block_on(client_closed(
                state.clone(),
                k.parse().unwrap_or(0),
                secs.parse().unwrap_or(1),
            )),
            ["open", rate, secs] => rt.block_on(client_open(
                state.clone(),
                rate.parse().unwrap_or(1),
                secs.parse().unwrap_or(1),
            )),
            ["close"] => {
                state.conns.borrow_mut().clear();
                "closed".to_string()
            }
            _ => format!("error unknown command {line:?}"),
        };
        println!("{reply}");
        let _ = io::stdout().flush();
    }
    0
}

/// Opens `n` connections (at most 1,000 connecting at once), each answering
/// one request. Reply: `connected OK FAILED SECONDS`.
async fn client_connect(state: Rc<ClientState>, n: usize) -> String {
    let start = Instant::now();
    let reporter = report_progress(&state);
    let gate = Rc::new(Semaphore::new(1000));
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let global = state.first + i;
        let source = Ipv4Addr::new(127, 0, 0, 2 + (global / PER_SOURCE_IP) as u8);
        let (gate, target, state) = (gate.clone(), state.target, state.clone());
        handles.push(spawn(async move {
            let _permit = gate.acquire().await.map_err(io::Error::other)?;
            let mut s = TcpStream::connect_from(SocketAddr::V4(SocketAddrV4::new(source, 0)), target).await?;
            s.set_nodelay(true)?;
            let mut buf = Vec::with_capacity(256);
            request(&mut s, &mut buf).await?;
            state.step();
            Ok::<_, io::Error>(s)
        }));
    }
    let (mut ok, mut failed) = (0, 0);
    let mut first_error = None;
    for h in handles {
        match h.await {
            Ok(Ok(s)) => {
                state.conns.borrow_mut().push(s);
                ok += 1;
            }
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    reporter.abort();
    if let Some(e) = first_error {
        eprintln!("c50k client: first connect error: {e}");
    }
    format!("connected {ok} {failed} {:.3}", start.elapsed().as_secs_f64())
}

/// Waits for the per-connection tasks of a phase and keeps the connections
/// that are still good; returns how many were lost to an error.
async fn take_back(state: &ClientState, handles: Vec<solo::JoinHandle<Option<TcpStream>>>) -> u64 {
    let mut errors = 0;
    for h in handles {
        match h.await {
            Ok(Some(s)) => state.conns.borrow_mut().push(s),
            _ => errors += 1,
        }
    }
    errors
}

/// The first `k` connections (all of them for `usize::MAX`) send back to
/// back for `secs`; the rest stay open and idle. Reply:
/// `closed REQUESTS ERRORS HISTOGRAM`.
async fn client_closed(state: Rc<ClientState>, k: usize, secs: u64) -> String {
    let hist = Rc::new(Histogram::default());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut conns = std::mem::take(&mut *state.conns.borrow_mut());
    // The held ones go back at once; the active ones when their task ends.
    let held = conns.split_off(k.min(conns.len()));
    state.conns.borrow_mut().extend(held);
    let reporter = report_progress(&state);
    let handles: Vec<_> = conns
        .into_iter()
        .map(|mut s| {
            let (hist, state) = (hist.clone(), state.clone());
            spawn(async move {
                let mut buf = Vec::with_capacity(256);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    if let Err(e) = request(&mut s, &mut buf).await {
                        state.errors.set(state.errors.get() + 1);
                        eprintln!("c50k client: request failed: {e}");
                        return None;
                    }
                    hist.record(t.elapsed().as_micros() as u64);
                    state.step();
                }
                Some(s)
            })
        })
        .collect();
    let errors = take_back(&state, handles).await;
    reporter.abort();
    format!("closed {} {errors} {}", hist.count(), hist.to_line())
}

/// `rate` requests/s for `secs`, round-robin over the connections; each
/// latency is measured from the request's scheduled send time, so a late
/// send counts against the server (no coordinated omission). Reply:
/// `open REQUESTS ERRORS LATE_SENDS HISTOGRAM`.
async fn client_open(state: Rc<ClientState>, rate: u64, secs: u64) -> String {
    let hist = Rc::new(Histogram::default());
    let conns = std::mem::take(&mut *state.conns.borrow_mut());
    let n = conns.len();
    if n == 0 || rate == 0 {
        return format!("open 0 0 0 {}", hist.to_line());
    }
    // One queue of scheduled instants per connection; a task per connection
    // sends them in order.
    let queues: Vec<Rc<RefCell<std::collections::VecDeque<Instant>>>> = (0..n).map(|_| Rc::default()).collect();
    let wakers: Vec<Rc<Semaphore>> = (0..n).map(|_| Rc::new(Semaphore::new(0))).collect();
    let done = Rc::new(Cell::new(false));
    let parked = Rc::new(Cell::new(0usize));
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            let (hist, queue, wake, done, state) = (
                hist.clone(),
                queues[i].clone(),
                wakers[i].clone(),
                done.clone(),
                state.clone(),
            );
            let parked = parked.clone();
            spawn(async move {
                let mut buf = Vec::with_capacity(256);
                parked.set(parked.get() + 1);
                loop {
                    let next = queue.borrow_mut().pop_front();
                    let Some(scheduled) = next else {
                        if done.get() {
                            return Some(s);
                        }
                        if let Ok(p) = wake.acquire().await {
                            p.forget();
                        }
                        continue;
                    };
                    if let Err(e) = request(&mut s, &mut buf).await {
                        state.errors.set(state.errors.get() + 1);
                        eprintln!("c50k client: request failed: {e}");
                        return None;
                    }
                    hist.record(scheduled.elapsed().as_micros() as u64);
                    state.step();
                }
            })
        })
        .collect();
    // Start the clock only once every connection's task has run and parked:
    // polling tens of thousands of new tasks takes milliseconds, and requests
    // scheduled meanwhile would charge that start-up burst to the server.
    while parked.get() < n {
        solo::yield_now().await;
    }
    let reporter = report_progress(&state);
    let start = Instant::now();
    let total = rate * secs;
    let mut sent = 0u64;
    let mut late = 0u64;
    // The client owns its core: instead of sleeping on the 1 ms wheel (which
    // would send each request up to a millisecond after its time and charge
    // that to the server), the scheduler yields once per loop turn, so the
    // reactor still runs between sends, and sends each request when due.
    while sent < total {
        solo::yield_now().await;
        let elapsed = start.elapsed();
        // Request k is due at k / rate, so by time t, floor(t * rate) + 1 are.
        let due = ((elapsed.as_secs_f64() * rate as f64) as u64 + 1).min(total);
        if due == sent {
            // Nothing due: give the core to the other client processes that
            // share it (with 50k connections over 3 processes, all spin here).
            std::thread::yield_now();
        }
        while sent < due {
            // The instant this request was due, not when we got to it.
            let scheduled = start + Duration::from_secs_f64(sent as f64 / rate as f64);
            if scheduled + Duration::from_micros(200) < Instant::now() {
                late += 1;
            }
            let i = (sent as usize) % n;
            queues[i].borrow_mut().push_back(scheduled);
            wakers[i].add_permits(1);
            sent += 1;
        }
    }
    done.set(true);
    for w in &wakers {
        w.add_permits(1);
    }
    let errors = take_back(&state, handles).await;
    reporter.abort();
    format!("open {} {errors} {late} {}", hist.count(), hist.to_line())
}

// ---------------------------------------------------------------- orchestrator

struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Proc {
    fn spawn(args: &[String]) -> io::Result<Proc> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(Proc { child, stdin, stdout })
    }

    fn send(&mut self, line: &str) -> io::Result<()> {
        let stdin = self.stdin.as_mut().ok_or_else(|| io::Error::other("stdin closed"))?;
        writeln!(stdin, "{line}")?;
        stdin.flush()
    }

    fn recv(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(io::Error::other(format!("child {} exited", self.child.id())));
        }
        Ok(line.trim_end().to_string())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // SAFETY: kill(2) on the PID of a child we started and have not
        // reaped yet; SIGTERM asks solo's servers for a graceful stop.
        #[cfg(unix)]
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM)
        };
        // Elsewhere there is no graceful signal: end it.
        #[cfg(not(unix))]
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What /proc says of one process, or of several summed.
#[derive(Clone, Copy, Default)]
struct ProcFigures {
    rss: u64,
    /// CPU seconds, user and kernel.
    cpu: f64,
    /// The kernel's part of `cpu` (system time: the syscalls and the
    /// network stack under them).
    kernel: f64,
    fds: u64,
}

/// RSS, CPU time and open descriptors of a process, from /proc.
#[cfg(target_os = "linux")]
fn proc_figures(pid: u32) -> Option<ProcFigures> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let (user, system): (u64, u64) = (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(ProcFigures {
        rss: rss_kb * 1024,
        cpu: (user + system) as f64 / hz,
        kernel: system as f64 / hz,
        fds,
    })
}

/// Without /proc there is no figure: the report says "not measured".
#[cfg(not(target_os = "linux"))]
fn proc_figures(_pid: u32) -> Option<ProcFigures> {
    None
}

/// Kernel TCP memory in bytes (/proc/net/sockstat counts pages).
#[cfg(not(target_os = "linux"))]
fn kernel_tcp_bytes() -> Option<u64> {
    None
}

/// Kernel TCP memory in bytes (/proc/net/sockstat counts pages).
#[cfg(target_os = "linux")]
fn kernel_tcp_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let line = s.lines().find(|l| l.starts_with("TCP:"))?;
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "mem" {
            let pages: u64 = words.next()?.parse().ok()?;
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
            return Some(pages * page);
        }
    }
    None
}

/// The figures of `pids`, summed; `None` when there are none or one cannot
/// be read.
fn sum_pids(pids: &[u32]) -> Option<ProcFigures> {
    if pids.is_empty() {
        return None;
    }
    let mut total = ProcFigures::default();
    for &pid in pids {
        let one = proc_figures(pid)?;
        total.rss += one.rss;
        total.cpu += one.cpu;
        total.kernel += one.kernel;
        total.fds += one.fds;
    }
    Some(total)
}

/// The processes holding a socket that listens on `port` (Linux): the
/// socket's inode from /proc/net/tcp{,6}, then every /proc/PID/fd that
/// points at it. Empty where /proc says nothing (other systems, or no
/// permission).
fn listening_pids(port: u16) -> Vec<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT; st 0A is LISTEN; inode is field 9.
            let listens = f.get(3) == Some(&"0A");
            let on_port = f
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok())
                == Some(port);
            if listens && on_port {
                if let Some(inode) = f.get(9) {
                    inodes.push(format!("socket:[{inode}]"));
                }
            }
        }
    }
    let mut pids = Vec::new();
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .ok()
                .and_then(|l| l.to_str().map(|l| inodes.iter().any(|i| i == l)))
                .unwrap_or(false)
        });
        if holds {
            pids.push(pid);
        }
    }
    pids
}

/// Sends each client its command, prints one progress line a second (the
/// sum over the clients of what they did so far, and its rate), and returns
/// each client's final reply.
fn run_phase(
    clients: &mut [Proc],
    label: &str,
    unit: &str,
    command: impl Fn(usize) -> String,
) -> Result<Vec<String>, String> {
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(&command(i)).map_err(|e| e.to_string())?;
    }
    let mut finals: Vec<Option<String>> = vec![None; clients.len()];
    let mut latest = vec![0u64; clients.len()];
    let start = Instant::now();
    let (mut last_total, mut last_at) = (0u64, start);
    while finals.iter().any(Option::is_none) {
        let mut heard = false;
        for (i, c) in clients.iter_mut().enumerate() {
            if finals[i].is_some() {
                continue;
            }
            let line = c.recv().map_err(|e| e.to_string())?;
            match line.strip_prefix("progress ") {
                Some(v) => {
                    latest[i] = v.parse().unwrap_or(latest[i]);
                    heard = true;
                }
                None => finals[i] = Some(line),
            }
        }
        if heard {
            let total: u64 = latest.iter().sum();
            let rate = (total - last_total.min(total)) as f64 / last_at.elapsed().as_secs_f64().max(1e-9);
            println!(
                "  {label:<14} {:>4.0} s  {total:>9} {unit}  ({rate:.0}/s)",
                start.elapsed().as_secs_f64()
            );
            let _ = io::stdout().flush();
            (last_total, last_at) = (total, Instant::now());
        }
    }
    Ok(finals.into_iter().flatten().collect())
}

/// Sums field `i` of each reply (`1` counts a missing one as an error when
/// `missing` is 1).
fn sum_field(replies: &[String], i: usize, missing: u64) -> u64 {
    replies
        .iter()
        .map(|r| {
            r.split_whitespace()
                .nth(i)
                .and_then(|v| v.parse().ok())
                .unwrap_or(missing)
        })
        .sum()
}

/// Merges the histograms that start at field `from` of each reply.
fn merge_hists(replies: &[String], from: usize) -> Histogram {
    let merged = Histogram::default();
    for r in replies {
        let w: Vec<&str> = r.split_whitespace().collect();
        merged.merge(&parse_hist(&w[from.min(w.len())..]));
    }
    merged
}

/// The CPU of the server's and of the client's processes over a phase, as
/// % of one core (`None` where their figures cannot be read).
#[derive(Clone, Copy)]
struct PhaseCpu {
    server: Option<f64>,
    /// The part of `server` spent in the kernel.
    server_kernel: Option<f64>,
    client: Option<f64>,
}

impl PhaseCpu {
    /// "server CPU S% of one core, K% in the kernel (client CPU C%)": near
    /// 100 % for the client means the client, not the server, set the rate;
    /// the kernel's part is the syscalls and the TCP stack, which no server
    /// can do with less of than one read and one write a request.
    fn describe(self) -> String {
        // One decimal: user space is the difference of the two, often a
        // tenth of the whole, and whole percents would blur it.
        let server = or_not_measured(self.server.map(|c| format!("{c:.1}% of one core")));
        let kernel = self
            .server_kernel
            .map_or(String::new(), |k| format!(", {k:.1}% in the kernel"));
        let client = or_not_measured(self.client.map(|c| format!("{c:.0}%")));
        format!("server CPU {server}{kernel} (client CPU {client})")
    }
}

/// Runs `phase`, and the server's and client's CPU over it.
fn measured<R>(
    figures: &dyn Fn() -> Option<ProcFigures>,
    client_figures: &dyn Fn() -> Option<ProcFigures>,
    phase: impl FnOnce() -> Result<R, String>,
) -> Result<(R, PhaseCpu), String> {
    let (before, client_before, t) = (figures(), client_figures(), Instant::now());
    let result = phase()?;
    let wall = t.elapsed().as_secs_f64();
    let share = |after: Option<ProcFigures>, before: Option<ProcFigures>, part: fn(&ProcFigures) -> f64| {
        after
            .zip(before)
            .map(|(after, before)| (part(&after) - part(&before)) / wall * 100.0)
    };
    let server_after = figures();
    let cpu = PhaseCpu {
        server: share(server_after, before, |f| f.cpu),
        server_kernel: share(server_after, before, |f| f.kernel),
        client: share(client_figures(), client_before, |f| f.cpu),
    };
    Ok((result, cpu))
}

fn or_not_measured(v: Option<String>) -> String {
    v.unwrap_or_else(|| "not measured".into())
}

fn parse_hist(words: &[&str]) -> Histogram {
    Histogram::from_line(&words.join(" ")).unwrap_or_default()
}

fn orchestrate(args: &Args) -> Result<bool, String> {
    let hard = raise_nofile();
    let per_process = hard.saturating_sub(FD_MARGIN).max(1) as usize;
    let mut n = args.connections;
    let own_server = args.target.is_none();
    let procs = match args.procs {
        Some(k) => {
            if n > per_process * k {
                let max = per_process * k;
                println!(
                    "RLIMIT_NOFILE hard limit is {hard} per process: {k} process(es) hold at most {max} connections; running {max} instead of {n}."
                );
                n = max;
            }
            k
        }
        None => {
            let k = n.div_ceil(per_process);
            if k > 1 {
                let how = if own_server {
                    format!(
                        "{k} processes on each side, the servers sharing port {} with SO_REUSEPORT, all on CPU 0",
                        args.port
                    )
                } else {
                    format!("{k} client processes")
                };
                println!(
                    "RLIMIT_NOFILE hard limit is {hard} per process, below the {} one process needs for {n} connections \
                     (raise it with `ulimit -Hn {}` as root, or in /etc/security/limits.conf); using {how}.",
                    n as u64 + FD_MARGIN,
                    n as u64 + FD_MARGIN,
                );
            }
            k
        }
    };
    let target = args
        .target
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], args.port)));
    let mut servers = Vec::new();
    if own_server {
        for _ in 0..procs {
            let mut p = Proc::spawn(&["--role".into(), "server".into(), "--port".into(), args.port.to_string()])
                .map_err(|e| format!("cannot start a server process: {e}"))?;
            let ready = p.recv().map_err(|e| format!("server did not start: {e}"))?;
            if !ready.starts_with("READY") {
                return Err(format!("server said {ready:?}"));
            }
            servers.push(p);
        }
    }
    let client_procs = if own_server { procs } else { n.div_ceil(per_process) };
    let mut clients = Vec::new();
    let mut shares = Vec::new();
    for j in 0..client_procs {
        let share = n / client_procs + usize::from(j < n % client_procs);
        let first: usize = shares.iter().sum();
        let p = Proc::spawn(&[
            "--role".into(),
            "client".into(),
            "--target".into(),
            target.to_string(),
            "--first".into(),
            first.to_string(),
        ])
        .map_err(|e| format!("cannot start a client process: {e}"))?;
        clients.push(p);
        shares.push(share);
    }
    let cpu_note = match (cpus() > 1, own_server) {
        (true, true) => "server(s) on CPU 0, client(s) on CPU 1",
        (true, false) => "the target where it runs, client(s) on CPU 1",
        (false, _) => "one CPU: server and client share it",
    };
    println!(
        "c50k: {n} connections to {target}; {} server process(es), {} client process(es); {cpu_note}",
        servers.len(),
        clients.len()
    );
    std::thread::sleep(Duration::from_millis(300));
    // Whose figures are the server's: our own children, or whatever holds the
    // target's listening socket (found through /proc).
    let server_pids: Vec<u32> = if own_server {
        servers.iter().map(|p| p.child.id()).collect()
    } else {
        let pids = listening_pids(target.port());
        if pids.is_empty() {
            println!(
                "c50k: no process found listening on port {} in /proc: the target's memory and CPU are not measured",
                target.port()
            );
        } else {
            println!("c50k: measuring the target's processes {pids:?} (they hold its listening socket)");
        }
        pids
    };
    let figures = || sum_pids(&server_pids);
    let client_pids: Vec<u32> = clients.iter().map(|c: &Proc| c.child.id()).collect();
    let client_figures = || sum_pids(&client_pids);
    let baseline = figures();
    let tcp_before = kernel_tcp_bytes();
    let mut ok_overall = true;
    let mut report: Vec<(String, String)> = Vec::new();
    let nclients = clients.len();

    // 1. connect
    println!("phases (a progress line a second):");
    let replies = run_phase(&mut clients, "1 connect", "open", |i| format!("connect {}", shares[i]))?;
    let (connected, failed) = (sum_field(&replies, 1, 0), sum_field(&replies, 2, 0));
    let secs = replies
        .iter()
        .filter_map(|r| r.split_whitespace().nth(3).and_then(|v| v.parse::<f64>().ok()))
        .fold(0.0, f64::max);
    ok_overall &= failed == 0 && connected == n as u64;
    report.push((
        "1 connect".into(),
        format!(
            "{connected} connected, {failed} failed, in {secs:.2} s ({:.0} connects/s)",
            connected as f64 / secs.max(1e-9)
        ),
    ));

    // 2. idle hold
    std::thread::sleep(Duration::from_secs(2));
    let idle = figures();
    let tcp_idle = kernel_tcp_bytes();
    let bytes_per_conn = match (baseline, idle) {
        (Some(b), Some(i)) if connected > 0 => Some(i.rss.saturating_sub(b.rss) / connected),
        _ => None,
    };
    let per_conn = match (bytes_per_conn, baseline, idle) {
        (Some(per), Some(b), Some(i)) => format!(
            "{per} B/conn user space (server RSS {} → {} KiB)",
            b.rss / 1024,
            i.rss / 1024
        ),
        _ => "user space per connection not measured (no server process found in /proc)".into(),
    };
    let kernel = match (tcp_before, tcp_idle) {
        (Some(b), Some(i)) if connected > 0 => format!(
            "kernel TCP memory {} B/conn (both ends; /proc/net/sockstat)",
            i.saturating_sub(b) / connected
        ),
        _ => "kernel TCP memory not measured".into(),
    };
    report.push(("2 idle hold".into(), format!("{per_conn}; {kernel}")));

    // 3. held and active: every connection stays open, K of them at full speed.
    let k = args.active.min(connected as usize).max(1);
    let (replies, cpu) = measured(&figures, &client_figures, || {
        run_phase(&mut clients, "3 held+active", "requests", |i| {
            format!(
                "active {} {}",
                k / nclients + usize::from(i < k % nclients),
                args.duration
            )
        })
    })?;
    let (requests, errors) = (sum_field(&replies, 1, 0), sum_field(&replies, 2, 1));
    let active_rps = requests as f64 / args.duration as f64;
    let active = merge_hists(&replies, 3);
    ok_overall &= errors == 0;
    report.push((
        "3 held+active".into(),
        format!(
            "{connected} open, {k} of them closed loop: {active_rps:.0} req/s, {errors} failed; latency p50 {} µs, p99 {} µs, p999 {} µs; {}",
            active.quantile(0.5),
            active.quantile(0.99),
            active.quantile(0.999),
            cpu.describe()
        ),
    ));

    // 4. all active: every connection sends back to back (a stress figure).
    let (replies, cpu) = measured(&figures, &client_figures, || {
        run_phase(&mut clients, "4 all active", "requests", |_| {
            format!("closed {}", args.duration)
        })
    })?;
    let (requests, errors) = (sum_field(&replies, 1, 0), sum_field(&replies, 2, 1));
    let rps = requests as f64 / args.duration as f64;
    let merged = merge_hists(&replies, 3);
    ok_overall &= errors == 0;
    report.push((
        "4 all active".into(),
        format!(
            "{rps:.0} req/s over {}s, {errors} failed; {}. With all {connected} connections \
             waiting on a response at every instant, latency here is time in the queue, not service time: \
             p50 {} µs ≈ {connected} / {rps:.0} req/s = {:.0} µs (Little's law); phase 3 and 5 give the latency a client sees",
            args.duration,
            cpu.describe(),
            merged.quantile(0.5),
            connected as f64 / rps.max(1e-9) * 1e6
        ),
    ));

    // 5. open loop: a fixed offered rate, latency from each scheduled send.
    let (replies, open_cpu) = measured(&figures, &client_figures, || {
        run_phase(&mut clients, "5 open loop", "requests", |i| {
            let rate = (args.rate as f64 * shares[i] as f64 / n as f64).round() as u64;
            format!("open {} {}", rate.max(1), args.duration)
        })
    })?;
    let (requests, errors, late) = (
        sum_field(&replies, 1, 0),
        sum_field(&replies, 2, 1),
        sum_field(&replies, 3, 0),
    );
    let open = merge_hists(&replies, 4);
    ok_overall &= errors == 0;
    report.push((
        "5 open loop".into(),
        format!(
            "{requests} requests at {} req/s, {errors} failed, {late} sent >200 µs late by the client; \
             latency from scheduled send: p50 {} µs, p99 {} µs, p999 {} µs, max {} µs; {}",
            args.rate,
            open.quantile(0.5),
            open.quantile(0.99),
            open.quantile(0.999),
            open.max(),
            open_cpu.describe()
        ),
    ));

    // 6. teardown
    for c in &mut clients {
        c.send("close").map_err(|e| e.to_string())?;
        c.recv().map_err(|e| e.to_string())?;
    }
    let mut fds_back = None;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        fds_back = match (baseline, figures()) {
            (Some(b), Some(now)) => Some((b.fds, now.fds)),
            _ => None,
        };
        if fds_back.is_some_and(|(b, now)| now <= b) {
            break;
        }
    }
    let teardown = match fds_back {
        Some((b, now)) => {
            ok_overall &= now <= b;
            format!(
                "server descriptors {now} (baseline {b}){}",
                if now <= b { "" } else { ": LEAKED" }
            )
        }
        None => "all closed (server descriptors not measured)".into(),
    };
    report.push(("6 teardown".into(), teardown));

    // The blog post's claims, each against the figure of this run that tests it.
    let verdict = |met: Option<bool>| match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measured",
    };
    let one_core = if own_server {
        format!("{} server process(es), all pinned to CPU 0", servers.len())
    } else {
        "the target's own CPU placement".into()
    };
    let claims: Vec<(&str, String, &str)> = vec![
        (
            "50,000+ connections on one core",
            format!("{connected} connected, {failed} failed; {one_core} (phase 1)"),
            verdict(Some(connected >= 50_000 && failed == 0)),
        ),
        (
            "about 2 KB per connection",
            bytes_per_conn.map_or("not measured".into(), |b| {
                format!("{b} B/conn in the server's user space (phase 2)")
            }),
            verdict(bytes_per_conn.map(|b| b <= 2048)),
        ),
        (
            "sub-100 µs responses",
            format!(
                "p50 {} µs, p99 {} µs at {} req/s offered (phase 5)",
                open.quantile(0.5),
                open.quantile(0.99),
                args.rate
            ),
            verdict(Some(open.quantile(0.5) < 100)),
        ),
        (
            "100,000+ req/s",
            format!("{active_rps:.0} req/s from {k} active of {connected} open (phase 3)"),
            verdict(Some(active_rps >= 100_000.0)),
        ),
        (
            "CPU below 70 % under high load",
            open_cpu.server.map_or("not measured".into(), |c| {
                format!("{c:.0}% of one core at {} req/s offered (phase 5)", args.rate)
            }),
            verdict(open_cpu.server.map(|c| c < 70.0)),
        ),
    ];
    println!();
    println!(
        "c50k report ({}; all figures measured in this run)",
        if ok_overall { "OK" } else { "FAILED" }
    );
    for (phase, text) in &report {
        println!("  {phase:<14} {text}");
    }
    println!();
    println!("the blog post's claims, against this run (at -n {n}; the post's figures were invented):");
    for (claim, figure, met) in &claims {
        println!("  {claim:<33} {met:<13} {figure}");
    }
    drop(clients);
    drop(servers);
    Ok(ok_overall)
}
