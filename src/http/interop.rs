//! Conversions between solo's requests and responses and the `http` 1.x
//! crate's types (cargo feature `http-types`), so code written against the
//! ecosystem's shared types runs on solo, and handlers may take
//! `http::Request<Bytes>` and return `http::Response<B>`.
//!
//! Owns: the conversions and [`handler`], the adapter that lets an
//! `http`-typed function be a route. Must never: copy a body (bodies move as
//! `Bytes`), or the head more than once (the target and header values are
//! slices of one copy: `http` needs `Bytes`, which are `Send`, and a head's
//! share of the read buffer is not),
//! or accept a header the server would refuse to write (it is dropped and
//! logged instead of panicking mid-response).
//!
//! What does not carry over: a request's extensions and a response's
//! version (solo speaks HTTP/1.1; the version is taken from the request
//! line), and a response header value that is not visible ASCII (obs-text),
//! which `Response` cannot hold.

use std::future::Future;
use std::io;
use std::rc::Rc;

use bytes::Bytes;

use super::handler::IntoResponse;
use super::request::Request;
use super::response::{Body, Response};

impl Request {
    /// The request's head as an `http::Request<()>`: method, URI, version
    /// and headers, the target and every header value slices of one copy of
    /// the head (one allocation; `http` needs `Bytes`, which are `Send`, and
    /// solo's heads share the read buffer without atomics); the body stays
    /// here, to read as usual.
    ///
    /// ```
    /// # use solo::http::{test::TestClient, Request, Response, Server};
    /// let server = Server::new().get("/items", |req: Request| async move {
    ///     let head = req.http_head().unwrap();
    ///     Response::text(format!("{} {:?}", head.uri().path(), head.headers()["accept"]))
    /// });
    /// let res = TestClient::new(server).request(b"GET /items?x=1 HTTP/1.1\r\nHost: t\r\nAccept: text/plain\r\n\r\n");
    /// assert_eq!(res.text(), "/items \"text/plain\"");
    /// ```
    pub fn http_head(&self) -> io::Result<http::Request<()>> {
        let invalid =
            |what: &str, e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"));
        let method = http::Method::from_bytes(self.method_str().as_bytes()).map_err(|e| invalid("method", &e))?;
        let copy = self.head_copy();
        let uri = http::Uri::from_maybe_shared(self.target_bytes(&copy)).map_err(|e| invalid("target", &e))?;
        let mut builder = http::Request::builder()
            .method(method)
            .uri(uri)
            .version(match self.version() {
                "HTTP/1.0" => http::Version::HTTP_10,
                _ => http::Version::HTTP_11,
            });
        let headers = builder.headers_mut().expect("the builder has no error yet");
        headers.reserve(self.headers().count());
        for (name, value) in self.header_slices(&copy) {
            let name = http::HeaderName::from_bytes(name).map_err(|e| invalid("header name", &e))?;
            let value = http::HeaderValue::from_maybe_shared(value).map_err(|e| invalid("header value", &e))?;
            headers.append(name, value);
        }
        builder.body(()).map_err(|e| invalid("request", &e))
    }

    /// The whole request as an `http::Request<Bytes>`:
    /// [`http_head`](Self::http_head) with the body collected.
    pub async fn into_http(mut self) -> io::Result<http::Request<Bytes>> {
        let head = self.http_head()?;
        let body = self.body().await?;
        Ok(head.map(|()| body))
    }
}

/// A response from the `http` crate: status, headers and body (moved, not
/// copied). A header solo will not write (a value with control bytes or
/// obs-text) is dropped and logged at warn rather than panicking.
impl<B: Into<Body>> From<http::Response<B>> for Response {
    fn from(resp: http::Response<B>) -> Response {
        let (parts, body) = resp.into_parts();
        let mut out = Response::status(parts.status.as_u16()).body(body.into());
        for (name, value) in &parts.headers {
            let Ok(value) = value.to_str() else {
                log::warn!(target: "solo::http", "dropped response header {name}: not visible ASCII");
                continue;
            };
            out = if name == http::header::CONTENT_TYPE {
                out.content_type(value.to_string())
            } else {
                out.header(name.as_str().to_string(), value.to_string())
            };
        }
        out
    }
}

impl<B: Into<Body>> IntoResponse for http::Response<B> {
    fn into_response(self) -> Response {
        Response::from(self)
    }
}

/// A solo response as an `http::Response<Body>` (the body moves, a stream
/// included), for code that inspects or rewrites responses in `http`
/// terms.
impl From<Response> for http::Response<Body> {
    fn from(mut resp: Response) -> http::Response<Body> {
        let body = resp.take_body();
        let mut out = http::Response::new(body);
        *out.status_mut() =
            http::StatusCode::from_u16(resp.status_code()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let headers = out.headers_mut();
        for (name, value) in resp.header_pairs() {
            // Both were checked when set: only a name http rejects (one
            // with characters outside its token set) is skipped.
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                headers.append(n, v);
            }
        }
        out
    }
}

