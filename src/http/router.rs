//! Routes: method + path pattern → handler, and the inline first poll.
//!
//! Owns: the route table, matching (`:param` segments, a `*rest` tail), the
//! 404/405 decisions, and starting a handler. Must never: allocate to run a
//! handler that completes on its first poll (the fast path), or poll a
//! handler future after moving it.
//!
//! A handler's future is created inside a pinned slot that is reused: the
//! slot is taken from a per-route free list, the future is written into it,
//! polled once, and (if it finished) dropped in place and the slot returned.
//! Only a future that is still pending is handed over, slot and all, to a
//! task: the slow path pays for its allocation, the fast path never does.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::request::{Method, Request};
use super::response::Response;

/// What a handler may return.
pub trait IntoResponse {
    /// Converts into a response.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

/// An I/O error becomes a status: invalid data 400, too large 413, timed out
/// 408, anything else 500 (whose details are not sent to the client).
impl<T: IntoResponse> IntoResponse for Result<T, io::Error> {
    fn into_response(self) -> Response {
        match self {
            Ok(r) => r.into_response(),
            Err(e) => {
                let status = match e.kind() {
                    io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => 400,
                    io::ErrorKind::FileTooLarge => 413,
                    io::ErrorKind::TimedOut => 408,
                    _ => 500,
                };
                Response::text(super::response::reason(status)).with_status(status)
            }
        }
    }
}

impl<T: IntoResponse> IntoResponse for Result<T, Response> {
    fn into_response(self) -> Response {
        match self {
            Ok(r) => r.into_response(),
            Err(r) => r,
        }
    }
}

/// A request handler: any `Fn(Request) -> impl Future<Output = impl IntoResponse>`.
pub trait Handler: 'static {
    /// The handler's future.
    type Future: Future<Output = Self::Output> + 'static;
    /// What the future resolves to.
    type Output: IntoResponse;
    /// Starts handling `req`.
    fn call(&self, req: Request) -> Self::Future;
}

impl<F, Fut> Handler for F
where
    F: Fn(Request) -> Fut + 'static,
    Fut: Future + 'static,
    Fut::Output: IntoResponse,
{
    type Future = Fut;
    type Output = Fut::Output;
    fn call(&self, req: Request) -> Fut {
        self(req)
    }
}

/// The result of starting a handler.
pub(crate) enum Started {
    Ready(Response),
    Pending(Pin<Box<dyn Future<Output = Response>>>),
}

pub(crate) trait Endpoint {
    fn start(&self, req: Request) -> Started;
}

/// Free slots kept per route: enough for a burst of concurrent pending
/// handlers to come back without reallocating.
const SLOTS_KEPT: usize = 64;

type Slot<F> = Pin<Box<Option<F>>>;

struct Route<H: Handler> {
    handler: H,
    free: Rc<RefCell<Vec<Slot<H::Future>>>>,
}

/// A pending handler future, still in its slot; the slot goes back to the
/// free list once the future is done.
struct SlotFuture<F: Future> {
    slot: Option<Slot<F>>,
    free: Rc<RefCell<Vec<Slot<F>>>>,
}

impl<F: Future> Future for SlotFuture<F>
where
    F::Output: IntoResponse,
{
    type Output = Response;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let slot = self.slot.as_mut().expect("SlotFuture polled after completion");
        let future = slot.as_mut().as_pin_mut().expect("slot holds the future");
        let output = std::task::ready!(future.poll(cx));
        let mut slot = self.slot.take().expect("slot present");
        slot.set(None);
        let mut free = self.free.borrow_mut();
        if free.len() < SLOTS_KEPT {
            free.push(slot);
        }
        Poll::Ready(output.into_response())
    }
}

impl<H: Handler> Endpoint for Route<H> {
    fn start(&self, req: Request) -> Started {
        let slot = self.free.borrow_mut().pop();
        let mut slot = slot.unwrap_or_else(|| Box::pin(None));
        slot.set(Some(self.handler.call(req)));
        // Polled outside any task: a handler that is not ready becomes a task,
        // which polls it again at once with the task's own waker (a future
        // must use the waker of its latest poll), so the no-op waker given
        // here is never needed.
        let mut cx = Context::from_waker(Waker::noop());
        let poll = slot.as_mut().as_pin_mut().expect("just set").poll(&mut cx);
        match poll {
            Poll::Ready(output) => {
                slot.set(None);
                let mut free = self.free.borrow_mut();
                if free.len() < SLOTS_KEPT {
                    free.push(slot);
                }
                Started::Ready(output.into_response())
            }
            Poll::Pending => Started::Pending(Box::pin(SlotFuture {
                slot: Some(slot),
                free: self.free.clone(),
            })),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    Param(Rc<str>),
    /// Matches the rest of the path (possibly empty).
    Rest(Rc<str>),
}

struct Entry {
    method: Method,
    pattern: Vec<Segment>,
    /// The whole pattern when it has no parameters: such a route matches
    /// exactly this path, so one comparison decides it.
    literal: Option<Box<str>>,
    endpoint: Box<dyn Endpoint>,
}

impl Entry {
    fn matches(&self, path: &str, path_start: u32) -> Option<Params> {
        match &self.literal {
            Some(literal) => (**literal == *path).then(Params::new),
            None => match_path(&self.pattern, path, path_start),
        }
    }
}

/// The route table.
#[derive(Default)]
pub(crate) struct Router {
    routes: Vec<Entry>,
}

/// Captured parameters: name and position in the head bytes.
pub(crate) type Params = super::pool::PooledVec<Param>;

/// One captured parameter: its name (shared with the route) and where its
/// value lies in the head bytes.
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

/// The outcome of routing one request.
pub(crate) enum Routed<'a> {
    Found(&'a dyn Endpoint, Params),
    NotFound,
    /// The path exists for other methods: 405 with this `Allow` value.
    MethodNotAllowed(String),
}

fn parse_pattern(pattern: &str) -> Vec<Segment> {
    assert!(
        pattern.starts_with('/'),
        "route pattern must start with '/': {pattern:?}"
    );
    let parts: Vec<&str> = pattern[1..].split('/').collect();
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if let Some(name) = part.strip_prefix(':') {
            assert!(!name.is_empty(), "empty parameter name in {pattern:?}");
            out.push(Segment::Param(name.into()));
        } else if let Some(name) = part.strip_prefix('*') {
            assert!(i == parts.len() - 1, "a *rest segment must be last in {pattern:?}");
            out.push(Segment::Rest(name.into()));
        } else {
            out.push(Segment::Literal((*part).into()));
        }
    }
    out
}

impl Router {
    pub(crate) fn add<H: Handler>(&mut self, method: Method, pattern: &str, handler: H) {
        let text = pattern;
        let pattern = parse_pattern(text);
        let literal = pattern
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
            .then(|| text.into());
        assert!(
            !self.routes.iter().any(|r| r.method == method && r.pattern == pattern),
            "duplicate route for {method}"
        );
        self.routes.push(Entry {
            method,
            pattern,
            literal,
            endpoint: Box::new(Route {
                handler,
                free: Rc::new(RefCell::new(Vec::new())),
            }),
        });
    }

