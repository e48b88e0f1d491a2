//! The single-threaded runtime: the loop that ties the reactor, the timer
//! wheel and the run queue together, and the thread-local context that
//! `spawn`, `sleep` and the I/O types find it through.
//!
//! Owns: the run queue, the list of live tasks, the timer wheel, the loop turn
//! and its counters. Must never: run a task inside another task's poll, block
//! anywhere but in the reactor's poll, or block when work is ready.
//!
//! # One turn
//!
//! ```text
//! poll(timeout) → dispatch readiness → fire expired timers → take remote wakes
//!               → poll the main future if woken → run ready tasks (at most BATCH)
//!               → tell the turn-end hooks (one clock read, if any has work)
//! timeout = 0 if anything is ready to run, else the next timer, else forever
//! ```
//!
//! At most `BATCH` task polls run between two polls of the reactor, so a task
//! that keeps waking itself (or a flood of ready tasks) cannot starve I/O.
//!
//! # Wakes from other threads
//!
//! A waker woken on the runtime thread pushes its task on the local run queue
//! (no lock, no atomic beyond the task's state). Woken on any other thread, it
//! pushes on `Shared::remote` under a mutex and, if the loop has not already
//! been notified, wakes it out of `epoll_wait`/`kevent` through `mio::Waker`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::blocking::BlockingPool;
use crate::coop;
use crate::reactor::{Reactor, WAKE_TOKEN};
use crate::task::{self, JoinHandle, Schedule, TaskRef};
use crate::timer::TimerWheel;

/// Task polls between two polls of the reactor (tokio uses 61).
const BATCH: usize = 64;

/// The part of a runtime that other threads may reach.
pub(crate) struct Shared {
    remote: Mutex<Vec<TaskRef>>,
    notified: AtomicBool,
    waker: mio::Waker,
}

impl Shared {
    fn push_remote(&self, task: TaskRef) {
        self.remote.lock().unwrap_or_else(|e| e.into_inner()).push(task);
        self.notify();
    }

    fn notify(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            // Failing to wake the loop would lose a wake-up; mio's waker only
            // fails if the eventfd/pipe is gone, i.e. the runtime is gone.
            let _ = self.waker.wake();
        }
    }
}

/// Counters a runtime keeps about its own loop; every figure is counted, none
/// is estimated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Calls to the OS poll (`epoll_wait`/`kevent`).
    pub polls: u64,
    /// Of those, the ones allowed to block (timeout not zero).
    pub blocking_polls: u64,
    /// Readiness events dispatched.
    pub events: u64,
    /// Task polls (the main future of `block_on` not included).
    pub tasks_polled: u64,
    /// Tasks spawned.
    pub tasks_spawned: u64,
    /// Bytes allocated for the tasks spawned, summed: each task is one
    /// allocation (its header, its future or output, its join waker), sized
    /// exactly. A difference of two readings over a difference of
    /// `tasks_spawned` is the bytes per task the runtime itself accounts
    /// for; memory the futures allocate on their own is not in it.
    pub task_bytes: u64,
    /// Timers fired.
    pub timers_fired: u64,
    /// Tasks alive now.
    pub tasks_alive: usize,
    /// I/O sources registered now.
    pub io_sources: usize,
    /// Timers pending now.
    pub timers_pending: usize,
    /// Tasks woken from other threads (through the remote queue).
    pub remote_wakeups: u64,
    /// Time the loop spent busy since it started: everything but waiting
    /// in a poll that could block.
    pub busy: Duration,
    /// Time the loop spent waiting in the OS poll since it started.
    pub waiting: Duration,
    /// Busy time in the last complete second (zero before one has ended).
    pub busy_last_second: Duration,
    /// Waiting time in the last complete second.
    pub waiting_last_second: Duration,
    /// The longest busy stretch between two polls in the last complete
    /// second: how long one turn kept everything else waiting.
    pub longest_turn_last_second: Duration,
}

impl RuntimeStats {
    /// `busy` over `busy + waiting` since the loop started (0 to 1).
    pub fn utilisation(&self) -> f64 {
        share(self.busy, self.waiting)
    }

    /// The same over the last complete second: how loaded the loop is now.
    pub fn utilisation_last_second(&self) -> f64 {
        share(self.busy_last_second, self.waiting_last_second)
    }
}

