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

use std::cell::Cell;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};

use crate::net::TcpStream;

/// What runs once a connection is upgraded: it spawns the protocol's task
/// itself, so the task holds the protocol's future directly (no second
/// allocation for a boxed future: an idle WebSocket is that much smaller).
pub(crate) type OnUpgrade = Box<dyn FnOnce(Upgraded) -> crate::JoinHandle<()>>;

/// The part of a `101` response that takes the connection over; see
/// [`Response::upgrade`](super::Response::upgrade).
pub struct Upgrade(pub(crate) OnUpgrade);

impl fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Upgrade(..)")
    }
}

/// The upgraded connections of one server: how many are open (a graceful
/// shutdown waits for them), and whether the server drains. A connection
/// waiting to read learns of the drain by being woken through the reactor
/// (`wake_all_readers`), so it keeps no waker slot here: an idle upgraded
/// connection costs one counter increment.
#[derive(Default)]
pub(crate) struct Upgrades {
    live: Cell<usize>,
    draining: Cell<bool>,
    /// `serve`'s waker, woken when the last one ends during a shutdown.
    waker: Cell<Option<Waker>>,
}

impl Upgrades {
    pub(crate) fn live(&self) -> usize {
        self.live.get()
    }

    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.set(Some(waker.clone()));
    }

    /// The server drains: every upgraded connection waiting to read is
    /// woken to see it.
    pub(crate) fn drain(&self, core: &crate::executor::Core) {
        if !self.draining.replace(true) && self.live.get() > 0 {
            core.reactor.wake_all_readers();
        }
    }
}

/// Held by an `Upgraded`: one live upgraded connection.
struct Live(Rc<Upgrades>);

impl Live {
    fn new(upgrades: Rc<Upgrades>) -> Live {
        upgrades.live.set(upgrades.live.get() + 1);
        Live(upgrades)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.live.set(self.0.live.get() - 1);
        if self.0.live.get() == 0 {
            if let Some(w) = self.0.waker.take() {
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
    /// Boxed, and `None` once taken or empty: most upgrades have none, and
    /// every idle upgraded connection would carry an empty `Bytes` (32 B).
    leftover: Option<Box<Bytes>>,
    _live: Live,
}

impl Upgraded {
    pub(crate) fn new(stream: TcpStream, leftover: Bytes, upgrades: Rc<Upgrades>) -> Upgraded {
        Upgraded {
            stream,
            leftover: (!leftover.is_empty()).then(|| Box::new(leftover)),
            _live: Live::new(upgrades),
        }
    }

    /// Reads into `buf`: the leftover bytes first, then the socket.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// Reads into `buf` when the socket is readable (leftover bytes first).
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if let Some(leftover) = &mut self.leftover {
            let n = buf.len().min(leftover.len());
            buf[..n].copy_from_slice(&leftover[..n]);
            leftover.advance(n);
            if leftover.is_empty() {
                self.leftover = None;
            }
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
        self.leftover.as_deref().map_or(&[], |b| &b[..])
    }

    /// Takes the leftover bytes (`read` then goes to the socket).
    pub fn take_leftover(&mut self) -> Bytes {
        self.leftover.take().map_or_else(Bytes::new, |b| *b)
    }

    /// The runtime the connection is registered with.
    pub(crate) fn core(&self) -> &Rc<crate::executor::Core> {
        self.stream.core()
    }

    /// The client's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    /// Ready once the server is shutting down (gracefully or not): a
    /// protocol watches it to end its connection cleanly (WebSocket sends a
    /// 1001 close). The server waits for upgraded connections to end, up to
    /// its `shutdown_timeout`. The task is woken for it only if it is
    /// waiting to read from this connection (the drain wakes readers), so
    /// check it alongside a read.
    pub fn poll_shutdown(&self, _cx: &mut Context<'_>) -> Poll<()> {
        if self._live.0.draining.get() {
            Poll::Ready(())
        } else {
            // No waker kept: the drain wakes every task waiting to read.
            Poll::Pending
        }
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
            .field("leftover", &self.leftover().len())
            .finish()
    }
}
