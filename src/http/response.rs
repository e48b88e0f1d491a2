//! The response a handler returns, and its serialisation.
//!
//! Owns: status, headers and body of one response, and writing them as
//! HTTP/1.1 bytes. Must never: copy a body that is already `Bytes` or
//! `'static` (they are queued as they are), or emit a header value with CR or
//! LF in it (response splitting).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;

use bytes::{BufMut, Bytes, BytesMut};

use crate::sync::mpsc;

/// A response body.
pub enum Body {
    /// No body.
    Empty,
    /// A body that is known up front.
    Full(Bytes),
    /// A body sent as it is produced, with chunked transfer encoding; each
    /// item is one chunk (empty items are skipped). Ends when every sender is
    /// dropped.
    Stream(mpsc::Receiver<Bytes>),
    /// No body: the response is a `101` and the connection changes protocol
    /// ([`Response::upgrade`]).
    Upgrade(super::upgrade::Upgrade),
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Full(b) => write!(f, "Full({} bytes)", b.len()),
            Body::Stream(_) => f.write_str("Stream"),
            Body::Upgrade(_) => f.write_str("Upgrade"),
        }
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Body::Full(Bytes::from_static(s.as_bytes()))
    }
}
impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Body {
        Body::Full(Bytes::from_static(s))
    }
}
impl From<String> for Body {
    fn from(s: String) -> Body {
        Body::Full(Bytes::from(s))
    }
}
impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Body::Full(Bytes::from(v))
    }
}
impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body::Full(b)
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    status: u16,
    content_type: Option<Cow<'static, str>>,
    headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    body: Body,
    /// The handler asked to close the connection after this response.
    close: bool,
}

fn check_header(name: &str, value: &str) {
    assert!(
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':'),
        "invalid response header name {name:?}"
    );
    assert!(
        value.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f)),
        "invalid response header value for {name}: CR, LF and control bytes are not allowed"
    );
}

impl Response {
    /// A response with `status` and no body.
    pub fn status(status: u16) -> Response {
        assert!((100..=999).contains(&status), "invalid status code {status}");
        Response {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Body::Empty,
            close: false,
        }
    }

    /// 200 with a `text/plain; charset=utf-8` body.
    pub fn text(body: impl Into<Body>) -> Response {
        Response::with_known_type("text/plain; charset=utf-8", body.into())
    }

    /// 200 with an `application/json` body (already serialised).
    pub fn json(body: impl Into<Body>) -> Response {
        Response::with_known_type("application/json", body.into())
    }

    /// 200 with an `application/octet-stream` body.
    pub fn bytes(body: impl Into<Body>) -> Response {
        Response::with_known_type("application/octet-stream", body.into())
    }

    /// A 200 with one of our own content types, which need no validation
    /// (this runs once per response on the fast path).
    fn with_known_type(content_type: &'static str, body: Body) -> Response {
        Response {
            status: 200,
            content_type: Some(Cow::Borrowed(content_type)),
            headers: Vec::new(),
            body,
            close: false,
        }
    }

    /// 200 with a body streamed from a channel in chunks (Server-Sent Events
    /// and other long responses). Pair with `content_type`. The stream ends
    /// when every sender is dropped; a send fails once the client has gone.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use solo::http::{test::TestClient, Request, Response, Server};
    /// let app = Server::new().get("/count", |_req: Request| async {
    ///     let (tx, rx) = solo::sync::mpsc::channel(4);
    ///     solo::spawn(async move {
    ///         for i in 1..=3 {
    ///             if tx.send(Bytes::from(format!("{i}\n"))).await.is_err() {
    ///                 return; // the client went away
    ///             }
    ///         }
    ///     });
    ///     Response::stream(rx).content_type("text/plain")
    /// });
    /// let res = TestClient::new(app).get("/count");
    /// assert_eq!(res.header("transfer-encoding"), Some("chunked"));
    /// assert_eq!(res.text(), "1\n2\n3\n");
    /// ```
    pub fn stream(chunks: mpsc::Receiver<Bytes>) -> Response {
        Response::status(200).body(Body::Stream(chunks))
    }

