//! The driver of one server's connections: it holds them, and applies what
//! they ask for.
//!
//! Owns: the slab of connections (key = reactor `data`), each one's wheel
//! timer, the tasks that run pending handlers and feed streamed bodies, the
//! shared [`Exchange`] and buffer pool, the `Date` refresh, and the drain of
//! a graceful shutdown. Must never: decide anything about HTTP (the
//! connection does, and returns a [`Step`]), let one connection's failure
//! touch another, or leave a connection that waits on the client without a
//! timer (only a task may pace a connection with none).
//!
//! Generic over the transport: the server runs it on sockets, the in-memory
//! test client (`test.rs`), the connection-turn bench and the fuzzer on
//! `MemoryTransport`, through the same code.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use mio::Token;
use slab::Slab;

use super::connection::{Connection, Start, Step, Turn};
use super::exchange::{CatchUnwind, Exchange, Reply};
use super::io::{BufferPool, MemoryTransport, Transport};
use super::response::Response;
use super::stats::{add, sub, TurnLink};
use super::upgrade::{Upgraded, Upgrades};
use crate::executor::{Core, Expiry, TimerTarget, TurnEnd};
use crate::reactor::{Dispatch, Driven, Ready};
use crate::sync::mpsc;
use crate::timer::TimerKey;

/// A transport the driver can hold: it knows how to leave the reactor.
pub(crate) trait Source: Transport + 'static {
    fn deregister(&mut self, core: &Core, token: Token);
    /// The transport as an async stream of the runtime, for an upgraded
    /// connection; `None` where there is no socket to hand over.
    fn into_stream(self, core: &Core, token: Token) -> Option<crate::net::TcpStream>;
}

impl Source for mio::net::TcpStream {
    fn deregister(&mut self, core: &Core, token: Token) {
        core.reactor.deregister(self, token);
    }

    fn into_stream(mut self, core: &Core, token: Token) -> Option<crate::net::TcpStream> {
        // From a driven source to an I/O source: a new token, and wakers
        // instead of the driver.
        core.reactor.deregister(&mut self, token);
        crate::net::TcpStream::from_mio(self).ok()
    }
}

impl Source for MemoryTransport {
    fn deregister(&mut self, _core: &Core, _token: Token) {}

    fn into_stream(self, _core: &Core, _token: Token) -> Option<crate::net::TcpStream> {
        None
    }
}

/// What a wheel timer of the driver is for, as one `usize` of timer data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerId {
    /// Connection `key`'s deadline (the timer is cancelled when it closes,
    /// so a later connection in the same slot never sees it).
    Deadline(usize),
    /// Refresh the cached `Date` (every second).
    Date,
    /// Drive the connections in `Driver::resumed` (paused bodies whose
    /// reader took data, connections whose budget ran out).
    Resume,
    /// A graceful shutdown's time is up: close everything.
    Shutdown,
}

impl TimerId {
    /// The values above every slab key (a slab never holds `usize::MAX - 3`
    /// entries) name the driver's own timers.
    const FIRST_RESERVED: usize = usize::MAX - 2;

    pub(crate) fn to_data(self) -> usize {
        match self {
            TimerId::Deadline(key) => {
                debug_assert!(key < Self::FIRST_RESERVED, "slab key in the reserved range");
                key
            }
            TimerId::Date => usize::MAX,
            TimerId::Resume => usize::MAX - 1,
            TimerId::Shutdown => usize::MAX - 2,
        }
    }

    pub(crate) fn from_data(data: usize) -> TimerId {
        match data {
            usize::MAX => TimerId::Date,
            d if d == usize::MAX - 1 => TimerId::Resume,
            d if d == usize::MAX - 2 => TimerId::Shutdown,
            key => TimerId::Deadline(key),
        }
    }
}

/// A connection in the slab, with what only the driver needs of it.
pub(crate) struct Slot<T> {
    pub(crate) c: Connection<T>,
    token: Token,
    /// Tells this connection from a later one in the same slot, for tasks
    /// and resumes that outlive it.
    id: u32,
    /// The wheel timer for the connection's deadline.
    timer: Option<TimerKey>,
}

