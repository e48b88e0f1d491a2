//! A spawned task: one allocation holding the header and the future, the
//! waker that schedules it, and the `JoinHandle` that awaits its output.
//!
//! Owns: a task's state flags, its future (later its output), and the waker
//! of whoever awaits it. Must never: touch the future or the output on any
//! thread but the runtime's, nor poll a task from inside another task's poll.
//!
//! # Threads
//!
//! `Waker` is `Send + Sync`, so a task's waker can be woken or dropped on any
//! thread. Only the header is shared that way: `state` is atomic and `shared`
//! is the runtime's thread-safe queue. The future, the output and the join
//! waker live in `UnsafeCell`s that only the runtime thread touches:
//!
//! - `run` and `shutdown` are called by the executor, on its thread;
//! - `JoinHandle` is `!Send`, so its calls happen on the thread that spawned;
//! - the runtime's list of live tasks holds a reference to each task until the
//!   future has been dropped (on completion, abort or runtime drop), and a
//!   `JoinHandle` holds one until the output has been taken or dropped. So the
//!   last reference, which may be dropped by a waker on another thread, only
//!   ever frees a task whose future and output are already gone.
//!
//! That invariant is what makes the `unsafe impl Send/Sync` below sound.

use std::any::Any;
use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use crate::coop;

/// Where a woken task goes: the executor implements it (tokio's `Schedule`
/// seam), so a task knows nothing else of the executor and the two files
/// depend one way.
pub(crate) trait Schedule: Send + Sync + 'static {
    /// Puts `task`, just marked scheduled, on its runtime's run queue (the
    /// local one on the runtime's thread, the remote one from elsewhere).
    fn schedule(&self, task: TaskRef);
}

/// In the run queue (local or remote). Cleared just before each poll.
const SCHEDULED: u8 = 1;
/// The future is gone: it finished, panicked or was aborted.
const COMPLETE: u8 = 2;
/// `abort()` was called; the next run drops the future.
const CANCELLED: u8 = 4;

pub(crate) struct Header {
    state: AtomicU8,
    /// Key in the runtime's list of live tasks.
    pub(crate) key: usize,
    /// Where the task goes when woken: its runtime's run queue.
    pub(crate) shared: Arc<dyn Schedule>,
}

/// The executor's view of a task, independent of its future's type.
pub(crate) trait Runnable: Send + Sync {
    fn header(&self) -> &Header;
    /// Polls the future once. Returns true when the task has completed and
    /// must leave the list of live tasks. Takes the queue's reference, so the
    /// waker is built from a pointer with the whole `Arc`'s provenance.
    fn run(self: Arc<Self>) -> bool;
    /// Drops the future without polling it (runtime shutdown).
    fn shutdown(&self);
}

pub(crate) type TaskRef = Arc<dyn Runnable>;

enum Stage<F: Future> {
    Running(F),
    Finished(Result<F::Output, JoinError>),
    Consumed,
}

struct Task<F: Future> {
    header: Header,
    stage: UnsafeCell<Stage<F>>,
    join_waker: UnsafeCell<Option<Waker>>,
    join_interest: UnsafeCell<bool>,
}

// SAFETY: only `header` is reached from other threads (through wakers), and it
// is `Send + Sync`. `stage`, `join_waker` and `join_interest` are only touched
// on the runtime thread, and the future and output are always dropped there
// (see the module documentation for the argument).
unsafe impl<F: Future> Send for Task<F> {}
// SAFETY: as above.
unsafe impl<F: Future> Sync for Task<F> {}

/// The size of the one allocation a task of `F` takes: the `Arc`'s two
/// counts, the header, the future (or, once finished, its output), the join
/// waker and flag. What `RuntimeStats::task_bytes` adds up.
pub(crate) fn allocation_size<F: Future>() -> usize {
    // `ArcInner` is `repr(C)`: the strong and weak counts, then the value.
    let counts = std::alloc::Layout::new::<[usize; 2]>();
    let (layout, _) = counts
        .extend(std::alloc::Layout::new::<Task<F>>())
        .expect("a task's layout fits in memory");
    layout.pad_to_align().size()
}

