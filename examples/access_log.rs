//! An access log in the Common Log Format, one line per request on stdout
//! (or appended to a file), as Apache and nginx write it.
//!
//! ```text
//! cargo run --release --example access_log [PORT] [--file PATH]   # default 8080
//! curl http://127.0.0.1:8080/hello
//! 127.0.0.1 - - [02/Dec/2026:09:15:02 +0000] "GET /hello HTTP/1.1" 200 13
//! ```
//! The hook sees the request and its response together (`AccessEntry`):
//! besides `common_log()`, its fields give latency, bytes in and whether the
//! response completed, printed here after the CLF line as the combined
//! format's referer and user agent plus the latency in microseconds. A
//! request whose client left before its answer is logged with `-` for the
//! status.

use std::cell::RefCell;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};

use solo::http::{AccessEntry, Request, Response, Server};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut port = 8080u16;
    let mut file = None;
    while let Some(arg) = args.next() {
        if arg == "--file" {
            file = Some(
                args.next()
                    .ok_or_else(|| std::io::Error::other("--file needs a path"))?,
            );
        } else {
            port = arg
                .parse()
                .map_err(|e| std::io::Error::other(format!("port {arg:?}: {e}")))?;
        }
    }
    let out: Box<dyn Write> = match &file {
        Some(path) => Box::new(OpenOptions::new().create(true).append(true).open(path)?),
        None => Box::new(std::io::stdout()),
    };
    // Line-buffered by hand: one write per line, flushed at once, so the log
    // is complete even if the process is killed.
    let out = RefCell::new(BufWriter::new(out));
    let server = Server::bind(("127.0.0.1", port))?
        .access_log(move |e: &AccessEntry<'_>| {
            let quoted = |name: &str| e.request.header(name).unwrap_or("-").replace('"', "\\\"");
            let mut out = out.borrow_mut();
            let _ = writeln!(
                out,
                "{} \"{}\" \"{}\" {}us{}",
                e.common_log(),
                quoted("referer"),
                quoted("user-agent"),
                e.latency.as_micros(),
                if e.complete { "" } else { " incomplete" }
            );
            let _ = out.flush();
        })
        .get("/hello", |_req: Request| async { Response::text("Hello, World!") })
        .post("/echo", |mut req: Request| async move {
            req.body().await.map(Response::bytes)
        });
    eprintln!("access_log: listening on http://{}", server.local_addr()?);
    server.run()
}
