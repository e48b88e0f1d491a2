//! Plaintext "Hello, World!" on one core: the server the peer benchmark runs.
//!
//! ```text
//! cargo run --release --example hello [PORT]      # or PORT=8080; default 8080
//! ```
//! Listens on 127.0.0.1. Ctrl-C stops it gracefully and prints its figures.

use solo::http::{Request, Response, Server};

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .map(|p| {
            p.parse()
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("port: {e}")))
        })
        .transpose()?
        .unwrap_or(8080);
    let server = Server::bind(("127.0.0.1", port))?
        .get("/", |_req: Request| async { Response::text("Hello, World!") })
        .post("/echo", |mut req: Request| async move {
            req.body().await.map(Response::bytes)
        });
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
