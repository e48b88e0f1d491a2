//! The HTTP server: builder, accept loop, and the driver of every connection.
//!
//! Owns: the listener, the slab of connections, the buffer pool, the cached
//! `Date`, the counters, and graceful shutdown. Must never: accept past the
//! connection limit (the listener is paused, not spun), let one connection's
//! failure touch another, or keep a connection without a timer bounding it
//! (except while its own handler runs).
//!
//! The reactor calls [`ServerInner::on_ready`] with a connection's key; the
//! connection is advanced as far as it can go in one call: write what is
//! queued, read what arrived, parse and answer every complete request in
//! order, write again. Handlers that finish on their first poll are answered
//! in that same call; the others become tasks that call
//! [`ServerInner::complete`] when done.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use mio::{Interest, Token};
use slab::Slab;

use super::connection::{BodyFraming, BodyReader, Buffers, Connection, Phase, Streaming};
use super::date::DateCache;
use super::parse::{self, BodyKind};
use super::request::{Body as RequestBody, BodyChannel, Method, Request};
use super::response::{self, Body, Framing, Response};
use super::router::{Handler, Routed, Router, Started};
use super::stats::{add, sub, Counters, Stats};
use crate::executor::{Core, Expiry, TimerTarget};
use crate::reactor::{Dispatch, Driven, Ready};
use crate::timer::TimerKey;

/// Limits and timeouts; see `docs/http.md` for the defaults and why.
#[derive(Clone, Debug)]
pub struct Config {
    /// Connections open at once; the listener pauses at the limit.
    pub max_connections: usize,
    /// Largest request head (request line + headers), in bytes: 414/431 past
    /// it. At most 64 KiB.
    pub max_head: usize,
    /// Largest request body, in bytes: 413 past it.
    pub max_body: u64,
    /// Time to receive a whole request head, from its first byte (408).
    pub header_timeout: Duration,
    /// Longest pause between two reads of a request body (408).
    pub body_timeout: Duration,
    /// How long a keep-alive connection is kept with no request, counted
    /// from its latest answer (at most 24 days; longer is treated as 24).
    pub keep_alive_timeout: Duration,
    /// Longest pause in writing to a client that does not read.
    pub write_timeout: Duration,
    /// Output queued per connection before pipelined requests stop being
    /// parsed (and a streamed response waits).
    pub output_high_watermark: usize,
    /// Handlers pending at once (as tasks) before new ones get 503.
    pub max_in_flight: Option<usize>,
    /// How long graceful shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// Size of the pooled read and write buffers.
    pub buffer_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_connections: 100_000,
            max_head: 16 * 1024,
            max_body: 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(75),
            write_timeout: Duration::from_secs(30),
            output_high_watermark: 64 * 1024,
            max_in_flight: None,
            shutdown_timeout: Duration::from_secs(10),
            buffer_size: 8 * 1024,
        }
    }
}

/// How long an unanswered client may keep sending after the server decided
/// to close (lingering close), before the socket is closed anyway.
const LINGER: Duration = Duration::from_secs(2);
/// Connections accepted per readiness event before yielding to others.
const ACCEPT_BUDGET: usize = 128;
/// Pause after `accept` fails for lack of descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Free buffers the pool keeps.
const POOL_KEEP: usize = 256;
/// Body bytes buffered for a handler that reads them piece by piece before
/// the connection stops reading (flow control for large uploads).
pub(crate) const BODY_WINDOW: usize = 256 * 1024;

/// Timer values that are not connection keys.
const TIMER_DATE: usize = usize::MAX;
const TIMER_ACCEPT: usize = usize::MAX - 1;
const TIMER_SHUTDOWN: usize = usize::MAX - 2;
/// Set on a connection key: resume reading a paused body.
const TIMER_RESUME: usize = 1 << (usize::BITS - 2);
/// The listener's `data` in the reactor.
const LISTENER: usize = usize::MAX;

type Before = Box<dyn Fn(&mut Request) -> Option<Response>>;
type After = Box<dyn Fn(Response) -> Response>;

/// An HTTP/1.1 server on solo's reactor. Build it, then `run()` (its own
/// runtime on this thread) or `serve().await` (inside yours).
///
/// ```no_run
/// use solo::http::{Request, Response, Server};
/// Server::bind("127.0.0.1:8080")?
///     .get("/", |_req: Request| async { Response::text("Hello, World!") })
///     .get("/users/:id", |req: Request| async move {
///         Response::text(format!("user {}", req.param("id").unwrap()))
///     })
///     .post("/echo", |mut req: Request| async move { req.body().await.map(Response::bytes) })
///     .run()
/// # ; Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    listener: std::net::TcpListener,
    router: Router,
    before: Vec<Before>,
    after: Vec<After>,
    config: Config,
    shutdown: ShutdownHandle,
    counters: Rc<Counters>,
}

