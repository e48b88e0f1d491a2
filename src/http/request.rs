//! The request a handler receives.
//!
//! Owns: views of one request's head (method, target, headers: offsets into
//! the head's bytes, which share the connection's read buffer by an `Rc`:
//! `read_buf.rs`), its route parameters, and the handle to its body. Must never:
//! copy the head, or let a handler read more body than the configured limit.
//!
//! Decoding, decided once: route parameters are kept as positions in the
//! head and handed out raw (`/users/a%20b` gives `param("id") ==
//! Some("a%20b")`), because only the route knows whether a `%2F` in a
//! segment may become a `/`; [`Request::param_decoded`] percent-decodes one
//! (RFC 3986: `+` stays a plus in a path). The query and form bodies follow
//! the `application/x-www-form-urlencoded` rules (`+` is a space), through
//! the `form_urlencoded` crate. Decoding never fails: invalid escapes stay
//! as they are and invalid UTF-8 becomes U+FFFD.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::Poll;

use bytes::Bytes;

use super::body::BodyChannel;
pub use super::head::Method;
use super::head::{FieldLines, Head};
use super::peer::Peer;
use super::read_buf::HeadBytes;

/// Captured route parameters: name and position in the head bytes.
pub(crate) type Params = super::pool::PooledVec<Param>;

/// One captured route parameter: its name (shared with the route) and where
/// its value lies in the head bytes.
#[derive(Debug)]
pub(crate) struct Param {
    pub(crate) name: Rc<str>,
    pub(crate) span: (u32, u32),
}

impl super::pool::Pooled for Param {
    const KEEP_CAPACITY: usize = 16;
    const FIRST_CAPACITY: usize = 4;
    fn free_list() -> &'static std::thread::LocalKey<RefCell<Vec<Vec<Self>>>> {
        thread_local!(static FREE: RefCell<Vec<Vec<Param>>> = const { RefCell::new(Vec::new()) });
        &FREE
    }
}

/// A request's body, which also knows its declared length (`Empty`: 0;
/// `Full`: its own; `None`: chunked), so that a `Request` needs no field for
/// it.
pub(crate) enum Body {
    Empty,
    /// The whole body arrived with the head: copied out of the read buffer
    /// once (`ReadBuf::split_bytes`).
    Full(Bytes),
    /// The body is still arriving; the connection feeds the channel.
    Streaming(Rc<RefCell<BodyChannel>>, Option<u64>),
    /// The handler took it (or a view has none).
    Taken(Option<u64>),
}

impl Body {
    fn declared_length(&self) -> Option<u64> {
        match self {
            Body::Empty => Some(0),
            Body::Full(b) => Some(b.len() as u64),
            Body::Streaming(_, n) | Body::Taken(n) => *n,
        }
    }
}

/// An HTTP/1.x request.
///
/// At most 128 bytes (120 on 64-bit targets): a request is moved into its
/// handler's future, and a move of at most 128 bytes is a few inline loads
/// and stores where a larger one is a call to `memcpy` (callgrind).
/// Positions are 16 bits (a head is at most 64 KiB), the head's bytes are a
/// share of the read buffer's chunk (`HeadBytes`, 24 bytes), the peer is a
/// `Peer`, and the body knows its declared length.
pub struct Request {
    head: HeadBytes,
    params: Params,
    peer: Peer,
    body: Body,
    method_pos: (u16, u16),
    target: (u16, u16),
    method: Method,
    minor: u8,
    /// Fields whose name has `_` were kept: `headers` shows them.
    underscores: bool,
}

fn slice<P: Into<u32>>(head: &[u8], (start, end): (P, P)) -> &[u8] {
    &head[start.into() as usize..end.into() as usize]
}

fn as_str(b: &[u8]) -> &str {
    // httparse validated the request line and field names as visible ASCII;
    // values may carry obs-text, for which `header_bytes` is the way in.
    std::str::from_utf8(b).unwrap_or("")
}

