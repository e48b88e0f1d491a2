//! One HTTP/1.1 connection: the state machine.
//!
//! Owns: a transport and its buffers (`io.rs`), the body of the request in
//! progress (`body.rs`), the task answering it, whether the connection closes
//! after its output, and the deadline bounding what it waits for. Must never:
//! call its owner (it *returns* a [`Step`] saying what the owner must do:
//! close it, arm its deadline, run a task for it, or drive it again), block,
//! hold a buffer while idle, or answer one request twice.
//!
//! # Phases
//!
//! ```text
//!            bytes arrive                    head complete
//!   Idle ─────────────────────▶ ReadingHead ────────────────────┐
//!    ▲  (keep-alive deadline)    (header deadline; 408)         │
//!    │                                                          ▼
//!    │                 body still arriving? ──▶ ReadingBody (body deadline; 408)
//!    │                                          ⇅ BodyPaused (reader slower than the client)
//!    │                 handler ready at once?   │ no: a task ──▶ HandlerPending
//!    │                                          │                     │ (handler deadline if set; 503)
//!    │                                          ▼                     │
//!    └─── output drained, keep-alive ◀── response queued ◀────────────┘
//!                          ▲   (Writing while the client does not read: write deadline)
//!                          └── Streaming (a task feeds a chunked body)
//!              close decided ──▶ Closing: FIN, discard input until the client closes (linger)
//!              101 queued ──▶ (Close::Upgrading) written and body drained ──▶ handed over (Step::Upgrade)
//! ```
//!
//! The phase is not stored: [`Connection::phase`] derives it from what the
//! connection holds, so the two can never disagree. What is stored is the
//! little that cannot be derived: the body reader, the task, the close
//! decision ([`Close`]) and the deadline (`phase.rs`).
//!
//! # Invariants (checked with `debug_assert!` where they can break)
//!
//! 1. **One response per request, in request order.** Requests are parsed
//!    only when the previous one is answered ([`Connection::ready_for_next`]);
//!    responses go into one output queue in the order they are made; a
//!    request whose response is queued is marked `answered`, and a later
//!    error in its body closes the connection instead of answering again.
//! 2. **No request is parsed while a body is unread**, and no byte after a
//!    framing error is parsed at all (the input is dropped).
//! 3. **Buffers stay within their limits**: input below `max_head` while
//!    heads are read, below one read chunk past the body window while a body
//!    is; output is not added to while above the high watermark.
//! 4. **An idle connection holds no buffer.**
//! 5. **Every phase but the ones a task paces has a deadline**, and progress
//!    moves it only where progress should (a trickled head does not).

use std::ops::ControlFlow;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;

use super::access::AccessPending;
use super::body::{BodyChannel, BodyError, BodyReader};
use super::config::Config;
use super::exchange::{self, Exchange, Outcome, PendingHandler, Reply, Then};
use super::head::{self, BodyKind, Head, Method};
use super::io::{BufferPool, Io, Transport};
use super::peer::Peer;
use super::phase::{timeout_ms, Deadline, Phase};
use super::request::{Body as RequestBody, Request};
use super::stats::add;
use super::upgrade::OnUpgrade;
use crate::sync::mpsc;
use crate::task::JoinHandle;

/// Write/read/process rounds per `advance`: the fairness budget of one
/// connection per turn. A connection that spends it with work left asks to
/// be driven again next turn ([`Step::Again`]).
const ROUNDS: usize = 16;

/// Whether the connection stays open after its output is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Close {
    /// Keep-alive.
    No,
    /// Close once the output is written (`Connection: close`, an error).
    AfterWrite,
    /// Half-closed after the last response, discarding until the client
    /// closes (nginx's lingering close: closing with unread input would send
    /// a reset that can destroy the response in flight).
    Lingering,
    /// A `101` is queued: once it is written and the body drained, the
    /// connection is handed over (`Step::Upgrade`).
    Upgrading,
}

/// The task working for the connection.
pub(crate) enum Task {
    /// A handler that did not finish on its first poll.
    Handler(JoinHandle<()>),
    /// A streamed response body being fed.
    Stream(Box<Streaming>),
}

/// A streamed (chunked) response being fed by a task.
pub(crate) struct Streaming {
    task: JoinHandle<()>,
    /// The feeding task, waiting for the output to drain below the mark.
    waker: Option<std::task::Waker>,
}