/// Allocates a task (one allocation), scheduled to run, and returns the
/// executor's reference and the join handle.
pub(crate) fn new_task<F>(future: F, key: usize, shared: Arc<dyn Schedule>) -> (TaskRef, JoinHandle<F::Output>)
where
    F: Future + 'static,
    F::Output: 'static,
{
    let task = Arc::new(Task {
        header: Header {
            state: AtomicU8::new(SCHEDULED),
            key,
            shared,
        },
        stage: UnsafeCell::new(Stage::Running(future)),
        join_waker: UnsafeCell::new(None),
        join_interest: UnsafeCell::new(true),
    });
    let handle = JoinHandle {
        task: Some(task.clone()),
        _not_send: PhantomData,
    };
    (task, handle)
}

/// Marks a task scheduled; returns whether the caller must enqueue it (it was
/// neither already queued nor complete).
fn mark_scheduled(header: &Header) -> bool {
    header.state.fetch_or(SCHEDULED, Ordering::AcqRel) & (SCHEDULED | COMPLETE) == 0
}

impl<F: Future + 'static> Task<F> {
    const VTABLE: RawWakerVTable = RawWakerVTable::new(
        Self::waker_clone,
        Self::waker_wake,
        Self::waker_wake_by_ref,
        Self::waker_drop,
    );

    // The waker's data pointer is a pointer obtained from (or equal to one
    // obtained from) `Arc::into_raw` on an `Arc<Task<F>>`, and each `RawWaker`
    // owns one strong count.

    unsafe fn waker_clone(ptr: *const ()) -> RawWaker {
        // SAFETY: `ptr` came from an `Arc<Task<F>>` that is still alive (the
        // waker being cloned owns a count); the new waker owns the new count.
        unsafe { Arc::increment_strong_count(ptr as *const Self) };
        RawWaker::new(ptr, &Self::VTABLE)
    }

    unsafe fn waker_wake(ptr: *const ()) {
        // SAFETY: takes over the count owned by the waker being consumed.
        let task: Arc<Self> = unsafe { Arc::from_raw(ptr as *const Self) };
        if mark_scheduled(&task.header) {
            task.header.shared.clone().schedule(task);
        }
    }

    unsafe fn waker_wake_by_ref(ptr: *const ()) {
        // SAFETY: borrows the waker's count without consuming it
        // (`ManuallyDrop` keeps it from being released).
        let task = ManuallyDrop::new(unsafe { Arc::from_raw(ptr as *const Self) });
        if mark_scheduled(&task.header) {
            task.header.shared.schedule(Arc::clone(&*task) as TaskRef);
        }
    }

    unsafe fn waker_drop(ptr: *const ()) {
        // SAFETY: releases the count owned by the waker being dropped.
        drop(unsafe { Arc::from_raw(ptr as *const Self) });
    }

    /// Drops the future in place and publishes the result. Runtime thread only.
    fn complete(&self, result: Result<F::Output, JoinError>) {
        // The future's destructor may run arbitrary code (even wake this task,
        // which is harmless: a consumed stage is never polled). A panic there
        // is caught so the runtime survives it.
        let dropped = panic::catch_unwind(AssertUnwindSafe(|| self.drop_stage_in_place()));
        let result = match (result, dropped) {
            (Ok(_), Err(payload)) => Err(JoinError::panic(payload)),
            (result, _) => result,
        };
        // SAFETY: runtime thread; no reference into these cells is live.
        unsafe {
            if *self.join_interest.get() {
                *self.stage.get() = Stage::Finished(result);
            } else {
                drop(result);
            }
        }
        self.header.state.fetch_or(COMPLETE, Ordering::AcqRel);
        // SAFETY: runtime thread.
        if let Some(w) = unsafe { (*self.join_waker.get()).take() } {
            w.wake();
        }
    }
}

