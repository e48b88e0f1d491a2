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

use super::connection::{Phase, Turn};
use super::driver::{Applied, Driver};
use super::io::{MemoryTransport, Pipe};
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
pub struct TestClient {
    runtime: crate::Runtime,
    driver: Rc<Driver<MemoryTransport>>,
    conns: Vec<ClientConn>,
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
            let applied = driver.apply(key, |c, t| {
                let due = Turn {
                    tick: c.deadline_tick(t).map_or(t.tick, |at| at.max(t.tick)),
                    ..*t
                };
                c.on_deadline(&due)
            });
            if applied == Applied::Again {
                driver.drive(key);
            }
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
                let applied = driver.apply(key, |c, t| {
                    c.ready(true, true, peer_closed);
                    c.advance(t)
                });
                if applied == Applied::Again {
                    driver.drive(key);
                }
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
            })
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
mod tests {
    use super::*;
    use crate::http::{Config, Request, Response};
    use std::time::Duration;

    fn app() -> Server {
        Server::new()
            .get("/", |_req: Request| async { Response::text("hi") })
            .get("/slow", |_req: Request| async {
                crate::time::sleep(Duration::from_millis(20)).await;
                Response::text("slow")
            })
            .get("/big", |_req: Request| async { Response::bytes(vec![0u8; 1 << 20]) })
            .get("/stream", |_req: Request| async {
                let (tx, rx) = crate::sync::mpsc::channel(4);
                crate::spawn(async move {
                    for i in 0..3 {
                        if tx.send(Bytes::from(format!("part{i};"))).await.is_err() {
                            return;
                        }
                    }
                });
                Response::stream(rx)
            })
            .get("/headers", |req: Request| async move {
                let names: Vec<String> = req.headers().map(|(n, _)| n.to_string()).collect();
                Response::text(names.join(","))
            })
            .post("/echo", |mut req: Request| async move {
                req.body().await.map(Response::bytes)
            })
            .post("/count", |mut req: Request| async move {
                let mut n = 0;
                while let Some(chunk) = req.body_chunk().await {
                    n += chunk?.len();
                }
                Ok::<_, std::io::Error>(Response::text(format!("{n} bytes")))
            })
            .post("/ignore", |_req: Request| async { Response::text("ignored") })
    }

    use bytes::Bytes;