/// What a connection is lent for one call: the server's shared parts and the
/// turn's clock.
pub(crate) struct Turn<'a> {
    pub(crate) exchange: &'a Exchange,
    pub(crate) pool: &'a BufferPool,
    /// When this turn's poll returned.
    pub(crate) now: Instant,
    /// `now` in ticks.
    pub(crate) tick: u64,
    /// `now` in nanoseconds since the runtime's origin.
    pub(crate) now_ns: u64,
    /// Makes the callback a paused body's reader calls to resume reading.
    pub(crate) resume: &'a dyn Fn() -> Rc<dyn Fn()>,
}

/// A task the owner must start for the connection, then hand back its
/// handle ([`Connection::handler_started`], [`Connection::stream_started`]).
pub(crate) enum Start {
    /// Run a pending handler; call `handler_done` with its response.
    Handler { future: PendingHandler, reply: Reply },
    /// Feed a streamed body from `rx` (chunked, or close-delimited for 1.0).
    Stream { rx: mpsc::Receiver<Bytes>, chunked: bool },
}

/// What the owner must do after a call.
#[must_use]
pub(crate) enum Step {
    /// Wait for readiness or a task; call `on_deadline` at this tick (if any).
    Wait(Option<u64>),
    /// The budget ran out with work left: advance again next turn.
    Again(Option<u64>),
    /// Start this task, hand back its handle, then advance again.
    Start(Start),
    /// Close the connection.
    Close,
    /// Hand the connection over to its new protocol
    /// ([`Connection::into_upgrade`]).
    Upgrade,
}

/// One connection.
pub(crate) struct Connection<T> {
    io: Io<T>,
    /// The body of the request in progress, still arriving.
    body: Option<Box<BodyReader>>,
    task: Option<Task>,
    close: Close,
    deadline: Deadline,
    peer: Peer,
}

/// What moved during one `advance`, for the deadline.
#[derive(Default)]
struct Progress {
    read_body: bool,
    wrote: bool,
    answered: bool,
}

impl<T: Transport> Connection<T> {
    /// A connection just accepted: idle, with the header timeout to send
    /// its first byte (a client that sends nothing is not a keep-alive
    /// connection, and does not get keep-alive's longer grace; nginx's
    /// `client_header_timeout` also counts from accept).
    pub(crate) fn new(transport: T, peer: std::net::SocketAddr, t: &Turn) -> Connection<T> {
        let config = &t.exchange.config;
        let first_wait = config.keep_alive_ms().min(config.header_timeout.as_millis() as u64);
        Connection {
            io: Io::new(transport),
            body: None,
            task: None,
            close: Close::No,
            deadline: Deadline::new(Phase::Idle, t.tick, first_wait),
            peer: Peer::new(peer),
        }
    }

    // ---- predicates (pure) ----

    /// Where the connection is (the diagram at the top).
    pub(crate) fn phase(&self) -> Phase {
        if self.close == Close::Lingering {
            Phase::Closing
        } else if !self.io.output_empty() && !self.io.writable {
            Phase::Writing
        } else if let Some(body) = &self.body {
            if body.is_paused() {
                Phase::BodyPaused
            } else {
                Phase::ReadingBody
            }
        } else if let Some(task) = &self.task {
            match task {
                Task::Handler(_) => Phase::HandlerPending,
                Task::Stream(_) => Phase::Streaming,
            }
        } else if !self.io.input().is_empty() {
            Phase::ReadingHead
        } else {
            Phase::Idle
        }
    }

    /// Whether the next request may be parsed: the previous one is fully
    /// read and answered, and the connection is not closing.
    pub(crate) fn ready_for_next(&self) -> bool {
        self.body.is_none() && self.task.is_none() && self.close == Close::No
    }

    /// Nothing in progress and nothing buffered: safe to close at once.
    pub(crate) fn is_idle(&self) -> bool {
        self.ready_for_next() && self.io.input().is_empty() && self.io.output_empty()
    }

    /// Whether a streamed body (or the next pipelined response) may add
    /// output now.
    pub(crate) fn stream_has_room(&self, config: &Config) -> bool {
        self.io.output_len() < config.output_high_watermark
    }