impl<F: Future> Task<F> {
    /// Drops the stage where it lies (a pinned future must not be moved, not
    /// even to be dropped) and leaves `Consumed` behind, also when the
    /// destructor panics.
    fn drop_stage_in_place(&self) {
        struct SetConsumed<F: Future>(*mut Stage<F>);
        impl<F: Future> Drop for SetConsumed<F> {
            fn drop(&mut self) {
                // SAFETY: the stage was just dropped in place (or its drop
                // unwound), so it is overwritten without being dropped again.
                unsafe { std::ptr::write(self.0, Stage::Consumed) };
            }
        }
        let stage = self.stage.get();
        let _guard = SetConsumed(stage);
        // SAFETY: runtime thread, no reference into `stage` is live, and the
        // guard overwrites the dropped value before anything can read it.
        unsafe { std::ptr::drop_in_place(stage) };
    }
}

impl<F: Future + 'static> Runnable for Task<F> {
    fn header(&self) -> &Header {
        &self.header
    }

    fn run(self: Arc<Self>) -> bool {
        let state = self.header.state.fetch_and(!SCHEDULED, Ordering::AcqRel);
        if state & COMPLETE != 0 {
            return false;
        }
        if state & CANCELLED != 0 {
            self.complete(Err(JoinError::cancelled()));
            return true;
        }
        // SAFETY: runtime thread, and the executor never runs a task from
        // inside a poll, so this is the only reference into `stage`.
        let Stage::Running(future) = (unsafe { &mut *self.stage.get() }) else {
            return false;
        };
        // SAFETY: the future lives inside the task's allocation and is dropped
        // in place (`complete`), never moved.
        let future = unsafe { Pin::new_unchecked(future) };
        // SAFETY: the pointer is `Arc::as_ptr` of a live `Arc<Task<F>>`, as the
        // vtable requires. The waker is borrowed: `ManuallyDrop` keeps it from
        // releasing a count it never took (the `self` Arc holds one for the
        // whole poll); clones take their own.
        let waker = ManuallyDrop::new(unsafe {
            Waker::from_raw(RawWaker::new(Arc::as_ptr(&self) as *const (), &Self::VTABLE))
        });
        let mut cx = Context::from_waker(&waker);
        coop::reset_budget();
        match panic::catch_unwind(AssertUnwindSafe(|| future.poll(&mut cx))) {
            Ok(Poll::Pending) => false,
            Ok(Poll::Ready(output)) => {
                self.complete(Ok(output));
                true
            }
            Err(payload) => {
                self.complete(Err(JoinError::panic(payload)));
                true
            }
        }
    }

    fn shutdown(&self) {
        if self.header.state.load(Ordering::Acquire) & COMPLETE == 0 {
            self.complete(Err(JoinError::cancelled()));
        }
    }
}

/// The join side of a task, typed by output only.
trait JoinTarget<T> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>>;
    /// Marks the task cancelled; returns whether the caller must enqueue it.
    fn mark_aborted(&self) -> bool;
    fn into_task_ref(self: Arc<Self>) -> TaskRef;
    fn is_finished(&self) -> bool;
    fn detach(&self);
}

impl<F: Future + 'static> JoinTarget<F::Output> for Task<F> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, JoinError>> {
        if self.header.state.load(Ordering::Acquire) & COMPLETE == 0 {
            // SAFETY: runtime thread (JoinHandle is !Send); `join_waker` is
            // never borrowed across a call.
            let slot = unsafe { &mut *self.join_waker.get() };
            match slot {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        // SAFETY: runtime thread; a complete task is never polled again, so
        // nothing else references `stage`.
        match unsafe { std::mem::replace(&mut *self.stage.get(), Stage::Consumed) } {
            Stage::Finished(result) => Poll::Ready(result),
            _ => panic!("JoinHandle polled after it returned its output"),
        }
    }

    fn mark_aborted(&self) -> bool {
        let prev = self.header.state.fetch_or(CANCELLED, Ordering::AcqRel);
        prev & COMPLETE == 0 && mark_scheduled(&self.header)
    }

    fn into_task_ref(self: Arc<Self>) -> TaskRef {
        self
    }

    fn is_finished(&self) -> bool {
        self.header.state.load(Ordering::Acquire) & COMPLETE != 0
    }

    fn detach(&self) {
        // SAFETY: runtime thread (JoinHandle is !Send); the cells are never
        // borrowed across a call, and `stage` is only read once complete.
        unsafe {
            *self.join_interest.get() = false;
            drop((*self.join_waker.get()).take());
            if self.header.state.load(Ordering::Acquire) & COMPLETE != 0 {
                drop(std::mem::replace(&mut *self.stage.get(), Stage::Consumed));
            }
        }
    }
}

