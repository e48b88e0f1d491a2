//! Plaintext "Hello, World!": the server the peer benchmark runs.
//!
//! ```text
//! cargo run --release --example hello [PORT] [--workers N] [--drain-delay MS]
//! ```
//! Listens on 127.0.0.1 (PORT, or the `PORT` variable; default 8080). One
//! worker is one thread with one reactor; with `--workers N`, N share-nothing
//! threads share the port (`SO_REUSEPORT`). `/health` is its liveness route and
//! `/ready` its readiness route, for a balancer (`docs/deployment.md`);
//! `/metrics` answers its figures in Prometheus' text format.
//! Ctrl-C or SIGTERM stops it gracefully: readiness turns 503, it serves on
//! for `--drain-delay` (default 0), then drains (a single worker then prints
//! its figures).

use std::time::Duration;

use solo::http::{Config, Request, Response, Server};

fn routes(server: Server) -> Server {
    server
        .health("/health")
        .readiness("/ready")
        .prometheus("/metrics")
        .get("/", |_req: Request| async { Response::text("Hello, World!") })
        .post("/echo", |mut req: Request| async move {
            req.body().await.map(Response::bytes)
        })
}

fn main() -> std::io::Result<()> {
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let mut port: Option<u16> = None;
    let mut workers = 1usize;
    let mut drain_ms = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--workers" {
            let n = args.next().ok_or_else(|| invalid("--workers needs a number".into()))?;
            workers = n.parse().map_err(|e| invalid(format!("--workers: {e}")))?;
        } else if arg == "--drain-delay" {
            let ms = args
                .next()
                .ok_or_else(|| invalid("--drain-delay needs milliseconds".into()))?;
            drain_ms = ms.parse().map_err(|e| invalid(format!("--drain-delay: {e}")))?;
        } else {
            port = Some(arg.parse().map_err(|e| invalid(format!("port {arg:?}: {e}")))?);
        }
    }
    let port = match (port, std::env::var("PORT")) {
        (Some(p), _) => p,
        (None, Ok(p)) => p.parse().map_err(|e| invalid(format!("PORT: {e}")))?,
        (None, Err(_)) => 8080,
    };
    let config = Config {
        drain_delay: Duration::from_millis(drain_ms),
        ..Config::default()
    };
    if workers > 1 {
        eprintln!("hello: {workers} workers on http://127.0.0.1:{port}");
        return Server::workers(("127.0.0.1", port), workers, move |s| routes(s.config(config.clone())));
    }
    let server = routes(Server::bind(("127.0.0.1", port))?.config(config));
    let stats = server.stats_handle();
    eprintln!("hello: listening on http://{}", server.local_addr()?);
    let result = server.run();
    let s = stats.snapshot();
    eprintln!(
        "hello: {} connections, {} requests, latency p50 {} µs p99 {} µs max {} µs, CPU {}",
        s.accepted,
        s.requests,
        s.latency_p50_us,
        s.latency_p99_us,
        s.latency_max_us,
        s.cpu_time
            .map_or("not measured".to_string(), |t| format!("{:.2} s", t.as_secs_f64()))
    );
    result
}