    /// When the owner must call `on_deadline`; `None` where a task sets the
    /// pace.
    pub(crate) fn deadline_tick(&self, t: &Turn) -> Option<u64> {
        let phase = self.phase();
        timeout_ms(phase, &t.exchange.config)?;
        (phase == self.deadline.phase).then_some(self.deadline.tick(t.tick))
    }

    /// Whether reading more is useful now.
    fn wants_input(&self, t: &Turn) -> bool {
        let config = &t.exchange.config;
        match &self.body {
            Some(body) => !body.window_full(),
            // Read pipelined requests only up to one head's worth while the
            // output drains or a handler runs.
            None => self.io.input().len() < config.max_head && self.io.output_len() < config.output_high_watermark,
        }
    }

    /// The most input to hold after the next read.
    fn read_limit(&self, t: &Turn) -> usize {
        let config = &t.exchange.config;
        if self.body.is_some() {
            // At most 64 KiB in all (more only to take one buffer past what
            // is held): the read buffer grows by doubling, and a leftover of
            // a few bytes plus a full 64 KiB read would double it to 128 KiB,
            // glibc's mmap threshold, whose free makes the heap keep its
            // high-water mark (the soak measured the step).
            (self.io.input().len() + config.buffer_size).max(64 * 1024)
        } else {
            config.max_head.max(self.io.input().len() + 1)
        }
    }

    /// Whether buffers are held.
    #[cfg(test)]
    pub(crate) fn has_buffers(&self) -> bool {
        self.io.has_buffers()
    }

    // ---- inputs from the owner ----

    /// The reactor reported readiness.
    pub(crate) fn ready(&mut self, readable: bool, writable: bool, peer_closed: bool) {
        self.io.readable |= readable;
        self.io.writable |= writable;
        self.io.peer_closed |= peer_closed;
    }

    /// A paused body's reader took data: read again (the edge that arrived
    /// while paused was not acted on).
    pub(crate) fn body_resumed(&mut self) {
        self.io.readable = true;
    }

    /// The task for `Start::Handler` runs.
    pub(crate) fn handler_started(&mut self, task: JoinHandle<()>) {
        debug_assert!(self.task.is_none(), "one task per connection");
        self.task = Some(Task::Handler(task));
    }

    /// The task for `Start::Stream` runs.
    pub(crate) fn stream_started(&mut self, task: JoinHandle<()>) {
        debug_assert!(self.task.is_none(), "one task per connection");
        self.task = Some(Task::Stream(Box::new(Streaming { task, waker: None })));
    }

    /// A pending handler finished (`Err`: it panicked).
    pub(crate) fn handler_done(&mut self, result: Result<crate::http::Response, ()>, reply: Reply, t: &Turn) -> Step {
        debug_assert!(matches!(self.task, Some(Task::Handler(_))), "no handler was pending");
        self.task = None;
        t.exchange.handler_ended();
        let start = match result {
            Ok(mut resp) => {
                let reply = Reply {
                    keep_alive: reply.keep_alive && !t.exchange.draining.get(),
                    ..reply
                };
                self.respond(&mut resp, reply, t)
            }
            Err(()) => {
                add(&t.exchange.counters.handler_panics, 1);
                log::warn!(target: "solo::http", "a handler panicked (request from {}): answered 500", self.peer.get());
                self.reject(500, "Internal Server Error", t);
                None
            }
        };
        self.io.writable = true; // try at once; WouldBlock puts it back
        match start {
            Some(start) => Step::Start(start),
            None => self.advance(t),
        }
    }

    /// The streaming task waits for room; woken when the output drains.
    pub(crate) fn park_stream(&mut self, waker: &std::task::Waker) {
        if let Some(Task::Stream(s)) = &mut self.task {
            s.waker = Some(waker.clone());
        }
    }

    /// One piece of a streamed body.
    pub(crate) fn stream_chunk(&mut self, chunk: Bytes, chunked: bool, t: &Turn) -> Step {
        let before = self.output_len_if_logging();
        exchange::write_chunk(&mut self.io.bufs(t.pool).out, chunk, chunked);
        self.access_queued(before, None, false, t);
        self.io.writable = true;
        self.advance(t)
    }

    /// The streamed body ended.
    pub(crate) fn stream_done(&mut self, chunked: bool, t: &Turn) -> Step {
        debug_assert!(matches!(self.task, Some(Task::Stream(_))), "no stream was running");
        let before = self.output_len_if_logging();
        exchange::write_last_chunk(&mut self.io.bufs(t.pool).out, chunked);
        self.access_queued(before, None, true, t);
        self.task = None;
        self.io.writable = true;
        self.advance(t)
    }

