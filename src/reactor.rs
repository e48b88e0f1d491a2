//! The reactor: one `mio::Poll`, and a slab of every source registered with it.
//!
//! Owns: the poll instance, the readiness cache of every async I/O source, the
//! wakers waiting on those sources, and the dispatch of readiness to state
//! machines that are driven directly (the HTTP connections plug in there).
//! Must never: block anywhere but inside `Poll::poll`, run a task, or hand an
//! event to a source other than the one it was registered for.
//!
//! # Tokens
//!
//! A source's `mio::Token` is its key in `sources`. The key of a source that is
//! deregistered while events are being dispatched is **not freed until the
//! dispatch of that turn ends** (`Source::Released` holds the place). An event
//! already fetched for it finds `Released` and is dropped, and no source
//! registered during the same dispatch can be given that key. Across turns no
//! stale event is possible: the source left the kernel's interest list before
//! the next `poll`, and mio reports nothing for a deregistered source.
//!
//! # Edge-triggered readiness
//!
//! mio registrations are edge-triggered: the kernel reports a direction once
//! when it becomes ready and not again until an operation has drained it. So
//! readiness is cached per source and only cleared when an operation on that
//! direction returns `WouldBlock`. Callers read or write until `WouldBlock`, or
//! stop early on a fairness budget with the readiness still cached (the task or
//! state machine is rescheduled, and finds the direction still ready).

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use mio::event::Source as MioSource;
use mio::{Events, Interest, Registry, Token};
use slab::Slab;

/// The token of the cross-thread `mio::Waker`. Slab keys never reach it.
pub(crate) const WAKE_TOKEN: Token = Token(usize::MAX - 1);

const EVENTS_CAPACITY: usize = 1024;

/// Readiness bits cached for a source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ready(u8);

impl Ready {
    pub(crate) const READABLE: Ready = Ready(1);
    pub(crate) const WRITABLE: Ready = Ready(2);
    pub(crate) const READ_CLOSED: Ready = Ready(4);
    pub(crate) const WRITE_CLOSED: Ready = Ready(8);
    pub(crate) const ERROR: Ready = Ready(16);

    fn from_event(event: &mio::event::Event) -> Ready {
        let mut bits = 0;
        if event.is_readable() {
            bits |= Self::READABLE.0;
        }
        if event.is_writable() {
            bits |= Self::WRITABLE.0;
        }
        if event.is_read_closed() {
            bits |= Self::READ_CLOSED.0;
        }
        if event.is_write_closed() {
            bits |= Self::WRITE_CLOSED.0;
        }
        if event.is_error() {
            bits |= Self::ERROR.0;
        }
        Ready(bits)
    }

    pub(crate) fn intersects(self, other: Ready) -> bool {
        self.0 & other.0 != 0
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for Ready {
    type Output = Ready;
    fn bitor(self, rhs: Ready) -> Ready {
        Ready(self.0 | rhs.0)
    }
}

/// Whether an operation on a stream socket that moved fewer bytes than it
/// was offered (but some) shows the socket drained, or its send buffer full,
/// for now: true where mio's selector is epoll or kqueue, which raise a new
/// edge for every later arrival (or freed space), so the next operation,
/// which could only return `WouldBlock`, may be skipped (tokio skips it the
/// same way). False on mio's other backends (IOCP on Windows, poll(2)),
/// which re-arm a source only when an operation made through mio returns
/// `WouldBlock`: there every operation goes on until it does.
pub(crate) const SHORT_IO_DRAINS: bool = cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_os = "illumos",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
));

/// One direction of a full-duplex source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    /// The readiness bits that let an operation in this direction make
    /// progress (data, end of stream, or an error to report).
    fn mask(self) -> Ready {
        match self {
            Direction::Read => Ready::READABLE | Ready::READ_CLOSED | Ready::ERROR,
            Direction::Write => Ready::WRITABLE | Ready::WRITE_CLOSED | Ready::ERROR,
        }
    }
}

