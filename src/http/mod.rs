//! An HTTP/1.1 server on solo's reactor.
//!
//! Connections are state machines the reactor drives directly (no task per
//! connection); a handler's future is polled once inline and only becomes a
//! task if it is not ready. Read `connection.rs` for the state machine,
//! `server.rs` for how it is driven, `parse.rs` for what is rejected and
//! why, `pool.rs` for why a request's small vectors allocate nothing once
//! warm; `docs/http.md` has the diagram, the limits and their defaults.
//!
//! ```no_run
//! use solo::http::{Request, Response, Server};
//! Server::bind("127.0.0.1:8080")?
//!     .get("/", |_req: Request| async { Response::text("Hello, World!") })
//!     .run()
//! # ; Ok::<(), std::io::Error>(())
//! ```

mod connection;
mod date;
mod parse;
mod pool;
mod request;
mod response;
mod router;
mod server;
mod stats;

pub use request::{percent_decode, Method, Request};
pub use response::{reason, Body, Response};
pub use router::{Handler, IntoResponse};
pub use server::{Config, Server, ShutdownHandle, StatsHandle};
pub use stats::{process_usage, Histogram, Stats};

/// Entry points for `benches/http.rs`; not part of the API.
#[doc(hidden)]
pub mod __bench {
    use bytes::BytesMut;

    pub use super::server::ConnectionTurn;

    /// Parses every complete request head at the front of `buf`, as the
    /// connection does for a pipeline; returns how many were parsed.
    pub fn parse_all(mut buf: &[u8]) -> usize {
        let mut n = 0;
        while let Ok(Some(head)) = super::parse::parse_head(buf, 16 * 1024) {
            buf = &buf[head.len..];
            n += 1;
        }
        n
    }

    /// Serialises a `Response::text(body)` as the server does.
    pub fn serialize_text(out: &mut BytesMut, date_line: &[u8], body: &'static str) {
        let resp = super::Response::text(body);
        resp.write_head(
            out,
            date_line,
            super::response::Framing::Length(body.len() as u64),
            false,
            1,
        );
        out.extend_from_slice(body.as_bytes());
    }
}
