//! Routes: method + path pattern → endpoint.
//!
//! Owns: the route table, matching (`:param` segments, a `*rest` tail), and
//! the 404/405 decisions with the `Allow` value they carry. Must never:
//! allocate to match a route without parameters, or decode the path (route
//! parameters are positions in the raw target; see `Request::param`).

use super::handler::{endpoint, Endpoint, Handler};
use super::head::same_bytes;
use std::rc::Rc;

use super::request::{Method, Param, Params};

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
    fn matches(&self, path: &[u8], path_start: u32) -> Option<Params> {
        match &self.literal {
            Some(literal) => (literal.as_bytes() == path).then(Params::new),
            None => match_path(&self.pattern, path, path_start),
        }
    }
}

/// The route table.
///
/// Invariant: every route is in exactly one of `by_len` (a route without
/// parameters, under its path's length) and `patterns`, and both list
/// indices into `routes` in increasing order (the order of registration).
#[derive(Default)]
pub(crate) struct Router {
    routes: Vec<Entry>,
    /// The routes without parameters, by their path's length: a request's
    /// path is compared only with the ones as long as it.
    by_len: Vec<Vec<usize>>,
    /// The routes with parameters.
    patterns: Vec<usize>,
}

/// Why no route serves a request (`Router::route`'s error).
pub(crate) enum Unrouted {
    NotFound,
    /// The path exists for other methods: 405 with this `Allow` value.
    MethodNotAllowed(String),
    /// OPTIONS to a path routed for other methods: 204 with this `Allow`.
    Options(String),
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
        let literal: Option<Box<str>> = pattern
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
            .then(|| text.into());
        assert!(
            !self.routes.iter().any(|r| r.method == method && r.pattern == pattern),
            "duplicate route for {method}"
        );
        let index = self.routes.len();
        match &literal {
            Some(path) => {
                if self.by_len.len() <= path.len() {
                    self.by_len.resize_with(path.len() + 1, Vec::new);
                }
                self.by_len[path.len()].push(index);
            }
            None => self.patterns.push(index),
        }
        self.routes.push(Entry {
            method,
            pattern,
            literal,
            endpoint: endpoint(handler),
        });
    }

    /// Matches `path` (located at `path_start` in the head bytes, so that
    /// parameters can be kept as positions).
    ///
    /// The route registered first among those matching both the path and
    /// the method wins: the first route without parameters of the path's
    /// length that does, unless a route with parameters registered before
    /// it does too.
    #[inline(always)]
    pub(crate) fn route(
        &self,
        method: Method,
        path: &[u8],
        path_start: u32,
    ) -> Result<(&dyn Endpoint, Params), Unrouted> {
        let lookup = if method == Method::Head { Method::Get } else { method };
        let serves = |entry: &Entry| entry.method == lookup || entry.method == method;
        let same_len = self.by_len.get(path.len()).map_or(&[][..], Vec::as_slice);
        let literal = same_len.iter().copied().find(|&i| {
            let entry = &self.routes[i];
            serves(entry) && entry.literal.as_deref().is_some_and(|l| same_bytes(l.as_bytes(), path))
        });
        for &i in &self.patterns {
            if literal.is_some_and(|l| l < i) {
                break;
            }
            let entry = &self.routes[i];
            if serves(entry) {
                if let Some(params) = match_path(&entry.pattern, path, path_start) {
                    return Ok((&*entry.endpoint, params));
                }
            }
        }
        if let Some(i) = literal {
            return Ok((&*self.routes[i].endpoint, Params::new()));
        }
        Err(self.not_routed(method, path, path_start))
    }

    /// No route serves the method at `path`: 404, or the methods that the
    /// path is routed for (in the order of registration).
    #[cold]
    fn not_routed(&self, method: Method, path: &[u8], path_start: u32) -> Unrouted {
        let mut allowed: Vec<Method> = Vec::new();
        for entry in &self.routes {
            if entry.matches(path, path_start).is_some() {
                allowed.push(entry.method);
            }
        }
        if allowed.is_empty() {
            return Unrouted::NotFound;
        }
        let allow = allow_value(allowed);
        if method == Method::Options {
            // No OPTIONS route of its own: the server answers for the path
            // (RFC 9110 §9.3.7).
            Unrouted::Options(allow)
        } else {
            Unrouted::MethodNotAllowed(allow)
        }
    }

    /// The `Allow` value for `OPTIONS *`: every method the server routes.
    pub(crate) fn allow_all(&self) -> String {
        allow_value(self.routes.iter().map(|r| r.method).collect())
    }
}