impl Request {
    pub(crate) fn new(head_bytes: HeadBytes, head: Head, peer: Peer, body: Body) -> Request {
        debug_assert_eq!(
            body.declared_length(),
            head.body.declared_length(),
            "the body's declared length is the head's"
        );
        Request {
            head: head_bytes,
            params: Params::new(),
            peer,
            body,
            method_pos: head.method_pos,
            target: head.target,
            method: head.method,
            minor: head.minor,
            underscores: head.underscores,
        }
    }

    /// The head of a request as a `Request` of its own, with no body and no
    /// route parameters: what the access log shows. Shares the head's
    /// bytes; copies nothing.
    pub(crate) fn head_view(head_bytes: &HeadBytes, head: &Head, peer: Peer) -> Request {
        Request {
            head: head_bytes.clone(),
            params: Params::new(),
            peer,
            body: Body::Taken(head.body.declared_length()),
            method_pos: head.method_pos,
            target: head.target,
            method: head.method,
            minor: head.minor,
            underscores: head.underscores,
        }
    }

    pub(crate) fn set_params(&mut self, params: Params) {
        self.params = params;
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The method as sent (useful for [`Method::Other`]).
    pub fn method_str(&self) -> &str {
        as_str(slice(&self.head, self.method_pos))
    }

    /// The request target as sent: path and query, raw (not percent-decoded).
    pub fn target(&self) -> &str {
        as_str(slice(&self.head, self.target))
    }

    /// The path, without the query; for an absolute-form target
    /// (`http://host/path`), the path part.
    pub fn path(&self) -> &str {
        as_str(self.path_in_head().0)
    }

    /// `path` as bytes, and where it starts in the head bytes: what routing
    /// matches on, with no UTF-8 check and no `str` searcher per request (the
    /// parser already refused anything but visible ASCII in the target).
    ///
    /// An absolute-form target without a path (`http://host`) has the path
    /// `/`, which is not in the head: its position is the target's last byte,
    /// so that a `*rest` capture (empty) lies at the target's end, in bounds.
    #[inline]
    pub(crate) fn path_in_head(&self) -> (&[u8], u32) {
        let target = slice(&self.head, self.target);
        let (path, start) = if target.first() == Some(&b'/') {
            (target, u32::from(self.target.0))
        } else if let Some(i) = target.windows(3).position(|w| w == b"://") {
            // Absolute form: http://host/path
            let after = i + 3;
            match target[after..].iter().position(|&b| b == b'/') {
                Some(j) => (&target[after + j..], u32::from(self.target.0) + (after + j) as u32),
                None => (&b"/"[..], u32::from(self.target.1) - 1),
            }
        } else {
            (target, u32::from(self.target.0))
        };
        match path.iter().position(|&b| b == b'?') {
            Some(q) => (&path[..q], start),
            None => (path, start),
        }
    }

    /// The raw query string (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.target().split_once('?').map(|(_, q)| q)
    }

    /// The query as `(name, value)` pairs in order, decoded as a form
    /// (`%XX` escapes, `+` is a space); borrowed where nothing needed
    /// decoding.
    ///
    /// ```
    /// # use solo::http::{test::TestClient, Request, Response, Server};
    /// let server = Server::new().get("/search", |req: Request| async move {
    ///     let pairs: Vec<String> = req.query_pairs().map(|(k, v)| format!("{k}={v}")).collect();
    ///     Response::text(pairs.join(";"))
    /// });
    /// let res = TestClient::new(server).get("/search?q=a+b%26c&lang=en");
    /// assert_eq!(res.text(), "q=a b&c;lang=en");
    /// ```
    pub fn query_pairs(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
        form_urlencoded::parse(self.query().unwrap_or("").as_bytes())
    }