/// What a driven state machine tells the reactor after handling readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dispatch {
    /// It ran until `WouldBlock` (or has nothing more to do): wait for an edge.
    #[cfg_attr(not(feature = "http-server"), allow(dead_code))] // used by the HTTP layer
    Done,
    /// It stopped on its fairness budget with work left: call it again next
    /// turn with the same readiness, without waiting for a new edge.
    Again,
}

/// A state machine the reactor drives directly, without a task: the seam the
/// HTTP connections plug into. One driver may own many sources; `data` is the
/// value given at registration (e.g. the driver's own key for the source).
pub(crate) trait Driven {
    fn on_ready(self: Rc<Self>, token: Token, data: usize, ready: Ready) -> Dispatch;
}

/// Cached readiness and the wakers of an async I/O source.
#[derive(Default)]
struct IoState {
    ready: Ready,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

enum Source {
    Io(IoState),
    #[cfg_attr(not(feature = "http-server"), allow(dead_code))] // used by the HTTP layer
    Driven(Rc<dyn Driven>, usize),
    /// Deregistered during this turn's dispatch; freed when it ends.
    Released,
}

/// Counters the reactor keeps about itself; see `RuntimeStats`.
#[derive(Default)]
pub(crate) struct ReactorCounters {
    pub(crate) polls: Cell<u64>,
    pub(crate) blocking_polls: Cell<u64>,
    pub(crate) events: Cell<u64>,
    pub(crate) time: LoopTime,
}

/// Where the loop's time goes: waiting in the OS poll, or busy (everything
/// else: dispatching, timers, tasks, and the poll calls that do not block).
///
/// Measured with the clock read `turn` makes after every poll anyway, plus
/// one read before a poll that may block (the executor's, which computed
/// the poll's timeout from it, when a timer is set): never before a
/// non-blocking one, so a saturated loop (which polls with a zero timeout)
/// pays no extra clock read, and a loop about to sleep does not mind one.
///
/// Times are kept as nanoseconds since `origin`, which is also where the
/// timer wheel's ticks count from: the reactor converts each poll's return
/// once, for the counters and the wheel, and the rest is integer arithmetic.
pub(crate) struct LoopTime {
    origin: Instant,
    pub(crate) busy_ns: Cell<u64>,
    pub(crate) wait_ns: Cell<u64>,
    /// When the latest poll returned.
    last_return: Cell<Option<u64>>,
    /// The longest busy stretch between two polls in the current interval.
    longest_ns: Cell<u64>,
    /// The current interval's start, with the totals then.
    mark: Cell<Option<(u64, u64, u64)>>,
    /// The last complete interval (about a second).
    pub(crate) last: Cell<Interval>,
    /// The longest busy stretch seen by each live `TurnWatch`; a watch the
    /// executor no longer holds (strong count 1) is dropped here.
    watches: RefCell<Vec<Rc<Cell<u64>>>>,
}

/// One complete interval of [`LoopTime`].
#[derive(Clone, Copy, Default)]
pub(crate) struct Interval {
    pub(crate) busy_ns: u64,
    pub(crate) wait_ns: u64,
    pub(crate) longest_ns: u64,
}

/// How long an interval of `LoopTime` lasts.
const INTERVAL_NS: u64 = 1_000_000_000;

impl Default for LoopTime {
    fn default() -> LoopTime {
        LoopTime {
            origin: Instant::now(),
            busy_ns: Cell::new(0),
            wait_ns: Cell::new(0),
            last_return: Cell::new(None),
            longest_ns: Cell::new(0),
            mark: Cell::new(None),
            last: Cell::new(Interval::default()),
            watches: RefCell::new(Vec::new()),
        }
    }
}

impl LoopTime {
    /// `at` in nanoseconds since `origin` (0 before it).
    pub(crate) fn ns(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_nanos() as u64
    }

    /// The loop starts (or starts again): time before this is not the
    /// loop's.
    pub(crate) fn start(&self, now: Instant) {
        self.last_return.set(Some(self.ns(now)));
    }

    /// Starts reporting every busy stretch to `watch` (see `TurnWatch`).
    pub(crate) fn watch(&self, watch: Rc<Cell<u64>>) {
        self.watches.borrow_mut().push(watch);
    }