    /// Every transition of the state machine, in memory, no sleeps.
    #[test]
    fn each_state_transition() {
        let mut client = TestClient::new(app());
        let c = client.connect();
        assert_eq!(client.phase(c), Some(Phase::Idle));
        assert!(!client.holds_buffers(c), "accepted: no buffers");

        // Part of a head: ReadingHead, with a read buffer from the pool.
        client.send(c, b"GET / HTTP/1.1\r\nHo");
        assert_eq!(client.phase(c), Some(Phase::ReadingHead));
        assert!(client.holds_buffers(c));

        // The rest: answered in the same turn, then idle with no buffers.
        client.send(c, b"st: x\r\n\r\n");
        assert_eq!(client.responses(c)[0].body, b"hi");
        assert_eq!(client.phase(c), Some(Phase::Idle));
        assert!(!client.holds_buffers(c), "idle: buffers back in the pool");

        // A body still arriving: ReadingBody (the handler awaits it as a task).
        client.send(c, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345");
        assert_eq!(client.phase(c), Some(Phase::ReadingBody));
        client.send(c, b"67890");
        assert_eq!(client.responses(c)[0].body, b"1234567890");
        assert_eq!(client.phase(c), Some(Phase::Idle));

        // A piece-by-piece reader a window behind: BodyPaused, then resumed.
        let body = vec![b'u'; 1 << 20];
        let head = format!(
            "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        client.send(c, head.as_bytes());
        client.send(c, &body);
        assert_eq!(client.responses(c)[0].text(), "1048576 bytes");
        assert_eq!(client.phase(c), Some(Phase::Idle));

        // A handler that is not ready: HandlerPending, no deadline.
        client.send(c, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(client.phase(c), Some(Phase::HandlerPending));
        client.expire(c);
        assert_eq!(
            client.phase(c),
            Some(Phase::HandlerPending),
            "a task paces it: no timeout"
        );
        while client.phase(c) == Some(Phase::HandlerPending) {
            std::thread::sleep(Duration::from_millis(5));
            client.settle();
        }
        assert_eq!(client.responses(c)[0].body, b"slow");

        // A streamed response: Streaming while the task feeds it.
        client.set_window(c, Some(0));
        client.send(c, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(client.phase(c), Some(Phase::Writing), "the client does not read");
        client.set_window(c, None);
        let r = client.responses(c);
        assert_eq!(r[0].body, b"part0;part1;part2;");
        assert_eq!(r[0].header("transfer-encoding"), Some("chunked"));

        // A response the client does not read: Writing, then the write
        // deadline closes it.
        client.set_window(c, Some(1000));
        client.send(c, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(client.phase(c), Some(Phase::Writing));
        client.expire(c);
        assert!(client.is_closed(c), "write timeout");

        // A malformed request: 400, half-close, linger, then close when the
        // client closes.
        let c = client.connect();
        client.send(c, b"BAD REQUEST\r\n\r\n");
        assert_eq!(client.responses(c)[0].status, 400);
        assert!(client.is_write_closed(c));
        assert_eq!(client.phase(c), Some(Phase::Closing));
        client.send(c, b"ignored");
        assert_eq!(client.unread(c), 0, "lingering discards input");
        client.shutdown_write(c);
        assert!(client.is_closed(c));

        // Lingering ends at its deadline if the client never closes.
        let c = client.connect();
        client.send(c, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(client.phase(c), Some(Phase::Closing));
        client.expire(c);
        assert!(client.is_closed(c));

        // Timeouts: header (408), body (408), keep-alive (close).
        let c = client.connect();
        client.send(c, b"GET / HTTP/1.1\r\n");
        client.expire(c);
        assert_eq!(client.responses(c)[0].status, 408);
        let c = client.connect();
        client.send(c, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n123");
        client.expire(c);
        let r = client.responses(c);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].status, 408);
        let c = client.connect();
        client.expire(c);
        assert!(client.is_closed(c), "keep-alive timeout");
        assert_eq!(client.stats().timeouts, 4 + 1);
    }

    #[test]
    fn a_trickled_head_does_not_extend_its_deadline_but_body_progress_does() {
        let mut client = TestClient::new(app());
        let c = client.connect();
        let driver = client.driver.clone();
        let key = client.conns[c.0].key;
        let deadline = |client: &mut TestClient| {
            client
                .runtime
                .enter(|_| driver.with_turn(key, 0, |t| driver.conns.borrow()[key].c.deadline_tick(t)))
        };
        client.send(c, b"GET / HTTP/1.1\r\n");
        let first = deadline(&mut client);
        std::thread::sleep(Duration::from_millis(3));
        client.send(c, b"X: y\r\n");
        assert_eq!(
            deadline(&mut client),
            first,
            "header deadline counts from the first byte"
        );
        let c = client.connect();
        let key = client.conns[c.0].key;
        let deadline2 = |client: &mut TestClient| {
            let driver = client.driver.clone();
            client
                .runtime
                .enter(|_| driver.with_turn(key, 0, |t| driver.conns.borrow()[key].c.deadline_tick(t)))
        };
        client.send(c, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n1");
        let first = deadline2(&mut client).unwrap();
        std::thread::sleep(Duration::from_millis(3));
        client.send(c, b"2");
        assert!(
            deadline2(&mut client).unwrap() > first,
            "body progress moves the deadline"
        );
    }

    /// Defect 1: one request gets at most one response, even when its body
    /// turns out broken after the response was queued.
    #[test]
    fn a_broken_body_after_the_response_closes_without_a_second_response() {
        for size in ["zz", "ffffffffffffffffffffffff", "5;"] {
            let mut client = TestClient::new(app());
            let c = client.connect();
            // POST to a GET-only path: 405 is queued while the body is read.
            client.send(
                c,
                format!(
                    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
                )
                .as_bytes(),
            );
            let r = client.responses(c);
            assert_eq!(r.iter().map(|r| r.status).collect::<Vec<_>>(), vec![405], "{size}");
            assert!(client.is_write_closed(c), "{size}: closed after the 405");
            // And a handler that answered before reading its body.
            let c = client.connect();
            client.send(
                c,
                format!("POST /ignore HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\n").as_bytes(),
            );
            let r = client.responses(c);
            assert_eq!(r.iter().map(|r| r.status).collect::<Vec<_>>(), vec![200], "{size}");
            assert!(client.is_write_closed(c));
        }
    }

    /// Found by the connection fuzzer: the client's FIN in the middle of a
    /// body whose request was already answered closes at once, holding no
    /// buffer meanwhile.
    #[test]
    fn fin_mid_body_after_the_answer_closes() {
        let mut client = TestClient::new(app());
        let c = client.connect();
        client.send(c, b"LOST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 99\r\n\r\n");
        assert_eq!(client.responses(c)[0].status, 405);
        client.shutdown_write(c);
        assert!(client.is_closed(c));
    }

    /// Defect 2 and 5: a malformed chunked body gets 400 and a close at
    /// once, never a wait for the body timeout.
    #[test]
    fn malformed_chunked_bodies_get_400_at_once() {
        for body in [
            "0\r\n\n",
            "5;\r\nhello\r\n0\r\n\r\n",
            "5;bad[=x\r\nhello\r\n0\r\n\r\n",
            "3\nabc",
            "0\r\nX: a\n",
        ] {
            let mut client = TestClient::new(app());
            let c = client.connect();
            client.send(
                c,
                format!("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}").as_bytes(),
            );
            let r = client.responses(c);
            assert_eq!(r.len(), 1, "{body:?}: {r:?}");
            assert_eq!(r[0].status, 400, "{body:?}");
            assert!(client.is_write_closed(c), "{body:?}");
        }
    }

    /// Defects 3–5 and 7 as a client sees them.
    #[test]
    fn strict_heads_over_the_connection() {
        let mut client = TestClient::new(app());
        let cases: &[(&str, u16)] = &[
            ("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            ("GET / HTTP/1\r\nHost: x\r\n\r\n", 400),
            ("GET / http/1.1\r\nHost: x\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
            ("GET / HTTP/1.2\r\nHost: x\r\n\r\n", 200),
            ("GET /#frag HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: user@x\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),
            (
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked;ext=val\r\n\r\n",
                400,
            ),
            (
                "GET / HTTP/1.1\r\nHost: x\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n",
                400,
            ),
            ("GET / HTTP/1.1\nHost: x\r\n\r\n", 400),
            ("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ];
        for (raw, status) in cases {
            let r = client.request(raw.as_bytes());
            assert_eq!(r.status, *status, "{raw:?}");
        }
        let r = client.request(b"GET / HTTP/1.2\r\nHost: x\r\n\r\n");
        assert_eq!(r.body, b"hi");
        let long_method = vec![b'A'; 100 * 1024];
        let c = client.connect();
        client.send(c, &long_method);
        assert_eq!(client.responses(c)[0].status, 400, "a method longer than any: 400");
    }

    /// Defect 7: header names with `_` are dropped unless configured.
    #[test]
    fn underscore_fields_are_dropped_by_default() {
        let raw = b"GET /headers HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: evil\r\nContent_Length: 5\r\n\r\n";
        let mut client = TestClient::new(app());
        assert_eq!(client.request(raw).text(), "Host");
        let config = Config {
            underscores_in_headers: true,
            ..Config::default()
        };
        let mut client = TestClient::new(app().config(config));
        assert_eq!(client.request(raw).text(), "Host,X_Forwarded_For,Content_Length");
    }

    /// Defect 8: `OPTIONS *` and `OPTIONS /path` are answered with `Allow`.
    #[test]
    fn options_is_answered_with_allow() {
        let mut client = TestClient::new(app());
        let r = client.request(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.status, 204);
        assert_eq!(r.header("allow"), Some("GET, POST, HEAD, OPTIONS"));
        let r = client.request(b"OPTIONS /echo HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.status, 204);
        assert_eq!(r.header("allow"), Some("POST, OPTIONS"));
        assert_eq!(client.request(b"OPTIONS /nope HTTP/1.1\r\nHost: x\r\n\r\n").status, 404);
        let r = client.request(b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    }

    /// Defect 10: more buffered work than one `advance`'s budget goes on at
    /// the next turn, not at the next timer.
    #[test]
    fn work_past_the_budget_continues_without_a_timer() {
        let config = Config {
            max_body: 8 << 20,
            ..Config::default()
        };
        let mut client = TestClient::new(app().config(config));
        let c = client.connect();
        let body = vec![b'b'; 4 << 20];
        let mut raw = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(&body);
        raw.extend_from_slice(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000));
        client.send(c, &raw);
        let r = client.responses(c);
        assert_eq!(
            r.len(),
            2001,
            "every request answered in this settle, no timer waited for"
        );
        assert_eq!(r[0].body.len(), body.len());
        assert_eq!(client.unread(c), 0);
    }

    /// Defect 9: an idle connection stays within its budget in every build.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn an_idle_connection_is_at_most_120_bytes() {
        let size = std::mem::size_of::<super::super::driver::Slot<mio::net::TcpStream>>();
        assert!(size <= 120, "a connection's slot is {size} bytes");
    }

    #[test]
    fn head_requests_get_no_body_and_pipelines_keep_order() {
        let mut client = TestClient::new(app());
        let c = client.connect();
        client.send(
            c,
            b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        while client.phase(c) == Some(Phase::HandlerPending) {
            std::thread::sleep(Duration::from_millis(5));
            client.settle();
        }
        let r = client.responses(c);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].header("content-length"), Some("2"));
        assert!(r[0].body.is_empty());
        assert_eq!(r[1].body, b"slow");
        assert_eq!(r[2].body, b"hi");
    }
}
