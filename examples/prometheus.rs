//! Metrics for Prometheus: the server's and the runtime's figures at
//! `/metrics`, plus the application's own, in the text exposition format.
//!
//! ```text
//! cargo run --release --example prometheus [PORT]     # default 8080; 0 picks one
//! curl http://127.0.0.1:8080/metrics
//! ```
//! `Server::prometheus("/metrics")` is the ready route. Here `/metrics` is
//! written by hand instead, to add an application counter after solo's own
//! figures (`StatsHandle::prometheus()`): requests served, responses by
//! class, the latency histogram, connections, RSS and CPU, loop utilisation.
//! A scrape config: `static_configs: [{targets: ["127.0.0.1:8080"]}]`.

use std::cell::Cell;
use std::fmt::Write;
use std::rc::Rc;

use solo::http::{prometheus, Request, Response, Server};

fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p
            .parse()
            .map_err(|e| std::io::Error::other(format!("port {p:?}: {e}")))?,
        None => 8080,
    };
    let orders = Rc::new(Cell::new(0u64));
    let server = Server::bind(("127.0.0.1", port))?;
    let stats = server.stats_handle();
    let server = server
        .post("/orders", {
            let orders = orders.clone();
            move |_req: Request| {
                orders.set(orders.get() + 1);
                async { Response::text("order placed\n").with_status(201) }
            }
        })
        .get("/metrics", move |_req: Request| {
            let mut text = stats.prometheus();
            let _ = write!(
                text,
                "# HELP shop_orders_total Orders placed since start.\n# TYPE shop_orders_total counter\nshop_orders_total {}\n",
                orders.get()
            );
            async move { Response::text(text).content_type(prometheus::CONTENT_TYPE) }
        });
    eprintln!("prometheus: listening on http://{}", server.local_addr()?);
    server.run()
}