pub(crate) struct Driver<T> {
    pub(crate) core: Rc<Core>,
    pub(crate) exchange: Exchange,
    pool: BufferPool,
    pub(crate) conns: RefCell<Slab<Slot<T>>>,
    next_id: Cell<u32>,
    /// Connections to drive again on the `Resume` timer: `(key, id)`.
    resumed: RefCell<Vec<(usize, u32)>>,
    resume_armed: Cell<bool>,
    /// The acceptor, as a timer target: told (on a zero timer) when a
    /// connection closes while it is paused, and woken by its back-off.
    acceptor: RefCell<Option<Rc<dyn TimerTarget>>>,
    pub(crate) accept_paused: Cell<bool>,
    /// Woken when the last connection of a draining server closes.
    pub(crate) serve_waker: RefCell<Option<Waker>>,
    /// Server-wide timers (date, resume, shutdown, the acceptor's), cancelled
    /// at the end.
    timers: RefCell<Vec<TimerKey>>,
    /// The upgraded connections still open: a graceful shutdown waits for
    /// them too, until its timeout (then `upgrades_abandoned`).
    pub(crate) upgrades: Rc<Upgrades>,
    pub(crate) upgrades_abandoned: Cell<bool>,
}

impl<T> Drop for Driver<T> {
    fn drop(&mut self) {
        let hook: Rc<dyn TurnEnd> = self.exchange.counters.clone();
        self.core.remove_turn_end(&hook);
        // A batch answered in the turn that ends the server still counts.
        self.exchange.counters.settle_now();
    }
}

impl<T: Source> Driver<T> {
    pub(crate) fn new(core: Rc<Core>, exchange: Exchange) -> Rc<Driver<T>> {
        let pool = BufferPool::new(exchange.config.buffer_size);
        // The latency of a batch answered in a turn ends with the turn.
        let due = core.add_turn_end(exchange.counters.clone());
        exchange.counters.link_turns(TurnLink {
            due,
            origin: core.reactor.origin(),
        });
        Rc::new(Driver {
            core,
            exchange,
            pool,
            conns: RefCell::new(Slab::new()),
            next_id: Cell::new(0),
            resumed: RefCell::new(Vec::new()),
            resume_armed: Cell::new(false),
            acceptor: RefCell::new(None),
            accept_paused: Cell::new(false),
            serve_waker: RefCell::new(None),
            timers: RefCell::new(Vec::new()),
            upgrades: Rc::default(),
            upgrades_abandoned: Cell::new(false),
        })
    }

    /// Starts the once-a-second `Date` refresh.
    pub(crate) fn start_clock(self: &Rc<Self>) {
        self.set_timer(Duration::from_secs(1), TimerId::Date);
    }

    /// Sets the acceptor, told when a connection closes while it is paused.
    pub(crate) fn set_acceptor(&self, target: Rc<dyn TimerTarget>) {
        *self.acceptor.borrow_mut() = Some(target);
    }

    /// The acceptor, as a timer target.
    pub(crate) fn acceptor(&self) -> Option<Rc<dyn TimerTarget>> {
        self.acceptor.borrow().clone()
    }

    /// The slab key the next connection will get.
    pub(crate) fn next_key(&self) -> usize {
        self.conns.borrow().vacant_key()
    }

    /// Whether a new connection fits under the limit.
    pub(crate) fn has_room(&self) -> bool {
        self.conns.borrow().len() < self.exchange.config.max_connections
    }

    /// Calls `f` with a turn: the shared parts and this turn's clock.
    pub(crate) fn with_turn<R>(self: &Rc<Self>, key: usize, id: u32, f: impl FnOnce(&Turn) -> R) -> R {
        let now = self.core.reactor.now();
        // Made only when a body starts streaming: the fast path pays nothing.
        let resume = || -> Rc<dyn Fn()> {
            let weak: Weak<Driver<T>> = Rc::downgrade(self);
            Rc::new(move || {
                if let Some(driver) = weak.upgrade() {
                    driver.resume(key, id);
                }
            })
        };
        let turn = Turn {
            exchange: &self.exchange,
            pool: &self.pool,
            now,
            tick: self.core.tick_at(now),
            now_ns: self.core.reactor.now_ns(),
            resume: &resume,
        };
        f(&turn)
    }

