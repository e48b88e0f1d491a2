//! Server-Sent Events: a clock that pushes one event a second to every
//! browser tab that listens, from a streamed response.
//!
//! ```text
//! cargo run --release --example sse [PORT]     # default 8080; 0 picks one
//! curl -N http://127.0.0.1:8080/events         # or open / in a browser
//! ```
//! Each `/events` request gets its own task that sends `data: ...` frames
//! into the response's channel; when the client goes away the send fails and
//! the task ends. `?count=N` ends the stream after N events (for tests and
//! curl); without it the stream runs until the client leaves.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use solo::http::{Request, Response, Server};
use solo::sync::mpsc;

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8"><title>solo SSE</title>
<h1>Events from solo</h1><ol id="log"></ol>
<script>
  const log = document.getElementById("log");
  new EventSource("/events").addEventListener("tick", (e) => {
    const li = document.createElement("li");
    li.textContent = e.data;
    log.prepend(li);
  });
</script>"#;

async fn events(req: Request) -> Response {
    let limit: Option<u64> = req.query_param("count").and_then(|n| n.parse().ok());
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    solo::spawn(async move {
        // Tell the browser how long to wait before reconnecting.
        if tx.send(Bytes::from_static(b"retry: 2000\n\n")).await.is_err() {
            return;
        }
        let mut id = 0u64;
        while limit.is_none_or(|n| id < n) {
            id += 1;
            let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let frame = format!("id: {id}\nevent: tick\ndata: {{\"n\":{id},\"unix\":{secs}}}\n\n");
            if tx.send(Bytes::from(frame)).await.is_err() {
                return; // the client went away
            }
            solo::time::sleep(Duration::from_millis(if limit.is_some() { 10 } else { 1000 })).await;
        }
    });
    Response::stream(rx)
        .content_type("text/event-stream")
        .header("Cache-Control", "no-cache")
}

fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p
            .parse()
            .map_err(|e| std::io::Error::other(format!("port {p:?}: {e}")))?,
        None => 8080,
    };
    let server = Server::bind(("127.0.0.1", port))?
        .get("/", |_req: Request| async {
            Response::text(PAGE).content_type("text/html; charset=utf-8")
        })
        .get("/events", events);
    eprintln!("sse: listening on http://{}", server.local_addr()?);
    server.run()
}