    /// The first query value named `name`, decoded as
    /// [`query_pairs`](Self::query_pairs) does.
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        self.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// A path parameter captured by the route (`:name` or `*name`), raw: as
    /// sent, not percent-decoded (see the module docs for why).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .as_slice()
            .iter()
            .find(|p| &*p.name == name)
            .map(|p| as_str(slice(&self.head, p.span)))
    }

    /// A path parameter, percent-decoded by RFC 3986's rules (`%XX` only: a
    /// `+` in a path is a plus). A `*rest` parameter's `%2F` becomes `/`
    /// here, indistinguishable from a real separator; use
    /// [`param`](Self::param) where that matters.
    pub fn param_decoded(&self, name: &str) -> Option<Cow<'_, str>> {
        self.param(name).map(percent_decode)
    }

    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub fn version(&self) -> &'static str {
        if self.minor == 0 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        }
    }

    /// The first value of a header, by case-insensitive name; `None` if
    /// absent or not valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of a header as raw bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every header, in order, as `(name, value)`.
    ///
    /// The fields are read again from the head's bytes on each call (the
    /// parser checked every line, so this cannot go wrong): a handler that
    /// asks for no header pays for none.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.field_lines()
            .map(|(name, value)| (as_str(&self.head[name]), &self.head[value]))
    }

    fn field_lines(&self) -> FieldLines<'_> {
        FieldLines::new(&self.head, self.target.1 as usize, self.underscores)
    }

    /// The head's bytes in one copy: a `Bytes` is `Send`, the head's share
    /// of the read buffer is not. `target_bytes` and `header_slices` slice it.
    #[cfg(feature = "http-types")]
    pub(crate) fn head_copy(&self) -> Bytes {
        Bytes::copy_from_slice(&self.head)
    }

    /// The target, a slice of `copy` (this request's `head_copy`).
    #[cfg(feature = "http-types")]
    pub(crate) fn target_bytes(&self, copy: &Bytes) -> Bytes {
        debug_assert_eq!(copy[..], self.head[..], "a copy of another head");
        copy.slice(self.target.0 as usize..self.target.1 as usize)
    }

    /// Each header's name, and its value as a slice of `copy` (this
    /// request's `head_copy`).
    #[cfg(feature = "http-types")]
    pub(crate) fn header_slices<'a>(&'a self, copy: &'a Bytes) -> impl Iterator<Item = (&'a [u8], Bytes)> {
        self.field_lines()
            .map(move |(name, value)| (&self.head[name], copy.slice(value)))
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer.get()
    }

    /// The declared body length (`Some(0)` for no body; `None` for chunked).
    pub fn content_length(&self) -> Option<u64> {
        self.body.declared_length()
    }

    /// Collects the whole body (up to the server's body limit: a longer body
    /// was already refused with 413, or fails here for a chunked one).
    pub async fn body(&mut self) -> io::Result<Bytes> {
        let taken = Body::Taken(self.body.declared_length());
        match std::mem::replace(&mut self.body, taken) {
            Body::Empty => Ok(Bytes::new()),
            Body::Full(b) => Ok(b),
            Body::Taken(_) => Err(io::Error::other("the request body was already taken")),
            Body::Streaming(chan, _) => {
                {
                    let mut c = chan.borrow_mut();
                    c.collecting = true;
                    c.taken();
                }
                let result = poll_fn(|cx| {
                    let mut c = chan.borrow_mut();
                    if let Some((kind, why)) = c.error {
                        return Poll::Ready(Err(io::Error::new(kind, why)));
                    }
                    if c.done {
                        return Poll::Ready(Ok(c.take_all()));
                    }
                    c.waker = Some(cx.waker().clone());
                    Poll::Pending
                })
                .await;
                chan.borrow_mut().abandoned = true;
                result
            }
        }
    }

    /// Collects the body and decodes it as an HTML form
    /// (`application/x-www-form-urlencoded`). A request that says another
    /// content type is an `InvalidData` error, so a handler can answer 415.
    pub async fn form(&mut self) -> io::Result<Vec<(String, String)>> {
        let is_form = self.header("content-type").is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
        });
        if !is_form {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the request body is not application/x-www-form-urlencoded",
            ));
        }
        Ok(form_pairs(&self.body().await?))
    }

    /// Reads the body piece by piece as it arrives (each piece up to
    /// 16 KiB of what has arrived, or one larger read whole): `None` at the
    /// end. The whole body is never held; `examples/upload.rs` writes one to
    /// a file.
    ///
    /// ```
    /// use solo::http::{test::TestClient, Request, Response, Server};
    /// let app = Server::new().post("/count", |mut req: Request| async move {
    ///     let mut n = 0;
    ///     while let Some(piece) = req.body_chunk().await {
    ///         n += piece?.len();
    ///     }
    ///     Ok::<_, std::io::Error>(Response::text(format!("{n} bytes")))
    /// });
    /// let res = TestClient::new(app).request(
    ///     b"POST /count HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    /// );
    /// assert_eq!(res.text(), "5 bytes");
    /// ```
    pub async fn body_chunk(&mut self) -> Option<io::Result<Bytes>> {
        match &self.body {
            Body::Empty | Body::Taken(_) => None,
            Body::Full(b) => {
                let taken = Body::Taken(Some(b.len() as u64));
                match std::mem::replace(&mut self.body, taken) {
                    Body::Full(b) => Some(Ok(b)),
                    _ => unreachable!(),
                }
            }
            Body::Streaming(chan, _) => {
                let chan = chan.clone();
                let r = poll_fn(|cx| {
                    let mut c = chan.borrow_mut();
                    if let Some(data) = c.take_block() {
                        c.taken();
                        return Poll::Ready(Some(Ok(data)));
                    }
                    if let Some((kind, why)) = c.error {
                        return Poll::Ready(Some(Err(io::Error::new(kind, why))));
                    }
                    if c.done {
                        return Poll::Ready(None);
                    }
                    c.waker = Some(cx.waker().clone());
                    Poll::Pending
                })
                .await;
                if !matches!(r, Some(Ok(_))) {
                    chan.borrow_mut().abandoned = true;
                    self.body = Body::Taken(self.body.declared_length());
                }
                r
            }
        }
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if let Body::Streaming(chan, _) = &self.body {
            let mut c = chan.borrow_mut();
            c.abandoned = true;
            c.clear();
        }
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method_str())
            .field("target", &self.target())
            .field("version", &self.version())
            .field("peer", &self.peer.get())
            .finish()
    }
}