    /// Takes a new connection: it starts idle, with its keep-alive deadline.
    /// `token` is its reactor registration (made with `next_key` as data).
    pub(crate) fn add_connection(self: &Rc<Self>, transport: T, peer: SocketAddr, token: Token) -> usize {
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        let key = self.next_key();
        let c = self.with_turn(key, id, |t| Connection::new(transport, peer, t));
        let inserted = self.conns.borrow_mut().insert(Slot {
            c,
            token,
            id,
            timer: None,
        });
        debug_assert_eq!(inserted, key);
        add(&self.exchange.counters.accepted, 1);
        log::trace!(target: "solo::http", "connection {key} from {peer}");
        add(&self.exchange.counters.active, 1);
        self.apply(key, |c, t| Step::Wait(c.deadline_tick(t)));
        key
    }

    /// The reactor reported readiness for connection `key`.
    pub(crate) fn on_connection_ready(self: &Rc<Self>, key: usize, ready: Ready) -> Dispatch {
        let readable = ready.intersects(Ready::READABLE | Ready::READ_CLOSED | Ready::ERROR);
        let writable = ready.intersects(Ready::WRITABLE | Ready::WRITE_CLOSED | Ready::ERROR);
        let closed = ready.intersects(Ready::READ_CLOSED | Ready::ERROR);
        self.apply(key, |c, t| {
            c.ready(readable, writable, closed);
            c.advance(t)
        });
        // A connection that spent its budget is resumed next turn by `apply`.
        Dispatch::Done
    }

    /// Runs `f` on connection `key` and applies the step it returns: arms
    /// the deadline, starts the task it asks for (and advances again), or
    /// closes it.
    pub(crate) fn apply(self: &Rc<Self>, key: usize, f: impl FnOnce(&mut Connection<T>, &Turn) -> Step) -> Applied {
        self.apply_if(key, None, f)
    }

    /// `apply`, only if the slot still holds connection `id` (when given).
    fn apply_if(
        self: &Rc<Self>,
        key: usize,
        id: Option<u32>,
        f: impl FnOnce(&mut Connection<T>, &Turn) -> Step,
    ) -> Applied {
        let mut conns = self.conns.borrow_mut();
        let Some(slot) = conns.get_mut(key).filter(|s| id.is_none_or(|id| s.id == id)) else {
            return Applied::Gone;
        };
        let id = slot.id;
        let mut step = self.with_turn(key, id, |t| f(&mut slot.c, t));
        loop {
            match step {
                Step::Start(start) => {
                    let task = self.spawn_for(key, id, start);
                    step = self.with_turn(key, id, |t| {
                        match task {
                            Spawned::Handler(h) => slot.c.handler_started(h),
                            Spawned::Stream(h) => slot.c.stream_started(h),
                        }
                        slot.c.advance(t)
                    });
                }
                Step::Wait(deadline) => {
                    self.arm(key, slot, deadline);
                    return Applied::Waiting;
                }
                Step::Again(deadline) => {
                    // Budget spent with work left: go on next turn.
                    self.arm(key, slot, deadline);
                    drop(conns);
                    self.resume(key, id);
                    return Applied::Again;
                }
                Step::Close => {
                    drop(conns);
                    self.close(key);
                    return Applied::Closed;
                }
                Step::Upgrade => {
                    drop(conns);
                    self.upgrade(key);
                    return Applied::Closed;
                }
            }
        }
    }

    /// Keeps the connection's one wheel timer at or before its deadline: a
    /// later deadline keeps the timer (it fires early and is re-armed), an
    /// earlier one moves it.
    fn arm(self: &Rc<Self>, key: usize, slot: &mut Slot<T>, deadline: Option<u64>) {
        let Some(deadline) = deadline else {
            return; // a task paces the connection; a stale timer finds nothing to do
        };
        let mut wheel = self.core.timers.borrow_mut();
        if let Some(timer) = slot.timer {
            match wheel.deadline(timer) {
                Some(at) if at <= deadline => return,
                Some(_) => drop(wheel.cancel(timer)),
                None => {}
            }
        }
        let target: Rc<dyn TimerTarget> = self.clone();
        slot.timer = Some(wheel.insert(deadline, Expiry::Call(target, TimerId::Deadline(key).to_data())));
    }

    /// Spawns the task a connection asked for.
    fn spawn_for(self: &Rc<Self>, key: usize, id: u32, start: Start) -> Spawned {
        match start {
            Start::Handler { future, reply } => {
                let driver = self.clone();
                Spawned::Handler(crate::spawn(async move {
                    let result = CatchUnwind(future).await;
                    driver.handler_done(key, id, result, reply);
                }))
            }
            Start::Stream { rx, chunked } => {
                let driver = self.clone();
                Spawned::Stream(crate::spawn(
                    async move { driver.feed_stream(key, id, rx, chunked).await },
                ))
            }
        }
    }

