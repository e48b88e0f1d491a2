//! Where a connection is in its life, and how long it may stay there.
//!
//! Owns: the [`Phase`] names, each phase's timeout, and the one
//! [`Deadline`] a connection keeps. Must never: decide a phase (the
//! connection derives it from what it holds) or touch the timer wheel.
//!
//! One deadline per connection, in ticks of the turn's clock. Progress moves
//! it forward without touching the timer wheel; the owner keeps one wheel
//! timer, re-arms it only when the deadline moves *earlier* than the timer,
//! and a timer that fires before the deadline is simply re-armed
//! (`Connection::on_deadline`). So a busy keep-alive connection costs no
//! timer operation per request.

use std::time::Duration;

use super::config::Config;

/// How long an unanswered client may keep sending after the server decided
/// to close (lingering close), before the connection is closed anyway.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// Where a connection is in its life (the diagram in `connection.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Keep-alive, between requests: nothing buffered, no buffers held.
    Idle,
    /// Part of a request head has arrived.
    ReadingHead,
    /// A request body is arriving.
    ReadingBody,
    /// A body is arriving faster than its handler reads it; reading paused.
    BodyPaused,
    /// A handler did not finish on its first poll and runs as a task.
    HandlerPending,
    /// A streamed response is being fed by a task.
    Streaming,
    /// Output is queued and the client is not taking it.
    Writing,
    /// Half-closed, reading and discarding until the client closes.
    Closing,
}

/// How long `phase` may last without progress, in ms; `None` where a task
/// sets the pace (a handler only when `handler_timeout` bounds it).
pub(crate) fn timeout_ms(phase: Phase, config: &Config) -> Option<u64> {
    let ms = |d: Duration| d.as_millis().min(MAX_TIMEOUT_MS as u128) as u64;
    match phase {
        Phase::Idle => Some(config.keep_alive_ms()),
        Phase::ReadingHead => Some(ms(config.header_timeout)),
        Phase::ReadingBody => Some(ms(config.body_timeout)),
        Phase::Writing => Some(ms(config.write_timeout)),
        Phase::Closing => Some(ms(LINGER)),
        Phase::HandlerPending => config.handler_timeout.map(ms),
        Phase::BodyPaused | Phase::Streaming => None,
    }
}

/// When the connection gives up on what it waits for, and which phase that
/// deadline was set for (a new phase sets a new one).
///
/// The tick is kept in 32 bits, wrapping (49 days): every timeout is capped
/// below 2³¹ ms (24 days), so the signed difference from now always tells
/// the right side, and an idle connection stays within its 120 bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    pub(crate) phase: Phase,
    /// Tick (ms of the runtime's clock), wrapping.
    at: u32,
}

impl Deadline {
    pub(crate) fn new(phase: Phase, tick: u64, timeout: u64) -> Deadline {
        debug_assert!(timeout <= MAX_TIMEOUT_MS);
        Deadline {
            phase,
            at: (tick + timeout) as u32,
        }
    }

    /// The deadline as a full tick, seen from `tick`.
    pub(crate) fn tick(self, tick: u64) -> u64 {
        let ahead = self.at.wrapping_sub(tick as u32) as i32;
        tick.wrapping_add_signed(i64::from(ahead))
    }
}

/// Longest timeout of any phase: 2³¹ − 1 ms (24 days).
pub(crate) const MAX_TIMEOUT_MS: u64 = i32::MAX as u64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapping_deadline_reads_back_from_either_side() {
        for tick in [0u64, 1000, u32::MAX as u64 - 5, u32::MAX as u64 + 10, 7 << 40] {
            for timeout in [0, 1, 75_000, MAX_TIMEOUT_MS] {
                let d = Deadline::new(Phase::Idle, tick, timeout);
                assert_eq!(d.tick(tick), tick + timeout);
                // Seen later (up to the timeout), it still reads the same.
                assert_eq!(d.tick(tick + timeout), tick + timeout);
            }
        }
    }
}
