//! The server's counters and latency histogram, and the process's own RSS
//! and CPU time as the OS reports them.
//!
//! Owns: every figure `Server::stats()` reports. Must never: estimate,
//! sample or make up a figure; each one is counted or read from the OS.

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::executor::TurnEnd;

/// Log-linear histogram of microseconds: 16 linear sub-buckets per power of
/// two, so any recorded value is reported within 1/16 (6.25 %) of itself.
pub struct Histogram {
    buckets: [Cell<u64>; BUCKETS],
    count: Cell<u64>,
    max: Cell<u64>,
    /// Sum of every value recorded (what a Prometheus `_sum` reports).
    sum: Cell<u64>,
}

const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB as usize;

fn bucket_of(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros() - SUB_BITS + 1;
    let sub = (v >> (exp - 1)) - SUB;
    (exp as u64 * SUB + sub) as usize
}

/// The largest value that lands in bucket `b` (what a percentile reports:
/// an upper bound, never an underestimate).
fn bucket_high(b: usize) -> u64 {
    let b = b as u64;
    if b < SUB {
        return b;
    }
    let exp = b / SUB;
    let sub = b % SUB;
    ((SUB + sub + 1) << (exp - 1)) - 1
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .field("p50_us", &self.quantile(0.5))
            .field("p99_us", &self.quantile(0.99))
            .field("max_us", &self.max())
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| Cell::new(0)),
            count: Cell::new(0),
            max: Cell::new(0),
            sum: Cell::new(0),
        }
    }
}

impl Histogram {
    /// Records one value in microseconds.
    pub fn record(&self, micros: u64) {
        self.record_n(micros, 1);
    }

    /// Records `micros` `n` times (a batch of pipelined responses shares one
    /// latency): the same as `n` calls of `record`.
    pub(crate) fn record_n(&self, micros: u64, n: u64) {
        let b = &self.buckets[bucket_of(micros)];
        b.set(b.get() + n);
        self.count.set(self.count.get() + n);
        self.max.set(self.max.get().max(micros));
        self.sum.set(self.sum.get().saturating_add(micros.saturating_mul(n)));
    }

    /// The sum of every value recorded, in microseconds.
    pub fn sum(&self) -> u64 {
        self.sum.get()
    }

    /// How many recorded values are at most `micros`, counting only the
    /// buckets wholly at or below it (so it never overcounts; a bucket that
    /// straddles `micros` is left out, an error of at most 6.25 % of it).
    pub fn count_at_most(&self, micros: u64) -> u64 {
        self.buckets
            .iter()
            .enumerate()
            .take_while(|(i, _)| bucket_high(*i) <= micros)
            .map(|(_, b)| b.get())
            .sum()
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count.get()
    }

    /// The value at quantile `q` (0.0 to 1.0), in microseconds: the upper
    /// edge of the bucket it falls in, capped at the maximum seen.
    pub fn quantile(&self, q: f64) -> u64 {
        let n = self.count.get();
        if n == 0 {
            return 0;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.get();
            if seen >= rank {
                return bucket_high(i).min(self.max.get());
            }
        }
        self.max.get()
    }

    /// The largest value recorded.
    pub fn max(&self) -> u64 {
        self.max.get()
    }

    /// Adds every value recorded in `other` (e.g. from another process).
    pub fn merge(&self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter().zip(&other.buckets) {
            mine.set(mine.get() + theirs.get());
        }
        self.count.set(self.count.get() + other.count.get());
        self.max.set(self.max.get().max(other.max.get()));
        self.sum.set(self.sum.get().saturating_add(other.sum.get()));
    }

    /// One line of text: `max`, `s` and the sum, then `bucket:count` for
    /// non-empty buckets.
    pub fn to_line(&self) -> String {
        let mut line = format!("{} s{}", self.max.get(), self.sum.get());
        for (i, b) in self.buckets.iter().enumerate().filter(|(_, b)| b.get() > 0) {
            line.push_str(&format!(" {i}:{}", b.get()));
        }
        line
    }