    /// A pending handler finished, in its task.
    fn handler_done(self: &Rc<Self>, key: usize, id: u32, result: Result<Response, ()>, reply: Reply) {
        self.apply_if(key, Some(id), |c, t| c.handler_done(result, reply, t));
    }

    /// Feeds a streamed body from its channel into the connection, waiting
    /// while the connection's output is above the high watermark.
    async fn feed_stream(self: Rc<Self>, key: usize, id: u32, mut rx: mpsc::Receiver<Bytes>, chunked: bool) {
        while let Some(chunk) = rx.recv().await {
            if chunk.is_empty() {
                continue;
            }
            let alive = poll_fn(|cx| {
                let mut conns = self.conns.borrow_mut();
                let Some(slot) = conns.get_mut(key).filter(|s| s.id == id) else {
                    return Poll::Ready(false);
                };
                if slot.c.stream_has_room(&self.exchange.config) {
                    Poll::Ready(true)
                } else {
                    slot.c.park_stream(cx.waker()); // woken when the output drains
                    Poll::Pending
                }
            })
            .await;
            if !alive || self.apply_if(key, Some(id), |c, t| c.stream_chunk(chunk, chunked, t)) == Applied::Gone {
                return;
            }
        }
        self.apply_if(key, Some(id), |c, t| c.stream_done(chunked, t));
    }

    /// A paused body's reader took data: drive its connection again, from
    /// the wheel (the reader may be running inside that connection's own
    /// `advance`, through a handler's inline poll).
    fn resume(self: &Rc<Self>, key: usize, id: u32) {
        self.resumed.borrow_mut().push((key, id));
        if !self.resume_armed.replace(true) {
            self.set_timer(Duration::ZERO, TimerId::Resume);
        }
    }

    /// Removes a connection: cancels its timer, closes it (its task and
    /// body with it), deregisters and drops its transport.
    pub(crate) fn close(self: &Rc<Self>, key: usize) {
        let Some(slot) = self.conns.borrow_mut().try_remove(key) else {
            return;
        };
        log::trace!(target: "solo::http", "connection {key} closed");
        if let Some(timer) = slot.timer {
            drop(self.core.timers.borrow_mut().cancel(timer));
        }
        let mut transport = self.with_turn(key, slot.id, |t| slot.c.close(t));
        transport.deregister(&self.core, slot.token);
        drop(transport);
        self.removed();
    }

    /// Takes a connection whose `101` is written out of the slab and hands
    /// it, as an async stream, to the task its response asked for.
    fn upgrade(self: &Rc<Self>, key: usize) {
        let Some(slot) = self.conns.borrow_mut().try_remove(key) else {
            return;
        };
        if let Some(timer) = slot.timer {
            drop(self.core.timers.borrow_mut().cancel(timer));
        }
        let (transport, leftover, on_upgrade) = self.with_turn(key, slot.id, |t| slot.c.into_upgrade(t));
        let stream = transport.into_stream(&self.core, slot.token);
        match (stream, on_upgrade) {
            (Some(stream), Some(on_upgrade)) => {
                log::trace!(target: "solo::http", "connection {key} upgraded");
                let conn = Upgraded::new(stream, leftover, self.upgrades.clone());
                drop(on_upgrade(conn)); // detached: it runs on its own
            }
            // No socket to hand over (the in-memory client): it closes.
            _ => log::trace!(target: "solo::http", "connection {key} closed instead of upgraded"),
        }
        self.removed();
    }

