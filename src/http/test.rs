//! A client for testing a [`Server`] in memory: no port, no socket, no sleep.
//!
//! Owns: a runtime, the server's driver running on in-memory transports, and
//! the client side of each in-memory connection. Must never: take a path of
//! its own through the server: bytes go through the same driver, connection
//! state machine, parser and handlers as they do on a socket; only the
//! transport and the clock of a deadline differ.
//!
//! ```
//! use solo::http::test::TestClient;
//! use solo::http::{Request, Response, Server};
//!
//! let server = Server::new()
//!     .get("/hello/:name", |req: Request| async move {
//!         Response::text(format!("hello, {}", req.param("name").unwrap()))
//!     });
//! let mut client = TestClient::new(server);
//! let reply = client.get("/hello/solo");
//! assert_eq!(reply.status, 200);
//! assert_eq!(reply.body, b"hello, solo");
//!
//! // Raw bytes, split anywhere, pipelined: one response per request, in order.
//! let conn = client.connect();
//! client.send(conn, b"GET /hello/a HTTP/1.1\r\nHost: x\r\n\r\nGET /hel");
//! client.send(conn, b"lo/b HTTP/1.1\r\nHost: x\r\n\r\n");
//! let replies = client.responses(conn);
//! assert_eq!(replies.len(), 2);
//! assert_eq!(replies[1].body, b"hello, b");
//!
//! // A malformed request: 400, then the server half-closes (and closes
//! // once the client does).
//! let conn = client.connect();
//! client.send(conn, b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n");
//! assert_eq!(client.responses(conn)[0].status, 400);
//! assert!(client.is_write_closed(conn));
//! client.shutdown_write(conn);
//! assert!(client.is_closed(conn));
//! ```

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;

use super::connection::Turn;
use super::driver::Driver;
use super::io::{MemoryTransport, Pipe};
use super::phase::Phase;
use super::server::Server;

/// One in-memory connection of a [`TestClient`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnId(usize);

/// A response as the client parsed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestResponse {
    /// The status code.
    pub status: u16,
    /// The header fields, in order.
    pub headers: Vec<(String, String)>,
    /// The body (chunked bodies decoded).
    pub body: Vec<u8>,
}

