//! Plaintext "Hello, World!": the server the peer benchmark runs.
//!
//! ```text
//! cargo run --release --example hello [PORT] [--workers N]   # or PORT=8080; default 8080, 1 worker
//! ```
//! Listens on 127.0.0.1. One worker is one thread with one reactor; with
//! `--workers N`, N share-nothing threads share the port (`SO_REUSEPORT`).
//! Ctrl-C stops it gracefully (a single worker then prints its figures).

use solo::http::{Request, Response, Server};

fn routes(server: Server) -> Server {
    server
        .get("/", |_req: Request| async { Response::text("Hello, World!") })
        .post("/echo", |mut req: Request| async move {
            req.body().await.map(Response::bytes)
        })
}

fn main() -> std::io::Result<()> {
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let mut port: Option<u16> = None;
    let mut workers = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--workers" {
            let n = args.next().ok_or_else(|| invalid("--workers needs a number".into()))?;
            workers = n.parse().map_err(|e| invalid(format!("--workers: {e}")))?;
        } else {
            port = Some(arg.parse().map_err(|e| invalid(format!("port {arg:?}: {e}")))?);
        }
    }
    let port = match (port, std::env::var("PORT")) {
        (Some(p), _) => p,
        (None, Ok(p)) => p.parse().map_err(|e| invalid(format!("PORT: {e}")))?,
        (None, Err(_)) => 8080,
    };
    if workers > 1 {
        eprintln!("hello: {workers} workers on http://127.0.0.1:{port}");
        return Server::workers(("127.0.0.1", port), workers, routes);
    }
    let server = routes(Server::bind(("127.0.0.1", port))?);
    let stats = server.stats_handle();
    eprintln!("hello: listening on http://{}", server.local_addr()?);
    let result = server.run();
    let s = stats.snapshot();
    eprintln!(
        "hello: {} connections, {} requests, latency p50 {} µs p99 {} µs max {} µs, CPU {:.2} s",
        s.accepted,
        s.requests,
        s.latency_p50_us,
        s.latency_p99_us,
        s.latency_max_us,
        s.cpu_time.as_secs_f64()
    );
    result
}
