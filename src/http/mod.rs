//! An HTTP/1.1 server on solo's reactor.
//!
//! Connections are state machines the reactor drives directly (no task per
//! connection); a handler's future is polled once inline and only becomes a
//! task if it is not ready. The files, in the order their dependencies run
//! (each uses only those above it):
//!
//! | file | owns |
//! |---|---|
//! | `config.rs` | [`Config`]: limits, timeouts, parsing choices |
//! | `head.rs` | parsing a request head strictly; [`Method`] |
//! | `body.rs` | the chunked decoder, the body channel, flow control |
//! | `request.rs`, `response.rs` | [`Request`], [`Response`] |
//! | `access.rs` | the access log's record ([`AccessEntry`]) and its Common Log Format line |
//! | `handler.rs`, `router.rs` | [`Handler`], the inline first poll; the route table |
//! | `exchange.rs` | one request to one response: hooks, routing, 503, serialising |
//! | `io.rs` | the transport seam (socket or in-memory pipe), buffers, the pool |
//! | `connection.rs` | **the state machine**: phases, deadlines, invariants |
//! | `driver.rs` | the slab of connections, their timers and tasks |
//! | `upgrade.rs`, `ws/` | a `101` handing the connection over; WebSocket on it (`ws/frame.rs` the codec, `ws/handshake.rs` the opening) |
//! | `interop.rs` | conversions with the `http` crate's types (feature `http-types`) |
//! | `accept.rs`, `signals.rs`, `shutdown.rs` | the accept loop; SIGINT/SIGTERM as a loop event; stopping |
//! | `server.rs` | [`Server`]: the builder, `run`, `serve`, `workers` |
//! | `test.rs` | [`test::TestClient`]: a server driven in memory |
//!
//! `pool.rs` (pooled small vectors), `date.rs` (the cached `Date`) and
//! `stats.rs` (counters) are leaves. `docs/http.md` has the diagram, the
//! limits and their defaults; `docs/walkthrough.md` follows one request.
//!
//! ```no_run
//! use solo::http::{Request, Response, Server};
//! Server::bind("127.0.0.1:8080")?
//!     .get("/", |_req: Request| async { Response::text("Hello, World!") })
//!     .run()
//! # ; Ok::<(), std::io::Error>(())
//! ```

mod accept;
mod access;
mod body;
mod config;
mod connection;
mod date;
mod driver;
mod exchange;
mod handler;
mod head;
#[cfg(feature = "http-types")]
pub mod interop;
mod io;
mod peer;
mod phase;
mod pool;
pub mod prometheus;
mod read_buf;
mod request;
mod response;
mod router;
mod server;
mod shutdown;
#[cfg(unix)]
mod signals;
mod stats;
pub mod test;
mod upgrade;
pub mod ws;

pub use access::{AccessEntry, CommonLog};
pub use config::{AtLimit, Config};
pub use handler::{Handler, IntoResponse};
pub use request::{form_pairs, percent_decode, Method, Request};
pub use response::{reason, Body, Response};
pub use server::{Server, StatsHandle};
pub use shutdown::ShutdownHandle;
pub use stats::{process_usage, Histogram, Stats};
pub use upgrade::{Upgrade, Upgraded};

/// Entry points for `benches/http.rs` and the fuzz targets; not part of the
/// API.
#[doc(hidden)]
pub mod __bench {
    use bytes::BytesMut;

    pub use super::test::ConnectionTurn;

    /// Parses every complete request head at the front of `buf`, as the
    /// connection does for a pipeline; returns how many were parsed.
    pub fn parse_all(mut buf: &[u8]) -> usize {
        let rules = super::Config::default().head_rules();
        let mut n = 0;
        while let Ok(Some(head)) = super::head::parse_head(buf, rules) {
            buf = &buf[head.len()..];
            n += 1;
        }
        n
    }

    /// Feeds `pieces` to a WebSocket frame decoder one at a time, decoding
    /// after each; the messages it gave, and the close code of the first
    /// violation (after which it stops).
    pub fn ws_decode(pieces: &[&[u8]], max_frame: usize, max_message: usize) -> (Vec<super::ws::Message>, Option<u16>) {
        super::ws::decode_pieces(pieces, max_frame, max_message)
    }

    /// The head parser's verdict on `buf`: `Ok(Some(len))` for a complete
    /// head of `len` bytes, `Ok(None)` for incomplete, `Err(status)`.
    ///
    /// Panics if the one-pass parser answers and the full parser disagrees
    /// with it, in anything it gives a handler.
    pub fn parse_one(buf: &[u8], max_head: usize) -> Result<Option<usize>, u16> {
        let rules = super::head::HeadRules {
            max_head,
            underscores: false,
        };
        super::head::check_agreement(buf, rules);
        match super::head::parse_head(buf, rules) {
            Ok(Some(head)) => Ok(Some(head.len())),
            Ok(None) => Ok(None),
            Err(e) => Err(e.status()),
        }
    }

    /// Decodes a chunked body with the server's decoder, fed in the given
    /// pieces: `Ok((body, consumed))` once done, `Ok` with `None` if it
    /// needs more, `Err` on invalid framing.
    pub fn decode_chunked(pieces: &[&[u8]]) -> Result<Option<(Vec<u8>, usize)>, &'static str> {
        let mut decoder = super::body::ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut consumed = 0;
        for piece in pieces {
            let mut piece: &[u8] = piece;
            while !piece.is_empty() {
                let d = decoder.decode(piece, |b| body.extend_from_slice(b))?;
                consumed += d.consumed;
                if d.done {
                    return Ok(Some((body, consumed)));
                }
                piece = &piece[d.consumed..];
            }
        }
        Ok(None)
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
