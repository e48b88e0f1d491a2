//! The server's limits, timeouts and parsing choices.
//!
//! Owns: [`Config`] and its defaults (`docs/http.md` says why each). Must
//! never: depend on any layer above the head parser (every layer reads it).

use std::time::Duration;

use super::head::HeadRules;

/// Limits and timeouts; see `docs/http.md` for the defaults and why.
///
/// ```
/// use std::time::Duration;
/// use solo::http::{AtLimit, Config, Server};
/// let config = Config {
///     max_body: 64 << 20,                        // 64 MiB uploads
///     handler_timeout: Some(Duration::from_secs(5)), // then 503
///     max_connections: 20_000,
///     at_connection_limit: AtLimit::Respond503,
///     ..Config::default()
/// };
/// let server = Server::bind("127.0.0.1:0")?.config(config);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// Connections open at once; what happens to one more is
    /// [`at_connection_limit`](Self::at_connection_limit).
    pub max_connections: usize,
    /// What a connection past `max_connections` gets.
    pub at_connection_limit: AtLimit,
    /// Largest request head (request line + headers), in bytes: 414/431 past
    /// it. At most 64 KiB.
    pub max_head: usize,
    /// Largest request body, in bytes: 413 past it.
    pub max_body: u64,
    /// Time to receive a whole request head, from its first byte (408);
    /// also how long a new connection may stay silent before it is closed.
    pub header_timeout: Duration,
    /// Longest pause between two reads of a request body (408).
    pub body_timeout: Duration,
    /// How long a keep-alive connection is kept with no request, counted
    /// from its latest answer (at most 24 days; longer is treated as 24).
    pub keep_alive_timeout: Duration,
    /// Longest pause in writing to a client that does not read.
    pub write_timeout: Duration,
    /// Output queued per connection before pipelined requests stop being
    /// parsed (and a streamed response waits).
    pub output_high_watermark: usize,
    /// Handlers pending at once (as tasks) before new ones get 503.
    pub max_in_flight: Option<usize>,
    /// How long a handler may run before its request is answered 503 and
    /// its future dropped (`None`: as long as it likes). Counted from the
    /// end of the request body: a slow upload is `body_timeout`'s business.
    pub handler_timeout: Option<Duration>,
    /// On graceful shutdown, how long to keep serving normally (accepting
    /// and keeping connections alive) while readiness routes answer 503, so
    /// a balancer's health check takes the instance out of rotation before
    /// it stops accepting. Zero (the default) stops accepting at once.
    pub drain_delay: Duration,
    /// How long graceful shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// Size of the pooled read and write buffers.
    pub buffer_size: usize,
    /// Pass request header fields whose name contains `_` to handlers. Off by
    /// default, as nginx's `underscores_in_headers`: some proxies read
    /// `Content_Length` as `Content-Length`, so such fields are dropped.
    pub underscores_in_headers: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_connections: 100_000,
            at_connection_limit: AtLimit::Refuse,
            max_head: 16 * 1024,
            max_body: 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(75),
            write_timeout: Duration::from_secs(30),
            output_high_watermark: 64 * 1024,
            max_in_flight: None,
            handler_timeout: None,
            drain_delay: Duration::ZERO,
            shutdown_timeout: Duration::from_secs(10),
            buffer_size: 8 * 1024,
            underscores_in_headers: false,
        }
    }
}

/// What a connection arriving past [`Config::max_connections`] gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtLimit {
    /// Accepted and closed at once, before a byte is read: the client (or
    /// its balancer) learns in one round trip and can go elsewhere. nginx
    /// does the same when `worker_connections` run out.
    Refuse,
    /// Accepted, answered `503 Service Unavailable` with `Retry-After: 1`
    /// and `Connection: close`, and closed, without reading the request.
    Respond503,
    /// Left in the kernel's listen backlog until a connection closes (the
    /// listener pauses). Clients wait instead of failing, up to the
    /// backlog's size and their own connect timeout.
    Backlog,
}

impl Config {
    /// What the head parser is allowed.
    pub(crate) fn head_rules(&self) -> HeadRules {
        HeadRules {
            max_head: self.max_head,
            underscores: self.underscores_in_headers,
        }
    }

    /// The keep-alive timeout in milliseconds, at most 2³¹ − 1 (24 days).
    pub(crate) fn keep_alive_ms(&self) -> u64 {
        self.keep_alive_timeout.as_millis().min(i32::MAX as u128) as u64
    }
}