    /// The owner's timer fired: time out if the deadline has passed,
    /// otherwise say when it is.
    pub(crate) fn on_deadline(&mut self, t: &Turn) -> Step {
        let phase = self.phase();
        let config = &t.exchange.config;
        if phase != self.deadline.phase || timeout_ms(phase, config).is_none() || t.tick < self.deadline.tick(t.tick) {
            // Early (progress moved the deadline), or the phase changed
            // since: settle the deadline for what the connection waits for.
            return Step::Wait(self.settle_deadline(t, &Progress::default()));
        }
        add(&t.exchange.counters.timeouts, 1);
        log::debug!(target: "solo::http", "{phase:?} timed out for {}", self.peer.get());
        match phase {
            Phase::ReadingHead => {
                // 408 where a request was under way; then close.
                self.clear_input();
                self.reject(408, "Request Timeout", t);
            }
            Phase::ReadingBody => self.body_failed(BodyError::TimedOut, t),
            Phase::HandlerPending => {
                // The handler ran past `handler_timeout`: its future is
                // dropped and the connection answers for it.
                self.abandon_task(t);
                self.reject(503, "handler timed out", t);
            }
            // Idle keep-alive, a client that does not read, a linger that
            // lasted long enough: close.
            _ => return Step::Close,
        }
        self.io.writable = true;
        self.advance(t)
    }

    /// Ends the connection: stops its task, fails its body, returns its
    /// buffers; gives back the transport for the owner to deregister.
    pub(crate) fn close(mut self, t: &Turn) -> T {
        if let Some(record) = self.io.bufs_mut().and_then(|b| b.access.take()) {
            record.emit(&t.exchange.access_log, false);
        }
        self.abandon_task(t);
        // Dropping the reader fails the body for whoever still holds it.
        self.body = None;
        self.io.release(t.pool);
        self.io.transport
    }

    /// After `Step::Upgrade`: the transport, the bytes read past the
    /// request (the new protocol's), and what takes the connection over.
    pub(crate) fn into_upgrade(mut self, t: &Turn) -> (T, Bytes, Option<OnUpgrade>) {
        debug_assert!(self.close == Close::Upgrading && self.body.is_none() && self.io.output_empty());
        let (leftover, upgrade) = match self.io.bufs_mut() {
            // Copied: a slice would keep the whole read buffer alive for
            // as long as the upgraded connection lives (8 KiB each).
            Some(bufs) => (Bytes::copy_from_slice(&bufs.read), bufs.upgrade.take()),
            None => (Bytes::new(), None),
        };
        (self.close(t), leftover, upgrade)
    }

    // ---- the state machine ----

    /// Writes, reads and processes until nothing moves (or the budget is
    /// spent); returns what the owner must do next.
    pub(crate) fn advance(&mut self, t: &Turn) -> Step {
        let mut progress = Progress::default();
        let mut budget_spent = true;
        for _ in 0..ROUNDS {
            let mut moved = false;
            // 1. Write what is queued.
            if self.io.writable && !self.io.output_empty() {
                match self.io.flush() {
                    Ok(n) => {
                        add(&t.exchange.counters.bytes_out, n as u64);
                        moved |= n > 0;
                        progress.wrote |= n > 0;
                    }
                    Err(_) => return Step::Close,
                }
            }
            // 2. A stream waiting for room may go on.
            if self.stream_has_room(&t.exchange.config) {
                if let Some(Task::Stream(s)) = &mut self.task {
                    if let Some(w) = s.waker.take() {
                        w.wake();
                    }
                }
            }
            // 3. Everything written: the batch is answered; close if decided.
            if self.io.output_empty() {
                progress.answered |= self.finish_batch(t);
                if self.close == Close::Upgrading {
                    if self.body.is_none() && self.task.is_none() {
                        return Step::Upgrade;
                    }
                } else if self.close != Close::No && self.task.is_none() {
                    return self.linger(t);
                }
            }
            // 4. Read, if it is useful.
            if self.io.readable && !self.io.eof {
                if self.wants_input(t) {
                    let max = self.read_limit(t);
                    match self.io.fill(t.pool, t.exchange.config.buffer_size, max) {
                        Ok(n) => {
                            add(&t.exchange.counters.bytes_in, n as u64);
                            moved |= n > 0;
                            progress.read_body |= n > 0 && self.body.is_some();
                        }
                        Err(_) => return Step::Close,
                    }
                    debug_assert!(self.io.input().len() <= max, "read past the limit");
                } else if let Some(body) = self.body.as_deref().filter(|b| b.window_full() && !b.is_paused()) {
                    // The reader is a window behind: stop reading until it
                    // takes data (it resumes us).
                    body.pause();
                }
            }
            // 5. Consume input: body bytes, then every request that may be
            //    answered now.
            match self.process(t) {
                ControlFlow::Continue(m) => moved |= m,
                ControlFlow::Break(start) => return Step::Start(start),
            }
            // 6. The client stopped sending.
            if self.io.eof {
                if self.io.output_empty() && self.ready_for_next() {
                    // Everything it asked for is answered (a partial request
                    // left behind is dropped).
                    return Step::Close;
                }
                if self.body.is_some() {
                    // A change of state: the next round closes (or lingers).
                    self.body_failed(BodyError::Closed, t);
                    moved = true;
                }
            }
            if !moved {
                budget_spent = false;
                break;
            }
        }
        let deadline = self.settle_deadline(t, &progress);
        self.release_if_idle(t);
        if budget_spent {
            Step::Again(deadline)
        } else {
            Step::Wait(deadline)
        }
    }