impl TestResponse {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The client's end of one connection.
struct ClientConn {
    pipe: Rc<RefCell<Pipe>>,
    /// The driver's slab key, valid while the pipe is open.
    key: usize,
    /// Bytes received and not yet parsed into responses.
    pending: Vec<u8>,
    /// For each request sent whose response is not parsed yet: whether it
    /// was HEAD (its response carries no body whatever its framing says).
    head_requests: VecDeque<bool>,
}

/// Drives a [`Server`] in memory. Each call runs the server until it has
/// nothing left to do at once (every ready task polled, every due timer
/// fired); timers not yet due stay pending, and [`expire`](Self::expire)
/// makes a connection's deadline come now.
///
/// ```
/// use solo::http::{test::TestClient, Request, Response, Server};
/// let app = Server::new()
///     .get("/users/:id", |req: Request| async move {
///         Response::text(format!("user {}", req.param("id").unwrap()))
///     });
/// let mut client = TestClient::new(app);
/// assert_eq!(client.get("/users/7").text(), "user 7");
/// assert_eq!(client.get("/nope").status, 404);
/// // Raw bytes on one connection: pipelined, answered in order.
/// let c = client.connect();
/// client.send(c, b"GET /users/1 HTTP/1.1\r\nHost: t\r\n\r\nGET /users/2 HTTP/1.1\r\nHost: t\r\n\r\n");
/// let replies: Vec<String> = client.responses(c).iter().map(|r| r.text()).collect();
/// assert_eq!(replies, ["user 1", "user 2"]);
/// ```
pub struct TestClient {
    runtime: crate::Runtime,
    driver: Rc<Driver<MemoryTransport>>,
    conns: Vec<ClientConn>,
}

impl std::fmt::Debug for TestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestClient")
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl TestClient {
    /// A client of `server` (its listener, if it has one, is not used).
    pub fn new(server: Server) -> TestClient {
        let runtime = crate::Runtime::new().expect("a runtime for the test client");
        let driver = runtime.enter(|core| {
            let (driver, _listener) = server.into_driver(core.clone());
            driver.start_clock();
            driver
        });
        TestClient {
            runtime,
            driver,
            conns: Vec::new(),
        }
    }

    /// Opens a connection (as if accepted from 127.0.0.1).
    pub fn connect(&mut self) -> ConnId {
        let transport = MemoryTransport::default();
        let pipe = transport.0.clone();
        let driver = self.driver.clone();
        let key = self.runtime.enter(|_| {
            let peer: SocketAddr = ([127, 0, 0, 1], 40000).into();
            driver.add_connection(transport, peer, mio::Token(usize::MAX))
        });
        self.conns.push(ClientConn {
            pipe,
            key,
            pending: Vec::new(),
            head_requests: VecDeque::new(),
        });
        self.settle();
        ConnId(self.conns.len() - 1)
    }

    /// Sends raw bytes on `conn` and lets the server act on them.
    pub fn send(&mut self, conn: ConnId, bytes: &[u8]) {
        let c = &mut self.conns[conn.0];
        c.head_requests.extend(request_methods_are_head(bytes));
        c.pipe.borrow_mut().input.extend(bytes);
        self.ready(conn, false);
    }

    /// The client closes its sending side (FIN); it can still receive.
    pub fn shutdown_write(&mut self, conn: ConnId) {
        self.conns[conn.0].pipe.borrow_mut().input_closed = true;
        self.ready(conn, true);
    }

    /// The client stops reading once `bytes` more of output are waiting;
    /// `None` reads everything again.
    pub fn set_window(&mut self, conn: ConnId, bytes: Option<usize>) {
        self.collect(conn);
        self.conns[conn.0].pipe.borrow_mut().window = bytes;
        if bytes.is_none() {
            self.ready(conn, false);
        }
    }

    /// Everything the server wrote on `conn` and not yet taken.
    pub fn received(&mut self, conn: ConnId) -> Vec<u8> {
        self.collect(conn);
        std::mem::take(&mut self.conns[conn.0].pending)
    }

    /// The complete responses received on `conn` so far, in order (an
    /// incomplete one stays for the next call; interim 1xx responses are
    /// listed too).
    pub fn responses(&mut self, conn: ConnId) -> Vec<TestResponse> {
        self.collect(conn);
        let closed = self.is_closed(conn);
        let c = &mut self.conns[conn.0];
        let mut out = Vec::new();
        loop {
            let head_only = c.head_requests.front().copied().unwrap_or(false);
            match parse_response(&c.pending, head_only, closed) {
                Some((resp, used)) => {
                    c.pending.drain(..used);
                    if resp.status >= 200 {
                        c.head_requests.pop_front();
                    }
                    out.push(resp);
                }
                None => return out,
            }
        }
    }

    /// One request on a new connection: its (final) response.
    pub fn request(&mut self, raw: &[u8]) -> TestResponse {
        let conn = self.connect();
        self.send(conn, raw);
        self.responses(conn)
            .into_iter()
            .find(|r| r.status >= 200)
            .expect("a response to the request")
    }

    /// `GET path` on a new connection.
    pub fn get(&mut self, path: &str) -> TestResponse {
        self.request(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
    }

    /// Whether the server closed `conn`.
    pub fn is_closed(&self, conn: ConnId) -> bool {
        self.conns[conn.0].pipe.borrow().closed
    }

    /// Whether the server half-closed `conn` (sent FIN, lingering).
    pub fn is_write_closed(&self, conn: ConnId) -> bool {
        let pipe = self.conns[conn.0].pipe.borrow();
        pipe.output_closed || pipe.closed
    }

    /// Bytes sent on `conn` that the server has not read.
    pub fn unread(&self, conn: ConnId) -> usize {
        self.conns[conn.0].pipe.borrow().input.len()
    }

    /// Makes `conn`'s deadline (keep-alive, header, body, write or linger
    /// timeout: whichever it waits under) come now.
    pub fn expire(&mut self, conn: ConnId) {
        if self.is_closed(conn) {
            return;
        }
        let driver = self.driver.clone();
        let key = self.conns[conn.0].key;
        self.runtime.enter(|_| {
            driver.apply(key, |c, t| {
                let due = Turn {
                    tick: c.deadline_tick(t).map_or(t.tick, |at| at.max(t.tick)),
                    ..*t
                };
                c.on_deadline(&due)
            });
        });
        self.settle();
    }

    /// The server's statistics.
    pub fn stats(&self) -> super::Stats {
        self.driver.exchange.counters.snapshot()
    }

    /// What the server's connection is doing (`None` once closed).
    pub(crate) fn phase(&self, conn: ConnId) -> Option<Phase> {
        if self.is_closed(conn) {
            return None;
        }
        let key = self.conns[conn.0].key;
        self.driver.conns.borrow().get(key).map(|s| s.c.phase())
    }

    /// Whether the server's connection holds pooled buffers.
    #[cfg(test)]
    pub(crate) fn holds_buffers(&self, conn: ConnId) -> bool {
        let key = self.conns[conn.0].key;
        !self.is_closed(conn) && self.driver.conns.borrow().get(key).is_some_and(|s| s.c.has_buffers())
    }

    /// The readiness edge a socket would raise; then run until stalled.
    fn ready(&mut self, conn: ConnId, peer_closed: bool) {
        if !self.is_closed(conn) {
            let driver = self.driver.clone();
            let key = self.conns[conn.0].key;
            self.runtime.enter(|core| {
                // A poll returning would read the clock first.
                core.reactor.refresh_now();
                driver.apply(key, |c, t| {
                    c.ready(true, true, peer_closed);
                    c.advance(t)
                });
            });
        }
        self.settle();
    }

    /// Runs the server until nothing is ready: tasks, due timers, resumes.
    fn settle(&mut self) {
        self.runtime.run_until_stalled();
    }

    /// Moves what the server wrote to the client's side.
    fn collect(&mut self, conn: ConnId) {
        let c = &mut self.conns[conn.0];
        let mut pipe = c.pipe.borrow_mut();
        c.pending.append(&mut pipe.output);
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        // Break the wheel's and the tasks' references to the driver.
        let driver = self.driver.clone();
        self.runtime.enter(|_| {
            driver.close_all();
            driver.cancel_timers();
        });
    }
}

/// For each complete request head at the front of `bytes` (and after each
/// body it can delimit by `Content-Length`), whether it is a HEAD request;
/// the client needs it to know that the response has no body.
fn request_methods_are_head(bytes: &[u8]) -> Vec<bool> {
    let mut out = Vec::new();
    let mut rest = bytes;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = req.parse(rest) else {
            return out;
        };
        out.push(req.method == Some("HEAD"));
        let length = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if req
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
        {
            return out;
        }
        rest = rest.get(len + length..).unwrap_or(&[]);
    }
}

/// Parses one response from the front of `bytes`: the response and the
/// bytes it used, or `None` if it is not complete yet.
fn parse_response(bytes: &[u8], head_only: bool, closed: bool) -> Option<(TestResponse, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = resp.parse(bytes).ok()? else {
        return None;
    };
    let status = resp.code?;
    let headers: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let rest = &bytes[len..];
    let no_body = head_only || (100..200).contains(&status) || status == 204 || status == 304;
    let (body, used) = if no_body {
        (Vec::new(), 0)
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        decode_chunked(rest)?
    } else if let Some(n) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        (rest.get(..n)?.to_vec(), n)
    } else if closed {
        (rest.to_vec(), rest.len())
    } else {
        return None;
    };
    Some((TestResponse { status, headers, body }, len + used))
}