    /// Matches `path` (located at `path_start` in the head bytes, so that
    /// parameters can be kept as positions).
    pub(crate) fn route(&self, method: Method, path: &str, path_start: u32) -> Routed<'_> {
        let lookup = if method == Method::Head { Method::Get } else { method };
        let mut allowed: Vec<Method> = Vec::new();
        for entry in &self.routes {
            if let Some(params) = entry.matches(path, path_start) {
                if entry.method == lookup || entry.method == method {
                    return Routed::Found(&*entry.endpoint, params);
                }
                allowed.push(entry.method);
            }
        }
        if allowed.is_empty() {
            return Routed::NotFound;
        }
        if allowed.contains(&Method::Get) && !allowed.contains(&Method::Head) {
            allowed.push(Method::Head);
        }
        let allow: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
        Routed::MethodNotAllowed(allow.join(", "))
    }
}

fn match_path(pattern: &[Segment], path: &str, path_start: u32) -> Option<Params> {
    let rest = path.strip_prefix('/')?;
    let mut params = Params::new();
    let mut offset = path_start + 1;
    let mut parts = rest.split('/');
    for seg in pattern {
        match seg {
            Segment::Rest(name) => {
                let consumed = (offset - path_start - 1) as usize;
                let tail = &rest[consumed.min(rest.len())..];
                params.push(Param {
                    name: name.clone(),
                    span: (offset, offset + tail.len() as u32),
                });
                return Some(params);
            }
            Segment::Literal(lit) => {
                let part = parts.next()?;
                if part != &**lit {
                    return None;
                }
                offset += part.len() as u32 + 1;
            }
            Segment::Param(name) => {
                let part = parts.next()?;
                if part.is_empty() {
                    return None;
                }
                params.push(Param {
                    name: name.clone(),
                    span: (offset, offset + part.len() as u32),
                });
                offset += part.len() as u32 + 1;
            }
        }
    }
    if parts.next().is_some() {
        return None;
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
        match_path(&parse_pattern(pattern), path, 0).map(|ps| {
            ps.as_slice()
                .iter()
                .map(|p| {
                    (
                        p.name.to_string(),
                        path[p.span.0 as usize..p.span.1 as usize].to_string(),
                    )
                })
                .collect()
        })
    }

    /// The one-comparison path for patterns without parameters decides
    /// exactly as segment matching does.
    #[test]
    fn literal_patterns_match_as_segments_do() {
        let patterns = ["/", "/a", "/a/b", "/users/", "//", "/a.b"];
        let paths = [
            "/", "/a", "/a/", "/a/b", "/a/b/", "/users/", "/users", "//", "/a//b", "", "a", "/a.b", "/b",
        ];
        for pattern in patterns {
            for path in paths {
                assert_eq!(
                    pattern == path,
                    match_path(&parse_pattern(pattern), path, 0).is_some(),
                    "{pattern:?} against {path:?}"
                );
            }
        }
    }

    #[test]
    fn matching() {
        assert_eq!(params("/", "/"), Some(vec![]));
        assert_eq!(params("/", "/a"), None);
        assert_eq!(
            params("/users/:id", "/users/42"),
            Some(vec![("id".into(), "42".into())])
        );
        assert_eq!(params("/users/:id", "/users/"), None);
        assert_eq!(params("/users/:id", "/users/42/x"), None);
        assert_eq!(
            params("/a/:x/b/:y", "/a/1/b/2"),
            Some(vec![("x".into(), "1".into()), ("y".into(), "2".into())])
        );
        assert_eq!(
            params("/static/*path", "/static/css/site.css"),
            Some(vec![("path".into(), "css/site.css".into())])
        );
        assert_eq!(
            params("/static/*path", "/static/"),
            Some(vec![("path".into(), "".into())])
        );
        assert_eq!(params("/static/*path", "/other"), None);
    }
}