    /// What follows a connection leaving the slab, closed or upgraded.
    fn removed(self: &Rc<Self>) {
        sub(&self.exchange.counters.active, 1);
        if !self.exchange.draining.get() && self.accept_paused.replace(false) {
            // Below the limit again (or a descriptor was freed): tell the
            // acceptor on the next turn (once: it pauses again if need be).
            if let Some(target) = self.acceptor() {
                self.insert_timer(Duration::ZERO, target, 0);
            }
        }
        if self.exchange.draining.get() && self.conns.borrow().is_empty() {
            if let Some(w) = self.serve_waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// Graceful shutdown: every response from now says `close`; idle
    /// connections close now, the rest when their request is answered (or
    /// when `shutdown_timeout` runs out).
    pub(crate) fn begin_shutdown(self: &Rc<Self>) {
        self.exchange.draining.set(true);
        self.upgrades.drain(&self.core);
        let idle: Vec<usize> = self
            .conns
            .borrow()
            .iter()
            .filter(|(_, s)| s.c.is_idle())
            .map(|(k, _)| k)
            .collect();
        for key in idle {
            self.close(key);
        }
        self.set_timer(self.exchange.config.shutdown_timeout, TimerId::Shutdown);
    }

    pub(crate) fn close_all(self: &Rc<Self>) {
        let keys: Vec<usize> = self.conns.borrow().iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close(key);
        }
    }

    /// Cancels the driver's own timers (the wheel holds `Rc`s to it).
    pub(crate) fn cancel_timers(&self) {
        let timers = std::mem::take(&mut *self.timers.borrow_mut());
        let mut wheel = self.core.timers.borrow_mut();
        for key in timers {
            drop(wheel.cancel(key));
        }
        *self.acceptor.borrow_mut() = None;
    }

    fn set_timer(self: &Rc<Self>, after: Duration, what: TimerId) {
        let target: Rc<dyn TimerTarget> = self.clone();
        self.insert_timer(after, target, what.to_data());
    }

    /// Sets a server-wide timer (the driver's own, or the acceptor's) that
    /// `cancel_timers` cancels when the server stops.
    pub(crate) fn insert_timer(&self, after: Duration, target: Rc<dyn TimerTarget>, data: usize) {
        let tick = self.core.tick_after(self.core.reactor.now(), after);
        let key = self.core.timers.borrow_mut().insert(tick, Expiry::Call(target, data));
        let mut timers = self.timers.borrow_mut();
        let wheel = self.core.timers.borrow();
        timers.retain(|k| wheel.contains(*k));
        timers.push(key);
    }
}

/// What applying a step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    Waiting,
    Again,
    Closed,
    /// No such connection (it closed, or the slot holds a later one).
    Gone,
}

enum Spawned {
    Handler(crate::task::JoinHandle<()>),
    Stream(crate::task::JoinHandle<()>),
}

impl<T: Source> TimerTarget for Driver<T> {
    fn on_timer(self: Rc<Self>, data: usize) {
        match TimerId::from_data(data) {
            TimerId::Deadline(key) => {
                if let Some(slot) = self.conns.borrow_mut().get_mut(key) {
                    slot.timer = None; // fired
                }
                self.apply(key, |c, t| c.on_deadline(t));
            }
            TimerId::Date => {
                self.exchange.date.borrow_mut().refresh();
                if !self.exchange.draining.get() || !self.conns.borrow().is_empty() {
                    self.set_timer(Duration::from_secs(1), TimerId::Date);
                }
            }
            TimerId::Resume => {
                self.resume_armed.set(false);
                let resumed = std::mem::take(&mut *self.resumed.borrow_mut());
                for (key, id) in resumed {
                    self.apply_if(key, Some(id), |c, t| {
                        c.body_resumed();
                        c.advance(t)
                    });
                }
            }
            TimerId::Shutdown => {
                let left = self.conns.borrow().len();
                if left > 0 {
                    log::warn!(target: "solo::http", "shutdown timeout: closing {left} connection(s) still busy");
                }
                let upgraded = self.upgrades.live();
                if upgraded > 0 {
                    log::warn!(target: "solo::http", "shutdown timeout: {upgraded} upgraded connection(s) still open end with the runtime");
                }
                self.upgrades_abandoned.set(true);
                if let Some(w) = self.serve_waker.borrow_mut().take() {
                    w.wake();
                }
                self.close_all();
            }
        }
    }
}

impl Driven for Driver<mio::net::TcpStream> {
    fn on_ready(self: Rc<Self>, _token: Token, key: usize, ready: Ready) -> Dispatch {
        self.on_connection_ready(key, ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_ids_round_trip_and_never_collide() {
        let ids = [
            TimerId::Deadline(0),
            TimerId::Deadline(1),
            TimerId::Deadline(1 << 40),
            TimerId::Deadline(TimerId::FIRST_RESERVED - 1),
            TimerId::Date,
            TimerId::Resume,
            TimerId::Shutdown,
        ];
        for id in ids {
            assert_eq!(TimerId::from_data(id.to_data()), id);
        }
        let mut data: Vec<usize> = ids.iter().map(|id| id.to_data()).collect();
        data.sort();
        data.dedup();
        assert_eq!(data.len(), ids.len());
    }
}
