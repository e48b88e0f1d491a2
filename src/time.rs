//! Time on the runtime's timer wheel: `sleep`, `sleep_until`, `timeout`,
//! `interval`.
//!
//! Owns: the futures that wait on the wheel and the rule that turns an
//! `Instant` into a wheel tick. Must never: complete before its deadline (ticks
//! are rounded up), or leave a timer in the wheel after the future is dropped.
//!
//! The wheel ticks in milliseconds, so a timer fires at the first loop turn at
//! or after the millisecond that follows its deadline: up to 1 ms late on an
//! idle loop, never early.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::executor::{Core, Expiry};
use crate::timer::TimerKey;

/// About 30 years: what an unrepresentable deadline is clamped to.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

fn far_future() -> Instant {
    Instant::now() + FAR_FUTURE
}

/// Waits until `duration` has elapsed.
///
/// Panics outside a runtime.
///
/// ```
/// use std::time::{Duration, Instant};
/// solo::Runtime::new().unwrap().block_on(async {
///     let start = Instant::now();
///     solo::time::sleep(Duration::from_millis(20)).await;
///     assert!(start.elapsed() >= Duration::from_millis(20)); // never early
/// });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(Instant::now().checked_add(duration).unwrap_or_else(far_future))
}

/// Waits until `deadline`.
///
/// Panics outside a runtime.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        core: Core::current(),
        deadline,
        state: State::Unregistered,
    }
}

#[derive(Clone, Copy)]
enum State {
    Unregistered,
    Registered(TimerKey),
    Elapsed,
}

/// A future that completes at its deadline. It is `Unpin`, so it can be
/// polled in a `select` without pinning it first.
pub struct Sleep {
    core: Rc<Core>,
    deadline: Instant,
    state: State,
}

impl Sleep {
    /// The instant this sleep completes at.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has been reached (as seen by the runtime).
    pub fn is_elapsed(&self) -> bool {
        match self.state {
            State::Elapsed => true,
            State::Registered(key) => !self.core.timers.borrow().contains(key),
            State::Unregistered => self.core.deadline_tick(self.deadline) <= self.core.timers.borrow().elapsed(),
        }
    }

    /// Moves the deadline; the sleep becomes pending again if it had elapsed.
    pub fn reset(&mut self, deadline: Instant) {
        self.cancel();
        self.deadline = deadline;
        self.state = State::Unregistered;
    }