fn share(busy: Duration, waiting: Duration) -> f64 {
    let total = busy + waiting;
    if total.is_zero() {
        0.0
    } else {
        busy.as_secs_f64() / total.as_secs_f64()
    }
}

/// What a timer does when it fires.
pub(crate) enum Expiry {
    /// Wakes a task (a `Sleep`).
    Wake(Waker),
    /// Calls a state machine the reactor drives directly (an HTTP connection's
    /// timeout), with the value given when the timer was set.
    #[cfg_attr(not(feature = "http-server"), allow(dead_code))] // used by the HTTP layer
    Call(Rc<dyn TimerTarget>, usize),
}

/// A state machine that owns timers whose expiry calls it directly.
pub(crate) trait TimerTarget {
    fn on_timer(self: Rc<Self>, data: usize);
}

/// Work that needs the time a turn's work ended (the HTTP server's latency
/// figures): told once a turn in which it had work, after the tasks ran and
/// before the loop polls again, with one clock read shared by every hook
/// and by the poll's timeout.
#[cfg_attr(not(feature = "http-server"), allow(dead_code))] // used by the HTTP layer
pub(crate) trait TurnEnd {
    /// The turn's work ended at `at_ns` (nanoseconds since the runtime's
    /// origin, as `Reactor::now_ns`).
    fn turn_ended(&self, at_ns: u64);
}

pub(crate) struct Core {
    pub(crate) reactor: Reactor,
    pub(crate) timers: RefCell<TimerWheel<Expiry>>,
    /// The reactor's origin: ticks and the loop's times count from it.
    start: Instant,
    run_queue: RefCell<VecDeque<TaskRef>>,
    tasks: RefCell<Slab<TaskRef>>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) blocking: BlockingPool,
    expired: RefCell<Vec<Expiry>>,
    tasks_polled: Cell<u64>,
    tasks_spawned: Cell<u64>,
    task_bytes: Cell<u64>,
    timers_fired: Cell<u64>,
    remote_wakeups: Cell<u64>,
    /// Told at the end of a turn that set `turn_end_due`; see `TurnEnd`.
    turn_end: RefCell<Vec<Rc<dyn TurnEnd>>>,
    /// Set by a hook's owner when it has work for the turn's end: a turn
    /// that set nothing pays one flag read for all the hooks.
    turn_end_due: Rc<Cell<bool>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
}

impl Core {
    /// The runtime of the current thread. Panics outside `block_on`, the way
    /// a missing runtime is a programming error in tokio too.
    pub(crate) fn current() -> Rc<Core> {
        Self::try_current().expect("this must be called from within a solo runtime (inside Runtime::block_on)")
    }

    pub(crate) fn try_current() -> Option<Rc<Core>> {
        CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
    }

    /// The tick of `instant`: milliseconds since the runtime started, rounded
    /// down (a timer whose tick is at or before it is due).
    pub(crate) fn tick_at(&self, instant: Instant) -> u64 {
        // Nearly always the turn's clock (timers, connections), converted
        // once per turn by the reactor: the same count, from the same origin.
        if instant == self.reactor.now() {
            return self.reactor.now_ns() / 1_000_000;
        }
        instant.saturating_duration_since(self.start).as_millis() as u64
    }

    /// The tick of `deadline`, rounded up so that a timer never fires early.
    pub(crate) fn deadline_tick(&self, deadline: Instant) -> u64 {
        let since = deadline.saturating_duration_since(self.start);
        let ms = since.as_millis() as u64;
        if since > Duration::from_millis(ms) {
            ms + 1
        } else {
            ms
        }
    }

    /// The tick a timer set `after` from `from` must fire at: never early
    /// (`deadline_tick` rounds up), and a zero delay is due at once (rounding
    /// it up would make it wait for the next tick).
    #[cfg_attr(not(feature = "http-server"), allow(dead_code))] // used by the HTTP layer
    pub(crate) fn tick_after(&self, from: Instant, after: Duration) -> u64 {
        if after.is_zero() {
            self.tick_at(from)
        } else {
            self.deadline_tick(from + after)
        }
    }

    fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let mut tasks = self.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        let (task, handle) = task::new_task(future, entry.key(), self.shared.clone());
        entry.insert(task.clone());
        drop(tasks);
        self.run_queue.borrow_mut().push_back(task);
        self.tasks_spawned.set(self.tasks_spawned.get() + 1);
        self.task_bytes
            .set(self.task_bytes.get() + task::allocation_size::<F>() as u64);
        handle
    }

    /// Runs up to `BATCH` ready tasks.
    fn run_tasks(&self) {
        for _ in 0..BATCH {
            let Some(task) = self.run_queue.borrow_mut().pop_front() else {
                return;
            };
            self.tasks_polled.set(self.tasks_polled.get() + 1);
            let key = task.header().key;
            if task.run() {
                let owned = self.tasks.borrow_mut().remove(key);
                drop(owned);
            }
        }
    }

    fn fire_timers(&self) {
        let mut expired = self.expired.borrow_mut();
        {
            let mut timers = self.timers.borrow_mut();
            // The time the poll returned: no clock read of its own, and at
            // worst the timers fire a dispatch's length late, never early.
            timers.advance(self.tick_at(self.reactor.now()));
            while let Some((_, expiry)) = timers.pop_expired() {
                expired.push(expiry);
            }
        }
        if expired.is_empty() {
            return; // most turns: no drain to set up and tear down
        }
        self.timers_fired.set(self.timers_fired.get() + expired.len() as u64);
        // Run outside the wheel's borrow: wakers and targets may set timers.
        for expiry in expired.drain(..) {
            match expiry {
                Expiry::Wake(waker) => waker.wake(),
                Expiry::Call(target, data) => target.on_timer(data),
            }
        }
    }

    /// Tells `hook` at the end of every turn that set the flag returned,
    /// from now on until `remove_turn_end`.
    #[cfg_attr(not(feature = "http-server"), allow(dead_code))] // used by the HTTP layer
    pub(crate) fn add_turn_end(&self, hook: Rc<dyn TurnEnd>) -> Rc<Cell<bool>> {
        self.turn_end.borrow_mut().push(hook);
        self.turn_end_due.clone()
    }

    /// Stops telling `hook` (the same `Rc` that was added).
    #[cfg_attr(not(feature = "http-server"), allow(dead_code))] // used by the HTTP layer
    pub(crate) fn remove_turn_end(&self, hook: &Rc<dyn TurnEnd>) {
        self.turn_end.borrow_mut().retain(|h| !Rc::ptr_eq(h, hook));
    }

    /// The turn's work is done: when a hook's owner asked for it, reads the
    /// clock once, tells every hook, and returns the read (nanoseconds
    /// since the origin).
    pub(crate) fn end_turn(&self) -> Option<u64> {
        if !self.turn_end_due.replace(false) {
            return None;
        }
        let now_ns = self.reactor.counters.time.ns(Instant::now());
        // Hooks record figures; none adds or removes a hook while told.
        for hook in self.turn_end.borrow().iter() {
            hook.turn_ended(now_ns);
        }
        Some(now_ns)
    }

    fn take_remote(&self) {
        if self.shared.notified.swap(false, Ordering::AcqRel) {
            let remote = std::mem::take(&mut *self.shared.remote.lock().unwrap_or_else(|e| e.into_inner()));
            self.remote_wakeups.set(self.remote_wakeups.get() + remote.len() as u64);
            self.run_queue.borrow_mut().extend(remote);
        }
    }

    /// How long the next poll may block: zero when anything can run now.
    /// With it, the clock read it was computed from (nanoseconds since
    /// `start`), if one was made: when the poll starts waiting. `ended_ns`
    /// is the turn's end, when `end_turn` read the clock: read again, it
    /// would differ only by the time the hooks took.
    fn poll_timeout(&self, main_woken: &AtomicBool, ended_ns: Option<u64>) -> (Option<Duration>, Option<u64>) {
        if !self.run_queue.borrow().is_empty()
            || main_woken.load(Ordering::Acquire)
            || self.shared.notified.load(Ordering::Acquire)
        {
            return (Some(Duration::ZERO), None);
        }
        let Some(next) = self.timers.borrow().next_expiration() else {
            return (None, None);
        };
        let now_ns = ended_ns.unwrap_or_else(|| self.reactor.counters.time.ns(Instant::now()));
        let due_ns = next.saturating_mul(1_000_000);
        (Some(Duration::from_nanos(due_ns.saturating_sub(now_ns))), Some(now_ns))
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        let mut future = pin!(future);
        let main = Arc::new(MainWaker {
            woken: AtomicBool::new(true),
            shared: self.shared.clone(),
        });
        let waker = Waker::from(main.clone());
        let mut cx = Context::from_waker(&waker);
        self.reactor.counters.time.start(Instant::now());
        loop {
            if main.woken.swap(false, Ordering::AcqRel) {
                coop::reset_budget();
                if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                    return output;
                }
            }
            self.run_tasks();
            let ended_ns = self.end_turn();
            let (timeout, read_ns) = self.poll_timeout(&main.woken, ended_ns);
            if let Err(e) = self.reactor.turn_from(timeout, read_ns) {
                // The poll descriptor itself failed (EBADF, ENOMEM...): there
                // is no loop left to run.
                panic!("solo: polling for events failed: {e}");
            }
            self.fire_timers();
            self.take_remote();
        }
    }

    fn stats(&self) -> RuntimeStats {
        let c = &self.reactor.counters;
        RuntimeStats {
            polls: c.polls.get(),
            blocking_polls: c.blocking_polls.get(),
            events: c.events.get(),
            tasks_polled: self.tasks_polled.get(),
            tasks_spawned: self.tasks_spawned.get(),
            task_bytes: self.task_bytes.get(),
            timers_fired: self.timers_fired.get(),
            tasks_alive: self.tasks.borrow().len(),
            io_sources: self.reactor.len(),
            timers_pending: self.timers.borrow().len(),
            remote_wakeups: self.remote_wakeups.get(),
            busy: Duration::from_nanos(c.time.busy_ns.get()),
            waiting: Duration::from_nanos(c.time.wait_ns.get()),
            busy_last_second: Duration::from_nanos(c.time.last.get().busy_ns),
            waiting_last_second: Duration::from_nanos(c.time.last.get().wait_ns),
            longest_turn_last_second: Duration::from_nanos(c.time.last.get().longest_ns),
        }
    }

    /// Drops every task's future (the futures may own I/O sources and sleeps
    /// that point back at this core), then every queued reference.
    fn shutdown(&self) {
        loop {
            let tasks = std::mem::take(&mut *self.tasks.borrow_mut());
            if tasks.is_empty() {
                break;
            }
            for (_, task) in tasks {
                task.shutdown();
            }
        }
        self.run_queue.borrow_mut().clear();
        drop(std::mem::take(
            &mut *self.shared.remote.lock().unwrap_or_else(|e| e.into_inner()),
        ));
        let timers = std::mem::take(&mut *self.timers.borrow_mut());
        drop(timers);
        self.blocking.shutdown();
    }
}