    /// `101 Switching Protocols` to `protocol` (the `Upgrade` token, e.g.
    /// `"websocket"`): once the 101 is written and the request's body (if
    /// any) read, `on_upgrade` runs as a task with the connection. For
    /// WebSocket use [`ws::upgrade`](super::ws::upgrade), which checks the
    /// handshake and speaks the protocol.
    ///
    /// ```no_run
    /// use solo::http::{Request, Response, Server};
    /// // A line-echo protocol behind `Upgrade: echo`.
    /// Server::bind("127.0.0.1:8080")?
    ///     .get("/echo", |_req: Request| async {
    ///         Response::upgrade("echo", |mut conn| async move {
    ///             let mut buf = [0u8; 1024];
    ///             while let Ok(n @ 1..) = conn.read(&mut buf).await {
    ///                 if conn.write_all(&buf[..n]).await.is_err() {
    ///                     break;
    ///                 }
    ///             }
    ///         })
    ///     })
    ///     .run()
    /// # ; Ok::<(), std::io::Error>(())
    /// ```
    pub fn upgrade<F, Fut>(protocol: &str, on_upgrade: F) -> Response
    where
        F: FnOnce(super::Upgraded) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        check_header("upgrade", protocol);
        let on_upgrade: super::upgrade::OnUpgrade = Box::new(move |conn| crate::spawn(on_upgrade(conn)));
        let mut resp = Response::status(101).body(Body::Upgrade(super::upgrade::Upgrade(on_upgrade)));
        // Written as they are: `header` keeps `Connection` for itself.
        resp.headers
            .push((Cow::Borrowed("Upgrade"), Cow::Owned(protocol.to_string())));
        resp.headers
            .push((Cow::Borrowed("Connection"), Cow::Borrowed("upgrade")));
        resp
    }

    /// Sets the status code.
    pub fn with_status(mut self, status: u16) -> Response {
        assert!((100..=999).contains(&status), "invalid status code {status}");
        self.status = status;
        self
    }

    /// Sets `Content-Type`.
    pub fn content_type(mut self, value: impl Into<Cow<'static, str>>) -> Response {
        let value = value.into();
        check_header("content-type", &value);
        self.content_type = Some(value);
        self
    }

    /// Adds a header. Panics on a name or value that is not allowed (CR, LF,
    /// control bytes): a handler bug, answered with 500 by the server.
    /// `Content-Length`, `Transfer-Encoding`, `Date` and `Connection` are the
    /// server's to write and are ignored here, except `Connection: close`,
    /// which closes the connection after this response.
    pub fn header(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Cow<'static, str>>) -> Response {
        let (name, value) = (name.into(), value.into());
        check_header(&name, &value);
        if name.eq_ignore_ascii_case("connection") {
            self.close |= value.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"));
            return self;
        }
        let reserved = ["content-length", "transfer-encoding", "date"];
        if !reserved.iter().any(|r| name.eq_ignore_ascii_case(r)) {
            self.headers.push((name, value));
        }
        self
    }

    /// Whether the connection closes after this response (the handler set
    /// `Connection: close`).
    pub fn closes_connection(&self) -> bool {
        self.close
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Body>) -> Response {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status_code(&self) -> u16 {
        self.status
    }

    /// The value of a header set on this response.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        if name.eq_ignore_ascii_case("content-type") {
            return self.content_type.as_deref();
        }
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &**v)
    }

    /// Every header set, `Content-Type` first if there is one.
    #[cfg(feature = "http-types")]
    pub(crate) fn header_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        let content_type = self.content_type.as_deref().map(|v| ("content-type", v));
        content_type
            .into_iter()
            .chain(self.headers.iter().map(|(n, v)| (&**n, &**v)))
    }

    /// The body, where it lies.
    pub(crate) fn body_ref(&self) -> &Body {
        &self.body
    }

    pub(crate) fn take_body(&mut self) -> Body {
        std::mem::replace(&mut self.body, Body::Empty)
    }

    /// Writes the status line and headers. Statuses that never have a body
    /// (1xx, 204, 304) get no framing header.
    pub(crate) fn write_head(&self, out: &mut BytesMut, date_line: &[u8], framing: Framing, close: bool, minor: u8) {
        out.put_slice(status_line(self.status));
        out.put_slice(date_line);
        if has_body(self.status) {
            match framing {
                Framing::Length(n) => {
                    out.put_slice(b"Content-Length: ");
                    put_decimal(out, n);
                    out.put_slice(b"\r\n");
                }
                Framing::Chunked => out.put_slice(b"Transfer-Encoding: chunked\r\n"),
                Framing::CloseDelimited => {}
            }
        }
        if let Some(ct) = &self.content_type {
            out.put_slice(b"Content-Type: ");
            out.put_slice(ct.as_bytes());
            out.put_slice(b"\r\n");
        }
        for (n, v) in &self.headers {
            out.put_slice(n.as_bytes());
            out.put_slice(b": ");
            out.put_slice(v.as_bytes());
            out.put_slice(b"\r\n");
        }
        if close {
            out.put_slice(b"Connection: close\r\n");
        } else if minor == 0 {
            out.put_slice(b"Connection: keep-alive\r\n");
        }
        out.put_slice(b"\r\n");
    }
}