impl Server {
    /// Binds the listening socket now (so a taken port fails here), with
    /// `SO_REUSEADDR` and a deep backlog (`net::LISTEN_BACKLOG`).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<Server> {
        Self::bind_with(addr, false)
    }

    /// Like [`bind`](Self::bind), with `SO_REUSEPORT`: several servers
    /// (threads or processes, one reactor each) share the port and, on
    /// Linux, the kernel spreads connections across them. Unix only.
    #[cfg(unix)]
    pub fn bind_reuse_port<A: ToSocketAddrs>(addr: A) -> io::Result<Server> {
        Self::bind_with(addr, true)
    }

    fn bind_with<A: ToSocketAddrs>(addr: A, reuse_port: bool) -> io::Result<Server> {
        let mut last = None;
        for addr in addr.to_socket_addrs()? {
            #[cfg(unix)]
            let bound = crate::net::listen(addr, reuse_port);
            #[cfg(not(unix))]
            let bound = {
                let _ = reuse_port;
                std::net::TcpListener::bind(addr)
            };
            match bound {
                Ok(listener) => return Self::from_listener(listener),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no socket address to bind")))
    }

    /// Serves on an already bound listener.
    pub fn from_listener(listener: std::net::TcpListener) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener,
            router: Router::default(),
            before: Vec::new(),
            after: Vec::new(),
            config: Config::default(),
            shutdown: ShutdownHandle::new(),
            counters: Rc::new(Counters::default()),
        })
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Adds a route. Patterns are `/literal`, `/:param` and a final `/*rest`.
    pub fn route<H: Handler>(mut self, method: Method, pattern: &str, handler: H) -> Server {
        self.router.add(method, pattern, handler);
        self
    }

    /// `GET` route (also answers `HEAD`, without the body).
    pub fn get<H: Handler>(self, pattern: &str, handler: H) -> Server {
        self.route(Method::Get, pattern, handler)
    }

    /// `POST` route.
    pub fn post<H: Handler>(self, pattern: &str, handler: H) -> Server {
        self.route(Method::Post, pattern, handler)
    }

    /// `PUT` route.
    pub fn put<H: Handler>(self, pattern: &str, handler: H) -> Server {
        self.route(Method::Put, pattern, handler)
    }

    /// `DELETE` route.
    pub fn delete<H: Handler>(self, pattern: &str, handler: H) -> Server {
        self.route(Method::Delete, pattern, handler)
    }

    /// `PATCH` route.
    pub fn patch<H: Handler>(self, pattern: &str, handler: H) -> Server {
        self.route(Method::Patch, pattern, handler)
    }

    /// A hook run before routing, in the order added. Returning a response
    /// answers the request with it (authentication, rate limits); returning
    /// `None` goes on. It may modify the request.
    pub fn before(mut self, hook: impl Fn(&mut Request) -> Option<Response> + 'static) -> Server {
        self.before.push(Box::new(hook));
        self
    }

    /// A hook run on every response (handlers', and the server's own 404,
    /// 405, 503...), in the order added: add headers, log.
    pub fn after(mut self, hook: impl Fn(Response) -> Response + 'static) -> Server {
        self.after.push(Box::new(hook));
        self
    }

    /// Replaces the limits and timeouts.
    pub fn config(mut self, config: Config) -> Server {
        assert!(
            config.max_head >= 64 && config.buffer_size >= 512,
            "limits too small to serve anything"
        );
        assert!(
            config.max_head <= parse::MAX_HEAD_LIMIT,
            "max_head is at most {} bytes (64 KiB)",
            parse::MAX_HEAD_LIMIT
        );
        self.config = config;
        self
    }

    /// The current limits and timeouts.
    pub fn current_config(&self) -> &Config {
        &self.config
    }

    /// A handle that stops the server gracefully, from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// A handle to this server's figures, readable while it runs (on its
    /// thread).
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(self.counters.clone())
    }

    /// Serves until shut down, on the current solo runtime.
    pub async fn serve(self) -> io::Result<()> {
        let core = Core::current();
        let (inner, listener) = ServerInner::new(core.clone(), self);
        let mut listener = mio::net::TcpListener::from_std(listener);
        let token = core
            .reactor
            .register_driven(&mut listener, Interest::READABLE, inner.clone(), LISTENER)?;
        *inner.listener.borrow_mut() = Some((listener, token));
        inner.set_server_timer(Duration::from_secs(1), TIMER_DATE);
        #[cfg(test)]
        tests::LAST.with(|l| *l.borrow_mut() = Some(Rc::downgrade(&inner)));
        let _cleanup = Cleanup(inner.clone());
        // The first edge may have come before registration finished.
        inner.accept();
        poll_fn(|cx| inner.poll_serve(cx)).await;
        Ok(())
    }

    /// Runs `n` share-nothing workers: `n` threads, each with its own
    /// runtime, reactor and `SO_REUSEPORT` listener on `addr`, and its own
    /// server built by `routes` (so handlers need not be `Send`). Nothing is
    /// shared on the request path; on Linux the kernel spreads connections
    /// over the listeners (macOS and FreeBSD give them all to one: use one
    /// worker there). SIGINT/SIGTERM stop every worker gracefully. Blocks
    /// until they have all stopped; returns the first error.
    ///
    /// ```no_run
    /// use solo::http::{Request, Response, Server};
    /// Server::workers("127.0.0.1:8080", 2, |server| {
    ///     server.get("/", |_req: Request| async { Response::text("Hello, World!") })
    /// })
    /// # ; Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(unix)]
    pub fn workers<A, F>(addr: A, n: usize, routes: F) -> io::Result<()>
    where
        A: ToSocketAddrs,
        F: Fn(Server) -> Server + Send + Sync + 'static,
    {
        Self::workers_until(addr, n, ShutdownHandle::new(), routes)
    }

    /// [`workers`](Self::workers), also stopped by `shutdown` (from any
    /// thread).
    #[cfg(unix)]
    pub fn workers_until<A, F>(addr: A, n: usize, shutdown: ShutdownHandle, routes: F) -> io::Result<()>
    where
        A: ToSocketAddrs,
        F: Fn(Server) -> Server + Send + Sync + 'static,
    {
        assert!(n >= 1, "Server::workers needs at least one worker");
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no socket address to bind"))?;
        // Bind every listener before starting anything, so a taken port
        // fails here; the first fixes the port when `addr` asks for port 0.
        let first = crate::net::listen(addr, true)?;
        let addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..n {
            listeners.push(crate::net::listen(addr, true)?);
        }
        let _signals = signals::install(shutdown.clone())?;
        let routes = Arc::new(routes);
        let threads: Vec<_> = listeners
            .into_iter()
            .enumerate()
            .map(|(i, listener)| {
                let (routes, shutdown) = (routes.clone(), shutdown.clone());
                std::thread::Builder::new()
                    .name(format!("solo-worker-{i}"))
                    .spawn(move || {
                        let mut server = routes(Server::from_listener(listener)?);
                        server.shutdown = shutdown;
                        crate::Runtime::new()?.block_on(server.serve())
                    })
            })
            .collect::<io::Result<_>>()?;
        let mut result = Ok(());
        for t in threads {
            let r = t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a worker thread panicked")));
            if result.is_ok() {
                if r.is_err() {
                    shutdown.stop_now();
                }
                result = r;
            }
        }
        result
    }

    /// Runs the server on a new runtime on this thread until SIGINT or
    /// SIGTERM (a second signal stops at once) or a shutdown handle says so.
    pub fn run(self) -> io::Result<()> {
        let rt = crate::Runtime::new()?;
        let _signals = signals::install(self.shutdown.clone())?;
        rt.block_on(self.serve())
    }
}

/// Breaks the reference cycles (reactor → server, wheel → server) when
/// `serve` ends, however it ends.
struct Cleanup(Rc<ServerInner>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let inner = &self.0;
        inner.close_listener();
        inner.close_all();
        let timers = std::mem::take(&mut *inner.timers.borrow_mut());
        let mut wheel = inner.core.timers.borrow_mut();
        for key in timers {
            drop(wheel.cancel(key));
        }
    }
}

/// Stops a server gracefully; cloneable and usable from any thread.
#[derive(Clone, Debug)]
pub struct ShutdownHandle(Arc<ShutdownShared>);

#[derive(Debug, Default)]
struct ShutdownShared {
    /// 0 running, 1 graceful shutdown asked, 2 immediate stop asked.
    state: AtomicU8,
    /// One per server listening to this handle (`workers` shares one).
    wakers: Mutex<Vec<Waker>>,
}

impl Default for ShutdownHandle {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownHandle {
    /// A handle not yet tied to a server (see `Server::workers_until`).
    pub fn new() -> ShutdownHandle {
        ShutdownHandle(Arc::new(ShutdownShared::default()))
    }

    /// Stops accepting, closes idle connections, lets in-flight requests
    /// finish (up to `Config::shutdown_timeout`), then ends `serve`.
    pub fn shutdown(&self) {
        self.raise(1);
    }

    /// Closes every connection now and ends `serve`.
    pub fn stop_now(&self) {
        self.raise(2);
    }