/// Makes a route of a function written against the `http` crate: it gets
/// the request with its body collected ([`Request::into_http`]) and may
/// return anything a handler may, `http::Response<B>` included. A request
/// that cannot be expressed in `http` types (a target `http::Uri` refuses)
/// is answered 400 without calling it.
///
/// ```
/// use bytes::Bytes;
/// use solo::http::{interop, test::TestClient, Server};
///
/// let server = Server::new().post(
///     "/echo",
///     interop::handler(|req: http::Request<Bytes>| async move {
///         http::Response::builder()
///             .status(201)
///             .header("x-len", req.body().len())
///             .body(req.into_body())
///             .unwrap()
///     }),
/// );
/// let res = TestClient::new(server).request(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
/// assert_eq!((res.status, res.header("x-len"), res.text().as_str()), (201, Some("2"), "hi"));
/// ```
pub fn handler<F, Fut>(f: F) -> impl Fn(Request) -> std::pin::Pin<Box<dyn Future<Output = Response>>> + 'static
where
    F: Fn(http::Request<Bytes>) -> Fut + 'static,
    Fut: Future + 'static,
    Fut::Output: IntoResponse,
{
    let f = Rc::new(f);
    move |req: Request| {
        let f = f.clone();
        Box::pin(async move {
            match req.into_http().await {
                Ok(req) => f(req).await.into_response(),
                Err(e) => Err::<Response, _>(e).into_response(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test::TestClient;
    use crate::http::Server;

    #[test]
    fn a_solo_response_converts_and_back() {
        let resp = Response::text("body").with_status(202).header("X-One", "1");
        let http_resp: http::Response<Body> = resp.into();
        assert_eq!(http_resp.status(), 202);
        assert_eq!(http_resp.headers()["x-one"], "1");
        assert_eq!(http_resp.headers()["content-type"], "text/plain; charset=utf-8");
        let back = Response::from(http_resp);
        assert_eq!(back.status_code(), 202);
        assert_eq!(back.header_value("x-one"), Some("1"));
        assert_eq!(back.header_value("content-type"), Some("text/plain; charset=utf-8"));
    }

    #[test]
    fn a_header_solo_cannot_hold_is_dropped_not_a_panic() {
        let resp = http::Response::builder()
            .header("x-bin", http::HeaderValue::from_bytes(b"caf\xe9").unwrap())
            .header("x-ok", "fine")
            .body("b")
            .unwrap();
        let resp = Response::from(resp);
        assert_eq!(resp.header_value("x-bin"), None);
        assert_eq!(resp.header_value("x-ok"), Some("fine"));
    }

    #[test]
    fn the_head_is_copied_once_and_the_version_carries() {
        let server = Server::new().get("/p", |req: Request| async move {
            let head = req.http_head().unwrap();
            // The URI and the header values are slices of one copy: each
            // lies as far from the path as it does in solo's head.
            let path = head.uri().path().as_ptr() as usize;
            let in_solo = req.target().as_ptr() as usize;
            let a = head
                .headers()
                .get_all("x-a")
                .iter()
                .map(|v| v.as_bytes().as_ptr() as usize);
            let solo_a = req
                .headers()
                .filter(|(n, _)| *n == "X-A")
                .map(|(_, v)| v.as_ptr() as usize);
            let shared = a.zip(solo_a).all(|(a, s)| a - path == s - in_solo) && path != in_solo;
            Response::text(format!("{:?} {} {}", head.version(), head.headers().len(), shared))
        });
        let mut c = TestClient::new(server);
        let r = c.request(b"GET /p HTTP/1.0\r\nHost: t\r\nX-A: 1\r\nX-A: 2\r\n\r\n");
        assert_eq!(r.text(), "HTTP/1.0 3 true");
    }

    #[test]
    fn an_http_handler_gets_the_body_and_a_bad_target_is_400() {
        let server = Server::new().post(
            "/len",
            handler(|req: http::Request<Bytes>| async move { format!("{} bytes", req.body().len()) }),
        );
        let mut c = TestClient::new(server);
        let ok = c.request(b"POST /len HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        assert_eq!(ok.text(), "3 bytes");
        // solo's parser takes any visible ASCII in a target; http::Uri
        // refuses a few (here `<`), so the adapter answers 400 itself.
        let bad = c.request(b"POST /len<x> HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(bad.status, 404, "no route matches /len<x>");
        let server = Server::new().post("/*rest", handler(|_req: http::Request<Bytes>| async { "unreachable" }));
        let bad = TestClient::new(server).request(b"POST /a<b> HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(bad.status, 400);
    }
}