/// The figures of the runtime this code runs on (see [`Runtime::stats`]):
/// for handlers and tasks, which have no `Runtime` handle. Cheap: it reads
/// counters, and does not read the clock.
///
/// Panics outside a runtime.
pub fn stats() -> RuntimeStats {
    Core::current().stats()
}

/// Watches the loop's turns from now on: [`longest`](TurnWatch::longest) is
/// the longest busy stretch between two polls (one turn: events, timers,
/// tasks) completed since the watch started, exactly, whatever else runs.
/// Costs nothing per request, and one check per poll while no watch exists.
///
/// ```
/// use std::time::{Duration, Instant};
/// solo::Runtime::new().unwrap().block_on(async {
///     let watch = solo::watch_turns();
///     solo::spawn(async {
///         let start = Instant::now();
///         while start.elapsed() < Duration::from_millis(20) {} // hogs the loop
///     });
///     solo::time::sleep(Duration::from_millis(30)).await;
///     assert!(watch.longest() >= Duration::from_millis(20));
/// });
/// ```
///
/// Panics outside a runtime.
pub fn watch_turns() -> TurnWatch {
    let watch = Rc::new(Cell::new(0));
    Core::current().reactor.counters.time.watch(watch.clone());
    TurnWatch(watch)
}

/// See [`watch_turns`]. Stops watching when dropped.
#[derive(Debug)]
pub struct TurnWatch(Rc<Cell<u64>>);