    fn raise(&self, level: u8) {
        self.0.state.fetch_max(level, Ordering::AcqRel);
        let wakers = std::mem::take(&mut *self.0.wakers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in wakers {
            w.wake();
        }
    }

    fn level(&self) -> u8 {
        self.0.state.load(Ordering::Acquire)
    }

    fn register(&self, waker: &Waker) {
        let mut wakers = self.0.wakers.lock().unwrap_or_else(|e| e.into_inner());
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
    }
}

/// Reads a running server's figures.
#[derive(Clone)]
pub struct StatsHandle(Rc<Counters>);

impl StatsHandle {
    /// The figures now, with the process's RSS and CPU time read from the OS.
    pub fn snapshot(&self) -> Stats {
        self.0.snapshot()
    }
}

pub(crate) struct ServerInner {
    core: Rc<Core>,
    config: Config,
    router: Router,
    before: Vec<Before>,
    after: Vec<After>,
    listener: RefCell<Option<(mio::net::TcpListener, Token)>>,
    conns: RefCell<Slab<Conn>>,
    // Boxed on purpose: a connection holds the same box the pool hands out,
    // so taking and returning buffers moves a pointer, never the buffers.
    #[allow(clippy::vec_box)]
    pool: RefCell<Vec<Box<Buffers>>>,
    date: RefCell<DateCache>,
    counters: Rc<Counters>,
    shutdown: ShutdownHandle,
    draining: Cell<bool>,
    next_id: Cell<u32>,
    in_flight: Cell<usize>,
    accept_paused: Cell<bool>,
    /// A `TIMER_ACCEPT` is set.
    accept_retry: Cell<bool>,
    serve_waker: RefCell<Option<Waker>>,
    /// Server-wide timers (date, accept retry, shutdown deadline).
    timers: RefCell<Vec<TimerKey>>,
}

/// A connection and the phase its timer was armed for.
pub(crate) struct Conn {
    c: Connection,
    timer_for: Option<Phase>,
    /// The runtime's tick (ms, wrapping) when the latest answer was written
    /// in full (or the connection was accepted): the keep-alive timeout
    /// counts from here. (Here rather than in `Connection`, it fills
    /// padding: an idle connection stays 120 bytes.)
    idle_since: u32,
}

/// Why a connection must close now.
struct Close;

impl Driven for ServerInner {
    fn on_ready(self: Rc<Self>, _token: Token, data: usize, ready: Ready) -> Dispatch {
        if data == LISTENER {
            return self.accept();
        }
        {
            let mut conns = self.conns.borrow_mut();
            let Some(conn) = conns.get_mut(data) else {
                return Dispatch::Done;
            };
            if ready.intersects(Ready::READABLE | Ready::READ_CLOSED | Ready::ERROR) {
                conn.c.readable = true;
            }
            if ready.intersects(Ready::READ_CLOSED | Ready::ERROR) {
                conn.c.peer_closed = true;
            }
            if ready.intersects(Ready::WRITABLE | Ready::WRITE_CLOSED | Ready::ERROR) {
                conn.c.writable = true;
            }
        }
        self.drive(data);
        Dispatch::Done
    }
}

impl TimerTarget for ServerInner {
    fn on_timer(self: Rc<Self>, data: usize) {
        match data {
            TIMER_DATE => {
                self.date.borrow_mut().refresh();
                self.forget_timer_fired();
                if !self.draining.get() || !self.conns.borrow().is_empty() {
                    self.set_server_timer(Duration::from_secs(1), TIMER_DATE);
                }
            }
            TIMER_ACCEPT => {
                self.forget_timer_fired();
                self.accept_retry.set(false);
                self.accept_paused.set(false);
                if self.accept() == Dispatch::Again {
                    self.set_server_timer(Duration::ZERO, TIMER_ACCEPT);
                }
            }
            TIMER_SHUTDOWN => {
                self.forget_timer_fired();
                self.close_all();
            }
            key if key & TIMER_RESUME != 0 => {
                self.forget_timer_fired();
                let key = key & !TIMER_RESUME;
                if let Some(conn) = self.conns.borrow_mut().get_mut(key) {
                    conn.c.readable = true; // the edge was consumed while paused
                }
                self.drive(key);
            }
            key => self.on_connection_timer(key),
        }
    }
}

impl ServerInner {
    /// The server's state on `core`, and its (not yet registered) listener.
    fn new(core: Rc<Core>, server: Server) -> (Rc<ServerInner>, std::net::TcpListener) {
        let inner = Rc::new(ServerInner {
            core,
            config: server.config,
            router: server.router,
            before: server.before,
            after: server.after,
            listener: RefCell::new(None),
            conns: RefCell::new(Slab::new()),
            pool: RefCell::new(Vec::new()),
            date: RefCell::new(DateCache::new()),
            counters: server.counters,
            shutdown: server.shutdown,
            draining: Cell::new(false),
            next_id: Cell::new(0),
            in_flight: Cell::new(0),
            accept_paused: Cell::new(false),
            accept_retry: Cell::new(false),
            serve_waker: RefCell::new(None),
            timers: RefCell::new(Vec::new()),
        });
        (inner, server.listener)
    }

