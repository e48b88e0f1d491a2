//! Share-nothing workers: N threads, each with its own reactor, runtime and
//! `SO_REUSEPORT` listener on one port, and its own routes and state.
//!
//! ```text
//! cargo run --release --example workers [PORT] [N]    # default 8080 and 2 workers
//! for i in 1 2 3 4; do curl -s http://127.0.0.1:8080/; done
//! ```
//! The routes are built once per worker, on its thread, so handlers and the
//! state they hold need not be `Send` (here an `Rc<Cell>` counter per
//! worker). On Linux the kernel spreads new connections over the listeners;
//! macOS and FreeBSD hand them all to one (run one worker per process
//! there), and Windows has no `SO_REUSEPORT` (one worker). Ctrl-C stops all.

use std::cell::Cell;
use std::rc::Rc;

use solo::http::{Request, Response, Server};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = match args.next() {
        Some(p) => p
            .parse()
            .map_err(|e| std::io::Error::other(format!("port {p:?}: {e}")))?,
        None => 8080,
    };
    let n: usize = match args.next() {
        Some(n) => n
            .parse()
            .map_err(|e| std::io::Error::other(format!("workers {n:?}: {e}")))?,
        None => 2,
    };
    eprintln!("workers: {n} workers on http://127.0.0.1:{port}");
    Server::workers(("127.0.0.1", port), n, |server| {
        let served = Rc::new(Cell::new(0u64));
        let name = std::thread::current().name().unwrap_or("worker").to_string();
        server.get("/", move |_req: Request| {
            served.set(served.get() + 1);
            let text = format!("{name}: request {} on this worker\n", served.get());
            async move { Response::text(text) }
        })
    })
}