    #[cold]
    fn watched(&self, busy_ns: u64) {
        self.watches.borrow_mut().retain(|w| {
            w.set(w.get().max(busy_ns));
            Rc::strong_count(w) > 1
        });
    }

    /// A poll that started waiting at `wait_start` (`None`: it could not
    /// block) returned at `now`, both in nanoseconds since `origin`.
    fn record(&self, wait_start: Option<u64>, now: u64) {
        let wait_start = wait_start.map(|w| w.min(now));
        if let Some(prev) = self.last_return.replace(Some(now)) {
            let busy = wait_start.unwrap_or(now).saturating_sub(prev);
            self.busy_ns.set(self.busy_ns.get() + busy);
            self.longest_ns.set(self.longest_ns.get().max(busy));
            if !self.watches.borrow().is_empty() {
                self.watched(busy);
            }
            if let Some(w) = wait_start {
                self.wait_ns.set(self.wait_ns.get() + (now - w));
            }
        }
        let (busy, wait) = (self.busy_ns.get(), self.wait_ns.get());
        match self.mark.get() {
            Some((at, _, _)) if now.saturating_sub(at) < INTERVAL_NS => {}
            Some((_, b0, w0)) => {
                self.last.set(Interval {
                    busy_ns: busy - b0,
                    wait_ns: wait - w0,
                    longest_ns: self.longest_ns.replace(0),
                });
                self.mark.set(Some((now, busy, wait)));
            }
            None => self.mark.set(Some((now, busy, wait))),
        }
    }
}

pub(crate) struct Reactor {
    poll: RefCell<mio::Poll>,
    events: RefCell<Events>,
    registry: Registry,
    sources: RefCell<Slab<Source>>,
    dispatching: Cell<bool>,
    released: RefCell<Vec<usize>>,
    again: RefCell<Vec<(usize, Ready)>>,
    /// When the latest poll returned: one clock read per turn, shared by
    /// everything dispatched in it and by the timers fired after it.
    now: Cell<Instant>,
    /// `now` in nanoseconds since the loop's origin, converted once per
    /// turn (a conversion is a few dozen instructions; the loop's time
    /// counters and the timer wheel's tick both need it).
    now_ns: Cell<u64>,
    pub(crate) counters: ReactorCounters,
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let counters = ReactorCounters::default();
        let now = Instant::now();
        let now_ns = counters.time.ns(now);
        Ok(Reactor {
            poll: RefCell::new(poll),
            events: RefCell::new(Events::with_capacity(EVENTS_CAPACITY)),
            registry,
            sources: RefCell::new(Slab::new()),
            dispatching: Cell::new(false),
            released: RefCell::new(Vec::new()),
            again: RefCell::new(Vec::new()),
            now: Cell::new(now),
            now_ns: Cell::new(now_ns),
            counters,
        })
    }

    /// When the latest poll returned (see `refresh_now`). Never ahead of
    /// the real time, so deadlines measured from it are never early.
    pub(crate) fn now(&self) -> Instant {
        self.now.get()
    }

    /// `now` in nanoseconds since `origin`.
    pub(crate) fn now_ns(&self) -> u64 {
        self.now_ns.get()
    }

    /// The instant the loop's times count from (the runtime's start).
    pub(crate) fn origin(&self) -> Instant {
        self.counters.time.origin
    }