impl TurnWatch {
    /// The longest turn completed since the watch started.
    pub fn longest(&self) -> Duration {
        Duration::from_nanos(self.0.get())
    }
}

/// The waker of `block_on`'s own future: a flag, not a task.
struct MainWaker {
    woken: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if !on_runtime_thread(&self.shared) {
            self.shared.notify();
        }
    }
}

fn on_runtime_thread(shared: &Arc<Shared>) -> bool {
    CURRENT
        .try_with(|c| {
            c.borrow()
                .as_ref()
                .is_some_and(|core| Arc::ptr_eq(&core.shared, shared))
        })
        .unwrap_or(false)
}

/// Puts a task that has just been marked scheduled on a run queue: the local
/// one when woken on its runtime's thread, the remote one otherwise.
impl Schedule for Shared {
    fn schedule(&self, task: TaskRef) {
        let mut task = Some(task);
        let _ = CURRENT.try_with(|c| {
            if let Some(core) = c.borrow().as_ref() {
                if std::ptr::eq(Arc::as_ptr(&core.shared), self) {
                    core.run_queue.borrow_mut().extend(task.take());
                }
            }
        });
        if let Some(task) = task {
            self.push_remote(task);
        }
    }
}

/// Restores the previous context when `block_on` returns or unwinds.
struct EnterGuard {
    previous: Option<Rc<Core>>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = previous);
    }
}

fn enter(core: &Rc<Core>) -> EnterGuard {
    let previous = CURRENT.with(|c| c.borrow_mut().replace(core.clone()));
    EnterGuard { previous }
}

/// A single-threaded runtime: one reactor, one timer wheel, one run queue.
///
/// ```
/// let rt = solo::Runtime::new().unwrap();
/// let answer = rt.block_on(async {
///     let handle = solo::spawn(async { 6 * 7 });
///     handle.await.unwrap()
/// });
/// assert_eq!(answer, 42);
/// ```
pub struct Runtime {
    core: Rc<Core>,
}

impl Runtime {
    /// Creates a runtime: a poll instance, a cross-thread waker and an empty
    /// timer wheel. No thread is started (the blocking pool starts threads
    /// only when `spawn_blocking` is first called).
    pub fn new() -> io::Result<Runtime> {
        let reactor = Reactor::new()?;
        let waker = mio::Waker::new(reactor.registry(), WAKE_TOKEN)?;
        let shared = Arc::new(Shared {
            remote: Mutex::new(Vec::new()),
            notified: AtomicBool::new(false),
            waker,
        });
        let start = reactor.origin();
        Ok(Runtime {
            core: Rc::new(Core {
                reactor,
                timers: RefCell::new(TimerWheel::new()),
                start,
                run_queue: RefCell::new(VecDeque::new()),
                tasks: RefCell::new(Slab::new()),
                shared,
                blocking: BlockingPool::new(),
                expired: RefCell::new(Vec::new()),
                tasks_polled: Cell::new(0),
                tasks_spawned: Cell::new(0),
                task_bytes: Cell::new(0),
                timers_fired: Cell::new(0),
                remote_wakeups: Cell::new(0),
                turn_end: RefCell::new(Vec::new()),
                turn_end_due: Rc::default(),
            }),
        })
    }

