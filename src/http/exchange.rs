//! One request to one response: the `before` hooks, routing (404, 405,
//! `OPTIONS`), the handler's inline first poll, the in-flight cap (503), the
//! `after` hooks, and serialising the response into a connection's output.
//!
//! Owns: what every connection of one server shares to answer requests (the
//! router, the hooks, the config, the counters, the cached `Date`, the count
//! of handlers running as tasks). Must never: touch a connection's phase, its
//! transport or its timers: it is handed a request and gives back a response
//! (or a future still pending), and writes bytes where it is told.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes};

use super::access::AccessLog;
use super::config::Config;
use super::date::DateCache;
use super::handler::Started;
use super::head::TargetForm;
use super::io::{Buffers, Output, COPY_BODY_MAX};
use super::request::Request;
use super::response::{self, Body, Framing, HeadCache, Response};
use super::router::{Router, Unrouted};
use super::stats::{add, Counters};
use super::upgrade::OnUpgrade;
use crate::sync::mpsc;

/// A hook run before routing: a response answers the request with it.
pub(crate) type Before = Box<dyn Fn(&mut Request) -> Option<Response>>;
/// A hook run on every response.
pub(crate) type After = Box<dyn Fn(Response) -> Response>;

/// A handler future still pending after its first poll.
pub(crate) type PendingHandler = Pin<Box<dyn Future<Output = Response>>>;

/// How to answer one request: what its head said about the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    /// A `HEAD` request: the head only, with the body's framing.
    pub(crate) head_only: bool,
    /// The connection may stay open after this response.
    pub(crate) keep_alive: bool,
    /// The request's HTTP/1.x minor version (0 or 1).
    pub(crate) minor: u8,
}

impl Reply {
    /// For an answer the server gives on its own and closes after (an
    /// error): HTTP/1.1 framing, `Connection: close`.
    pub(crate) const CLOSE: Reply = Reply {
        head_only: false,
        keep_alive: false,
        minor: 1,
    };
}

/// What starting one request gave.
pub(crate) enum Outcome {
    /// The response is in the slot `start` was given.
    Respond,
    /// The handler panicked: 500, then close.
    Panicked,
    /// The handler is not done: it must run as a task.
    Pending(PendingHandler),
}

/// What serialising a response left to do. Two words, so that it comes back
/// in registers: the rare rest is boxed.
pub(crate) struct Written {
    /// The status sent (after the `after` hooks).
    pub(crate) status: u16,
    /// The connection must close once this response is written.
    pub(crate) close: bool,
    /// A stream to feed, or a connection to hand over.
    pub(crate) then: Option<Box<Then>>,
}

impl Written {
    /// A stream follows the head (the response is not complete yet).
    pub(crate) fn streams(&self) -> bool {
        matches!(self.then.as_deref(), Some(Then::Stream(_)))
    }
}

/// What a written head leaves to do besides.
pub(crate) enum Then {
    /// A streamed body, for a task to feed.
    Stream(mpsc::Receiver<Bytes>),
    /// A `101`: what takes the connection over once it is written.
    Upgrade(OnUpgrade),
}

/// Everything one server's connections share to answer requests.
pub(crate) struct Exchange {
    pub(crate) config: Config,
    router: Router,
    before: Vec<Before>,
    after: Vec<After>,
    /// Access-log hooks; empty means no record is kept.
    pub(crate) access_log: Vec<AccessLog>,
    pub(crate) counters: Rc<Counters>,
    pub(crate) date: RefCell<DateCache>,
    /// The last response head written.
    head_cache: RefCell<HeadCache>,
    /// Handlers running as tasks now.
    in_flight: Cell<usize>,
    /// A graceful shutdown is under way: every response says `close`.
    pub(crate) draining: Cell<bool>,
}

impl Exchange {
    pub(crate) fn new(
        config: Config,
        router: Router,
        before: Vec<Before>,
        after: Vec<After>,
        access_log: Vec<AccessLog>,
        counters: Rc<Counters>,
    ) -> Exchange {
        Exchange {
            config,
            router,
            before,
            after,
            access_log,
            counters,
            date: RefCell::new(DateCache::new()),
            head_cache: RefCell::new(HeadCache::new()),
            in_flight: Cell::new(0),
            draining: Cell::new(false),
        }
    }