    fn cancel(&mut self) {
        if let State::Registered(key) = self.state {
            let waker = self.core.timers.borrow_mut().cancel(key);
            drop(waker);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut timers = this.core.timers.borrow_mut();
        match this.state {
            State::Elapsed => Poll::Ready(()),
            State::Registered(key) => match timers.payload_mut(key) {
                Some(Expiry::Wake(waker)) => {
                    if !waker.will_wake(cx.waker()) {
                        *waker = cx.waker().clone();
                    }
                    Poll::Pending
                }
                Some(Expiry::Call(..)) => unreachable!("a Sleep's timer always wakes"),
                None => {
                    this.state = State::Elapsed;
                    Poll::Ready(())
                }
            },
            State::Unregistered => {
                let tick = this.core.deadline_tick(this.deadline);
                // The wheel's `elapsed` trails the clock, so a deadline at or
                // before it has certainly passed.
                if tick <= timers.elapsed() {
                    this.state = State::Elapsed;
                    return Poll::Ready(());
                }
                this.state = State::Registered(timers.insert(tick, Expiry::Wake(cx.waker().clone())));
                Poll::Pending
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("deadline", &self.deadline).finish()
    }
}

/// A timer at a tick of the wheel, for state machines that keep their own
/// deadline and know their `Core` (a `Sleep` without its `Rc<Core>` and
/// `Instant`: 12 bytes instead of 40, for a WebSocket's idle timeout). The
/// owner must `cancel` it before dropping it, or it fires once for nothing.
#[derive(Debug, Default)]
#[cfg_attr(not(feature = "http-server"), allow(dead_code))] // used by the HTTP layer
pub(crate) struct TickTimer(Option<crate::timer::TimerKey>);

#[cfg_attr(not(feature = "http-server"), allow(dead_code))] // used by the HTTP layer
impl TickTimer {
    /// Ready once tick `at` is due; otherwise the waker is registered (or
    /// updated) on the wheel.
    pub(crate) fn poll_at(&mut self, core: &Core, at: u64, cx: &mut Context<'_>) -> Poll<()> {
        let mut timers = core.timers.borrow_mut();
        match self.0 {
            Some(key) => match timers.payload_mut(key) {
                Some(Expiry::Wake(waker)) => {
                    if !waker.will_wake(cx.waker()) {
                        *waker = cx.waker().clone();
                    }
                    Poll::Pending
                }
                Some(Expiry::Call(..)) => unreachable!("a TickTimer always wakes"),
                None => {
                    self.0 = None;
                    Poll::Ready(())
                }
            },
            None if at <= timers.elapsed() => Poll::Ready(()),
            None => {
                self.0 = Some(timers.insert(at, Expiry::Wake(cx.waker().clone())));
                Poll::Pending
            }
        }
    }

    /// Removes the timer, if set (O(1)).
    pub(crate) fn cancel(&mut self, core: &Core) {
        if let Some(key) = self.0.take() {
            drop(core.timers.borrow_mut().cancel(key));
        }
    }
}

/// The error of [`timeout`]: the deadline passed before the future finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(_: Elapsed) -> std::io::Error {
        std::io::ErrorKind::TimedOut.into()
    }
}

/// Runs `future` for at most `duration`. The future is polled first, so one
/// that is already ready wins even with a zero duration.
///
/// Panics outside a runtime.
///
/// ```
/// use std::time::Duration;
/// use solo::time::{sleep, timeout};
/// solo::Runtime::new().unwrap().block_on(async {
///     let slow = timeout(Duration::from_millis(10), sleep(Duration::from_secs(60))).await;
///     assert!(slow.is_err());
///     assert_eq!(timeout(Duration::ZERO, async { 7 }).await.unwrap(), 7);
/// });
/// ```
pub fn timeout<F: Future>(duration: Duration, future: F) -> impl Future<Output = Result<F::Output, Elapsed>> {
    timeout_at(Instant::now().checked_add(duration).unwrap_or_else(far_future), future)
}

/// Runs `future` until `deadline` at the latest.
///
/// Panics outside a runtime.
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> impl Future<Output = Result<F::Output, Elapsed>> {
    let mut sleep = sleep_until(deadline);
    async move {
        let mut future = pin!(future);
        poll_fn(|cx| {
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            match Pin::new(&mut sleep).poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}

/// What an [`Interval`] does when ticks were missed (the loop was busy past
/// one or more periods).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissedTickBehavior {
    /// Fire the missed ticks back to back until caught up (tokio's default).
    #[default]
    Burst,
    /// Restart the schedule from now: the next tick is one period after the
    /// late one.
    Delay,
    /// Drop the missed ticks and keep the original phase.
    Skip,
}

/// Ticks every `period`; the first tick completes immediately.
///
/// Panics if `period` is zero, or outside a runtime.
///
/// ```
/// use std::time::{Duration, Instant};
/// solo::Runtime::new().unwrap().block_on(async {
///     let mut every = solo::time::interval(Duration::from_millis(5));
///     let start = Instant::now();
///     for _ in 0..3 {
///         every.tick().await; // at 0, 5 and 10 ms
///     }
///     assert!(start.elapsed() >= Duration::from_millis(10));
/// });
/// ```
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Ticks at `start` and every `period` after it.
///
/// Panics if `period` is zero, or outside a runtime.
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(!period.is_zero(), "interval: `period` must be non-zero");
    Interval {
        sleep: sleep_until(start),
        period,
        missed: MissedTickBehavior::default(),
    }
}

/// A periodic timer; see [`interval`].
#[derive(Debug)]
pub struct Interval {
    sleep: Sleep,
    period: Duration,
    missed: MissedTickBehavior,
}

impl Interval {
    /// Waits for the next tick and returns its scheduled instant.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        std::task::ready!(Pin::new(&mut self.sleep).poll(cx));
        let scheduled = self.sleep.deadline();
        let now = Instant::now();
        let next = scheduled.checked_add(self.period).unwrap_or_else(far_future);
        let next = if next > now {
            next
        } else {
            match self.missed {
                MissedTickBehavior::Burst => next,
                MissedTickBehavior::Delay => now.checked_add(self.period).unwrap_or_else(far_future),
                MissedTickBehavior::Skip => {
                    let behind = now.duration_since(scheduled).as_nanos();
                    let periods = behind / self.period.as_nanos() + 1;
                    let skip = self.period.as_nanos().saturating_mul(periods);
                    scheduled
                        .checked_add(Duration::from_nanos(skip.min(u64::MAX as u128) as u64))
                        .unwrap_or_else(far_future)
                }
            }
        };
        self.sleep.reset(next);
        Poll::Ready(scheduled)
    }

    /// Restarts the schedule: the next tick is one period from now.
    pub fn reset(&mut self) {
        self.sleep.reset(Instant::now() + self.period);
    }

    /// The period between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The current missed-tick behaviour.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed
    }

    /// Sets what happens when ticks are missed.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }
}