    /// Consumes buffered input: `Continue(moved)`, or `Break(start)` when a
    /// request needs a task before anything else may happen.
    fn process(&mut self, t: &Turn) -> ControlFlow<Start, bool> {
        let mut moved = false;
        loop {
            if let Some(body) = &mut self.body {
                let Some(bufs) = self.io.bufs_mut().filter(|b| !b.read.is_empty()) else {
                    return ControlFlow::Continue(moved);
                };
                moved = true;
                let before = bufs.read.len();
                let fed = body.feed(&mut bufs.read);
                if let Some(record) = &mut bufs.access {
                    record.read(before - bufs.read.len());
                }
                match fed {
                    Ok(true) => self.body = None, // complete: the next request may come
                    Ok(false) => return ControlFlow::Continue(moved),
                    Err(e) => {
                        self.body_failed(e, t);
                        return ControlFlow::Continue(true);
                    }
                }
                continue;
            }
            if !self.ready_for_next() || self.io.input().is_empty() || !self.stream_has_room(&t.exchange.config) {
                return ControlFlow::Continue(moved);
            }
            match head::parse_head(self.io.input(), t.exchange.config.head_rules()) {
                Ok(None) => return ControlFlow::Continue(moved),
                Err(e) => {
                    add(&t.exchange.counters.parse_errors, 1);
                    add(&t.exchange.counters.requests, 1);
                    self.clear_input();
                    self.reject(e.status(), e.reason(), t);
                    return ControlFlow::Continue(true);
                }
                Ok(Some(head)) => {
                    moved = true;
                    if let Some(start) = self.begin_request(head, t) {
                        return ControlFlow::Break(start);
                    }
                }
            }
        }
    }

