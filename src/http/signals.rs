//! SIGINT/SIGTERM → graceful shutdown; a second one → immediate stop.
//!
//! Owns: the signal source a running server watches (signal-hook-mio: the
//! handler writes to a socket pair, which is registered with the reactor
//! like any socket, so the loop sees a signal as an event and no thread
//! waits for it), and what the two signals do once no server watches them.
//! Must never: run code in the signal handler itself (signal-hook's handler
//! does only async-signal-safe work), or leave SIGTERM ignored after the
//! last server stops. Unix only.
//!
//! signal-hook never restores a handler it replaced, so without care a
//! process that ran a server would ignore Ctrl-C afterwards. The first
//! watcher therefore also registers, once per process, signal-hook's
//! emulation of the default action behind a flag that is set exactly when
//! no server watches: then SIGINT and SIGTERM terminate as they did before
//! any server ran.

use super::shutdown::ShutdownHandle;
use crate::executor::Core;
use crate::reactor::Direction;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

const SIGNALS: [libc::c_int; 2] = [SIGINT, SIGTERM];

/// How many servers in this process watch the signals, and the flag that
/// turns the default action back on when that count is zero.
struct Watchers {
    count: usize,
    unwatched: Option<Arc<AtomicBool>>,
}

static WATCHERS: Mutex<Watchers> = Mutex::new(Watchers {
    count: 0,
    unwatched: None,
});

/// A server's watch on SIGINT/SIGTERM, registered with the current runtime;
/// each signal seen raises the shutdown level one step.
pub(crate) struct SignalWatch {
    core: Rc<Core>,
    token: mio::Token,
    signals: Signals,
    handle: ShutdownHandle,
    seen: usize,
}

impl SignalWatch {
    /// Starts watching. Must be called inside a runtime.
    pub(crate) fn new(handle: ShutdownHandle) -> io::Result<SignalWatch> {
        enter()?;
        // From here on `leave` must run, on success (in Drop) or failure.
        let watch = Signals::new(SIGNALS).and_then(|mut signals| {
            let core = Core::current();
            let token = core.reactor.register_io(&mut signals, mio::Interest::READABLE)?;
            Ok(SignalWatch {
                core,
                token,
                signals,
                handle,
                seen: 0,
            })
        });
        if watch.is_err() {
            leave();
        }
        watch
    }

    /// Handles the signals that arrived; never ready (the server's end ends
    /// the watch by dropping it).
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while self.core.reactor.poll_ready(self.token, Direction::Read, cx).is_ready() {
            // Clear before draining: a signal landing after the drain makes
            // a new edge, one landing before it is drained now.
            self.core.reactor.clear_ready(self.token, Direction::Read);
            for signal in self.signals.pending() {
                self.seen += 1;
                log::info!(target: "solo::http", "signal {signal} received ({} so far)", self.seen);
                if self.seen == 1 {
                    self.handle.shutdown();
                } else {
                    self.handle.stop_now();
                }
            }
        }
        Poll::Pending
    }
}

impl Drop for SignalWatch {
    fn drop(&mut self) {
        self.core.reactor.deregister(&mut self.signals, self.token);
        leave();
    }
}

impl std::fmt::Debug for SignalWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalWatch").field("seen", &self.seen).finish()
    }
}

fn enter() -> io::Result<()> {
    let mut w = WATCHERS.lock().unwrap_or_else(|e| e.into_inner());
    let flag = match &w.unwatched {
        Some(flag) => flag.clone(),
        None => {
            let flag = Arc::new(AtomicBool::new(false));
            for signal in SIGNALS {
                signal_hook::flag::register_conditional_default(signal, flag.clone())?;
            }
            w.unwatched = Some(flag.clone());
            flag
        }
    };
    w.count += 1;
    flag.store(false, Ordering::SeqCst);
    Ok(())
}

fn leave() {
    let mut w = WATCHERS.lock().unwrap_or_else(|e| e.into_inner());
    debug_assert!(w.count > 0, "leave without enter");
    w.count -= 1;
    if w.count == 0 {
        if let Some(flag) = &w.unwatched {
            flag.store(true, Ordering::SeqCst);
        }
    }
}