/// The last response head written, kept whole: most responses of a server
/// repeat the one before (same status, type, length, persistence, second),
/// and copying the head in one piece costs a fraction of writing it field by
/// field. Only heads without extra fields are kept (those vary).
///
/// Invariant: `bytes` is exactly what `write_head` writes for `key` with the
/// date of `key.second`.
pub(crate) struct HeadCache {
    key: Option<HeadKey>,
    content_type: Option<Cow<'static, str>>,
    bytes: BytesMut,
}

/// Whether two optional texts are equal: at once when they are the same
/// static string (the common case: a type the response constructors set),
/// else byte by byte.
fn same_text(a: &Option<Cow<'static, str>>, b: &Option<Cow<'static, str>>) -> bool {
    match (a, b) {
        (Some(Cow::Borrowed(x)), Some(Cow::Borrowed(y))) if std::ptr::eq(*x, *y) => true,
        _ => a == b,
    }
}

/// What a cached head depends on, but its content type.
#[derive(Clone, Copy, PartialEq, Eq)]
struct HeadKey {
    status: u16,
    framing: Framing,
    close: bool,
    minor: u8,
    /// The date's second (`DateCache::second`).
    second: u64,
}

impl HeadCache {
    pub(crate) fn new() -> HeadCache {
        HeadCache {
            key: None,
            content_type: None,
            bytes: BytesMut::new(),
        }
    }

    /// Writes `resp`'s head into `out`, as `write_head` does: from the cache
    /// when it holds this head, else written and (without extra fields)
    /// kept. Always inline, the refill kept out of line: called, the hit
    /// (a compare and a copy) paid a call's register saves and restores,
    /// 17 of a pipelined request's 1,063 instructions (callgrind).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(crate) fn write(
        &mut self,
        resp: &Response,
        out: &mut BytesMut,
        date_line: &[u8],
        second: u64,
        framing: Framing,
        close: bool,
        minor: u8,
    ) {
        if !resp.headers.is_empty() {
            return resp.write_head(out, date_line, framing, close, minor);
        }
        let key = HeadKey {
            status: resp.status,
            framing,
            close,
            minor,
            second,
        };
        if self.key != Some(key) || !same_text(&self.content_type, &resp.content_type) {
            self.refill(resp, key, date_line);
        }
        out.extend_from_slice(&self.bytes);
    }

    /// The cache now holds `resp`'s head for `key` (a new second, status or
    /// type: rare on a busy connection).
    #[cold]
    #[inline(never)]
    fn refill(&mut self, resp: &Response, key: HeadKey, date_line: &[u8]) {
        self.bytes.clear();
        resp.write_head(&mut self.bytes, date_line, key.framing, key.close, key.minor);
        self.key = Some(key);
        self.content_type.clone_from(&resp.content_type);
    }
}

/// How a response body's end is marked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
    /// HTTP/1.0 streaming: the body ends when the connection closes.
    CloseDelimited,
}

/// Whether a response with this status carries a body (RFC 9110 §6.4.1).
pub(crate) fn has_body(status: u16) -> bool {
    !(100..200).contains(&status) && status != 204 && status != 304
}

