//! The handle that stops a server: gracefully (finish what is in flight) or
//! at once.
//!
//! Owns: the stop level shared by every server listening to one handle
//! (`Server::workers` shares one across threads) and the wakers of their
//! `serve` futures. Must never: block, or touch a server's state from
//! another thread (it only raises a level and wakes).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

/// Stops a server gracefully; cloneable and usable from any thread.
///
/// ```
/// use std::time::Duration;
/// use solo::http::{Request, Response, Server};
/// let server = Server::bind("127.0.0.1:0")?
///     .get("/", |_req: Request| async { Response::text("hi") });
/// let handle = server.shutdown_handle();
/// std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_millis(50));
///     handle.shutdown(); // in-flight requests finish, then `run` returns
/// });
/// server.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
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

    /// Whether a shutdown (graceful or not) has been asked: what a
    /// readiness check reports as not ready.
    pub fn is_shutting_down(&self) -> bool {
        self.level() >= 1
    }

    pub(crate) fn level(&self) -> u8 {
        self.0.state.load(Ordering::Acquire)
    }

    pub(crate) fn register(&self, waker: &Waker) {
        let mut wakers = self.0.wakers.lock().unwrap_or_else(|e| e.into_inner());
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
    }
}
