//! Single-threaded synchronisation: `Semaphore`, `oneshot`, bounded `mpsc`.
//!
//! Owns: coordination between tasks of one runtime. Must never: be shared
//! across threads (everything here is `!Send`, built on `Rc` and `Cell`, so
//! there is no atomic or lock on any path), or lose a wake-up when a waiting
//! future is dropped.
//!
//! The semaphore is fair (first come, first served): released permits are
//! handed to the oldest waiter, and a waiter dropped after being handed
//! permits gives them back. The bounded channel is a queue plus a semaphore
//! whose permits are its free slots, so a full channel's senders queue in
//! order and a dropped send never strands capacity.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A waiter queued on a [`Semaphore`].
struct Waiter {
    wanted: usize,
    /// Set when the semaphore hands this waiter its permits.
    granted: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// Counts permits; `acquire().await` waits for one. The tool for
/// backpressure: hold a permit per unit of work in flight.
pub struct Semaphore {
    permits: Cell<usize>,
    closed: Cell<bool>,
    waiters: RefCell<VecDeque<Rc<Waiter>>>,
}

/// The error of acquiring from a closed [`Semaphore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcquireError(());

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("semaphore closed")
    }
}

impl std::error::Error for AcquireError {}

/// Why [`Semaphore::try_acquire`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryAcquireError {
    /// The semaphore was closed.
    Closed,
    /// Not enough permits right now.
    NoPermits,
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryAcquireError::Closed => f.write_str("semaphore closed"),
            TryAcquireError::NoPermits => f.write_str("no permits available"),
        }
    }
}

impl std::error::Error for TryAcquireError {}

/// ```
/// use std::rc::Rc;
/// use solo::sync::Semaphore;
/// solo::Runtime::new().unwrap().block_on(async {
///     // At most two of the five tasks hold a permit at once.
///     let pool = Rc::new(Semaphore::new(2));
///     let tasks: Vec<_> = (0..5)
///         .map(|i| {
///             let pool = pool.clone();
///             solo::spawn(async move {
///                 let _permit = pool.acquire().await.unwrap();
///                 solo::time::sleep(std::time::Duration::from_millis(1)).await;
///                 i
///             })
///         })
///         .collect();
///     assert!(pool.try_acquire().is_ok()); // the tasks have not started yet
///     for t in tasks {
///         t.await.unwrap();
///     }
///     assert_eq!(pool.available_permits(), 2);
/// });
/// ```
impl Semaphore {
    /// A semaphore with `permits` permits.
    pub fn new(permits: usize) -> Semaphore {
        Semaphore {
            permits: Cell::new(permits),
            closed: Cell::new(false),
            waiters: RefCell::new(VecDeque::new()),
        }
    }

    /// Permits available now.
    pub fn available_permits(&self) -> usize {
        self.permits.get()
    }