pub(crate) fn put_hex(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[(n % 16) as usize];
        n /= 16;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

pub(crate) fn put_decimal(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

/// The reason phrase of a status code ("" for unknown codes).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

fn status_line(status: u16) -> &'static [u8] {
    macro_rules! lines {
        ($($code:literal => $text:literal),* $(,)?) => {
            match status {
                $($code => concat!("HTTP/1.1 ", stringify!($code), " ", $text, "\r\n").as_bytes(),)*
                _ => return dynamic_status_line(status),
            }
        };
    }
    lines! {
        200 => "OK", 201 => "Created", 204 => "No Content", 301 => "Moved Permanently",
        302 => "Found", 304 => "Not Modified", 400 => "Bad Request", 404 => "Not Found",
        405 => "Method Not Allowed", 408 => "Request Timeout", 413 => "Content Too Large",
        414 => "URI Too Long", 417 => "Expectation Failed", 431 => "Request Header Fields Too Large",
        500 => "Internal Server Error", 501 => "Not Implemented", 503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
    }
}

/// Status lines for codes outside the table are built once and kept: a
/// handful of distinct codes at most, leaked on purpose.
fn dynamic_status_line(status: u16) -> &'static [u8] {
    thread_local! {
        static LINES: std::cell::RefCell<Vec<(u16, &'static [u8])>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    LINES.with(|l| {
        if let Some((_, line)) = l.borrow().iter().find(|(s, _)| *s == status) {
            return *line;
        }
        let line: &'static [u8] = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes().leak();
        l.borrow_mut().push((status, line));
        line
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_head() {
        let r = Response::text("hi").header("X-A", "b");
        let mut out = BytesMut::new();
        r.write_head(
            &mut out,
            b"Date: Tue, 24 Nov 2026 12:00:00 GMT\r\n",
            Framing::Length(2),
            false,
            1,
        );
        assert_eq!(
            &out[..],
            b"HTTP/1.1 200 OK\r\nDate: Tue, 24 Nov 2026 12:00:00 GMT\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\nX-A: b\r\n\r\n"
        );
        let mut out = BytesMut::new();
        Response::status(204).write_head(&mut out, b"Date: D\r\n", Framing::Length(0), true, 0);
        assert_eq!(
            &out[..],
            b"HTTP/1.1 204 No Content\r\nDate: D\r\nConnection: close\r\n\r\n"
        );
        let mut out = BytesMut::new();
        Response::status(418).write_head(&mut out, b"Date: D\r\n", Framing::Length(0), false, 1);
        assert!(out.starts_with(b"HTTP/1.1 418 \r\n"));
    }

    /// The cache writes exactly what `write_head` writes, whatever changes
    /// from one response to the next (and misses on each change).
    #[test]
    fn the_head_cache_writes_what_write_head_writes() {
        let owned_type = || Response::text("x").content_type(String::from("text/plain; charset=utf-8"));
        let responses: Vec<(Response, Framing, bool, u8, u64)> = vec![
            (Response::text("hello"), Framing::Length(5), false, 1, 10),
            (Response::text("hello"), Framing::Length(5), false, 1, 10),
            (Response::text("hello"), Framing::Length(5), false, 1, 11),
            (Response::text("hello"), Framing::Length(6), false, 1, 11),
            (Response::text("hello"), Framing::Length(6), true, 1, 11),
            (Response::text("hello"), Framing::Length(6), true, 0, 11),
            (
                Response::text("hello").with_status(404),
                Framing::Length(6),
                true,
                0,
                11,
            ),
            (
                Response::text("x").content_type("text/html"),
                Framing::Length(6),
                true,
                0,
                11,
            ),
            (owned_type(), Framing::Length(6), true, 0, 11),
            (Response::text("hello"), Framing::Length(6), true, 0, 11),
            (
                Response::text("hello").header("X-A", "1"),
                Framing::Length(6),
                true,
                0,
                11,
            ),
            (
                Response::text("hello").header("X-A", "2"),
                Framing::Length(6),
                true,
                0,
                11,
            ),
            (Response::status(204), Framing::Length(0), false, 1, 11),
            (Response::text("s"), Framing::Chunked, false, 1, 11),
        ];
        let mut cache = HeadCache::new();
        for (resp, framing, close, minor, second) in responses {
            let date = format!("Date: second {second}\r\n");
            let mut expected = BytesMut::new();
            resp.write_head(&mut expected, date.as_bytes(), framing, close, minor);
            let mut out = BytesMut::from(&b"before"[..]);
            cache.write(&resp, &mut out, date.as_bytes(), second, framing, close, minor);
            assert_eq!(&out[6..], &expected[..], "{:?}", String::from_utf8_lossy(&expected));
        }
    }

    #[test]
    #[should_panic(expected = "CR, LF")]
    fn header_injection_is_refused() {
        let _ = Response::text("x").header("X", "a\r\nSet-Cookie: evil");
    }

    #[test]
    fn decimal() {
        for n in [0u64, 7, 10, 13, 99999, u64::MAX] {
            let mut out = BytesMut::new();
            put_decimal(&mut out, n);
            assert_eq!(std::str::from_utf8(&out).unwrap(), n.to_string());
        }
    }
}