    /// A request head was parsed: set up its body, start its handler, and
    /// queue its response if the handler answered at once.
    fn begin_request(&mut self, head: Head, t: &Turn) -> Option<Start> {
        debug_assert!(
            self.ready_for_next(),
            "a request parsed while the previous one is unanswered"
        );
        let config = &t.exchange.config;
        add(&t.exchange.counters.requests, 1);
        let reply = Reply {
            head_only: head.method == Method::Head,
            keep_alive: head.keep_alive && !t.exchange.draining.get(),
            minor: head.minor,
        };
        let form = head.form;
        let bufs = self.io.bufs(t.pool);
        let head_bytes = bufs.read.split_head(head.len());
        if !t.exchange.access_log.is_empty() {
            debug_assert!(bufs.access.is_none(), "an access record left from the previous request");
            let view = Request::head_view(&head_bytes, &head, self.peer.clone());
            bufs.access = Some(Box::new(AccessPending::new(view, head.len(), t.now)));
        }
        if bufs.batch_start.is_none() {
            // When the poll that brought these bytes returned (no clock read here): the latency
            // recorded includes the wait behind other connections dispatched in the same turn.
            bufs.batch_start = Some(t.now_ns);
        }
        let body = match head.body {
            BodyKind::None => RequestBody::Empty,
            BodyKind::Length(n) if n > config.max_body => {
                // Decided from Content-Length before reading a byte of it.
                add(&t.exchange.counters.parse_errors, 1);
                self.reject(413, "request body too large", t);
                return None;
            }
            BodyKind::Length(n) if bufs.read.len() as u64 >= n => {
                if let Some(record) = &mut bufs.access {
                    record.read(n as usize);
                }
                RequestBody::Full(bufs.read.split_bytes(n as usize))
            }
            kind => {
                let channel = Rc::new(std::cell::RefCell::new(BodyChannel::new((t.resume)())));
                if head.expect_continue {
                    t.exchange.write_continue(&mut bufs.out);
                }
                self.body = Some(Box::new(BodyReader::new(kind, config.max_body, Some(channel.clone()))));
                RequestBody::Streaming(channel, kind.declared_length())
            }
        };
        // Lent to the handler; one it did not take is dropped on return (sooner cost 22 instructions).
        let mut req = Some(Request::new(head_bytes, head, self.peer.clone(), body));
        let mut resp = None;
        match (t.exchange.start(&mut req, &mut resp, form), resp.as_mut()) {
            (Outcome::Respond, Some(resp)) => self.respond(resp, reply, t),
            // An empty slot (`start` asserts it cannot be) is answered as a panic.
            (Outcome::Panicked, _) | (Outcome::Respond, None) => {
                log::warn!(target: "solo::http", "a handler panicked (request from {}): answered 500", self.peer.get());
                self.abandon_body();
                self.reject(500, "Internal Server Error", t);
                None
            }
            (Outcome::Pending(future), _) => Some(Start::Handler { future, reply }),
        }
    }

    /// Queues the response to the request in progress. Inlined: out of
    /// line it costs a pipelined request 12 instructions (callgrind).
    #[inline(always)]
    fn respond(&mut self, resp: &mut crate::http::Response, reply: Reply, t: &Turn) -> Option<Start> {
        debug_assert!(self.unanswered(), "a second response to one request");
        let before = self.output_len_if_logging();
        let written = t.exchange.write(self.io.bufs(t.pool), resp, reply);
        self.access_queued(before, Some(written.status), !written.streams(), t);
        if written.close {
            self.close = Close::AfterWrite;
        }
        if let Some(body) = &mut self.body {
            body.answered = true;
        }
        match *written.then? {
            Then::Stream(rx) => Some(Start::Stream {
                rx,
                chunked: reply.minor == 1,
            }),
            Then::Upgrade(upgrade) => {
                self.io.bufs(t.pool).upgrade = Some(upgrade);
                self.close = Close::Upgrading;
                None
            }
        }
    }

    /// Invariant 1's check: the request in progress has no response queued
    /// yet (one whose body still arrives after its answer is `answered`).
    /// Deciding to close is not answering: a handler still running when the
    /// client stops sending answers for its request.
    fn unanswered(&self) -> bool {
        self.body.as_ref().is_none_or(|b| !b.answered)
    }

    /// The server answers on its own (an error) and closes after.
    fn reject(&mut self, status: u16, reason: &'static str, t: &Turn) {
        debug_assert!(self.unanswered(), "a second response to one request");
        log::debug!(target: "solo::http", "answered {status} ({reason}) to {} and closing", self.peer.get());
        let mut resp = t.exchange.error(status, reason);
        let before = self.output_len_if_logging();
        let written = t.exchange.write(self.io.bufs(t.pool), &mut resp, Reply::CLOSE);
        self.access_queued(before, Some(written.status), true, t);
        debug_assert!(written.close && written.then.is_none());
        self.close = Close::AfterWrite;
    }

    /// The output's length before queueing, only when a record is kept.
    fn output_len_if_logging(&mut self) -> Option<usize> {
        let bufs = self.io.bufs_mut()?;
        bufs.access.as_ref()?;
        Some(bufs.out.len())
    }

    /// Adds what was queued since `before` to the request's access record
    /// (`status` with a response's head); `done` emits it. Inlined for its
    /// first check: with no access log a request pays that and no call.
    #[inline(always)]
    fn access_queued(&mut self, before: Option<usize>, status: Option<u16>, done: bool, t: &Turn) {
        if let Some(before) = before {
            self.access_record(before, status, done, t);
        }
    }