    /// Parses what [`to_line`](Self::to_line) wrote.
    pub fn from_line(line: &str) -> Option<Histogram> {
        let h = Histogram::default();
        let mut parts = line.split_whitespace();
        h.max.set(parts.next()?.parse().ok()?);
        for part in parts {
            if let Some(sum) = part.strip_prefix('s') {
                h.sum.set(sum.parse().ok()?);
                continue;
            }
            let (i, n) = part.split_once(':')?;
            let (i, n): (usize, u64) = (i.parse().ok()?, n.parse().ok()?);
            h.buckets.get(i)?.set(n);
            h.count.set(h.count.get() + n);
        }
        Some(h)
    }
}

/// Live counters of one server.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) accepted: Cell<u64>,
    pub(crate) active: Cell<u64>,
    pub(crate) requests: Cell<u64>,
    pub(crate) responses: [Cell<u64>; 5],
    pub(crate) bytes_in: Cell<u64>,
    pub(crate) bytes_out: Cell<u64>,
    pub(crate) parse_errors: Cell<u64>,
    pub(crate) timeouts: Cell<u64>,
    pub(crate) handler_panics: Cell<u64>,
    pub(crate) accept_errors: Cell<u64>,
    pub(crate) refused: Cell<u64>,
    pub(crate) latency: Histogram,
    /// Batches answered in this turn, not yet in `latency`: `(start_ns,
    /// responses)`, the batches with the same start (a turn's clock) added
    /// together. Emptied when the turn ends (`TurnEnd`) or a snapshot is
    /// taken.
    latency_pending: RefCell<Vec<(u64, u64)>>,
    /// The runtime this server's turns run on, once its driver is made.
    turn: OnceCell<TurnLink>,
}

/// What the counters need of the runtime to time a batch to its turn's end.
pub(crate) struct TurnLink {
    /// Set when a batch is answered: the runtime then ends the turn with a
    /// clock read and tells the counters (`Core::add_turn_end`).
    pub(crate) due: Rc<Cell<bool>>,
    /// Where the runtime's nanoseconds count from.
    pub(crate) origin: Instant,
}

impl TurnEnd for Counters {
    fn turn_ended(&self, at_ns: u64) {
        self.settle_latency(at_ns);
    }
}

pub(crate) fn add(c: &Cell<u64>, n: u64) {
    c.set(c.get() + n);
}

pub(crate) fn sub(c: &Cell<u64>, n: u64) {
    c.set(c.get() - n);
}

impl Counters {
    pub(crate) fn response(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        add(&self.responses[class], 1);
    }

    /// Links the counters to the runtime whose turns time their batches;
    /// once (a server runs on one runtime).
    pub(crate) fn link_turns(&self, link: TurnLink) {
        let linked = self.turn.set(link).is_ok();
        debug_assert!(linked, "a server's counters linked to a second runtime");
    }

    /// A batch of `responses` whose first request was parsed at `start_ns`
    /// (the runtime's nanoseconds: its turn's clock) was fully written: its
    /// latency ends when the turn's work does: one clock read a turn for
    /// every connection (nginx caches its clock once a loop iteration too,
    /// at its poll's return), so a figure can be late by the rest of the
    /// turn, never early.
    pub(crate) fn answered(&self, start_ns: u64, responses: u64) {
        let mut pending = self.latency_pending.borrow_mut();
        match pending.last_mut() {
            Some((at, n)) if *at == start_ns => *n += responses,
            _ => pending.push((start_ns, responses)),
        }
        if let Some(link) = self.turn.get() {
            link.due.set(true);
        }
    }

    /// Records the pending batches as ended at `end_ns`.
    fn settle_latency(&self, end_ns: u64) {
        let mut pending = self.latency_pending.borrow_mut();
        for &(start_ns, n) in pending.iter() {
            self.latency.record_n(end_ns.saturating_sub(start_ns) / 1_000, n);
        }
        pending.clear();
    }

