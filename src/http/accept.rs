//! The accept loop: a listener registered with the reactor as its own driven
//! source, handing each accepted socket to the driver.
//!
//! Owns: the listening socket, what a connection past the limit gets
//! (`AtLimit`: closed at once, a canned 503, or left in the backlog while
//! the listener pauses), and the back-off when `accept` fails for lack of
//! descriptors or memory. Must never: spin (a paused acceptor waits for a
//! close or a timer, never for a readiness edge that cannot come), or serve
//! a connection past the connection limit.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use mio::{Interest, Token};

use super::config::AtLimit;
use super::driver::Driver;
use super::stats::add;
use crate::executor::TimerTarget;
use crate::reactor::{Dispatch, Driven, Ready};

/// Connections accepted per readiness event before yielding to others.
const ACCEPT_BUDGET: usize = 128;
/// What `AtLimit::Respond503` writes: no `Date` (optional in a 5xx), so
/// it is one constant.
pub(crate) const AT_LIMIT_503: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain\r\n\
Content-Length: 31\r\n\
Retry-After: 1\r\n\
Connection: close\r\n\
\r\n\
server at its connection limit\n";
/// Pause after `accept` fails for lack of descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

type TcpDriver = Driver<mio::net::TcpStream>;

/// The listener and its pause state.
pub(crate) struct Acceptor {
    driver: Rc<TcpDriver>,
    listener: RefCell<Option<(mio::net::TcpListener, Token)>>,
    /// A back-off timer is set: do not set another.
    retry_set: Cell<bool>,
}

impl Acceptor {
    /// Registers `listener` with the reactor; connections go to `driver`.
    pub(crate) fn start(driver: Rc<TcpDriver>, listener: std::net::TcpListener) -> io::Result<Rc<Acceptor>> {
        let mut listener = mio::net::TcpListener::from_std(listener);
        let acceptor = Rc::new(Acceptor {
            driver: driver.clone(),
            listener: RefCell::new(None),
            retry_set: Cell::new(false),
        });
        let token = driver
            .core
            .reactor
            .register_driven(&mut listener, Interest::READABLE, acceptor.clone(), 0)?;
        *acceptor.listener.borrow_mut() = Some((listener, token));
        driver.set_acceptor(acceptor.clone());
        // The first edge may have come before registration finished.
        if acceptor.accept() == Dispatch::Again {
            acceptor.retry_after(Duration::ZERO);
        }
        Ok(acceptor)
    }

    /// Stops listening (shutdown): deregisters and closes the socket.
    pub(crate) fn stop(&self) {
        if let Some((mut listener, token)) = self.listener.borrow_mut().take() {
            self.driver.core.reactor.deregister(&mut listener, token);
        }
    }

    /// Accepts until `WouldBlock`, the limit, or the budget.
    fn accept(&self) -> Dispatch {
        let driver = &self.driver;
        for _ in 0..ACCEPT_BUDGET {
            if driver.accept_paused.get() || driver.exchange.draining.get() {
                return Dispatch::Done;
            }
            let at_limit = !driver.has_room();
            if at_limit && driver.exchange.config.at_connection_limit == AtLimit::Backlog {
                // Paused: the next close resumes accepting (never a busy loop).
                driver.accept_paused.set(true);
                return Dispatch::Done;
            }
            let accepted = match self.listener.borrow().as_ref() {
                Some((l, _)) => l.accept(),
                None => return Dispatch::Done,
            };
            match accepted {
                Ok((stream, _)) if at_limit => self.turn_away(stream),
                Ok((stream, peer)) => {
                    if let Err(e) = self.add(stream, peer) {
                        add(&driver.exchange.counters.accept_errors, 1);
                        log::warn!(target: "solo::http", "could not set up a connection from {peer}: {e}");
                        if is_resource_error(&e) {
                            self.back_off();
                            return Dispatch::Done;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Dispatch::Done,
                Err(e) if is_resource_error(&e) => {
                    add(&driver.exchange.counters.accept_errors, 1);
                    log::error!(target: "solo::http", "accept failed ({e}): backing off {ACCEPT_BACKOFF:?}");
                    self.back_off();
                    return Dispatch::Done;
                }
                // ECONNABORTED and the like concern one connection only.
                Err(e) => {
                    add(&driver.exchange.counters.accept_errors, 1);
                    log::debug!(target: "solo::http", "accept failed for one connection: {e}");
                }
            }
        }
        Dispatch::Again
    }

    /// A connection past the limit: answered (`Respond503`) or not
    /// (`Refuse`), and closed without reading it. The write is one
    /// non-blocking attempt into an empty socket buffer: it fits.
    fn turn_away(&self, stream: mio::net::TcpStream) {
        let exchange = &self.driver.exchange;
        add(&exchange.counters.refused, 1);
        log::debug!(target: "solo::http", "at the connection limit: turned a connection away");
        if exchange.config.at_connection_limit == AtLimit::Respond503 {
            let _ = io::Write::write(&mut &stream, AT_LIMIT_503);
            exchange.counters.response(503);
        }
        drop(stream);
    }

    fn add(&self, mut stream: mio::net::TcpStream, peer: std::net::SocketAddr) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let driver = &self.driver;
        let token = driver.core.reactor.register_driven(
            &mut stream,
            Interest::READABLE | Interest::WRITABLE,
            driver.clone(),
            driver.next_key(),
        )?;
        driver.add_connection(stream, peer, token);
        Ok(())
    }

    /// Out of descriptors or memory: accepting again at once would fail
    /// again (and spin). Retry after a pause on the wheel.
    fn back_off(&self) {
        self.driver.accept_paused.set(true);
        self.retry_after(ACCEPT_BACKOFF);
    }

    fn retry_after(&self, after: Duration) {
        if self.retry_set.replace(true) {
            return;
        }
        if let Some(me) = self.driver.acceptor() {
            self.driver.insert_timer(after, me, 0);
        }
    }
}

impl Driven for Acceptor {
    fn on_ready(self: Rc<Self>, _token: Token, _data: usize, _ready: Ready) -> Dispatch {
        self.accept()
    }
}

/// Fires on the back-off timer, or after a close while paused.
impl TimerTarget for Acceptor {
    fn on_timer(self: Rc<Self>, _data: usize) {
        self.retry_set.set(false);
        self.driver.accept_paused.set(false);
        if self.accept() == Dispatch::Again {
            self.retry_after(Duration::ZERO);
        }
    }
}

fn is_resource_error(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
        )
    }
    #[cfg(not(unix))]
    {
        e.kind() == io::ErrorKind::OutOfMemory
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_canned_503_says_its_own_length() {
        let text = std::str::from_utf8(super::AT_LIMIT_503).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
    }
}
