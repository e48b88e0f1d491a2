//! Graceful shutdown from code: a `ShutdownHandle` stops the server from
//! any thread; requests in flight finish, idle connections close.
//!
//! ```text
//! cargo run --release --example shutdown [PORT]     # default 8080; 0 picks one
//! curl http://127.0.0.1:8080/slow &                 # takes 2 s
//! curl -X POST http://127.0.0.1:8080/admin/shutdown # answered, then the drain
//! ```
//! The `/slow` request still gets its answer; new connections are refused
//! once the drain has begun; `run` returns when the last in-flight request is
//! done (or `Config::shutdown_timeout` runs out). SIGINT/SIGTERM do the same,
//! and a second signal stops at once. A watchdog thread shows the handle is
//! `Send`: it stops the server after `--max-seconds S` if nothing else has.

use std::time::{Duration, Instant};

use solo::http::{Config, Request, Response, Server};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut port = 8080u16;
    let mut max_seconds = None;
    while let Some(arg) = args.next() {
        if arg == "--max-seconds" {
            let s = args
                .next()
                .ok_or_else(|| std::io::Error::other("--max-seconds needs a number"))?;
            max_seconds = Some(s.parse::<u64>().map_err(std::io::Error::other)?);
        } else {
            port = arg
                .parse()
                .map_err(|e| std::io::Error::other(format!("port {arg:?}: {e}")))?;
        }
    }
    let server = Server::bind(("127.0.0.1", port))?.config(Config {
        shutdown_timeout: Duration::from_secs(30),
        ..Config::default()
    });
    let handle = server.shutdown_handle();
    let server = server
        .get("/slow", |_req: Request| async {
            solo::time::sleep(Duration::from_secs(2)).await;
            Response::text("finished despite the shutdown\n")
        })
        .post("/admin/shutdown", move |_req: Request| {
            // From inside a handler: the answer still goes out, then the
            // server drains.
            handle.shutdown();
            async { Response::text("shutting down\n").with_status(202) }
        });
    if let Some(secs) = max_seconds {
        let watchdog = server.shutdown_handle();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(secs));
            watchdog.shutdown();
        });
    }
    eprintln!("shutdown: listening on http://{}", server.local_addr()?);
    let started = Instant::now();
    server.run()?;
    eprintln!(
        "shutdown: stopped after {:.1} s, every request answered",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