    /// Waits for one permit, released when the permit is dropped.
    pub async fn acquire(&self) -> Result<SemaphorePermit<'_>, AcquireError> {
        self.acquire_many(1).await
    }

    /// Waits for `n` permits at once (queued behind earlier waiters).
    pub async fn acquire_many(&self, n: usize) -> Result<SemaphorePermit<'_>, AcquireError> {
        Acquire {
            semaphore: self,
            wanted: n,
            waiter: None,
        }
        .await?;
        Ok(SemaphorePermit {
            semaphore: self,
            count: n,
        })
    }

    /// Like [`acquire`](Self::acquire) on an `Rc<Semaphore>`, with a permit
    /// that owns its reference (to move into a spawned task).
    pub async fn acquire_owned(self: Rc<Self>) -> Result<OwnedSemaphorePermit, AcquireError> {
        Acquire {
            semaphore: &self,
            wanted: 1,
            waiter: None,
        }
        .await?;
        Ok(OwnedSemaphorePermit {
            semaphore: self,
            count: 1,
        })
    }

    /// Takes a permit if one is free now and nobody is queued before us.
    pub fn try_acquire(&self) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_take(1)?;
        Ok(SemaphorePermit {
            semaphore: self,
            count: 1,
        })
    }

    /// [`try_acquire`](Self::try_acquire) with an owned permit.
    pub fn try_acquire_owned(self: Rc<Self>) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.try_take(1)?;
        Ok(OwnedSemaphorePermit {
            semaphore: self,
            count: 1,
        })
    }

    fn try_take(&self, n: usize) -> Result<(), TryAcquireError> {
        if self.closed.get() {
            return Err(TryAcquireError::Closed);
        }
        if self.permits.get() < n || !self.waiters.borrow().is_empty() {
            return Err(TryAcquireError::NoPermits);
        }
        self.permits.set(self.permits.get() - n);
        Ok(())
    }

    /// Adds `n` permits, handing them to queued waiters first.
    pub fn add_permits(&self, n: usize) {
        self.permits.set(self.permits.get() + n);
        self.grant();
    }

    /// Closes the semaphore: every waiter and every later acquire fails.
    /// Permits already held stay valid.
    pub fn close(&self) {
        self.closed.set(true);
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters {
            if let Some(waker) = w.waker.borrow_mut().take() {
                waker.wake();
            }
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Hands permits to waiters in order while the oldest can be satisfied.
    fn grant(&self) {
        loop {
            let waiter = {
                let mut waiters = self.waiters.borrow_mut();
                match waiters.front() {
                    Some(w) if w.wanted <= self.permits.get() => {
                        self.permits.set(self.permits.get() - w.wanted);
                        waiters.pop_front().expect("front exists")
                    }
                    _ => return,
                }
            };
            waiter.granted.set(true);
            let waker = waiter.waker.borrow_mut().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("permits", &self.permits.get())
            .field("waiters", &self.waiters.borrow().len())
            .field("closed", &self.closed.get())
            .finish()
    }
}

struct Acquire<'a> {
    semaphore: &'a Semaphore,
    wanted: usize,
    waiter: Option<Rc<Waiter>>,
}

impl Future for Acquire<'_> {
    type Output = Result<(), AcquireError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let sem = self.semaphore;
        if let Some(w) = &self.waiter {
            if w.granted.get() {
                self.waiter = None;
                return Poll::Ready(Ok(()));
            }
            if sem.closed.get() {
                self.waiter = None;
                return Poll::Ready(Err(AcquireError(())));
            }
            let mut slot = w.waker.borrow_mut();
            if !slot.as_ref().is_some_and(|old| old.will_wake(cx.waker())) {
                *slot = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        match sem.try_take(self.wanted) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(TryAcquireError::Closed) => Poll::Ready(Err(AcquireError(()))),
            Err(TryAcquireError::NoPermits) => {
                let waiter = Rc::new(Waiter {
                    wanted: self.wanted,
                    granted: Cell::new(false),
                    waker: RefCell::new(Some(cx.waker().clone())),
                });
                sem.waiters.borrow_mut().push_back(waiter.clone());
                self.waiter = Some(waiter);
                Poll::Pending
            }
        }
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        let Some(w) = self.waiter.take() else { return };
        if w.granted.get() {
            // Permits handed to a waiter that went away go back to the next.
            self.semaphore.add_permits(w.wanted);
        } else {
            self.semaphore
                .waiters
                .borrow_mut()
                .retain(|other| !Rc::ptr_eq(other, &w));
            // Removing the head may let the next waiter through.
            self.semaphore.grant();
        }
    }
}

/// Permits borrowed from a [`Semaphore`]; released on drop.
#[must_use = "the permit is released as soon as it is dropped"]
pub struct SemaphorePermit<'a> {
    semaphore: &'a Semaphore,
    count: usize,
}

impl SemaphorePermit<'_> {
    /// Keeps the permits out of the semaphore for good.
    pub fn forget(mut self) {
        self.count = 0;
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        if self.count > 0 {
            self.semaphore.add_permits(self.count);
        }
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").field("count", &self.count).finish()
    }
}

/// A permit owning its `Rc<Semaphore>`; released on drop.
#[must_use = "the permit is released as soon as it is dropped"]
pub struct OwnedSemaphorePermit {
    semaphore: Rc<Semaphore>,
    count: usize,
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        if self.count > 0 {
            self.semaphore.add_permits(self.count);
        }
    }
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .field("count", &self.count)
            .finish()
    }
}

/// A channel for one value.
pub mod oneshot {
    use super::*;

    struct Inner<T> {
        value: Option<T>,
        sender_alive: bool,
        receiver_alive: bool,
        receiver_waker: Option<Waker>,
        sender_waker: Option<Waker>,
    }