    fn poll_serve(self: &Rc<Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.shutdown.register(cx.waker());
        *self.serve_waker.borrow_mut() = Some(cx.waker().clone());
        match self.shutdown.level() {
            0 => {}
            1 if !self.draining.get() => self.begin_shutdown(),
            1 => {}
            _ => {
                self.draining.set(true);
                self.close_listener();
                self.close_all();
            }
        }
        if self.draining.get() && self.conns.borrow().is_empty() {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    fn begin_shutdown(self: &Rc<Self>) {
        self.draining.set(true);
        self.close_listener();
        let mut idle = Vec::new();
        for (key, conn) in self.conns.borrow_mut().iter_mut() {
            let c = &mut conn.c;
            if c.ready_for_next() && c.input().is_empty() && c.output_empty() {
                idle.push(key);
            }
        }
        for key in idle {
            self.close(key);
        }
        // The rest finish the request they are on; their response says
        // Connection: close.
        self.set_server_timer(self.config.shutdown_timeout, TIMER_SHUTDOWN);
    }

    fn close_all(self: &Rc<Self>) {
        let keys: Vec<usize> = self.conns.borrow().iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close(key);
        }
    }

    /// Stops the handler task of a request the connection gave up on.
    fn abandon_handler(&self, c: &mut Connection) {
        if let Some(task) = c.pending.take() {
            task.abort();
            self.in_flight.set(self.in_flight.get() - 1);
        }
    }

    fn close_listener(&self) {
        if let Some((mut listener, token)) = self.listener.borrow_mut().take() {
            self.core.reactor.deregister(&mut listener, token);
        }
    }

    fn set_server_timer(self: &Rc<Self>, after: Duration, what: usize) {
        if what == TIMER_ACCEPT && self.accept_retry.replace(true) {
            return;
        }
        let tick = self.core.deadline_tick(Instant::now() + after);
        let key = self
            .core
            .timers
            .borrow_mut()
            .insert(tick, Expiry::Call(self.clone(), what));
        self.timers.borrow_mut().push(key);
    }

    /// Drops fired keys from the server-wide timer list.
    fn forget_timer_fired(&self) {
        let wheel = self.core.timers.borrow();
        self.timers.borrow_mut().retain(|k| wheel.contains(*k));
    }

    fn accept(self: &Rc<Self>) -> Dispatch {
        for _ in 0..ACCEPT_BUDGET {
            if self.accept_paused.get() || self.draining.get() {
                return Dispatch::Done;
            }
            if self.conns.borrow().len() >= self.config.max_connections {
                // Paused: the next close resumes accepting (never a busy loop).
                self.accept_paused.set(true);
                return Dispatch::Done;
            }
            let accepted = match self.listener.borrow().as_ref() {
                Some((l, _)) => l.accept(),
                None => return Dispatch::Done,
            };
            match accepted {
                Ok((stream, peer)) => {
                    if let Err(e) = self.add_connection(stream, peer) {
                        add(&self.counters.accept_errors, 1);
                        if is_resource_error(&e) {
                            self.pause_accept();
                            return Dispatch::Done;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Dispatch::Done,
                Err(e) if is_resource_error(&e) => {
                    add(&self.counters.accept_errors, 1);
                    self.pause_accept();
                    return Dispatch::Done;
                }
                // ECONNABORTED and the like concern one connection only.
                Err(_) => add(&self.counters.accept_errors, 1),
            }
        }
        Dispatch::Again
    }

    /// Out of descriptors or memory: accepting again at once would fail again
    /// (and spin). Retry after a pause on the wheel.
    fn pause_accept(self: &Rc<Self>) {
        self.accept_paused.set(true);
        self.set_server_timer(ACCEPT_BACKOFF, TIMER_ACCEPT);
    }

    fn add_connection(self: &Rc<Self>, mut stream: mio::net::TcpStream, peer: SocketAddr) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let mut conns = self.conns.borrow_mut();
        let entry = conns.vacant_entry();
        let key = entry.key();
        let token = self.core.reactor.register_driven(
            &mut stream,
            Interest::READABLE | Interest::WRITABLE,
            self.clone(),
            key,
        )?;
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        entry.insert(Conn {
            c: Connection::new(stream, token, id, peer),
            timer_for: None,
            idle_since: self.core.now_tick() as u32,
        });
        add(&self.counters.accepted, 1);
        add(&self.counters.active, 1);
        let conn = &mut conns[key];
        self.arm_timer(key, conn);
        Ok(())
    }

    /// Advances connection `key` as far as it goes, and closes it if done.
    fn drive(self: &Rc<Self>, key: usize) {
        let close = {
            let mut conns = self.conns.borrow_mut();
            let Some(conn) = conns.get_mut(key) else { return };
            let result = self.advance(key, conn);
            if result.is_ok() {
                self.arm_timer(key, conn);
                self.release_idle_buffers(conn);
            }
            result.is_err()
        };
        if close {
            self.close(key);
        }
    }

    /// Writes, reads and processes until nothing moves.
    fn advance(self: &Rc<Self>, key: usize, conn: &mut Conn) -> Result<(), Close> {
        for _ in 0..16 {
            let mut moved = false;
            if conn.c.writable && !conn.c.output_empty() {
                let n = conn.c.flush().map_err(|_| Close)?;
                add(&self.counters.bytes_out, n as u64);
                moved |= n > 0;
                if n > 0 && conn.timer_for == Some(Phase::Writing) {
                    conn.timer_for = None; // progress: restart the write timer
                }
            }
            if conn.c.output_len() < self.config.output_high_watermark {
                // A stream waiting for room may go on.
                if let Some(w) = conn.c.streaming.as_mut().and_then(|s| s.waker.take()) {
                    w.wake();
                }
            }
            if conn.c.output_empty() {
                if self.record_batch(&mut conn.c) {
                    // Once per answered batch, from the turn's clock.
                    conn.idle_since = self.core.tick_at(self.core.reactor.now()) as u32;
                }
                if conn.c.close_after_write && conn.c.pending.is_none() && conn.c.streaming.is_none() {
                    if !conn.c.lingering {
                        // Half-close, then read and discard until the client
                        // closes too (or the linger timer fires), so unread
                        // input cannot turn our close into a reset that
                        // destroys the response in flight.
                        let _ = conn.c.stream.shutdown(std::net::Shutdown::Write);
                        conn.c.lingering = true;
                        if let Some(b) = conn.c.bufs.as_deref_mut() {
                            b.read.clear();
                        }
                    }
                    return if conn.c.discard_input() { Err(Close) } else { Ok(()) };
                }
            }
            if conn.c.readable && !conn.c.read_closed && self.wants_input(&conn.c) {
                self.bufs(&mut conn.c);
                let max = self.read_limit(&conn.c);
                let n = conn.c.fill(self.config.buffer_size, max).map_err(|_| Close)?;
                add(&self.counters.bytes_in, n as u64);
                moved |= n > 0;
                if n > 0 && conn.timer_for == Some(Phase::ReadingBody) {
                    conn.timer_for = None; // progress: restart the body timer
                }
            }
            moved |= self.process(key, &mut conn.c)?;
            if conn.c.read_closed && conn.c.output_empty() && conn.c.ready_for_next() {
                // The client is done sending and everything it asked for is
                // answered (a partial request left behind is dropped).
                return Err(Close);
            }
            if conn.c.read_closed && conn.c.body.is_some() {
                // The body can never be completed.
                if let Some(ch) = conn.c.body.take().and_then(|b| b.channel) {
                    ch.borrow_mut()
                        .finish(Some((io::ErrorKind::UnexpectedEof, "client closed mid-body")));
                }
                conn.c.close_after_write = true;
            }
            if !moved {
                break;
            }
        }
        Ok(())
    }

    /// Whether reading more is useful now.
    fn wants_input(&self, c: &Connection) -> bool {
        if let Some(body) = &c.body {
            if let Some(ch) = &body.channel {
                let mut ch = ch.borrow_mut();
                if !ch.collecting && !ch.abandoned && ch.data.len() >= BODY_WINDOW {
                    ch.paused = true;
                    return false;
                }
            }
            return true;
        }
        // Keep reading pipelined requests only up to one head's worth while
        // the output drains or a handler runs.
        c.input().len() < self.config.max_head && c.output_len() < self.config.output_high_watermark
    }

    fn read_limit(&self, c: &Connection) -> usize {
        if c.body.is_some() {
            c.input().len() + self.config.buffer_size.max(64 * 1024)
        } else {
            self.config.max_head.max(c.input().len() + 1)
        }
    }

    /// Consumes buffered input: body bytes of the current request, then as
    /// many complete requests as may be answered now. Returns whether
    /// anything was consumed.
    fn process(self: &Rc<Self>, key: usize, c: &mut Connection) -> Result<bool, Close> {
        let mut moved = false;
        loop {
            if c.body.is_some() {
                if c.input().is_empty() {
                    return Ok(moved);
                }
                moved = true;
                self.feed_body(c);
                if c.body.is_some() {
                    return Ok(moved);
                }
                continue;
            }
            if !c.ready_for_next() || c.input().is_empty() || c.output_len() >= self.config.output_high_watermark {
                return Ok(moved);
            }
            match parse::parse_head(c.input(), self.config.max_head) {
                Ok(None) => return Ok(moved),
                Err(e) => {
                    add(&self.counters.parse_errors, 1);
                    self.bufs(c).read.clear();
                    self.error_response(c, e.status(), e.reason(), 1);
                    return Ok(true);
                }
                Ok(Some(head)) => {
                    moved = true;
                    self.dispatch(key, c, head);
                }
            }
        }
    }

    /// Feeds buffered bytes to the body in progress.
    fn feed_body(&self, c: &mut Connection) {
        let (Some(body), Some(bufs)) = (c.body.as_mut(), c.bufs.as_deref_mut()) else {
            return;
        };
        let input = &mut bufs.read;
        let max_body = self.config.max_body;
        let (consumed, done, error) = match &mut body.framing {
            BodyFraming::Length(left) => {
                let take = (*left).min(input.len() as u64) as usize;
                if let Some(ch) = &body.channel {
                    ch.borrow_mut().push(&input[..take]);
                }
                *left -= take as u64;
                (take, *left == 0, None)
            }
            BodyFraming::Chunked(decoder) => {
                let channel = &body.channel;
                let received = &mut body.received;
                let mut too_large = false;
                let result = decoder.decode(input, |data| {
                    *received += data.len() as u64;
                    if *received > max_body {
                        too_large = true;
                    } else if let Some(ch) = channel {
                        ch.borrow_mut().push(data);
                    }
                });
                match result {
                    Ok(_) if too_large => (0, false, Some((413, "request body too large"))),
                    Ok(d) => (d.consumed, d.done, None),
                    Err(why) => (0, false, Some((400, why))),
                }
            }
        };
        let _ = input.split_to(consumed);
        if let Some((status, why)) = error {
            add(&self.counters.parse_errors, 1);
            if let Some(ch) = c.body.take().and_then(|b| b.channel) {
                let kind = if status == 413 {
                    io::ErrorKind::FileTooLarge
                } else {
                    io::ErrorKind::InvalidData
                };
                ch.borrow_mut().finish(Some((kind, why)));
            }
            self.bufs(c).read.clear();
            // The handler (if still running) is abandoned: its request is
            // broken, and the connection answers for it.
            self.abandon_handler(c);
            self.error_response(c, status, why, 1);
        } else if done {
            if let Some(ch) = c.body.take().and_then(|b| b.channel) {
                ch.borrow_mut().finish(None);
            }
        }
    }

    /// Answers one parsed request head.
    fn dispatch(self: &Rc<Self>, key: usize, c: &mut Connection, head: parse::Head) {
        add(&self.counters.requests, 1);
        let head_bytes = self.bufs(c).read.split_to(head.len).freeze();
        let minor = head.minor;
        let keep_alive = head.keep_alive && !self.draining.get();
        let head_only = head.method == Method::Head;
        let body = match head.body {
            BodyKind::None => RequestBody::Empty,
            BodyKind::Length(n) if n > self.config.max_body => {
                // Decided from Content-Length before reading a byte of it.
                add(&self.counters.parse_errors, 1);
                self.error_response(c, 413, "request body too large", minor);
                return;
            }
            BodyKind::Length(n) if c.input().len() as u64 >= n => {
                RequestBody::Full(self.bufs(c).read.split_to(n as usize).freeze())
            }
            kind => {
                let server = Rc::downgrade(self);
                let resume: Rc<dyn Fn()> = Rc::new(move || {
                    if let Some(server) = server.upgrade() {
                        // Deferred to the wheel: the reader may be running
                        // inside this connection's own dispatch.
                        server.set_server_timer(Duration::ZERO, TIMER_RESUME | key);
                    }
                });
                let channel = Rc::new(RefCell::new(BodyChannel::new(resume)));
                c.body = Some(Box::new(BodyReader::new(kind, Some(channel.clone()))));
                if head.expect_continue {
                    self.bufs(c).out.buf.put_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    self.counters.response(100);
                }
                RequestBody::Streaming(channel)
            }
        };
        let bufs = self.bufs(c);
        if bufs.batch_start.is_none() {
            // When the poll that brought these bytes returned: no clock read
            // here, and the latency recorded includes the time the request
            // waited behind other connections dispatched in the same turn.
            bufs.batch_start = Some(self.core.reactor.now());
        }
        let mut req = Request::new(head_bytes, head, c.peer.get(), body);
        for hook in &self.before {
            if let Some(resp) = hook(&mut req) {
                self.queue_response(key, c, resp, head_only, keep_alive, minor);
                return;
            }
        }
        let head_start = req.head_bytes().as_ptr() as usize;
        let path = req.path();
        let path_start = (path.as_ptr() as usize - head_start) as u32;
        match self.router.route(req.method(), path, path_start) {
            Routed::NotFound => {
                let resp = Response::text("Not Found").with_status(404);
                self.queue_response(key, c, resp, head_only, keep_alive, minor);
            }
            Routed::MethodNotAllowed(allow) => {
                let resp = Response::text("Method Not Allowed")
                    .with_status(405)
                    .header("Allow", allow);
                self.queue_response(key, c, resp, head_only, keep_alive, minor);
            }
            Routed::Found(endpoint, params) => {
                req.set_params(params);
                match panic::catch_unwind(AssertUnwindSafe(|| endpoint.start(req))) {
                    Ok(Started::Ready(resp)) => self.queue_response(key, c, resp, head_only, keep_alive, minor),
                    Ok(Started::Pending(future)) => {
                        if self.config.max_in_flight.is_some_and(|max| self.in_flight.get() >= max) {
                            drop(future);
                            let resp = Response::text("Service Unavailable").with_status(503);
                            self.queue_response(key, c, resp, head_only, keep_alive, minor);
                        } else {
                            self.in_flight.set(self.in_flight.get() + 1);
                            let server = self.clone();
                            let id = c.id;
                            c.pending = Some(crate::spawn(async move {
                                let result = CatchUnwind(future).await;
                                server.complete(key, id, result, head_only, keep_alive, minor);
                            }));
                        }
                    }
                    Err(_) => {
                        add(&self.counters.handler_panics, 1);
                        self.error_response(c, 500, "Internal Server Error", minor);
                    }
                }
            }
        }
    }

    /// A pending handler finished (in its task).
    fn complete(
        self: &Rc<Self>,
        key: usize,
        id: u32,
        result: Result<Response, ()>,
        head_only: bool,
        keep_alive: bool,
        minor: u8,
    ) {
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
        {
            let mut conns = self.conns.borrow_mut();
            let Some(conn) = conns.get_mut(key).filter(|c| c.c.id == id) else {
                return;
            };
            let c = &mut conn.c;
            c.pending = None;
            match result {
                Ok(resp) => self.queue_response(key, c, resp, head_only, keep_alive && !self.draining.get(), minor),
                Err(()) => {
                    add(&self.counters.handler_panics, 1);
                    self.error_response(c, 500, "Internal Server Error", minor);
                }
            }
            c.writable = true; // try at once; WouldBlock puts it back
        }
        self.drive(key);
    }

    /// Queues a server-generated error and closes after it is written.
    fn error_response(&self, c: &mut Connection, status: u16, reason: &'static str, minor: u8) {
        let resp = Response::text(reason).with_status(status);
        let resp = self.after.iter().fold(resp, |r, hook| hook(r));
        self.write_response(c, resp, false, false, minor);
    }

    fn queue_response(
        self: &Rc<Self>,
        key: usize,
        c: &mut Connection,
        resp: Response,
        head_only: bool,
        keep_alive: bool,
        minor: u8,
    ) {
        let resp = self.after.iter().fold(resp, |r, hook| hook(r));
        if let Some(rx) = self.write_response(c, resp, head_only, keep_alive, minor) {
            let server = self.clone();
            let id = c.id;
            let chunked = minor == 1;
            let task = crate::spawn(async move { server.stream_body(key, id, rx, chunked).await });
            c.streaming = Some(Box::new(Streaming { task, waker: None }));
        }
    }

    /// Serialises a response; returns the channel of a streamed body, which
    /// the caller hands to a task.
    fn write_response(
        &self,
        c: &mut Connection,
        mut resp: Response,
        head_only: bool,
        keep_alive: bool,
        minor: u8,
    ) -> Option<crate::sync::mpsc::Receiver<Bytes>> {
        let status = resp.status_code();
        self.counters.response(status);
        let body = resp.take_body();
        // An HTTP/1.0 client cannot take chunked: a stream is delimited by
        // closing the connection instead.
        let close = !keep_alive || (minor == 0 && matches!(body, Body::Stream(_)));
        c.close_after_write |= close;
        let bufs = self.bufs(c);
        let date = self.date.borrow();
        let with_body = response::has_body(status) && !head_only;
        let stream = match body {
            Body::Empty => {
                resp.write_head(&mut bufs.out.buf, date.line(), Framing::Length(0), close, minor);
                None
            }
            Body::Full(bytes) => {
                resp.write_head(
                    &mut bufs.out.buf,
                    date.line(),
                    Framing::Length(bytes.len() as u64),
                    close,
                    minor,
                );
                if with_body {
                    bufs.out.push_body(bytes);
                }
                None
            }
            Body::Stream(rx) => {
                let framing = if minor == 1 {
                    Framing::Chunked
                } else {
                    Framing::CloseDelimited
                };
                resp.write_head(&mut bufs.out.buf, date.line(), framing, close, minor);
                with_body.then_some(rx)
            }
        };
        bufs.batch_len += 1;
        stream
    }

    /// Feeds a streamed body from its channel into the connection, waiting
    /// while the connection's output is above the high watermark.
    async fn stream_body(
        self: Rc<Self>,
        key: usize,
        id: u32,
        mut rx: crate::sync::mpsc::Receiver<Bytes>,
        chunked: bool,
    ) {
        while let Some(chunk) = rx.recv().await {
            if chunk.is_empty() {
                continue;
            }
            let alive = poll_fn(|cx| {
                let mut conns = self.conns.borrow_mut();
                match conns.get_mut(key).filter(|c| c.c.id == id) {
                    None => Poll::Ready(false),
                    Some(conn) if conn.c.output_len() < self.config.output_high_watermark => Poll::Ready(true),
                    Some(conn) => {
                        // Woken when the connection's output drains.
                        if let Some(s) = conn.c.streaming.as_mut() {
                            s.waker = Some(cx.waker().clone());
                        }
                        Poll::Pending
                    }
                }
            })
            .await;
            if !alive {
                return;
            }
            {
                let mut conns = self.conns.borrow_mut();
                let Some(conn) = conns.get_mut(key).filter(|c| c.c.id == id) else {
                    return;
                };
                let out = &mut self.bufs(&mut conn.c).out;
                if chunked {
                    response::put_hex(&mut out.buf, chunk.len() as u64);
                    out.buf.extend_from_slice(b"\r\n");
                    out.push_body(chunk);
                    out.buf.extend_from_slice(b"\r\n");
                } else {
                    out.push_body(chunk);
                }
                conn.c.writable = true;
            }
            self.drive(key);
        }
        {
            let mut conns = self.conns.borrow_mut();
            let Some(conn) = conns.get_mut(key).filter(|c| c.c.id == id) else {
                return;
            };
            if chunked {
                self.bufs(&mut conn.c).out.buf.extend_from_slice(b"0\r\n\r\n");
            }
            conn.c.streaming = None;
            conn.c.writable = true;
        }
        self.drive(key);
    }

    /// Latency of the responses just written: from the first request of the
    /// batch parsed to the last byte handed to the kernel.
    /// Returns whether a batch was recorded.
    fn record_batch(&self, c: &mut Connection) -> bool {
        let busy = c.pending.is_some() || c.streaming.is_some() || c.body.is_some();
        let Some(bufs) = c.bufs.as_deref_mut() else {
            return false;
        };
        if busy {
            return false;
        }
        let Some(start) = bufs.batch_start.take() else {
            return false;
        };
        let micros = start.elapsed().as_micros() as u64;
        for _ in 0..bufs.batch_len.max(1) {
            self.counters.latency.record(micros);
        }
        bufs.batch_len = 0;
        true
    }

    /// Arms the connection's one timer for what it is waiting for; a timer
    /// already bounding the same wait is kept (so a trickle of bytes cannot
    /// extend a header deadline).
    fn arm_timer(self: &Rc<Self>, key: usize, conn: &mut Conn) {
        let phase = conn.c.phase();
        let after = match phase {
            Phase::Idle => Some(Duration::from_millis(keep_alive_ms(&self.config).into())),
            Phase::ReadingHead => Some(self.config.header_timeout),
            Phase::ReadingBody => Some(self.config.body_timeout),
            Phase::Writing => Some(self.config.write_timeout),
            Phase::Closing => Some(LINGER),
            // The handler (or stream, or slow body reader) sets the pace.
            Phase::BodyPaused | Phase::HandlerPending | Phase::Streaming => None,
        };
        let want = after.map(|a| (phase, a));
        if want.map(|(p, _)| p) == conn.timer_for && conn.c.timer.is_some() {
            return;
        }
        if let Some(old) = conn.c.timer.take() {
            drop(self.core.timers.borrow_mut().cancel(old));
        }
        conn.timer_for = want.map(|(p, _)| p);
        if let Some((_, after)) = want {
            let tick = self.core.deadline_tick(Instant::now() + after);
            conn.c.timer = Some(
                self.core
                    .timers
                    .borrow_mut()
                    .insert(tick, Expiry::Call(self.clone(), key)),
            );
        }
    }

    fn on_connection_timer(self: &Rc<Self>, key: usize) {
        let close = {
            let mut conns = self.conns.borrow_mut();
            let Some(conn) = conns.get_mut(key) else { return };
            conn.c.timer = None;
            if conn.timer_for == Some(Phase::Idle) {
                // The keep-alive timer is armed when a connection first goes
                // idle and kept across requests answered at once (re-arming
                // it per request would cost a cancel and an insert each):
                // it counts from the latest answer, so it may be early.
                let timeout = keep_alive_ms(&self.config);
                let now = self.core.now_tick();
                let since = (now as u32).wrapping_sub(conn.idle_since);
                if since < timeout {
                    let tick = now + u64::from(timeout - since);
                    conn.c.timer = Some(
                        self.core
                            .timers
                            .borrow_mut()
                            .insert(tick, Expiry::Call(self.clone(), key)),
                    );
                    return;
                }
            }
            add(&self.counters.timeouts, 1);
            match conn.timer_for.take() {
                Some(Phase::ReadingHead) | Some(Phase::ReadingBody) => {
                    // 408 where a request was under way; then close.
                    if let Some(ch) = conn.c.body.take().and_then(|b| b.channel) {
                        ch.borrow_mut()
                            .finish(Some((io::ErrorKind::TimedOut, "request body timed out")));
                    }
                    if let Some(b) = conn.c.bufs.as_deref_mut() {
                        b.read.clear();
                    }
                    self.abandon_handler(&mut conn.c);
                    self.error_response(&mut conn.c, 408, "Request Timeout", 1);
                    conn.c.writable = true;
                    false
                }
                _ => true,
            }
        };
        if close {
            self.close(key);
        } else {
            self.drive(key);
        }
    }

    /// Removes a connection: deregisters and closes its socket, cancels its
    /// timer, abandons its tasks and returns its buffers.
    fn close(self: &Rc<Self>, key: usize) {
        let Some(conn) = self.conns.borrow_mut().try_remove(key) else {
            return;
        };
        let mut c = conn.c;
        if let Some(t) = c.timer.take() {
            drop(self.core.timers.borrow_mut().cancel(t));
        }
        self.core.reactor.deregister(&mut c.stream, c.token);
        self.abandon_handler(&mut c);
        if let Some(s) = c.streaming.take() {
            s.task.abort();
        }
        if let Some(ch) = c.body.take().and_then(|b| b.channel) {
            ch.borrow_mut()
                .finish(Some((io::ErrorKind::ConnectionAborted, "connection closed")));
        }
        if let Some(bufs) = c.bufs.take() {
            self.put_bufs(bufs);
        }
        sub(&self.counters.active, 1);
        drop(c);
        if self.accept_paused.get() && !self.draining.get() {
            // Below the limit again (or a descriptor was freed): resume
            // accepting on the next turn, unless a retry is already set.
            self.set_server_timer(Duration::ZERO, TIMER_ACCEPT);
        }
        if self.draining.get() && self.conns.borrow().is_empty() {
            if let Some(w) = self.serve_waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// The connection's buffers, taken from the pool if it has none.
    fn bufs<'c>(&self, c: &'c mut Connection) -> &'c mut Buffers {
        c.bufs.get_or_insert_with(|| {
            let mut bufs = self.pool.borrow_mut().pop().unwrap_or_default();
            // Reclaims each whole allocation when every request split off
            // it has been dropped; allocates only the first time.
            bufs.read.reserve(self.config.buffer_size);
            bufs.out.buf.reserve(self.config.buffer_size);
            bufs
        })
    }

    fn put_bufs(&self, mut bufs: Box<Buffers>) {
        bufs.read.clear();
        bufs.out.buf.clear();
        bufs.out.queue.clear();
        bufs.batch_start = None;
        bufs.batch_len = 0;
        let mut pool = self.pool.borrow_mut();
        if pool.len() < POOL_KEEP {
            pool.push(bufs);
        }
    }

    /// An idle connection holds no buffer: they go back to the pool.
    fn release_idle_buffers(&self, conn: &mut Conn) {
        let c = &mut conn.c;
        if c.body.is_none()
            && c.bufs
                .as_deref()
                .is_some_and(|b| b.is_idle() && b.batch_start.is_none())
        {
            if let Some(bufs) = c.bufs.take() {
                self.put_bufs(bufs);
            }
        }
    }
}

/// One connection driven in memory, for the bench of a whole connection
/// turn: bytes in → parse → route → handler → serialise → bytes out, with no
/// system call on the way. It holds a connected loopback socket it never
/// touches, only because a `Connection` owns one. Not part of the API.
#[doc(hidden)]
pub struct ConnectionTurn {
    server: Rc<ServerInner>,
    conn: Conn,
    _client: std::net::TcpStream,
}

impl ConnectionTurn {
    /// A connection of `server`; call inside `Runtime::block_on`.
    pub fn new(server: Server) -> io::Result<ConnectionTurn> {
        let (inner, listener) = ServerInner::new(Core::current(), server);
        let client = std::net::TcpStream::connect(listener.local_addr()?)?;
        let (stream, peer) = listener.accept()?;
        stream.set_nonblocking(true)?;
        let c = Connection::new(mio::net::TcpStream::from_std(stream), Token(0), 0, peer);
        Ok(ConnectionTurn {
            server: inner,
            conn: Conn {
                c,
                timer_for: None,
                idle_since: 0,
            },
            _client: client,
        })
    }

    /// Handles `input` as if one read had returned it, and appends to `out`
    /// what the connection would write (the copy stands in for `write`'s).
    /// Fails if the connection would close (an error response is still
    /// appended) or if a handler did not finish at once.
    pub fn turn(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let server = &self.server;
        let c = &mut self.conn.c;
        // What the reactor does once per poll.
        server.core.reactor.refresh_now();
        server.bufs(c).read.extend_from_slice(input);
        let processed = server.process(0, c);
        if let Some(bufs) = c.bufs.as_deref_mut() {
            for segment in bufs.out.queue.drain(..) {
                out.extend_from_slice(&segment);
            }
            out.extend_from_slice(&bufs.out.buf);
            bufs.out.buf.clear();
        }
        if server.record_batch(c) {
            self.conn.idle_since = server.core.tick_at(server.core.reactor.now()) as u32;
        }
        let c = &mut self.conn.c;
        if processed.is_err() || c.close_after_write {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the connection would close",
            ));
        }
        if c.pending.is_some() || c.streaming.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "a handler did not finish at once",
            ));
        }
        server.release_idle_buffers(&mut self.conn);
        Ok(())
    }
}