/// `Allow` lists the routed methods, `HEAD` where `GET` is routed (it is
/// answered by the GET route), and `OPTIONS` (always answered), once each.
fn allow_value(mut methods: Vec<Method>) -> String {
    if methods.contains(&Method::Get) {
        methods.push(Method::Head);
    }
    methods.push(Method::Options);
    let mut names: Vec<&str> = Vec::new();
    for m in methods {
        if !names.contains(&m.as_str()) {
            names.push(m.as_str());
        }
    }
    names.join(", ")
}

fn match_path(pattern: &[Segment], path: &[u8], path_start: u32) -> Option<Params> {
    let rest = path.strip_prefix(b"/")?;
    let mut params = Params::new();
    let mut offset = path_start + 1;
    let mut parts = rest.split(|&b| b == b'/');
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
                if part != lit.as_bytes() {
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
        match_path(&parse_pattern(pattern), path.as_bytes(), 0).map(|ps| {
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
                    match_path(&parse_pattern(pattern), path.as_bytes(), 0).is_some(),
                    "{pattern:?} against {path:?}"
                );
            }
        }
    }

    /// The indexed lookup picks what a scan of every route in the order of
    /// registration picks: the first route serving both the path and the
    /// method, literal or with parameters, whatever their order.
    #[test]
    fn the_indexed_lookup_picks_the_first_route_registered() {
        use super::super::request::Request;
        let table: [(Method, &str); 12] = [
            (Method::Get, "/a"),
            (Method::Get, "/:x"),
            (Method::Post, "/a"),
            (Method::Get, "/b"),
            (Method::Get, "/users/:id"),
            (Method::Get, "/users/me"),
            (Method::Put, "/users/me"),
            (Method::Get, "/"),
            (Method::Head, "/h"),
            (Method::Get, "/h"),
            (Method::Delete, "/files/*rest"),
            (Method::Delete, "/files/x"),
        ];
        let mut r = Router::default();
        for (method, pattern) in table {
            r.add(method, pattern, |_req: Request| async { "x" });
        }
        let paths = [
            "/",
            "/a",
            "/b",
            "/c",
            "/users/me",
            "/users/7",
            "/users",
            "/h",
            "/files/x",
            "/files/",
            "/zz/y",
        ];
        let methods = [
            Method::Get,
            Method::Head,
            Method::Post,
            Method::Put,
            Method::Delete,
            Method::Options,
        ];
        for path in paths {
            for method in methods {
                // The scan, as written before the index.
                let lookup = if method == Method::Head { Method::Get } else { method };
                let scanned = r.routes.iter().position(|e| {
                    (e.method == lookup || e.method == method) && e.matches(path.as_bytes(), 0).is_some()
                });
                let found = match r.route(method, path.as_bytes(), 0) {
                    Ok((endpoint, _)) => r.routes.iter().position(|e| {
                        std::ptr::addr_eq(&*e.endpoint as *const dyn Endpoint, endpoint as *const dyn Endpoint)
                    }),
                    Err(_) => None,
                };
                assert_eq!(found, scanned, "{method} {path}");
            }
        }
    }

    #[test]
    fn allow_lists_each_method_once() {
        let mut r = Router::default();
        r.add(Method::Get, "/a", |_req: super::super::request::Request| async { "a" });
        r.add(Method::Post, "/a", |_req: super::super::request::Request| async { "a" });
        r.add(Method::Post, "/b", |_req: super::super::request::Request| async { "b" });
        match r.route(Method::Put, b"/a", 0) {
            Err(Unrouted::MethodNotAllowed(allow)) => assert_eq!(allow, "GET, POST, HEAD, OPTIONS"),
            _ => panic!("expected 405"),
        }
        match r.route(Method::Options, b"/b", 0) {
            Err(Unrouted::Options(allow)) => assert_eq!(allow, "POST, OPTIONS"),
            _ => panic!("expected OPTIONS"),
        }
        assert!(matches!(r.route(Method::Options, b"/c", 0), Err(Unrouted::NotFound)));
        assert_eq!(r.allow_all(), "GET, POST, HEAD, OPTIONS");
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