    /// Creates a one-value channel.
    ///
    /// ```
    /// solo::Runtime::new().unwrap().block_on(async {
    ///     let (tx, rx) = solo::sync::oneshot::channel();
    ///     solo::spawn(async move { tx.send("done").unwrap() });
    ///     assert_eq!(rx.await.unwrap(), "done");
    /// });
    /// ```
    pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
        let inner = Rc::new(RefCell::new(Inner {
            value: None,
            sender_alive: true,
            receiver_alive: true,
            receiver_waker: None,
            sender_waker: None,
        }));
        (Sender { inner: inner.clone() }, Receiver { inner })
    }

    /// Sends the one value.
    pub struct Sender<T> {
        inner: Rc<RefCell<Inner<T>>>,
    }

    /// Awaits the value; resolves to [`RecvError`] if the sender is dropped
    /// without sending.
    pub struct Receiver<T> {
        inner: Rc<RefCell<Inner<T>>>,
    }

    /// The sender was dropped without sending.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RecvError(());

    impl fmt::Display for RecvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("oneshot sender dropped without sending")
        }
    }

    impl std::error::Error for RecvError {}

    /// Why [`Receiver::try_recv`] returned nothing.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum TryRecvError {
        /// No value yet.
        Empty,
        /// The sender is gone, or the value was already taken.
        Closed,
    }

    impl<T> Sender<T> {
        /// Sends `value`; gives it back if the receiver is gone.
        pub fn send(self, value: T) -> Result<(), T> {
            let waker = {
                let mut inner = self.inner.borrow_mut();
                if !inner.receiver_alive {
                    return Err(value);
                }
                inner.value = Some(value);
                inner.receiver_waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
            Ok(())
        }

        /// Whether the receiver has been dropped.
        pub fn is_closed(&self) -> bool {
            !self.inner.borrow().receiver_alive
        }

        /// Waits until the receiver is dropped (to stop work nobody awaits).
        pub async fn closed(&mut self) {
            poll_fn(|cx| {
                let mut inner = self.inner.borrow_mut();
                if !inner.receiver_alive {
                    return Poll::Ready(());
                }
                inner.sender_waker = Some(cx.waker().clone());
                Poll::Pending
            })
            .await
        }
    }

    impl<T> Drop for Sender<T> {
        fn drop(&mut self) {
            let waker = {
                let mut inner = self.inner.borrow_mut();
                inner.sender_alive = false;
                inner.receiver_waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    impl<T> Receiver<T> {
        /// Takes the value if it has arrived.
        pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
            let mut inner = self.inner.borrow_mut();
            match inner.value.take() {
                Some(v) => Ok(v),
                None if inner.sender_alive => Err(TryRecvError::Empty),
                None => Err(TryRecvError::Closed),
            }
        }

        /// Closes the channel: a later `send` fails.
        pub fn close(&mut self) {
            let waker = {
                let mut inner = self.inner.borrow_mut();
                inner.receiver_alive = false;
                inner.sender_waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    impl<T> Future for Receiver<T> {
        type Output = Result<T, RecvError>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let mut inner = self.inner.borrow_mut();
            if let Some(v) = inner.value.take() {
                return Poll::Ready(Ok(v));
            }
            if !inner.sender_alive {
                return Poll::Ready(Err(RecvError(())));
            }
            if !inner.receiver_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                inner.receiver_waker = Some(cx.waker().clone());
            }
            Poll::Pending
        }
    }

    impl<T> Drop for Receiver<T> {
        fn drop(&mut self) {
            self.close();
        }
    }

    impl<T> fmt::Debug for Sender<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("oneshot::Sender")
        }
    }

    impl<T> fmt::Debug for Receiver<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("oneshot::Receiver")
        }
    }
}

/// A bounded multi-producer, single-consumer channel.
pub mod mpsc {
    use super::*;

    struct Chan<T> {
        queue: RefCell<VecDeque<T>>,
        /// One permit per free slot.
        slots: Semaphore,
        senders: Cell<usize>,
        receiver_waker: RefCell<Option<Waker>>,
    }

