//! WebSocket side by side: solo against tokio-tungstenite on tokio's
//! current_thread runtime, the same client for both.
//!
//! ```text
//! cargo bench --bench ws [-- --idle N --conns C --duration S --rounds R]
//! ```
//! Each server runs as its own process (this binary again), pinned to CPU 0
//! where `taskset` exists; the client runs here, pinned to CPU 1. Per round
//! and server: bytes of server RSS per idle WebSocket (`N`, default 10,000,
//! open after the handshake, measured as VmRSS after − before over N), then
//! an echo of 32-byte text messages on `C` connections (default 64) in
//! closed loop for `S` seconds (default 5): messages a second, and server
//! CPU per message (utime + stime from /proc). Rounds alternate the servers;
//! medians are printed. Linux only (it reads /proc).

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    const SERVE: &str = "SOLO_WS_BENCH_SERVE";

    pub fn main() {
        if let Ok(kind) = std::env::var(SERVE) {
            let port: u16 = std::env::var("SOLO_WS_BENCH_PORT").unwrap().parse().unwrap();
            match kind.as_str() {
                "solo" => serve_solo(port),
                "tokio-tungstenite" => serve_tokio(port),
                other => panic!("unknown server {other}"),
            }
            return;
        }
        let mut args = std::env::args().skip(1);
        let (mut idle, mut conns, mut secs, mut rounds) = (10_000usize, 64usize, 5u64, 2usize);
        while let Some(a) = args.next() {
            let mut v = || args.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            match a.as_str() {
                "--idle" => idle = v() as usize,
                "--conns" => conns = v() as usize,
                "--duration" => secs = v(),
                "--rounds" => rounds = v() as usize,
                _ => {} // cargo bench passes --bench
            }
        }
        raise_nofile();
        pin_self(1);
        let servers = ["solo", "tokio-tungstenite"];
        // Per server: (bytes per idle WebSocket, msg/s, µs per message) per round.
        type Rounds = Vec<(f64, f64, f64)>;
        let mut results: Vec<(&str, Rounds)> = servers.iter().map(|s| (*s, Vec::new())).collect();
        for round in 0..rounds {
            for (i, name) in servers.iter().enumerate() {
                let port = 18700 + (round * 2 + i) as u16;
                let server = Server::start(name, port);
                let per_idle = idle_bytes(&server, idle);
                let (rate, cpu_us) = echo(&server, conns, Duration::from_secs(secs));
                eprintln!(
                    "round {}: {name:>17}: {per_idle:>7.0} B per idle WebSocket ({idle} open), echo {rate:>9.0} msg/s, {cpu_us:.2} µs server CPU per message",
                    round + 1
                );
                results[i].1.push((per_idle, rate, cpu_us));
            }
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        };
        println!("\n| server | B per idle WebSocket ({idle}) | echo msg/s ({conns} conns) | server µs per message |");
        println!("|---|---|---|---|");
        for (name, r) in &results {
            println!(
                "| {name} | {:.0} | {:.0} | {:.2} |",
                median(r.iter().map(|x| x.0).collect()),
                median(r.iter().map(|x| x.1).collect()),
                median(r.iter().map(|x| x.2).collect())
            );
        }
    }

    // ---- the two servers ----

    fn serve_solo(port: u16) {
        use solo::http::ws::{self, Message, WsConfig};
        use solo::http::{Config, Request, Server};
        // SOLO_WS_NO_IDLE=1 measures without the idle timer (its cost).
        let ws_config = if std::env::var("SOLO_WS_NO_IDLE").is_ok() {
            WsConfig {
                idle_timeout: None,
                ..WsConfig::default()
            }
        } else {
            WsConfig::default()
        };
        let server = Server::bind(("127.0.0.1", port))
            .unwrap()
            .config(Config {
                max_connections: 100_000,
                ..Config::default()
            })
            .get("/", move |req: Request| {
                let ws_config = ws_config.clone();
                async move {
                    ws::upgrade(&req, ws_config, |mut socket| async move {
                        while let Some(Ok(message)) = socket.recv().await {
                            if let Message::Text(_) | Message::Binary(_) = message {
                                if socket.send(message).await.is_err() {
                                    break;
                                }
                            }
                        }
                    })
                }
            });
        println!("ready");
        server.run().unwrap();
    }

    fn serve_tokio(port: u16) {
        use futures_util::{SinkExt, StreamExt};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
            println!("ready");
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    while let Some(Ok(message)) = ws.next().await {
                        if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
    }

    // ---- the client ----

    struct Server {
        child: Child,
        addr: SocketAddr,
    }

    impl Server {
        fn start(name: &str, port: u16) -> Server {
            let exe = std::env::current_exe().unwrap();
            let mut cmd = if Command::new("taskset").arg("-V").output().is_ok() {
                let mut c = Command::new("taskset");
                c.arg("-c").arg("0").arg(exe);
                c
            } else {
                Command::new(exe)
            };
            let mut child = cmd
                .env(SERVE, name)
                .env("SOLO_WS_BENCH_PORT", port.to_string())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line.trim(), "ready", "{name} did not start");
            Server {
                child,
                addr: ([127, 0, 0, 1], port).into(),
            }
        }

        /// (RSS bytes, CPU seconds) of the server process.
        fn usage(&self) -> (u64, f64) {
            let pid = self.child.id();
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            let rss_kb: u64 = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
            let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
            // SAFETY: sysconf has no preconditions.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
            (rss_kb * 1024, ticks as f64 / hz)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn handshake(addr: SocketAddr) -> TcpStream {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(
            b"GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
        // Read the 101's head byte by byte: nothing past it may be consumed.
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
        s
    }

    fn idle_bytes(server: &Server, n: usize) -> f64 {
        let (before, _) = server.usage();
        let open: Vec<TcpStream> = (0..n).map(|_| handshake(server.addr)).collect();
        std::thread::sleep(Duration::from_secs(1));
        let (after, _) = server.usage();
        drop(open);
        std::thread::sleep(Duration::from_millis(500));
        (after as f64 - before as f64) / n as f64
    }

    fn echo(server: &Server, conns: usize, duration: Duration) -> (f64, f64) {
        let rt = solo::Runtime::new().unwrap();
        let addr = server.addr;
        let (_, cpu_before) = server.usage();
        let start = Instant::now();
        let total = rt.block_on(async move {
            let mut tasks = Vec::new();
            for i in 0..conns {
                let std_stream = handshake(addr);
                let mut s = solo::net::TcpStream::from_std(std_stream).unwrap();
                tasks.push(solo::spawn(async move {
                    let payload = format!("message {i:>24}"); // 32 bytes
                    let frame = solo::http::ws::client_frame(true, 1, payload.as_bytes(), [7, 7, 7, 7]);
                    let mut reply = vec![0u8; 2 + payload.len()];
                    let mut n = 0u64;
                    while start.elapsed() < duration {
                        if s.write_all(&frame).await.is_err() || s.read_exact(&mut reply).await.is_err() {
                            break;
                        }
                        n += 1;
                    }
                    n
                }));
            }
            let mut total = 0;
            for t in tasks {
                total += t.await.unwrap();
            }
            total
        });
        let took = start.elapsed().as_secs_f64();
        let (_, cpu_after) = server.usage();
        (
            total as f64 / took,
            (cpu_after - cpu_before) * 1e6 / total.max(1) as f64,
        )
    }

    fn raise_nofile() {
        // SAFETY: getrlimit/setrlimit on a struct we own.
        unsafe {
            let mut lim: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    }

    fn pin_self(cpu: usize) {
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
}

fn main() {
    #[cfg(target_os = "linux")]
    linux::main();
    #[cfg(not(target_os = "linux"))]
    eprintln!("benches/ws.rs reads /proc: Linux only");
}
