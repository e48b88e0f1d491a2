//! The pool of std threads behind `spawn_blocking`.
//!
//! Owns: the queue of blocking jobs and the threads that run them. Must never:
//! be entered by the loop thread other than to queue a job (it must not wait
//! on a job), or hold its lock while a job runs.
//!
//! Threads start on demand, up to `MAX_THREADS`, and exit after `KEEP_ALIVE`
//! without work, so an idle runtime holds no extra thread. A job's result goes
//! back through a [`BlockingResult`]: the pool thread stores it and wakes the
//! awaiting task through its (thread-safe) waker, which wakes the loop.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

const MAX_THREADS: usize = 64;
const KEEP_ALIVE: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
    shutdown: bool,
}

#[derive(Default)]
struct PoolInner {
    state: Mutex<PoolState>,
    work: Condvar,
}

pub(crate) struct BlockingPool {
    inner: Arc<PoolInner>,
}

impl BlockingPool {
    pub(crate) fn new() -> BlockingPool {
        BlockingPool {
            inner: Arc::new(PoolInner::default()),
        }
    }

    /// Queues `f` and returns the future of its result (`Err` holds a panic).
    pub(crate) fn run<F, T>(&self, f: F) -> BlockingResult<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let slot = Arc::new(Mutex::new(Slot {
            result: None,
            waker: None,
        }));
        let writer = slot.clone();
        let job: Job = Box::new(move || {
            let result = panic::catch_unwind(AssertUnwindSafe(f));
            let waker = {
                let mut slot = writer.lock().unwrap_or_else(|e| e.into_inner());
                slot.result = Some(result);
                slot.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        });
        let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        state.queue.push_back(job);
        if state.idle > 0 {
            self.inner.work.notify_one();
        } else if state.threads < MAX_THREADS {
            state.threads += 1;
            let inner = self.inner.clone();
            let spawned = thread::Builder::new()
                .name("solo-blocking".into())
                .spawn(move || worker(inner));
            if spawned.is_err() {
                // The job stays queued for a running thread; with none at all
                // it would never run, so report it through the result.
                state.threads -= 1;
                if state.threads == 0 {
                    let job = state.queue.pop_back();
                    drop(state);
                    drop(job);
                    slot.lock().unwrap_or_else(|e| e.into_inner()).result =
                        Some(Err(Box::new("spawn_blocking: could not start a thread")));
                }
            }
        }
        BlockingResult { slot }
    }

    /// Tells the threads to exit once the queue is empty; does not wait.
    pub(crate) fn shutdown(&self) {
        let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        state.shutdown = true;
        state.queue.clear();
        self.inner.work.notify_all();
    }
}

fn worker(inner: Arc<PoolInner>) {
    let mut state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if let Some(job) = state.queue.pop_front() {
            drop(state);
            job();
            state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            continue;
        }
        if state.shutdown {
            break;
        }
        state.idle += 1;
        let (next, timeout) = inner
            .work
            .wait_timeout(state, KEEP_ALIVE)
            .unwrap_or_else(|e| e.into_inner());
        state = next;
        state.idle -= 1;
        if timeout.timed_out() && state.queue.is_empty() {
            break;
        }
    }
    state.threads -= 1;
}

struct Slot<T> {
    result: Option<thread::Result<T>>,
    waker: Option<Waker>,
}

/// Resolves to the result of a blocking job.
pub(crate) struct BlockingResult<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T> Future for BlockingResult<T> {
    type Output = thread::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match slot.result.take() {
            Some(result) => Poll::Ready(result),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