    fn access_record(&mut self, before: usize, status: Option<u16>, done: bool, t: &Turn) {
        let Some(bufs) = self.io.bufs_mut() else { return };
        let queued = bufs.out.len() - before;
        let Some(record) = &mut bufs.access else { return };
        record.queued(status, queued);
        if done {
            if let Some(record) = bufs.access.take() {
                record.emit(&t.exchange.access_log, true);
            }
        }
    }

    /// The body in progress cannot be completed.
    fn body_failed(&mut self, error: BodyError, t: &Turn) {
        let Some(body) = self.body.as_mut() else { return };
        body.fail(error);
        let answered = body.answered;
        // No byte after a broken body is a request.
        self.clear_input();
        if error != BodyError::Closed {
            add(&t.exchange.counters.parse_errors, 1);
        }
        if !answered && error != BodyError::Closed {
            // The handler, if still running, is abandoned: its request is
            // broken, and the connection answers for it (while the body is
            // still here for `reject` to check it is unanswered).
            self.abandon_task(t);
            self.reject(error.status(), error.reason(), t);
        }
        // Otherwise its response is queued, or the handler answers the error
        // it now sees: one response per request, so close after it.
        self.body = None;
        self.close = Close::AfterWrite;
    }

    /// Stops whatever task works for the connection.
    fn abandon_task(&mut self, t: &Turn) {
        match self.task.take() {
            Some(Task::Handler(task)) => {
                task.abort();
                t.exchange.handler_ended();
            }
            Some(Task::Stream(s)) => s.task.abort(),
            None => {}
        }
    }

    /// The request's handler is gone: later body bytes are drained.
    fn abandon_body(&mut self) {
        if let Some(body) = &mut self.body {
            body.answered = true;
        }
    }

    fn clear_input(&mut self) {
        if let Some(bufs) = self.io.bufs_mut() {
            bufs.read.clear();
        }
    }

    /// Half-closes (once), then discards input until the client closes.
    fn linger(&mut self, t: &Turn) -> Step {
        if self.close != Close::Lingering {
            let _ = self.io.transport.shutdown_write();
            self.close = Close::Lingering;
            self.clear_input();
        }
        if self.io.discard_input() {
            return Step::Close;
        }
        let deadline = self.settle_deadline(t, &Progress::default());
        self.release_if_idle(t);
        Step::Wait(deadline)
    }

    /// The responses just written are a batch answered: its latency, from
    /// the first request parsed, ends with the turn (`Counters::answered`).
    /// Returns whether a batch was answered.
    fn finish_batch(&mut self, t: &Turn) -> bool {
        if self.task.is_some() || self.body.is_some() {
            return false;
        }
        let Some(bufs) = self.io.bufs_mut() else { return false };
        let Some(start_ns) = bufs.batch_start.take() else {
            return false;
        };
        let responses = std::mem::take(&mut bufs.batch_len).max(1);
        t.exchange.counters.answered(start_ns, u64::from(responses));
        true
    }

    /// Sets the deadline for the phase the connection is now in (a new
    /// phase, or progress in this one, moves it); returns it, or `None`
    /// where a task sets the pace.
    fn settle_deadline(&mut self, t: &Turn, progress: &Progress) -> Option<u64> {
        let phase = self.phase();
        let timeout = timeout_ms(phase, &t.exchange.config)?;
        let moved = match phase {
            Phase::Idle => progress.answered,
            Phase::ReadingBody => progress.read_body,
            Phase::Writing => progress.wrote,
            // A head's deadline counts from its first byte, a linger's from
            // its start: trickling bytes does not extend them.
            _ => false,
        };
        if phase != self.deadline.phase || moved {
            self.deadline = Deadline::new(phase, t.tick, timeout);
        }
        Some(self.deadline.tick(t.tick))
    }

    /// An idle connection holds no buffer: they go back to the pool.
    fn release_if_idle(&mut self, t: &Turn) {
        let idle = self.body.is_none()
            && self.io.bufs_mut().is_some_and(|b| {
                b.read.is_empty() && b.out.is_empty() && b.batch_start.is_none() && b.access.is_none()
            });
        if idle {
            self.io.release(t.pool);
        }
        debug_assert!(
            self.phase() != Phase::Idle || !self.io.has_buffers(),
            "an idle connection holds buffers"
        );
    }
}
