//! Cooperative budgeting: how many I/O operations a task may complete in one
//! poll before it is made to yield, so one busy task cannot starve the loop.
//!
//! Owns: the running task's budget (thread-local). Must never: know about
//! tasks or the executor beyond "a poll starts" (`reset_budget`, called by
//! the task before polling its future) and "an operation is charged"
//! (`poll_budget`, called by the I/O types).

use std::cell::Cell;
use std::task::{Context, Poll};

/// I/O operations a task may complete in one poll before it is made to yield.
const BUDGET: u32 = 128;

thread_local! {
    static BUDGET_LEFT: Cell<u32> = const { Cell::new(u32::MAX) };
}

/// A poll starts: the task gets a full budget.
pub(crate) fn reset_budget() {
    BUDGET_LEFT.with(|b| b.set(BUDGET));
}

/// Charges one I/O operation to the running task's budget. When the budget is
/// spent, the task is woken (so it is rescheduled, at the back of the queue)
/// and told to return `Pending`.
pub(crate) fn poll_budget(cx: &mut Context<'_>) -> Poll<()> {
    BUDGET_LEFT.with(|b| match b.get() {
        0 => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        n => {
            b.set(n - 1);
            Poll::Ready(())
        }
    })
}