/// An owned permission to await a spawned task's output; a future that
/// resolves to `Ok(output)`, or to a [`JoinError`] if the task panicked or was
/// aborted.
///
/// Dropping a `JoinHandle` detaches the task: it keeps running and its output
/// is dropped. A `JoinHandle` stays on the thread of its runtime (`!Send`).
pub struct JoinHandle<T> {
    task: Option<Arc<dyn JoinTarget<T>>>,
    _not_send: PhantomData<*const ()>,
}

impl<T> JoinHandle<T> {
    /// Asks the task to stop: its future is dropped the next time the
    /// executor reaches it, and the handle then resolves to a cancelled
    /// [`JoinError`]. Aborting a finished task does nothing.
    pub fn abort(&self) {
        if let Some(task) = &self.task {
            if task.mark_aborted() {
                let task = Arc::clone(task).into_task_ref();
                task.header().shared.clone().schedule(task);
            }
        }
    }

    /// Whether the task's future is gone (finished, panicked or aborted).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let task = self.task.as_ref().expect("JoinHandle polled after completion");
        let result = std::task::ready!(task.poll_join(cx));
        self.task = None;
        Poll::Ready(result)
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a task did not produce its output. `Send + Sync`, so it fits in
/// `io::Error` (there is a `From`) and in error types such as `anyhow`'s.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Cancelled,
    /// The payload sits behind a mutex only to make the error `Sync` (a
    /// panic payload is `Send`, not `Sync`); the message is read once, when
    /// the task panics, so displaying the error never locks.
    Panic {
        payload: std::sync::Mutex<Box<dyn Any + Send + 'static>>,
        message: Option<String>,
    },
}

impl JoinError {
    pub(crate) fn cancelled() -> JoinError {
        JoinError { repr: Repr::Cancelled }
    }

    pub(crate) fn panic(payload: Box<dyn Any + Send + 'static>) -> JoinError {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned());
        JoinError {
            repr: Repr::Panic {
                payload: std::sync::Mutex::new(payload),
                message,
            },
        }
    }

    /// The task was aborted, or its runtime shut down before it finished.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic { .. })
    }

    /// The panic payload, to resume the panic with `std::panic::resume_unwind`.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic { payload, .. } => Ok(payload.into_inner().unwrap_or_else(|e| e.into_inner())),
            Repr::Cancelled => Err(self),
        }
    }

    /// The panic payload. Panics if the task was cancelled instead.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic()
            .expect("JoinError::into_panic on a cancelled task")
    }

    fn panic_message(&self) -> Option<&str> {
        match &self.repr {
            Repr::Panic { message, .. } => message.as_deref(),
            Repr::Cancelled => None,
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repr, self.panic_message()) {
            (Repr::Cancelled, _) => f.write_str("task was cancelled"),
            (Repr::Panic { .. }, Some(msg)) => write!(f, "task panicked: {msg}"),
            (Repr::Panic { .. }, None) => f.write_str("task panicked"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repr, self.panic_message()) {
            (Repr::Cancelled, _) => f.write_str("JoinError::Cancelled"),
            (Repr::Panic { .. }, Some(msg)) => write!(f, "JoinError::Panic({msg:?})"),
            (Repr::Panic { .. }, None) => f.write_str("JoinError::Panic(..)"),
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> std::io::Error {
        std::io::Error::other(e)
    }
}

/// `JoinError` must stay usable as a boxed error across threads.
const _: fn() = || {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<JoinError>();
};