/// The keep-alive timeout in milliseconds, at most 2³¹ − 1 (24 days) so that
/// differences of wrapping `u32` ticks compare correctly.
fn keep_alive_ms(config: &Config) -> u32 {
    config.keep_alive_timeout.as_millis().min(i32::MAX as u128) as u32
}

fn is_resource_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// Polls a future, turning a panic into `Err(())`.
struct CatchUnwind(Pin<Box<dyn Future<Output = Response>>>);

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

/// SIGINT/SIGTERM → graceful shutdown; a second one → immediate stop.
mod signals {
    use super::ShutdownHandle;
    use std::io;
    use std::sync::atomic::{AtomicI32, Ordering};

    static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

    extern "C" fn on_signal(_: libc::c_int) {
        let fd = PIPE_WRITE.load(Ordering::Relaxed);
        if fd >= 0 {
            let byte = 1u8;
            // SAFETY: write(2) is async-signal-safe; the buffer is a local.
            unsafe { libc::write(fd, &byte as *const u8 as *const libc::c_void, 1) };
        }
    }

    /// Restores the previous handlers and stops the watcher when dropped.
    pub(super) struct Installed {
        old: [libc::sigaction; 2],
        write_fd: libc::c_int,
        watcher: Option<std::thread::JoinHandle<()>>,
    }