    /// Answers `req`: hooks, then `OPTIONS *`, then the route's handler,
    /// polled once here. A handler that is not ready comes back as
    /// `Pending`, unless `max_in_flight` handlers already run (503).
    ///
    /// `slot` holds the request (always `Some` on entry); the handler takes
    /// it from there. A response is put in `resp` (`Outcome::Respond`).
    /// Both are lent, not moved: a request (120 bytes) or a response (96)
    /// moved by value is copied at each step, and on a pipelined request
    /// the response's four copies through `Started`, `catch_unwind`'s
    /// result and `Outcome` cost more than routing (callgrind). Always
    /// inline, as `write` is: its one call on the hot path (`begin_request`)
    /// paid 27 instructions a pipelined request for saving and restoring
    /// registers.
    #[inline(always)]
    pub(crate) fn start(&self, slot: &mut Option<Request>, resp: &mut Option<Response>, form: TargetForm) -> Outcome {
        debug_assert!(resp.is_none(), "a response before the request started");
        let Some(req) = slot.as_mut() else {
            debug_assert!(false, "no request to start");
            return Outcome::Panicked;
        };
        for hook in &self.before {
            // Application code, as a handler is: a panic is answered 500.
            match panic::catch_unwind(AssertUnwindSafe(|| hook(req))) {
                Ok(None) => {}
                Ok(Some(answer)) => {
                    *resp = Some(answer);
                    return Outcome::Respond;
                }
                Err(_) => {
                    add(&self.counters.handler_panics, 1);
                    log::warn!(target: "solo::http", "a before hook panicked: answered 500");
                    let answer = self.error(500, "Internal Server Error").header("Connection", "close");
                    *resp = Some(answer);
                    return Outcome::Respond;
                }
            }
        }
        if form == TargetForm::Asterisk {
            *resp = Some(self.options_asterisk());
            return Outcome::Respond;
        }
        let (path, path_start) = req.path_in_head();
        let (endpoint, params) = match self.router.route(req.method(), path, path_start) {
            Ok(routed) => routed,
            Err(unrouted) => {
                *resp = Some(answer_unrouted(unrouted));
                return Outcome::Respond;
            }
        };
        if !params.as_slice().is_empty() {
            // A literal route has none: leave the request's empty list be.
            req.set_params(params);
        }
        match panic::catch_unwind(AssertUnwindSafe(|| endpoint.start(slot, resp))) {
            Ok(Started::Ready) => {
                debug_assert!(resp.is_some(), "a ready handler gave no response");
                Outcome::Respond
            }
            Ok(Started::Pending(future)) => {
                if self.config.max_in_flight.is_some_and(|max| self.in_flight.get() >= max) {
                    drop(future);
                    *resp = Some(Response::text("Service Unavailable").with_status(503));
                    Outcome::Respond
                } else {
                    self.in_flight.set(self.in_flight.get() + 1);
                    Outcome::Pending(future)
                }
            }
            Err(_) => {
                add(&self.counters.handler_panics, 1);
                Outcome::Panicked
            }
        }
    }

    /// `OPTIONS *`: the server's own capabilities (RFC 9110 §9.3.7). Out of
    /// line, as `answer_unrouted` is: rare answers kept out of `start`'s
    /// frame.
    #[cold]
    fn options_asterisk(&self) -> Response {
        Response::status(204).header("Allow", self.router.allow_all())
    }

    /// A handler that was `Pending` finished or was abandoned.
    pub(crate) fn handler_ended(&self) {
        debug_assert!(self.in_flight.get() > 0, "more handlers ended than started");
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
    }

    /// The server's own answer to a request it will not serve (`status` with
    /// `reason` as its text); sent with `Reply::CLOSE`.
    pub(crate) fn error(&self, status: u16, reason: &'static str) -> Response {
        Response::text(reason).with_status(status)
    }

    /// Runs the `after` hooks and writes the response's head (and body,
    /// unless streamed) into `bufs`. `resp` is lent (see `start`); its body
    /// is taken, the rest is left for the caller to drop. Always inline: a
    /// call cost a pipelined request 42 instructions (the saves, restores
    /// and moves around it; callgrind).
    #[inline(always)]
    pub(crate) fn write(&self, bufs: &mut Buffers, resp: &mut Response, mut reply: Reply) -> Written {
        if !self.after.is_empty() {
            let taken = std::mem::replace(resp, Response::status(200));
            match panic::catch_unwind(AssertUnwindSafe(|| self.after.iter().fold(taken, |r, hook| hook(r)))) {
                Ok(answer) => *resp = answer,
                Err(_) => {
                    // As for a panicking handler: 500, then close.
                    add(&self.counters.handler_panics, 1);
                    log::warn!(target: "solo::http", "an after hook panicked: answered 500");
                    *resp = self.error(500, "Internal Server Error");
                    reply.keep_alive = false;
                }
            }
        }
        let written = match resp.body_ref() {
            // Nearly every response: copied from where it lies. Taken out
            // first, its 32 bytes were moved with 16-byte loads that straddle
            // the stores that put the response there (no store forwarding):
            // 40 % of this function's samples (perf, Intel host).
            Body::Full(bytes) if bytes.len() <= COPY_BODY_MAX => {
                let (written, with_body) = self.write_full(&mut bufs.out, resp, bytes.len(), reply);
                if with_body {
                    bufs.out.buf.extend_from_slice(bytes);
                }
                written
            }
            _ => match resp.take_body() {
                Body::Full(bytes) => {
                    let (written, with_body) = self.write_full(&mut bufs.out, resp, bytes.len(), reply);
                    if with_body {
                        bufs.out.push_body(bytes);
                    }
                    written
                }
                body => self.write_other(&mut bufs.out, resp, body, reply),
            },
        };
        bufs.batch_len += 1;
        written
    }

