//! The HTTP server's front: the builder, and the ways to run it.
//!
//! Owns: [`Server`] (listener, routes, hooks, config) until it runs, `run`,
//! `serve` and `workers`, and the handles that reach a running server
//! ([`ShutdownHandle`] lives in `shutdown.rs`, [`StatsHandle`] here). Must
//! never: hold per-connection state (the driver does) or parse anything.

use std::future::{poll_fn, Future};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::accept::Acceptor;
use super::access::{AccessEntry, AccessLog};
use super::config::Config;
use super::driver::{Driver, Source};
use super::exchange::{After, Before, Exchange};
use super::handler::Handler;
use super::head::{Method, MAX_HEAD_LIMIT};
use super::request::Request;
use super::response::Response;
use super::router::Router;
use super::shutdown::ShutdownHandle;
use super::stats::{Counters, Stats};
use crate::executor::Core;

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
    /// `None` for a server built with [`Server::new`], which only the
    /// in-memory test client can drive.
    listener: Option<std::net::TcpListener>,
    router: Router,
    before: Vec<Before>,
    after: Vec<After>,
    access_log: Vec<AccessLog>,
    config: Config,
    shutdown: ShutdownHandle,
    counters: Rc<Counters>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.listener.as_ref().and_then(|l| l.local_addr().ok()))
            .field("hooks", &(self.before.len(), self.after.len()))
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the listening socket now (so a taken port fails here), with
    /// `SO_REUSEADDR` and a deep backlog (`net::LISTEN_BACKLOG`).
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<Server> {
        Self::bind_with(addr, false)
    }

    /// Like [`bind`](Self::bind), with `SO_REUSEPORT`: several servers
    /// (threads or processes, one reactor each) share the port and, on
    /// Linux, the kernel spreads connections across them. Unix only: elsewhere
    /// an `Unsupported` error.
    pub fn bind_reuse_port<A: ToSocketAddrs>(addr: A) -> io::Result<Server> {
        Self::bind_with(addr, true)
    }

    fn bind_with<A: ToSocketAddrs>(addr: A, reuse_port: bool) -> io::Result<Server> {
        let mut last = None;
        for addr in addr.to_socket_addrs()? {
            match crate::net::listen(addr, reuse_port) {
                Ok(listener) => return Self::from_listener(listener),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no socket address to bind")))
    }

    /// A server with no listener, for [`test::TestClient`](super::test::TestClient):
    /// its routes, hooks and config are driven in memory. `run`/`serve` fail.
    pub fn new() -> Server {
        Server {
            listener: None,
            router: Router::default(),
            before: Vec::new(),
            after: Vec::new(),
            access_log: Vec::new(),
            config: Config::default(),
            shutdown: ShutdownHandle::new(),
            counters: Rc::new(Counters::default()),
        }
    }

    /// Serves on an already bound listener.
    pub fn from_listener(listener: std::net::TcpListener) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener: Some(listener),
            ..Server::new()
        })
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.listener {
            Some(l) => l.local_addr(),
            None => Err(no_listener()),
        }
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

    /// `OPTIONS` route. Without one, `OPTIONS` to a routed path is answered
    /// `204` with `Allow`, and `OPTIONS *` with every routed method.
    pub fn options<H: Handler>(self, pattern: &str, handler: H) -> Server {
        self.route(Method::Options, pattern, handler)
    }

    /// `PATCH` route.
    pub fn patch<H: Handler>(self, pattern: &str, handler: H) -> Server {
        self.route(Method::Patch, pattern, handler)
    }

    /// A liveness route at `path` (`GET` and `HEAD`): `200 ok` for as long
    /// as the loop runs and answers, through a graceful shutdown too (a
    /// draining instance is alive; restarting it would drop its requests).
    pub fn health(self, path: &str) -> Server {
        self.get(path, |_req: Request| async { Response::text("ok\n") })
    }

    /// A readiness route at `path` (`GET` and `HEAD`): `200 ready` until a
    /// graceful shutdown starts, then `503 shutting down` with
    /// `Connection: close`, while in-flight requests finish. Point the
    /// balancer's health check here and set [`Config::drain_delay`] to a
    /// little more than the check's interval × fall count, so the
    /// instance leaves rotation before it stops accepting.
    pub fn readiness(self, path: &str) -> Server {
        let shutdown = self.shutdown.clone();
        self.get(path, move |_req: Request| {
            let ready = !shutdown.is_shutting_down();
            async move {
                if ready {
                    Response::text("ready\n")
                } else {
                    Response::text("shutting down\n")
                        .with_status(503)
                        .header("Connection", "close")
                }
            }
        })
    }

    /// A route at `path` (`GET`) answering this server's and its runtime's
    /// figures in Prometheus' text format, for a scraper.
    ///
    /// ```no_run
    /// use solo::http::{Request, Response, Server};
    /// Server::bind("127.0.0.1:8080")?
    ///     .get("/", |_req: Request| async { Response::text("Hello, World!") })
    ///     .prometheus("/metrics")
    ///     .run()
    /// # ; Ok::<(), std::io::Error>(())
    /// ```
    pub fn prometheus(self, path: &str) -> Server {
        let stats = self.stats_handle();
        self.get(path, move |_req: Request| {
            let text = stats.prometheus();
            async move { Response::text(text).content_type(super::prometheus::CONTENT_TYPE) }
        })
    }

    /// A hook run before routing, in the order added. Returning a response
    /// answers the request with it (authentication, rate limits); returning
    /// `None` goes on. It may modify the request. A hook that panics is
    /// answered as a handler that panics is: 500, and the connection closes.
    pub fn before(mut self, hook: impl Fn(&mut Request) -> Option<Response> + 'static) -> Server {
        self.before.push(Box::new(hook));
        self
    }

    /// A hook run on every response (handlers', and the server's own 404,
    /// 405, 503...), in the order added: add headers, log. If one panics,
    /// the response is a 500 instead (the hooks do not run on it), and the
    /// connection closes.
    pub fn after(mut self, hook: impl Fn(Response) -> Response + 'static) -> Server {
        self.after.push(Box::new(hook));
        self
    }

    /// A hook that sees each request and its response together (method,
    /// target, headers, peer, status, bytes in and out, latency, time), once
    /// the response is queued in full or the connection closed first; see
    /// [`AccessEntry`]. Hooks run in the order added; with none, no record
    /// is kept and nothing is measured. A Common Log Format line:
    ///
    /// ```
    /// # use solo::http::{Request, Response, Server};
    /// let server = Server::bind("127.0.0.1:0")?
    ///     .access_log(|entry| println!("{}", entry.common_log()))
    ///     .get("/", |_req: Request| async { Response::text("hi") });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn access_log(mut self, hook: impl Fn(&AccessEntry<'_>) + 'static) -> Server {
        self.access_log.push(Box::new(hook));
        self
    }

    /// Replaces the limits and timeouts.
    pub fn config(mut self, config: Config) -> Server {
        assert!(
            config.max_head >= 64 && config.buffer_size >= 512,
            "limits too small to serve anything"
        );
        assert!(
            config.max_head <= MAX_HEAD_LIMIT,
            "max_head is at most {} bytes (64 KiB)",
            MAX_HEAD_LIMIT
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
        let shutdown = self.shutdown.clone();
        let (driver, listener) = self.into_driver(Core::current());
        let listener = listener.ok_or_else(no_listener)?;
        let addr = listener.local_addr()?;
        let acceptor = Acceptor::start(driver.clone(), listener)?;
        log::info!(target: "solo::http", "listening on http://{addr}");
        driver.start_clock();
        let _cleanup = Cleanup(driver.clone(), acceptor.clone());
        let drain_delay = driver.exchange.config.drain_delay;
        if !drain_delay.is_zero() {
            // Serve normally until a shutdown is asked, then for
            // `drain_delay` more (readiness says 503 meanwhile), unless an
            // immediate stop cuts it short.
            poll_fn(|cx| ready_when(&shutdown, cx, |level| level >= 1)).await;
            log::info!(target: "solo::http", "shutting down: readiness answers 503, serving on for {drain_delay:?}");
            let mut delay = std::pin::pin!(crate::time::sleep(drain_delay));
            poll_fn(|cx| {
                if ready_when(&shutdown, cx, |level| level >= 2).is_ready() {
                    return Poll::Ready(());
                }
                delay.as_mut().poll(cx)
            })
            .await;
        }
        poll_fn(|cx| poll_serve(&driver, &acceptor, &shutdown, cx)).await;
        log::info!(target: "solo::http", "stopped serving http://{addr}");
        Ok(())
    }

    /// The driver of this server's connections on `core`, and its listener.
    pub(crate) fn into_driver<T: Source>(self, core: Rc<Core>) -> (Rc<Driver<T>>, Option<std::net::TcpListener>) {
        let exchange = Exchange::new(
            self.config,
            self.router,
            self.before,
            self.after,
            self.access_log,
            self.counters,
        );
        (Driver::new(core, exchange), self.listener)
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
    ///
    /// Where `SO_REUSEPORT` does not exist (Windows), more than one worker
    /// is an `Unsupported` error.
    pub fn workers<A, F>(addr: A, n: usize, routes: F) -> io::Result<()>
    where
        A: ToSocketAddrs,
        F: Fn(Server) -> Server + Send + Sync + 'static,
    {
        Self::workers_until(addr, n, ShutdownHandle::new(), routes)
    }

    /// [`workers`](Self::workers), also stopped by `shutdown` (from any
    /// thread).
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
        // SO_REUSEPORT wherever it exists (so other processes may join),
        // and always when several workers must share the port.
        let reuse_port = cfg!(unix) || n > 1;
        let first = crate::net::listen(addr, reuse_port)?;
        let addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..n {
            listeners.push(crate::net::listen(addr, reuse_port)?);
        }
        let routes = Arc::new(routes);
        let threads: Vec<_> = listeners
            .into_iter()
            .enumerate()
            .map(|(i, listener)| {
                let (routes, shutdown) = (routes.clone(), shutdown.clone());
                std::thread::Builder::new()
                    .name(format!("solo-worker-{i}"))
                    .spawn(move || {
                        // The shared handle goes in before the routes are
                        // built, so a readiness route sees it.
                        let mut server = Server::from_listener(listener)?;
                        server.shutdown = shutdown;
                        let server = routes(server);
                        // One worker watches the signals for all: they
                        // share the handle.
                        let rt = crate::Runtime::new()?;
                        if i == 0 {
                            rt.block_on(server.serve_watching_signals())
                        } else {
                            rt.block_on(server.serve())
                        }
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
    /// On Windows there is no signal watch: stop the server with its
    /// [`ShutdownHandle`].
    pub fn run(self) -> io::Result<()> {
        crate::Runtime::new()?.block_on(self.serve_watching_signals())
    }

    /// [`serve`](Self::serve), with SIGINT/SIGTERM watched as an event of
    /// this runtime's loop (Unix): the first asks for a graceful shutdown,
    /// a second stops at once. Once no server in the process watches them,
    /// the two signals terminate the process again, as by default.
    pub async fn serve_watching_signals(self) -> io::Result<()> {
        #[cfg(unix)]
        {
            let mut signals = super::signals::SignalWatch::new(self.shutdown.clone())?;
            let mut serve = std::pin::pin!(self.serve());
            std::future::poll_fn(move |cx| {
                let _ = signals.poll(cx);
                serve.as_mut().poll(cx)
            })
            .await
        }
        #[cfg(not(unix))]
        self.serve().await
    }
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

fn no_listener() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "this server has no listener (Server::new is for the in-memory test client; use Server::bind)",
    )
}

/// Ready once the shutdown level satisfies `reached`.
fn ready_when(shutdown: &ShutdownHandle, cx: &mut Context<'_>, reached: impl Fn(u8) -> bool) -> Poll<()> {
    shutdown.register(cx.waker());
    if reached(shutdown.level()) {
        Poll::Ready(())
    } else {
        Poll::Pending
    }
}

/// Ends `serve` when the shutdown handle says so and the connections are
/// gone.
fn poll_serve(
    driver: &Rc<Driver<mio::net::TcpStream>>,
    acceptor: &Acceptor,
    shutdown: &ShutdownHandle,
    cx: &mut Context<'_>,
) -> Poll<()> {
    shutdown.register(cx.waker());
    *driver.serve_waker.borrow_mut() = Some(cx.waker().clone());
    let draining = driver.exchange.draining.get();
    match shutdown.level() {
        0 => {}
        1 if !draining => {
            acceptor.stop();
            log::info!(
                target: "solo::http",
                "draining: no longer accepting; {} connection(s) left, at most {:?}",
                driver.conns.borrow().len(),
                driver.exchange.config.shutdown_timeout
            );
            driver.begin_shutdown();
        }
        1 => {}
        _ => {
            if !driver.conns.borrow().is_empty() {
                log::info!(target: "solo::http", "stopping now: closing {} connection(s)", driver.conns.borrow().len());
            }
            driver.exchange.draining.set(true);
            acceptor.stop();
            driver.close_all();
            driver.upgrades.drain(&driver.core);
        }
    }
    if driver.exchange.draining.get() && driver.conns.borrow().is_empty() {
        // Upgraded connections watch the shutdown handle and end on their
        // own; wait for them, unless the timeout ran out or a stop is asked.
        if driver.upgrades.live() == 0 || driver.upgrades_abandoned.get() || shutdown.level() >= 2 {
            return Poll::Ready(());
        }
        driver.upgrades.register(cx.waker());
    }
    Poll::Pending
}

/// Breaks the reference cycles (reactor → driver, wheel → driver) when
/// `serve` ends, however it ends.
struct Cleanup(Rc<Driver<mio::net::TcpStream>>, Rc<Acceptor>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.1.stop();
        self.0.close_all();
        self.0.cancel_timers();
    }
}

/// Reads a running server's figures.
#[derive(Clone)]
pub struct StatsHandle(Rc<Counters>);

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsHandle")
            .field("requests", &self.0.requests.get())
            .field("active", &self.0.active.get())
            .finish_non_exhaustive()
    }
}

impl StatsHandle {
    /// The figures now, with the process's RSS and CPU time read from the OS.
    pub fn snapshot(&self) -> Stats {
        self.0.snapshot()
    }

    /// The figures now and the current runtime's, in Prometheus' text
    /// format (see [`prometheus`](super::prometheus)). Panics outside a
    /// runtime.
    pub fn prometheus(&self) -> String {
        super::prometheus::render(&self.0.snapshot(), &self.0.latency, &crate::stats())
    }
}