/// Decodes `%XX` escapes (RFC 3986; `+` stays a plus, unlike a form):
/// invalid escapes stay as they are, invalid UTF-8 becomes U+FFFD, and the
/// input is borrowed back when there was nothing to decode.
///
/// ```
/// use solo::http::percent_decode;
/// assert_eq!(percent_decode("a%20b+c%zz"), "a b+c%zz");
/// ```
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy()
}

/// Decodes an `application/x-www-form-urlencoded` body or query into
/// `(name, value)` pairs (`+` is a space), owned.
///
/// ```
/// use solo::http::form_pairs;
/// let pairs = form_pairs(b"name=J%C3%BCrgen+M&empty=&flag");
/// assert_eq!(pairs[0], ("name".to_string(), "Jürgen M".to_string()));
/// assert_eq!(pairs[1], ("empty".to_string(), String::new()));
/// assert_eq!(pairs[2], ("flag".to_string(), String::new()));
/// ```
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

#[cfg(test)]
mod tests {
    use crate::http::test::TestClient;
    use crate::http::{percent_decode, Request, Response, Server};

    fn app() -> Server {
        Server::new()
            .get("/files/*rest", |req: Request| async move {
                Response::text(format!(
                    "{}|{}",
                    req.param("rest").unwrap(),
                    req.param_decoded("rest").unwrap()
                ))
            })
            .get("/q", |req: Request| async move {
                Response::text(format!("{:?}", req.query_param("x")))
            })
            .post("/form", |mut req: Request| async move {
                match req.form().await {
                    Ok(pairs) => Response::text(format!("{pairs:?}")),
                    Err(e) => Response::text(e.to_string()).with_status(415),
                }
            })
    }