    /// Records what is pending as ended now (a snapshot, the server's end).
    pub(crate) fn settle_now(&self) {
        if self.latency_pending.borrow().is_empty() {
            return;
        }
        // Only a driver's connections answer, and the driver links first.
        let Some(link) = self.turn.get() else {
            debug_assert!(false, "latency pending on counters no runtime drives");
            return;
        };
        self.settle_latency(Instant::now().saturating_duration_since(link.origin).as_nanos() as u64);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        // Figures as of now: a batch answered in this turn is counted.
        self.settle_now();
        let (rss, cpu) = process_usage();
        let l = &self.latency;
        Stats {
            accepted: self.accepted.get(),
            active: self.active.get(),
            requests: self.requests.get(),
            responses_1xx: self.responses[0].get(),
            responses_2xx: self.responses[1].get(),
            responses_3xx: self.responses[2].get(),
            responses_4xx: self.responses[3].get(),
            responses_5xx: self.responses[4].get(),
            bytes_in: self.bytes_in.get(),
            bytes_out: self.bytes_out.get(),
            parse_errors: self.parse_errors.get(),
            timeouts: self.timeouts.get(),
            handler_panics: self.handler_panics.get(),
            accept_errors: self.accept_errors.get(),
            refused: self.refused.get(),
            latency_count: l.count(),
            latency_p50_us: l.quantile(0.50),
            latency_p90_us: l.quantile(0.90),
            latency_p99_us: l.quantile(0.99),
            latency_p999_us: l.quantile(0.999),
            latency_max_us: l.max(),
            rss_bytes: rss,
            cpu_time: cpu,
        }
    }
}

/// A snapshot of a server's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections open now.
    pub active: u64,
    /// Requests parsed.
    pub requests: u64,
    /// Responses sent, by status class.
    pub responses_1xx: u64,
    /// 2xx responses.
    pub responses_2xx: u64,
    /// 3xx responses.
    pub responses_3xx: u64,
    /// 4xx responses.
    pub responses_4xx: u64,
    /// 5xx responses.
    pub responses_5xx: u64,
    /// Bytes read from clients.
    pub bytes_in: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// Requests rejected as malformed (4xx/5xx sent by the server itself).
    pub parse_errors: u64,
    /// Connections closed by a timeout.
    pub timeouts: u64,
    /// Handlers, and `before`/`after` hooks, that panicked (each answered
    /// 500).
    pub handler_panics: u64,
    /// `accept` failures (e.g. out of descriptors).
    pub accept_errors: u64,
    /// Connections turned away at the connection limit
    /// (`AtLimit::Refuse` or `AtLimit::Respond503`), not counted in
    /// `accepted`.
    pub refused: u64,
    /// Responses whose latency was recorded: from the return of the poll
    /// that brought the request to the end of the loop turn in which its
    /// response was fully written (a pipelined batch is timed from its
    /// first request).
    pub latency_count: u64,
    /// Latency percentiles in µs (upper edge of a bucket 6.25 % wide).
    pub latency_p50_us: u64,
    /// 90th percentile.
    pub latency_p90_us: u64,
    /// 99th percentile.
    pub latency_p99_us: u64,
    /// 99.9th percentile.
    pub latency_p999_us: u64,
    /// Largest latency seen, exact.
    pub latency_max_us: u64,
    /// The process's resident set size, from the OS: `None` where solo
    /// cannot read the current figure (everywhere but Linux today).
    pub rss_bytes: Option<u64>,
    /// The process's user + system CPU time, from `getrusage` (Unix);
    /// `None` where unavailable (Windows).
    pub cpu_time: Option<Duration>,
}

/// (RSS bytes, user+system CPU time) of this process, each `None` where
/// the platform gives no such figure; never a stand-in value.
pub fn process_usage() -> (Option<u64>, Option<Duration>) {
    (rss_bytes(), cpu_time())
}

#[cfg(target_os = "linux")]
fn rss_bytes() -> Option<u64> {
    // statm's second field is resident pages.
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().map(|page| pages * page)
}

#[cfg(not(target_os = "linux"))]
fn rss_bytes() -> Option<u64> {
    // Elsewhere getrusage reports the peak, not the current, resident set:
    // no figure rather than one that means something else.
    None
}