    /// `write` for a body known up front (`len` bytes), nearly every
    /// response: its head, from the cache when it repeats the last one; the
    /// caller adds the body where the second value says it goes. Always
    /// inline: `write` has it twice, and a call returns its pair through
    /// memory.
    #[inline(always)]
    fn write_full(&self, out: &mut Output, resp: &Response, len: usize, reply: Reply) -> (Written, bool) {
        let status = resp.status_code();
        let close = !reply.keep_alive || resp.closes_connection();
        let date = self.date.borrow();
        self.counters.response(status);
        self.head_cache.borrow_mut().write(
            resp,
            &mut out.buf,
            date.line(),
            date.second(),
            Framing::Length(len as u64),
            close,
            reply.minor,
        );
        let written = Written {
            status,
            close,
            then: None,
        };
        (written, response::has_body(status) && !reply.head_only)
    }

    /// `write` for the other bodies: none, a stream, an upgrade. Out of
    /// line, so that `write_full` is not laid out around them.
    #[inline(never)]
    fn write_other(&self, out: &mut Output, resp: &mut Response, mut body: Body, reply: Reply) -> Written {
        debug_assert!(!matches!(body, Body::Full(_)), "write_full writes those");
        let refused_upgrade = reply.minor == 0 && matches!(body, Body::Upgrade(_));
        if refused_upgrade {
            // RFC 9110 §7.8: an HTTP/1.0 request's Upgrade must be ignored,
            // and the handler has nothing else to answer.
            *resp = self.error(400, "an upgrade needs HTTP/1.1");
            body = resp.take_body();
        }
        let status = resp.status_code();
        // An HTTP/1.0 client cannot take chunked: a stream is delimited by
        // closing the connection instead.
        let close = !reply.keep_alive
            || resp.closes_connection()
            || refused_upgrade
            || (reply.minor == 0 && matches!(body, Body::Stream(_)));
        let date = self.date.borrow();
        let with_body = response::has_body(status) && !reply.head_only;
        self.counters.response(status);
        let then = match body {
            Body::Upgrade(up) => {
                debug_assert_eq!(status, 101, "Response::upgrade makes a 101");
                resp.write_head(&mut out.buf, date.line(), Framing::Length(0), false, reply.minor);
                Some(Then::Upgrade(up.0))
            }
            Body::Full(bytes) => {
                // Only through `error`'s text, which is `write_full`'s kind.
                let framing = Framing::Length(bytes.len() as u64);
                resp.write_head(&mut out.buf, date.line(), framing, close, reply.minor);
                if with_body {
                    out.push_body(bytes);
                }
                None
            }
            Body::Empty => {
                resp.write_head(&mut out.buf, date.line(), Framing::Length(0), close, reply.minor);
                None
            }
            Body::Stream(rx) => {
                let framing = if reply.minor == 1 {
                    Framing::Chunked
                } else {
                    Framing::CloseDelimited
                };
                resp.write_head(&mut out.buf, date.line(), framing, close, reply.minor);
                with_body.then_some(Then::Stream(rx))
            }
        };
        Written {
            status,
            close: close && !matches!(then, Some(Then::Upgrade(_))),
            then: then.map(Box::new),
        }
    }

    /// `100 Continue`, before a body the client waits to send.
    pub(crate) fn write_continue(&self, out: &mut Output) {
        out.buf.put_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        self.counters.response(100);
    }
}

/// The answer where no route serves a request: 404, 405 with the methods
/// the path has, or `OPTIONS` on a path.
#[cold]
fn answer_unrouted(unrouted: Unrouted) -> Response {
    match unrouted {
        Unrouted::NotFound => Response::text("Not Found").with_status(404),
        Unrouted::MethodNotAllowed(allow) => Response::text("Method Not Allowed")
            .with_status(405)
            .header("Allow", allow),
        Unrouted::Options(allow) => Response::status(204).header("Allow", allow),
    }
}

/// One piece of a streamed body, framed.
pub(crate) fn write_chunk(out: &mut Output, chunk: Bytes, chunked: bool) {
    if chunked {
        response::put_hex(&mut out.buf, chunk.len() as u64);
        out.buf.extend_from_slice(b"\r\n");
        out.push_body(chunk);
        out.buf.extend_from_slice(b"\r\n");
    } else {
        out.push_body(chunk);
    }
}

/// The end of a streamed body.
pub(crate) fn write_last_chunk(out: &mut Output, chunked: bool) {
    if chunked {
        out.buf.extend_from_slice(b"0\r\n\r\n");
    }
}

/// Polls a handler future, turning a panic into `Err(())`.
pub(crate) struct CatchUnwind(pub(crate) PendingHandler);

impl Future for CatchUnwind {
    type Output = Result<Response, ()>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match panic::catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Ready(r)) => Poll::Ready(Ok(r)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}