    /// The declared length is kept by the body itself (`Request` has no
    /// field for it): it must say the same before and after the body is
    /// taken, whole or streamed, by length or chunked.
    #[test]
    fn content_length_is_the_declared_one_before_and_after_the_body_is_taken() {
        let app = Server::new()
            .post("/whole", |mut req: Request| async move {
                let before = req.content_length();
                let body = req.body().await.map(|b| b.len());
                Response::text(format!("{before:?} {body:?} {:?}", req.content_length()))
            })
            .post("/pieces", |mut req: Request| async move {
                let before = req.content_length();
                let mut n = 0;
                while let Some(Ok(piece)) = req.body_chunk().await {
                    n += piece.len();
                }
                Response::text(format!("{before:?} {n} {:?}", req.content_length()))
            })
            .get("/", |req: Request| async move {
                Response::text(format!("{:?}", req.content_length()))
            });
        let mut client = TestClient::new(app);
        assert_eq!(client.get("/").text(), "Some(0)");
        let full = client.request(b"POST /whole HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(full.text(), "Some(5) Ok(5) Some(5)");
        let chunked = b"Host: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let whole = client.request(&[&b"POST /whole HTTP/1.1\r\n"[..], chunked].concat());
        assert_eq!(whole.text(), "None Ok(5) None");
        let pieces = client.request(&[&b"POST /pieces HTTP/1.1\r\n"[..], chunked].concat());
        assert_eq!(pieces.text(), "None 5 None");
        // Longer than one read: streamed, by length.
        let big = vec![b'x'; 300_000];
        let head = format!(
            "POST /pieces HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            big.len()
        );
        let streamed = client.request(&[head.as_bytes(), &big].concat());
        assert_eq!(streamed.text(), "Some(300000) 300000 Some(300000)");
        let empty = client.request(b"POST /whole HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(empty.text(), "Some(0) Ok(0) Some(0)");
    }

    /// Moved into every handler's future: at most 128 bytes, the largest
    /// move the compiler makes inline rather than with `memcpy`.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_request_is_at_most_128_bytes() {
        let size = std::mem::size_of::<Request>();
        assert!(size <= 128, "a request is {size} bytes");
    }

    #[test]
    fn params_are_raw_unless_asked_and_plus_is_literal_in_a_path() {
        let mut c = TestClient::new(app());
        assert_eq!(c.get("/files/a%2Fb+c%20d").text(), "a%2Fb+c%20d|a/b+c d");
        // An invalid escape and invalid UTF-8 do not fail.
        assert_eq!(c.get("/files/%zz%FF").text(), "%zz%FF|%zz\u{FFFD}");
    }

    #[test]
    fn query_values_are_form_decoded() {
        let mut c = TestClient::new(app());
        assert_eq!(c.get("/q?y=1&x=a+b%2Bc").text(), "Some(\"a b+c\")");
        assert_eq!(c.get("/q?x").text(), "Some(\"\")");
        assert_eq!(c.get("/q").text(), "None");
    }

    #[test]
    fn a_form_body_is_decoded_and_another_type_refused() {
        let mut c = TestClient::new(app());
        let ok = c.request(
            b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nContent-Length: 17\r\n\r\nname=a+b&n=%31%32",
        );
        assert_eq!(ok.text(), r#"[("name", "a b"), ("n", "12")]"#);
        let json = c.request(
            b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        );
        assert_eq!(json.status, 415);
    }

    #[test]
    fn percent_decode_borrows_when_nothing_changes() {
        assert!(matches!(percent_decode("plain"), std::borrow::Cow::Borrowed("plain")));
    }
}