    /// Creates a channel holding at most `capacity` values; `send().await`
    /// waits while it is full. Panics if `capacity` is zero.
    ///
    /// ```
    /// solo::Runtime::new().unwrap().block_on(async {
    ///     let (tx, mut rx) = solo::sync::mpsc::channel(2);
    ///     solo::spawn(async move {
    ///         for i in 0..5 {
    ///             tx.send(i).await.unwrap(); // waits while two are queued
    ///         }
    ///     }); // the sender drops here: the receiver sees the end
    ///     let mut got = Vec::new();
    ///     while let Some(i) = rx.recv().await {
    ///         got.push(i);
    ///     }
    ///     assert_eq!(got, [0, 1, 2, 3, 4]);
    /// });
    /// ```
    pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
        assert!(capacity > 0, "mpsc::channel: capacity must be at least 1");
        let chan = Rc::new(Chan {
            queue: RefCell::new(VecDeque::with_capacity(capacity.min(1024))),
            slots: Semaphore::new(capacity),
            senders: Cell::new(1),
            receiver_waker: RefCell::new(None),
        });
        (Sender { chan: chan.clone() }, Receiver { chan })
    }

    /// The sending half; clone it for more producers.
    pub struct Sender<T> {
        chan: Rc<Chan<T>>,
    }

    /// The receiving half.
    pub struct Receiver<T> {
        chan: Rc<Chan<T>>,
    }

    /// The receiver is gone; the value is given back.
    #[derive(PartialEq, Eq)]
    pub struct SendError<T>(pub T);

    impl<T> fmt::Debug for SendError<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("SendError(..)")
        }
    }

    impl<T> fmt::Display for SendError<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("channel closed")
        }
    }

    impl<T> std::error::Error for SendError<T> {}

    /// Why [`Sender::try_send`] failed; the value is given back.
    #[derive(PartialEq, Eq)]
    pub enum TrySendError<T> {
        /// The channel is full.
        Full(T),
        /// The receiver is gone.
        Closed(T),
    }

    impl<T> fmt::Debug for TrySendError<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                TrySendError::Full(_) => f.write_str("Full(..)"),
                TrySendError::Closed(_) => f.write_str("Closed(..)"),
            }
        }
    }

    /// Why [`Receiver::try_recv`] returned nothing.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum TryRecvError {
        /// Nothing queued now.
        Empty,
        /// Nothing queued and every sender is gone.
        Disconnected,
    }

    impl<T> Chan<T> {
        fn push(&self, value: T) {
            self.queue.borrow_mut().push_back(value);
            let waker = self.receiver_waker.borrow_mut().take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    impl<T> Sender<T> {
        /// Sends `value`, waiting for a free slot while the channel is full.
        /// Fails, giving the value back, once the receiver is gone.
        pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
            match self.chan.slots.acquire().await {
                Ok(permit) => {
                    // The slot now belongs to the queued value until received.
                    permit.forget();
                    self.chan.push(value);
                    Ok(())
                }
                Err(_) => Err(SendError(value)),
            }
        }

        /// Sends `value` if there is a free slot now.
        pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
            match self.chan.slots.try_acquire() {
                Ok(permit) => {
                    permit.forget();
                    self.chan.push(value);
                    Ok(())
                }
                Err(TryAcquireError::Closed) => Err(TrySendError::Closed(value)),
                Err(TryAcquireError::NoPermits) => Err(TrySendError::Full(value)),
            }
        }

        /// Whether the receiver is gone.
        pub fn is_closed(&self) -> bool {
            self.chan.slots.is_closed()
        }

        /// Free slots now.
        pub fn capacity(&self) -> usize {
            self.chan.slots.available_permits()
        }
    }

    impl<T> Clone for Sender<T> {
        fn clone(&self) -> Self {
            self.chan.senders.set(self.chan.senders.get() + 1);
            Sender {
                chan: self.chan.clone(),
            }
        }
    }

    impl<T> Drop for Sender<T> {
        fn drop(&mut self) {
            self.chan.senders.set(self.chan.senders.get() - 1);
            if self.chan.senders.get() == 0 {
                let waker = self.chan.receiver_waker.borrow_mut().take();
                if let Some(w) = waker {
                    w.wake();
                }
            }
        }
    }

    impl<T> Receiver<T> {
        /// Receives the next value; `None` once every sender is gone and the
        /// queue is empty.
        pub async fn recv(&mut self) -> Option<T> {
            poll_fn(|cx| self.poll_recv(cx)).await
        }

        /// Polls for the next value.
        pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
            match self.try_recv() {
                Ok(v) => Poll::Ready(Some(v)),
                Err(TryRecvError::Disconnected) => Poll::Ready(None),
                Err(TryRecvError::Empty) => {
                    let mut slot = self.chan.receiver_waker.borrow_mut();
                    if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *slot = Some(cx.waker().clone());
                    }
                    Poll::Pending
                }
            }
        }

        /// Takes a value if one is queued.
        pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
            let value = self.chan.queue.borrow_mut().pop_front();
            match value {
                Some(v) => {
                    self.chan.slots.add_permits(1);
                    Ok(v)
                }
                None if self.chan.senders.get() == 0 => Err(TryRecvError::Disconnected),
                None => Err(TryRecvError::Empty),
            }
        }

        /// Closes the channel: senders fail from now on; values already
        /// queued can still be received.
        pub fn close(&mut self) {
            self.chan.slots.close();
        }

        /// Values queued now.
        pub fn len(&self) -> usize {
            self.chan.queue.borrow().len()
        }

        /// Whether nothing is queued now.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }
    }

    impl<T> Drop for Receiver<T> {
        fn drop(&mut self) {
            self.close();
            // Values nobody will receive are dropped now, not when the last
            // sender goes.
            let queued = std::mem::take(&mut *self.chan.queue.borrow_mut());
            drop(queued);
        }
    }

    impl<T> fmt::Debug for Sender<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("mpsc::Sender")
                .field("closed", &self.is_closed())
                .finish()
        }
    }

    impl<T> fmt::Debug for Receiver<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("mpsc::Receiver").field("len", &self.len()).finish()
        }
    }
}