#[cfg(unix)]
fn cpu_time() -> Option<Duration> {
    // SAFETY: getrusage writes into the struct we own; zeroed is a valid
    // initial value for this plain C struct.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return None;
        }
        u
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Some(tv(usage.ru_utime) + tv(usage.ru_stime))
}

#[cfg(not(unix))]
fn cpu_time() -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in 0..100_000u64 {
            let b = bucket_of(v);
            assert!(b >= last);
            last = b;
            let high = bucket_high(b);
            assert!(high >= v, "bucket {b} high {high} < {v}");
            assert!(high as f64 <= v as f64 * 1.0625 + 1.0, "bucket too wide at {v}");
        }
        assert!(bucket_of(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles() {
        let h = Histogram::default();
        for v in 1..=1000 {
            h.record(v);
        }
        let p50 = h.quantile(0.5);
        assert!((500..=532).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), 1000);
        assert_eq!(h.max(), 1000);
    }

    /// A batch recorded at once is the same histogram as its responses
    /// recorded one by one.
    #[test]
    fn recording_a_batch_is_recording_each() {
        let (one_by_one, batched) = (Histogram::default(), Histogram::default());
        for (micros, n) in [(7, 16), (300, 1), (12_345, 3), (0, 2)] {
            for _ in 0..n {
                one_by_one.record(micros);
            }
            batched.record_n(micros, n);
        }
        assert_eq!(batched.to_line(), one_by_one.to_line());
        assert_eq!(batched.sum(), one_by_one.sum());
    }

    /// A batch's latency runs to the end of the turn that answered it:
    /// nothing is recorded before, batches with one start are one entry,
    /// and the turn's end asks the runtime for its clock read.
    #[test]
    fn a_batch_is_timed_to_the_end_of_its_turn() {
        let c = Counters::default();
        let due = Rc::new(Cell::new(false));
        c.link_turns(TurnLink {
            due: due.clone(),
            origin: Instant::now(),
        });
        c.answered(1_000_000, 1);
        assert!(due.get(), "an answered batch asks for the turn's end");
        c.answered(1_000_000, 2);
        c.answered(3_000_000, 1);
        assert_eq!(c.latency_pending.borrow().len(), 2);
        assert_eq!(c.latency.count(), 0, "recorded before the turn ended");
        c.turn_ended(5_000_000);
        assert!(c.latency_pending.borrow().is_empty());
        // Three responses at 4,000 µs, one at 2,000.
        assert_eq!((c.latency.count(), c.latency.max()), (4, 4_000));
        assert_eq!(c.latency.sum(), 3 * 4_000 + 2_000);
        c.turn_ended(9_000_000);
        assert_eq!(c.latency.count(), 4, "a turn with nothing pending records nothing");
    }

    /// A snapshot counts what was answered in the turn still running.
    #[test]
    fn a_snapshot_settles_the_running_turn() {
        let c = Counters::default();
        let origin = Instant::now();
        c.link_turns(TurnLink {
            due: Rc::default(),
            origin,
        });
        c.answered(0, 3);
        std::thread::sleep(Duration::from_millis(2));
        let s = c.snapshot();
        assert_eq!(s.latency_count, 3);
        assert!(s.latency_max_us >= 2_000, "{}", s.latency_max_us);
        assert!(s.latency_max_us <= origin.elapsed().as_micros() as u64);
        assert!(c.latency_pending.borrow().is_empty());
    }

    #[test]
    fn round_trips_through_text_and_merges() {
        let a = Histogram::default();
        for v in [3, 50, 900, 12_000] {
            a.record(v);
        }
        let b = Histogram::from_line(&a.to_line()).unwrap();
        assert_eq!(
            (b.count(), b.max(), b.quantile(0.5)),
            (a.count(), a.max(), a.quantile(0.5))
        );
        b.merge(&a);
        assert_eq!(b.count(), 8);
        assert!(Histogram::from_line("x 1:2").is_none());
    }

    #[test]
    fn process_figures_are_read() {
        let (rss, cpu) = process_usage();
        if cfg!(target_os = "linux") {
            assert!(rss.unwrap() > 0);
        }
        if cfg!(unix) {
            assert!(cpu.is_some());
        }
    }
}
