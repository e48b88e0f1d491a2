//! The access log: one record per request, with the request and its response
//! together (method, target, headers, peer, status, bytes, latency, time).
//!
//! Owns: the record a hook sees ([`AccessEntry`]), the part of it a
//! connection keeps while the request is answered ([`AccessPending`]), and
//! the Common Log Format line. Must never: cost a connection anything when no
//! access-log hook is installed (it then holds `None`, and no clock is read),
//! or record one request twice (a pending record is consumed when emitted).
//!
//! When a record is emitted: once the response's last byte is queued for the
//! client (for a streamed body, its last chunk), or, if the connection closes
//! first, then, marked not complete. A request refused before its head could
//! be parsed (400, 431, ...) has no head to show and is not recorded here;
//! `Stats::parse_errors` counts it and the `log` facade reports it at debug.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use super::request::Request;

/// What an access-log hook is given for one request.
#[derive(Debug)]
pub struct AccessEntry<'a> {
    /// The request's head: method, target, version, headers and peer. Its
    /// body is not here (the handler had it), nor are its route parameters.
    pub request: &'a Request,
    /// The response's status; `None` if the connection closed before the
    /// request was answered (the client went away while the handler ran).
    pub status: Option<u16>,
    /// Bytes of the request as sent: its head, and the body bytes read by
    /// the time the record is made (chunk framing included).
    pub bytes_in: u64,
    /// Bytes of the response queued for the client: head and body, chunk
    /// framing included.
    pub bytes_out: u64,
    /// From the turn that read the request's head to the response's last
    /// byte queued (or to the close).
    pub latency: Duration,
    /// The wall-clock time the request's head was read.
    pub time: SystemTime,
    /// Whether the whole response was queued: `false` when the connection
    /// closed first (an aborted stream, a client that left).
    pub complete: bool,
}

impl AccessEntry<'_> {
    /// The record as a line in the Common Log Format (the time in UTC), as
    /// Apache and nginx write it: `host - - [time] "request" status bytes`,
    /// where bytes are the response's (`-` for a status never sent).
    ///
    /// ```
    /// # use solo::http::{Request, Response, Server};
    /// let server = Server::bind("127.0.0.1:0")?
    ///     .access_log(|entry| eprintln!("{}", entry.common_log()))
    ///     .get("/", |_req: Request| async { Response::text("hi") });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn common_log(&self) -> CommonLog<'_> {
        CommonLog(self)
    }
}

/// [`AccessEntry::common_log`]'s line, written when displayed.
#[derive(Debug)]
pub struct CommonLog<'a>(&'a AccessEntry<'a>);

impl fmt::Display for CommonLog<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        let r = e.request;
        let secs = e.time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        write!(
            f,
            "{} - - [{}] \"{} {} {}\" ",
            r.peer_addr().ip(),
            super::date::Clf(secs),
            r.method_str(),
            r.target(),
            r.version()
        )?;
        match e.status {
            Some(status) => write!(f, "{status} {}", e.bytes_out),
            None => f.write_str("- -"),
        }
    }
}

/// An access-log hook.
pub(crate) type AccessLog = Box<dyn Fn(&AccessEntry<'_>)>;

/// What a connection keeps of a request between its head and its record.
pub(crate) struct AccessPending {
    request: Request,
    started: Instant,
    time: SystemTime,
    bytes_in: u64,
    status: Option<u16>,
    bytes_out: u64,
}

impl AccessPending {
    /// A request whose head (`head_len` bytes) was read in the turn of `now`.
    pub(crate) fn new(request: Request, head_len: usize, now: Instant) -> AccessPending {
        AccessPending {
            request,
            started: now,
            time: SystemTime::now(),
            bytes_in: head_len as u64,
            status: None,
            bytes_out: 0,
        }
    }

    /// `bytes` more of the request's body were read.
    pub(crate) fn read(&mut self, bytes: usize) {
        self.bytes_in += bytes as u64;
    }

    /// `bytes` more of the response were queued (the first piece carries
    /// its status).
    pub(crate) fn queued(&mut self, status: Option<u16>, bytes: usize) {
        if status.is_some() {
            debug_assert!(self.status.is_none(), "a second response to one request");
            self.status = status;
        }
        self.bytes_out += bytes as u64;
    }

    /// Hands the record to every hook. A hook that panics is reported and
    /// does not take the connection (or the loop) down with it.
    pub(crate) fn emit(self, hooks: &[AccessLog], complete: bool) {
        let entry = AccessEntry {
            request: &self.request,
            status: self.status,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            latency: self.started.elapsed(),
            time: self.time,
            complete,
        };
        for hook in hooks {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(&entry))).is_err() {
                log::warn!(target: "solo::http", "an access-log hook panicked (request from {})", self.request.peer_addr());
            }
        }
    }
}

#[cfg(test)]
mod tests;