    /// Reads the clock into `now`; `turn` does it once per poll.
    pub(crate) fn refresh_now(&self) -> Instant {
        let now = Instant::now();
        self.now.set(now);
        self.now_ns.set(self.counters.time.ns(now));
        now
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Number of live registrations.
    pub(crate) fn len(&self) -> usize {
        self.sources.borrow().len() - self.released.borrow().len()
    }

    /// Whether a driven source asked to be called again without a new edge;
    /// the loop must not block then.
    pub(crate) fn has_pending_dispatch(&self) -> bool {
        !self.again.borrow().is_empty()
    }

    pub(crate) fn register_io(&self, io: &mut impl MioSource, interest: Interest) -> io::Result<Token> {
        self.register(io, interest, Source::Io(IoState::default()))
    }

    #[cfg_attr(not(feature = "http-server"), allow(dead_code))] // used by the HTTP layer
    pub(crate) fn register_driven(
        &self,
        io: &mut impl MioSource,
        interest: Interest,
        driver: Rc<dyn Driven>,
        data: usize,
    ) -> io::Result<Token> {
        self.register(io, interest, Source::Driven(driver, data))
    }

    fn register(&self, io: &mut impl MioSource, interest: Interest, source: Source) -> io::Result<Token> {
        let mut sources = self.sources.borrow_mut();
        let entry = sources.vacant_entry();
        let token = Token(entry.key());
        self.registry.register(io, token, interest)?;
        entry.insert(source);
        Ok(token)
    }

    /// Removes a source from the poll and from the slab. The caller closes the
    /// descriptor afterwards (by dropping `io`).
    pub(crate) fn deregister(&self, io: &mut impl MioSource, token: Token) {
        // Deregistration only fails if the descriptor was never registered or
        // is already closed; the slab entry must be released either way.
        let _ = self.registry.deregister(io);
        self.release(token.0);
    }

    fn release(&self, key: usize) {
        let old = {
            let mut sources = self.sources.borrow_mut();
            if self.dispatching.get() {
                self.released.borrow_mut().push(key);
                std::mem::replace(&mut sources[key], Source::Released)
            } else {
                sources.remove(key)
            }
        };
        self.again.borrow_mut().retain(|(k, _)| *k != key);
        // Wakers and drivers are dropped outside the borrow: their destructors
        // may reach back into the reactor.
        drop(old);
    }

    /// Wakes every task waiting to read from any I/O source, with no
    /// readiness: each polls, finds nothing, and waits again. For a rare,
    /// server-wide event (a shutdown that upgraded connections must see),
    /// so that they need no waker slot of their own.
    #[cfg_attr(not(feature = "http-server"), allow(dead_code))] // used by the HTTP layer
    pub(crate) fn wake_all_readers(&self) {
        let wakers: Vec<Waker> = self
            .sources
            .borrow_mut()
            .iter_mut()
            .filter_map(|(_, s)| match s {
                Source::Io(state) => state.reader.take(),
                _ => None,
            })
            .collect();
        for w in wakers {
            w.wake();
        }
    }

    /// Ready if the cached readiness allows progress in `dir`; otherwise stores
    /// the waker and returns `Pending`.
    pub(crate) fn poll_ready(&self, token: Token, dir: Direction, cx: &mut Context<'_>) -> Poll<Ready> {
        let mut sources = self.sources.borrow_mut();
        let Some(Source::Io(state)) = sources.get_mut(token.0) else {
            panic!("reactor: poll_ready on a token that is not an I/O source");
        };
        let ready = Ready(state.ready.0 & dir.mask().0);
        if !ready.is_empty() {
            return Poll::Ready(ready);
        }
        let slot = match dir {
            Direction::Read => &mut state.reader,
            Direction::Write => &mut state.writer,
        };
        match slot {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Called when an operation in `dir` returned `WouldBlock`: the edge has
    /// been consumed, so wait for the next one.
    pub(crate) fn clear_ready(&self, token: Token, dir: Direction) {
        if let Some(Source::Io(state)) = self.sources.borrow_mut().get_mut(token.0) {
            state.ready = Ready(state.ready.0 & !dir.mask().0);
        }
    }

    /// Called when a stream operation in `dir` moved fewer bytes than it was
    /// offered (but some). Where that drains the socket (`SHORT_IO_DRAINS`;
    /// elsewhere it does nothing) it clears the data bit and keeps the
    /// closed and error bits, which are final. A peer's FIN that came with
    /// the last data raises no later edge, and the next read must still see
    /// it.
    pub(crate) fn drained(&self, token: Token, dir: Direction) {
        if !SHORT_IO_DRAINS {
            // Nothing is drained until mio sees `WouldBlock` on this backend.
            return;
        }
        let data = match dir {
            Direction::Read => Ready::READABLE,
            Direction::Write => Ready::WRITABLE,
        };
        if let Some(Source::Io(state)) = self.sources.borrow_mut().get_mut(token.0) {
            state.ready = Ready(state.ready.0 & !data.0);
        }
    }

    /// The readiness cached for I/O source `token` (`None` for any other
    /// kind of token): for the tests of what an operation leaves behind.
    #[cfg(test)]
    pub(crate) fn cached_ready(&self, token: Token) -> Option<Ready> {
        match self.sources.borrow().get(token.0) {
            Some(Source::Io(state)) => Some(state.ready),
            _ => None,
        }
    }

    /// Waits for events (up to `timeout`; `None` blocks) and dispatches them.
    /// Returns how many events were dispatched.
    pub(crate) fn turn(&self, timeout: Option<Duration>) -> io::Result<usize> {
        self.turn_from(timeout, None)
    }

    /// `turn`, told when the clock was last read (`read_ns`, nanoseconds
    /// since `origin`): the executor reads it to compute `timeout`, and a
    /// poll that may block starts waiting then, with no second read.
    pub(crate) fn turn_from(&self, timeout: Option<Duration>, read_ns: Option<u64>) -> io::Result<usize> {
        let timeout = if self.has_pending_dispatch() {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        self.counters.polls.set(self.counters.polls.get() + 1);
        if timeout != Some(Duration::ZERO) {
            self.counters.blocking_polls.set(self.counters.blocking_polls.get() + 1);
        }
        let mut events = self.events.borrow_mut();
        let wait_start =
            (timeout != Some(Duration::ZERO)).then(|| read_ns.unwrap_or_else(|| self.counters.time.ns(Instant::now())));
        let polled = self.poll.borrow_mut().poll(&mut events, timeout);
        self.refresh_now();
        self.counters.time.record(wait_start, self.now_ns.get());
        match polled {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        }
        self.dispatching.set(true);
        let again = std::mem::take(&mut *self.again.borrow_mut());
        for (key, ready) in again {
            self.dispatch(key, ready);
        }
        let mut count = 0;
        for event in events.iter() {
            if event.token() == WAKE_TOKEN {
                continue;
            }
            count += 1;
            self.dispatch(event.token().0, Ready::from_event(event));
        }
        self.dispatching.set(false);
        // Drained in place (the vector keeps its capacity for the next turn);
        // the entries are `Released` placeholders, so removing them runs no
        // destructor that could reach back into the reactor.
        let mut released = self.released.borrow_mut();
        if !released.is_empty() {
            let mut sources = self.sources.borrow_mut();
            for key in released.drain(..) {
                sources.remove(key);
            }
        }
        drop(released);
        self.counters.events.set(self.counters.events.get() + count as u64);
        Ok(count)
    }

    fn dispatch(&self, key: usize, ready: Ready) {
        let mut sources = self.sources.borrow_mut();
        match sources.get_mut(key) {
            Some(Source::Io(state)) => {
                state.ready = state.ready | ready;
                let reader = if ready.intersects(Direction::Read.mask()) {
                    state.reader.take()
                } else {
                    None
                };
                let writer = if ready.intersects(Direction::Write.mask()) {
                    state.writer.take()
                } else {
                    None
                };
                drop(sources);
                if let Some(w) = reader {
                    w.wake();
                }
                if let Some(w) = writer {
                    w.wake();
                }
            }
            Some(Source::Driven(driver, data)) => {
                let (driver, data) = (driver.clone(), *data);
                drop(sources);
                if driver.on_ready(Token(key), data, ready) == Dispatch::Again {
                    self.again.borrow_mut().push((key, ready));
                }
            }
            // Released this turn, or an event for a key that is already gone.
            Some(Source::Released) | None => {}
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use mio::net::UnixStream;
    use std::io::Write;

    /// On its first call, deregisters every other source it owns (whose event
    /// may already be in this turn's batch) and registers a replacement.
    struct Recorder {
        reactor: Rc<Reactor>,
        owned: RefCell<Vec<(UnixStream, Token)>>,
        seen: RefCell<Vec<Token>>,
        victim: Cell<Option<Token>>,
        replacement: RefCell<Option<(UnixStream, UnixStream, Token)>>,
        me: RefCell<Option<Rc<dyn Driven>>>,
    }

    impl Driven for Recorder {
        fn on_ready(self: Rc<Self>, token: Token, _data: usize, _ready: Ready) -> Dispatch {
            self.seen.borrow_mut().push(token);
            if self.seen.borrow().len() == 1 {
                let mut owned = self.owned.borrow_mut();
                let i = owned.iter().position(|(_, t)| *t != token).unwrap();
                let (mut victim, victim_token) = owned.remove(i);
                self.reactor.deregister(&mut victim, victim_token);
                self.victim.set(Some(victim_token));
                let (mut a, mut b) = UnixStream::pair().unwrap();
                b.write_all(b"x").unwrap();
                let driver = self.me.borrow().clone().unwrap();
                let t = self
                    .reactor
                    .register_driven(&mut a, Interest::READABLE, driver, 0)
                    .unwrap();
                *self.replacement.borrow_mut() = Some((a, b, t));
            }
            Dispatch::Done
        }
    }

    #[test]
    fn stale_event_for_a_key_freed_in_the_same_turn_is_dropped() {
        let reactor = Rc::new(Reactor::new().unwrap());
        let rec = Rc::new(Recorder {
            reactor: reactor.clone(),
            owned: RefCell::new(Vec::new()),
            seen: RefCell::new(Vec::new()),
            victim: Cell::new(None),
            replacement: RefCell::new(None),
            me: RefCell::new(None),
        });
        *rec.me.borrow_mut() = Some(rec.clone());
        let mut peers = Vec::new();
        for data in 0..2 {
            let (mut ours, mut peer) = UnixStream::pair().unwrap();
            let t = reactor
                .register_driven(&mut ours, Interest::READABLE, rec.clone(), data)
                .unwrap();
            peer.write_all(b"ready").unwrap();
            rec.owned.borrow_mut().push((ours, t));
            peers.push(peer);
        }
        // Both sources are readable before the poll, so one turn fetches both
        // events; the first dispatch frees the other source's key.
        let fetched = reactor.turn(Some(Duration::from_millis(500))).unwrap();
        assert_eq!(fetched, 2);
        let victim = rec.victim.get().unwrap();
        let replacement = rec.replacement.borrow().as_ref().unwrap().2;
        assert_eq!(
            rec.seen.borrow().len(),
            1,
            "the event of the freed source reached a driver"
        );
        assert_ne!(
            replacement, victim,
            "a key freed during dispatch was reused in the same turn"
        );
        // Once the turn is over, the freed key is available again.
        let (mut c, _peer) = UnixStream::pair().unwrap();
        let tc = reactor
            .register_driven(&mut c, Interest::READABLE, rec.clone(), 9)
            .unwrap();
        assert_eq!(tc, victim);
        // The replacement's own event arrives next turn, under its own token.
        reactor.turn(Some(Duration::from_millis(500))).unwrap();
        assert_eq!(rec.seen.borrow()[1], replacement);
        reactor.deregister(&mut c, tc);
        let (mut r, _, t) = rec.replacement.borrow_mut().take().unwrap();
        reactor.deregister(&mut r, t);
        for (mut s, t) in rec.owned.borrow_mut().drain(..) {
            reactor.deregister(&mut s, t);
        }
        *rec.me.borrow_mut() = None;
        assert_eq!(reactor.len(), 0);
    }

    #[test]
    fn readiness_is_cached_until_cleared() {
        let reactor = Reactor::new().unwrap();
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let t = reactor
            .register_io(&mut a, Interest::READABLE | Interest::WRITABLE)
            .unwrap();
        b.write_all(b"hello").unwrap();
        reactor.turn(Some(Duration::from_millis(100))).unwrap();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(reactor.poll_ready(t, Direction::Read, &mut cx).is_ready());
        // No new edge, but the cache still says readable.
        reactor.turn(Some(Duration::ZERO)).unwrap();
        assert!(reactor.poll_ready(t, Direction::Read, &mut cx).is_ready());
        reactor.clear_ready(t, Direction::Read);
        assert!(reactor.poll_ready(t, Direction::Read, &mut cx).is_pending());
        assert!(reactor.poll_ready(t, Direction::Write, &mut cx).is_ready());
        reactor.deregister(&mut a, t);
        assert_eq!(reactor.len(), 0);
    }
}