    const SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

    pub(super) fn install(handle: ShutdownHandle) -> io::Result<Installed> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe writes two descriptors into the array we own.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let (read_fd, write_fd) = (fds[0], fds[1]);
        PIPE_WRITE.store(write_fd, Ordering::Relaxed);
        let watcher = std::thread::Builder::new().name("solo-signals".into()).spawn(move || {
            let mut count = 0;
            let mut byte = 0u8;
            loop {
                // SAFETY: reads one byte into a local from a descriptor this
                // thread owns.
                let n = unsafe { libc::read(read_fd, &mut byte as *mut u8 as *mut libc::c_void, 1) };
                if n == 1 && byte == 1 {
                    count += 1;
                    if count == 1 {
                        handle.shutdown();
                    } else {
                        handle.stop_now();
                    }
                } else if n == 1 || (n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted) {
                    if n == 1 {
                        break; // the stop byte
                    }
                } else {
                    break;
                }
            }
            // SAFETY: closing the descriptor this thread owns, once.
            unsafe { libc::close(read_fd) };
        })?;
        // SAFETY: an all-zero sigaction is a valid "no handler, no flags"
        // value, filled in before use; sigaction reads `new` and writes `old`.
        let old = unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            new.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut new.sa_mask);
            let mut old: [libc::sigaction; 2] = std::mem::zeroed();
            for (i, sig) in SIGNALS.iter().enumerate() {
                libc::sigaction(*sig, &new, &mut old[i]);
            }
            old
        };
        Ok(Installed {
            old,
            write_fd,
            watcher: Some(watcher),
        })
    }

    impl Drop for Installed {
        fn drop(&mut self) {
            // SAFETY: restores the handlers saved at install; then writes the
            // stop byte and closes our write end, once.
            unsafe {
                for (i, sig) in SIGNALS.iter().enumerate() {
                    libc::sigaction(*sig, &self.old[i], std::ptr::null_mut());
                }
                PIPE_WRITE.store(-1, Ordering::Relaxed);
                let stop = 2u8;
                libc::write(self.write_fd, &stop as *const u8 as *const libc::c_void, 1);
                libc::close(self.write_fd);
            }
            if let Some(w) = self.watcher.take() {
                let _ = w.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::TcpStream;
    use crate::time::sleep;

    thread_local! {
        /// The server most recently started on this thread.
        pub(super) static LAST: RefCell<Option<std::rc::Weak<ServerInner>>> = const { RefCell::new(None) };
    }

    /// The one connection: (phase, phase its timer bounds, read buffer
    /// capacity, output buffer capacity).
    fn state() -> Option<(Phase, Option<Phase>, bool)> {
        let inner = LAST
            .with(|l| l.borrow().as_ref().and_then(|w| w.upgrade()))
            .expect("server running");
        let conns = inner.conns.borrow();
        let (_, conn) = conns.iter().next()?;
        let c = &conn.c;
        Some((c.phase(), conn.timer_for, c.bufs.is_some()))
    }

    /// The body channel of the request in progress on the one connection.
    fn body_channel() -> Option<Rc<RefCell<BodyChannel>>> {
        let inner = LAST
            .with(|l| l.borrow().as_ref().and_then(|w| w.upgrade()))
            .expect("server running");
        let conns = inner.conns.borrow();
        conns
            .iter()
            .next()
            .and_then(|(_, c)| c.c.body.as_ref()?.channel.clone())
    }

    async fn settle() {
        sleep(Duration::from_millis(15)).await;
    }

    async fn read_response(client: &mut TcpStream) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            let n = client.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before a whole response");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if got.len() >= end + 4 + len {
                    return text;
                }
            }
        }
    }

    /// What an idle connection costs in the slab (the rest of its idle
    /// memory is the kernel's): the 256-byte-per-connection budget depends
    /// on it, so growing it must be a decision.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn an_idle_connection_is_120_bytes() {
        assert_eq!(std::mem::size_of::<Conn>(), 120);
    }

    #[test]
    fn each_state_transition() {
        let rt = crate::Runtime::new().unwrap();
        rt.block_on(async {
            let server = Server::bind("127.0.0.1:0")
                .unwrap()
                .get("/", |_req: Request| async { Response::text("hi") })
                .get("/slow", |_req: Request| async {
                    sleep(Duration::from_millis(100)).await;
                    Response::text("slow")
                })
                .get("/big", |_req: Request| async { Response::bytes(vec![0u8; 16 << 20]) })
                .post("/echo", |mut req: Request| async move {
                    req.body().await.map(Response::bytes)
                })
                .post("/trickle", |mut req: Request| async move {
                    // A reader that starts late: the window must hold.
                    sleep(Duration::from_millis(300)).await;
                    let mut n = 0;
                    while let Some(chunk) = req.body_chunk().await {
                        n += chunk?.len();
                    }
                    Ok::<_, io::Error>(Response::text(format!("{n} bytes")))
                });
            let addr = server.local_addr().unwrap();
            crate::spawn(server.serve());
            let mut client = TcpStream::connect(addr).await.unwrap();
            settle().await;

            // Accepted, nothing sent: idle, keep-alive timer, no buffers.
            assert_eq!(state(), Some((Phase::Idle, Some(Phase::Idle), false)));

            // Part of a head: header timer, and a read buffer from the pool.
            client.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
            settle().await;
            assert_eq!(state(), Some((Phase::ReadingHead, Some(Phase::ReadingHead), true)));

            // The rest: answered in the same turn, then idle with no buffers.
            client.write_all(b"st: x\r\n\r\n").await.unwrap();
            assert!(read_response(&mut client).await.ends_with("hi"));
            settle().await;
            assert_eq!(state(), Some((Phase::Idle, Some(Phase::Idle), false)));

            // A head whose body is still arriving: body timer.
            client
                .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
                .await
                .unwrap();
            settle().await;
            let (phase, timer_for, _) = state().unwrap();
            assert_eq!((phase, timer_for), (Phase::ReadingBody, Some(Phase::ReadingBody)));
            assert!(
                LAST.with(|l| l.borrow().as_ref().and_then(|w| w.upgrade()))
                    .is_some_and(|s| s.conns.borrow().iter().all(|(_, c)| c.c.pending.is_some())),
                "the handler awaits the body as a task"
            );
            client.write_all(b"67890").await.unwrap();
            assert!(read_response(&mut client).await.ends_with("1234567890"));
            settle().await;
            assert_eq!(state(), Some((Phase::Idle, Some(Phase::Idle), false)));

            // A large upload whose handler starts reading late: the
            // connection stops reading at the window instead of buffering
            // the whole body.
            client
                .write_all(b"POST /trickle HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
                .await
                .unwrap();
            settle().await;
            let channel = body_channel().expect("the body is in progress");
            assert_eq!(state().map(|s| s.0), Some(Phase::ReadingBody));
            let chunk = vec![b'u'; 64 * 1024];
            let writer = crate::spawn(async move {
                for _ in 0..16 {
                    client.write_all(&chunk).await.unwrap();
                }
                client
            });
            let mut peak = 0;
            for _ in 0..15 {
                settle().await;
                peak = peak.max(channel.borrow().data.len());
            }
            assert_eq!(
                state().map(|s| (s.0, s.1)),
                Some((Phase::BodyPaused, None)),
                "paused, no body timer"
            );
            let mut client = writer.await.unwrap();
            let reply = read_response(&mut client).await;
            assert!(reply.ends_with("1048576 bytes"), "{reply}");
            assert!(
                peak >= BODY_WINDOW / 2,
                "the reader was not slow enough to test anything: {peak}"
            );
            assert!(
                peak <= BODY_WINDOW + 128 * 1024,
                "buffered {peak} bytes past the window"
            );
            settle().await;

            // A handler that is not ready: a task, and no timer on the
            // connection while it runs.
            client
                .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            settle().await;
            let (phase, timer_for, _) = state().unwrap();
            assert_eq!((phase, timer_for), (Phase::HandlerPending, None));
            assert!(read_response(&mut client).await.ends_with("slow"));
            settle().await;
            assert_eq!(state(), Some((Phase::Idle, Some(Phase::Idle), false)));

            // A response the client does not read: write timer.
            client.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
            settle().await;
            let (phase, timer_for, _) = state().unwrap();
            assert_eq!((phase, timer_for), (Phase::Writing, Some(Phase::Writing)));
            drop(client);

            // A malformed request: 400, then the connection is gone.
            settle().await;
            assert_eq!(state(), None, "the unread connection closed when its client went away");
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(b"BAD REQUEST\r\n\r\n").await.unwrap();
            let reply = read_response(&mut client).await;
            assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
            let mut rest = [0u8; 16];
            assert_eq!(client.read(&mut rest).await.unwrap(), 0, "half-closed after the 400");
            // Lingering: discarding input until the client closes.
            client.write_all(b"ignored").await.unwrap();
            settle().await;
            assert_eq!(
                state().map(|s| (s.0, s.1)),
                Some((Phase::Closing, Some(Phase::Closing)))
            );
            drop(client);
            settle().await;
            assert_eq!(state(), None, "closed once the client closed");
        });
    }
}
