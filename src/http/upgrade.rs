//! Protocol upgrades (RFC 9110 §7.8): a handler answers `101 Switching
//! Protocols` and takes the connection over, on the same reactor.
//!
//! Owns: the `Upgrade` a response carries, and [`Upgraded`], the connection
//! once the HTTP state machine has let it go: its socket, registered with
//! the runtime as an ordinary async source, and the bytes already read past
//! the request (they belong to the new protocol). Must never: hand over a
//! connection before the 101 is written and the request's body is read to
//! its end (both belong to HTTP), or let an upgraded connection outlive a
//! graceful shutdown unnoticed (the server waits for them, up to
//! `shutdown_timeout`).
//!
//! How the connection moves: the 101 is queued like any response, with
//! `Connection: upgrade` and `Upgrade: <protocol>`; no further request is
//! parsed. Once the output is flushed and any body drained, the connection
//! returns `Step::Upgrade`; the driver removes it from its slab, deregisters
//! the socket as a driven source and registers it again as an I/O source,
//! and spawns the handler's callback with the `Upgraded`. An HTTP/1.0
//! request cannot upgrade (RFC 9110: it must ignore `Upgrade`): it is
//! answered 400 instead. The in-memory test client cannot upgrade (it has
//! no socket to hand over): it closes the connection after the 101.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use slab::Slab;

use super::shutdown::ShutdownHandle;
use crate::net::TcpStream;

/// What runs once a connection is upgraded.
pub(crate) type OnUpgrade = Box<dyn FnOnce(Upgraded) -> Pin<Box<dyn Future<Output = ()>>>>;

/// The part of a `101` response that takes the connection over; see
/// [`Response::upgrade`](super::Response::upgrade).
pub struct Upgrade(pub(crate) OnUpgrade);

impl fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Upgrade(..)")
    }
}

/// The upgraded connections of one server: how many are open (a graceful
/// shutdown waits for them), and the wakers of those watching for the
/// shutdown (one slot each, so watching is O(1) and a closed connection
/// leaves nothing behind).
#[derive(Default)]
pub(crate) struct Upgrades {
    watchers: RefCell<Slab<Option<Waker>>>,
    draining: Cell<bool>,
    /// `serve`'s waker, woken when the last one ends during a shutdown.
    waker: Cell<Option<Waker>>,
}

impl Upgrades {
    pub(crate) fn live(&self) -> usize {
        self.watchers.borrow().len()
    }

    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.set(Some(waker.clone()));
    }

    /// The server drains: every upgraded connection is told once.
    pub(crate) fn drain(&self) {
        self.draining.set(true);
        let wakers: Vec<Waker> = self
            .watchers
            .borrow_mut()
            .iter_mut()
            .filter_map(|(_, w)| w.take())
            .collect();
        for w in wakers {
            w.wake();
        }
    }
}

/// Held by an `Upgraded`: its slot among the server's upgraded connections.
struct Live {
    upgrades: Rc<Upgrades>,
    key: usize,
}

impl Live {
    fn new(upgrades: Rc<Upgrades>) -> Live {
        let key = upgrades.watchers.borrow_mut().insert(None);
        Live { upgrades, key }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let mut watchers = self.upgrades.watchers.borrow_mut();
        watchers.remove(self.key);
        if watchers.is_empty() {
            drop(watchers);
            if let Some(w) = self.upgrades.waker.take() {
                w.wake();
            }
        }
    }
}

/// An upgraded connection: the socket on this runtime's reactor, and the
/// bytes the client sent after its request that HTTP had already read
/// (returned first by `read`).
pub struct Upgraded {
    stream: TcpStream,
    leftover: Bytes,
    shutdown: ShutdownHandle,
    _live: Live,
}

impl Upgraded {
    pub(crate) fn new(
        stream: TcpStream,
        leftover: Bytes,
        shutdown: ShutdownHandle,
        upgrades: Rc<Upgrades>,
    ) -> Upgraded {
        Upgraded {
            stream,
            leftover,
            shutdown,
            _live: Live::new(upgrades),
        }
    }

    /// Reads into `buf`: the leftover bytes first, then the socket.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// Reads into `buf` when the socket is readable (leftover bytes first).
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if !self.leftover.is_empty() {
            let n = buf.len().min(self.leftover.len());
            buf[..n].copy_from_slice(&self.leftover[..n]);
            self.leftover.advance(n);
            return Poll::Ready(Ok(n));
        }
        self.stream.poll_read(cx, buf)
    }

    /// Writes from `buf` when the socket is writable.
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.stream.poll_write(cx, buf)
    }

    /// Writes all of `buf`.
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.stream.write_all(buf).await
    }

    /// The bytes read past the request and not yet returned by `read`.
    pub fn leftover(&self) -> &[u8] {
        &self.leftover
    }

    /// Takes the leftover bytes (`read` then goes to the socket).
    pub fn take_leftover(&mut self) -> Bytes {
        std::mem::take(&mut self.leftover)
    }

    /// The client's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    /// The server's shutdown handle.
    pub fn shutdown_handle(&self) -> &ShutdownHandle {
        &self.shutdown
    }

    /// Ready once the server is shutting down (gracefully or not): a
    /// protocol watches it to end its connection cleanly (WebSocket sends a
    /// 1001 close). The server waits for upgraded connections to end, up to
    /// its `shutdown_timeout`.
    pub fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<()> {
        let upgrades = &self._live.upgrades;
        if upgrades.draining.get() || self.shutdown.is_shutting_down() {
            return Poll::Ready(());
        }
        if let Some(slot) = upgrades.watchers.borrow_mut().get_mut(self._live.key) {
            match slot {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }

    /// Ends the write side (FIN).
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.stream.shutdown_std(std::net::Shutdown::Write)
    }
}

impl fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgraded")
            .field("peer", &self.stream.peer_addr().ok())
            .field("leftover", &self.leftover.len())
            .finish()
    }
}