    /// Runs `future` to completion on this thread, running spawned tasks,
    /// timers and I/O meanwhile. Tasks still alive when it returns stay
    /// suspended until the next `block_on` or until the runtime is dropped.
    ///
    /// Panics if called from inside a runtime (the inner call would block the
    /// outer loop), and resumes a panic of `future` itself.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        if Core::try_current().is_some() {
            panic!("Runtime::block_on called from within a solo runtime: it would block the running loop");
        }
        let _guard = enter(&self.core);
        self.core.block_on(future)
    }

    /// Spawns a task on this runtime from outside it; it starts running at the
    /// next `block_on`.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.core.spawn(future)
    }

    /// Counters of this runtime's loop.
    pub fn stats(&self) -> RuntimeStats {
        self.core.stats()
    }

    /// Calls `f` inside this runtime (so it may spawn and set timers),
    /// without running the loop.
    #[cfg_attr(not(feature = "http-server"), allow(dead_code))] // used by the HTTP layer
    pub(crate) fn enter<R>(&self, f: impl FnOnce(&Rc<Core>) -> R) -> R {
        let _guard = enter(&self.core);
        f(&self.core)
    }

    /// Runs the loop without blocking until nothing is ready: no task to
    /// poll, no timer due, no event pending. The in-memory HTTP test client
    /// steps a server with it.
    #[cfg_attr(not(feature = "http-server"), allow(dead_code))] // used by the HTTP layer
    pub(crate) fn run_until_stalled(&self) {
        let _guard = enter(&self.core);
        let core = &self.core;
        loop {
            core.run_tasks();
            core.end_turn();
            if let Err(e) = core.reactor.turn(Some(Duration::ZERO)) {
                panic!("solo: polling for events failed: {e}");
            }
            core.fire_timers();
            core.take_remote();
            let due = core
                .timers
                .borrow()
                .next_expiration()
                .is_some_and(|t| t <= core.tick_at(core.reactor.now()));
            if core.run_queue.borrow().is_empty() && !due {
                // What the dispatch just answered ends with this turn too.
                core.end_turn();
                return;
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Futures dropped here may call `spawn` or drop I/O sources, which
        // look the runtime up in the context.
        let _guard = enter(&self.core);
        self.core.shutdown();
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("stats", &self.stats()).finish()
    }
}

/// Spawns a task on the current runtime. The future need not be `Send`: it
/// never leaves this thread. The task starts on the next turn of the loop.
///
/// Panics outside a runtime.
///
/// ```
/// use std::rc::Rc;
/// use std::cell::Cell;
/// solo::Runtime::new().unwrap().block_on(async {
///     let hits = Rc::new(Cell::new(0)); // not Send, and need not be
///     let task = solo::spawn({
///         let hits = hits.clone();
///         async move { hits.set(hits.get() + 1); "from the task" }
///     });
///     assert_eq!(task.await.unwrap(), "from the task");
///     assert_eq!(hits.get(), 1);
/// });
/// ```
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    Core::current().spawn(future)
}

/// Yields to the other ready tasks once: the calling task is put at the back
/// of the run queue.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// Runs a blocking function on the runtime's pool of threads and resolves to
/// its result, so that the loop never blocks on it. A panic in `f` resolves
/// the handle to a [`JoinError`](crate::JoinError).
///
/// Threads are started on demand (at most 64) and exit after 10 s idle.
/// Aborting the handle does not interrupt `f`; it only drops the result.
///
/// ```
/// solo::Runtime::new().unwrap().block_on(async {
///     let len = solo::spawn_blocking(|| std::fs::read("Cargo.toml").map(|b| b.len())).await;
///     assert!(len.unwrap().unwrap() > 0); // JoinError, then io::Error
/// });
/// ```
pub fn spawn_blocking<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let core = Core::current();
    let result = core.blocking.run(f);
    core.spawn(async move {
        match result.await {
            Ok(value) => value,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps what `TurnEnd` tells it.
    #[derive(Default)]
    struct Told(RefCell<Vec<u64>>);

    impl TurnEnd for Told {
        fn turn_ended(&self, at_ns: u64) {
            self.0.borrow_mut().push(at_ns);
        }
    }

    /// A turn-end hook is told once for each turn that set its flag, after
    /// that turn's poll returned, and not in turns that did not.
    #[test]
    fn turn_end_hooks_are_told_once_a_turn_that_asked() {
        let rt = Runtime::new().unwrap();
        let told = Rc::new(Told::default());
        rt.block_on(async {
            let core = Core::current();
            let hook: Rc<dyn TurnEnd> = told.clone();
            let due = core.add_turn_end(hook.clone());
            yield_now().await;
            assert!(told.0.borrow().is_empty(), "told in a turn that did not ask");
            due.set(true);
            let polled_at = core.reactor.now_ns();
            yield_now().await;
            assert_eq!(told.0.borrow().len(), 1);
            assert!(
                told.0.borrow()[0] >= polled_at,
                "the turn ended before its poll returned"
            );
            yield_now().await;
            assert_eq!(told.0.borrow().len(), 1, "told twice for one turn");
            core.remove_turn_end(&hook);
            due.set(true);
            yield_now().await;
            assert_eq!(told.0.borrow().len(), 1, "told after its removal");
        });
    }
}