fn decode_chunked(mut bytes: &[u8]) -> Option<(Vec<u8>, usize)> {
    let total = bytes.len();
    let mut body = Vec::new();
    loop {
        let line_end = bytes.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&bytes[..line_end]).ok()?, 16).ok()?;
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            let end = bytes.windows(2).position(|w| w == b"\r\n")?;
            bytes = &bytes[end + 2..];
            return Some((body, total - bytes.len()));
        }
        body.extend_from_slice(bytes.get(..size)?);
        bytes = bytes.get(size + 2..)?;
    }
}

/// One connection driven in memory for the bench of a whole connection turn:
/// bytes in → parse → route → handler → serialise → bytes out, through the
/// production driver and state machine, with no system call. Not part of
/// the API.
#[doc(hidden)]
#[derive(Debug)]
pub struct ConnectionTurn {
    client: TestClient,
    conn: ConnId,
}

impl ConnectionTurn {
    /// A connection of `server`.
    pub fn new(server: Server) -> std::io::Result<ConnectionTurn> {
        let mut client = TestClient::new(server);
        let conn = client.connect();
        Ok(ConnectionTurn { client, conn })
    }

    /// Handles `input` as if one read had returned it, and appends to `out`
    /// what the connection wrote. Fails if the connection is closing (an
    /// error response is still appended) or if a handler did not finish at once.
    pub fn turn(&mut self, input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        let client = &mut self.client;
        let c = &client.conns[self.conn.0];
        c.pipe.borrow_mut().input.extend(input);
        let (driver, key) = (client.driver.clone(), c.key);
        client.runtime.enter(|core| {
            // What the reactor does once per poll.
            core.reactor.refresh_now();
            driver.apply(key, |c, t| {
                c.ready(true, true, false);
                c.advance(t)
            });
            // And once its work is done.
            core.end_turn();
        });
        out.append(&mut client.conns[self.conn.0].pipe.borrow_mut().output);
        if client.is_write_closed(self.conn) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the connection is closing",
            ));
        }
        if client.phase(self.conn) == Some(Phase::HandlerPending) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "a handler did not finish at once",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
