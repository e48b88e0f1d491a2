//! The server's and the runtime's figures in Prometheus' text exposition
//! format (version 0.0.4), for a scraper to read.
//!
//! Owns: the metric names, their help text and types, and the latency
//! histogram's `le` boundaries. Must never: compute a figure (every value
//! comes from `Stats`, the latency histogram or `RuntimeStats` as they were
//! counted), or run on the hot path (it is for a scraper, a few times a
//! minute).
//!
//! Names follow Prometheus' conventions: `_total` for counters, base units
//! (seconds, bytes), and the standard `process_*` names for the process's
//! own memory and CPU where the OS reports them.

use std::fmt::Write;

use super::stats::{Histogram, Stats};
use crate::RuntimeStats;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the latency histogram's buckets, in microseconds (the
/// `+Inf` bucket follows). From 50 µs to 10 s, the range an HTTP server's
/// latency spans, at about three per decade.
const BUCKETS_US: [u64; 17] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// Renders `stats` (a server's) and `runtime` (its loop's) as Prometheus
/// text.
///
/// The latency histogram's cumulative buckets count only values known to be
/// at or below each bound: solo's histogram keeps buckets 6.25 % wide, and
/// one that straddles a bound is counted in the next bound up, never early.
pub fn render(stats: &Stats, latency: &Histogram, runtime: &RuntimeStats) -> String {
    let mut out = String::with_capacity(4096);
    metric(
        &mut out,
        "solo_http_connections_accepted_total",
        "counter",
        "Connections accepted.",
        &stats.accepted,
    );
    metric(
        &mut out,
        "solo_http_connections_active",
        "gauge",
        "Connections open now.",
        &stats.active,
    );
    metric(
        &mut out,
        "solo_http_connections_refused_total",
        "counter",
        "Connections turned away at the connection limit.",
        &stats.refused,
    );
    metric(
        &mut out,
        "solo_http_requests_total",
        "counter",
        "Requests parsed.",
        &stats.requests,
    );
    metric(
        &mut out,
        "solo_http_received_bytes_total",
        "counter",
        "Bytes read from clients.",
        &stats.bytes_in,
    );
    metric(
        &mut out,
        "solo_http_sent_bytes_total",
        "counter",
        "Bytes written to clients.",
        &stats.bytes_out,
    );
    metric(
        &mut out,
        "solo_http_rejected_requests_total",
        "counter",
        "Requests rejected as malformed, answered by the server itself.",
        &stats.parse_errors,
    );
    metric(
        &mut out,
        "solo_http_timeouts_total",
        "counter",
        "Connections ended by a timeout.",
        &stats.timeouts,
    );
    metric(
        &mut out,
        "solo_http_handler_panics_total",
        "counter",
        "Handlers and hooks that panicked (each answered 500).",
        &stats.handler_panics,
    );
    metric(
        &mut out,
        "solo_http_accept_errors_total",
        "counter",
        "accept() failures.",
        &stats.accept_errors,
    );
    let _ = writeln!(
        out,
        "# HELP solo_http_responses_total Responses sent, by status class.\n# TYPE solo_http_responses_total counter"
    );
    for (class, n) in [
        ("1xx", stats.responses_1xx),
        ("2xx", stats.responses_2xx),
        ("3xx", stats.responses_3xx),
        ("4xx", stats.responses_4xx),
        ("5xx", stats.responses_5xx),
    ] {
        let _ = writeln!(out, "solo_http_responses_total{{class=\"{class}\"}} {n}");
    }
    let name = "solo_http_request_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} From a request parsed to its response handed to the kernel.\n# TYPE {name} histogram"
    );
    for bound in BUCKETS_US {
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"{}\"}} {}",
            seconds(bound),
            latency.count_at_most(bound)
        );
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", latency.count());
    let _ = writeln!(out, "{name}_sum {}", seconds(latency.sum()));
    let _ = writeln!(out, "{name}_count {}", latency.count());
    // A figure the platform does not give is left out, never sent as 0.
    if let Some(rss) = stats.rss_bytes {
        metric(
            &mut out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            &rss,
        );
    }
    if let Some(cpu) = stats.cpu_time {
        metric(
            &mut out,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            &cpu.as_secs_f64(),
        );
    }
    metric(
        &mut out,
        "solo_runtime_busy_seconds_total",
        "counter",
        "Time the loop spent busy (not waiting in a poll that could block).",
        &runtime.busy.as_secs_f64(),
    );
    metric(
        &mut out,
        "solo_runtime_waiting_seconds_total",
        "counter",
        "Time the loop spent waiting in the OS poll.",
        &runtime.waiting.as_secs_f64(),
    );
    metric(
        &mut out,
        "solo_runtime_utilisation_ratio",
        "gauge",
        "Busy over busy plus waiting in the last complete second.",
        &runtime.utilisation_last_second(),
    );
    metric(
        &mut out,
        "solo_runtime_longest_turn_seconds",
        "gauge",
        "The longest busy stretch between two polls in the last complete second.",
        &runtime.longest_turn_last_second.as_secs_f64(),
    );
    metric(
        &mut out,
        "solo_runtime_polls_total",
        "counter",
        "Calls to the OS poll.",
        &runtime.polls,
    );
    metric(
        &mut out,
        "solo_runtime_events_total",
        "counter",
        "Readiness events dispatched.",
        &runtime.events,
    );
    metric(
        &mut out,
        "solo_runtime_tasks_spawned_total",
        "counter",
        "Tasks spawned.",
        &runtime.tasks_spawned,
    );
    metric(
        &mut out,
        "solo_runtime_tasks_polled_total",
        "counter",
        "Task polls.",
        &runtime.tasks_polled,
    );
    metric(
        &mut out,
        "solo_runtime_tasks_alive",
        "gauge",
        "Tasks alive now.",
        &runtime.tasks_alive,
    );
    metric(
        &mut out,
        "solo_runtime_timers_pending",
        "gauge",
        "Timers armed now.",
        &runtime.timers_pending,
    );
    metric(
        &mut out,
        "solo_runtime_timers_fired_total",
        "counter",
        "Timers fired.",
        &runtime.timers_fired,
    );
    metric(
        &mut out,
        "solo_runtime_io_sources",
        "gauge",
        "I/O sources registered now.",
        &runtime.io_sources,
    );
    metric(
        &mut out,
        "solo_runtime_remote_wakeups_total",
        "counter",
        "Tasks woken from other threads.",
        &runtime.remote_wakeups,
    );
    out
}

/// One metric with one sample: its HELP and TYPE lines, then the value.
fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: &dyn std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}

/// Microseconds as seconds, exactly (no float rounding in the text).
fn seconds(micros: u64) -> String {
    let (s, us) = (micros / 1_000_000, micros % 1_000_000);
    if us == 0 {
        format!("{s}")
    } else {
        format!("{s}.{:06}", us).trim_end_matches('0').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact() {
        assert_eq!(seconds(50), "0.00005");
        assert_eq!(seconds(1_000_000), "1");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(1_234_567), "1.234567");
    }

    #[test]
    fn the_histogram_is_cumulative_and_ends_at_its_count() {
        let h = Histogram::default();
        for v in [10, 60, 60, 700, 3_000, 40_000, 20_000_000] {
            h.record(v);
        }
        let text = render(&Stats::default(), &h, &RuntimeStats::default());
        let counts: Vec<u64> = text
            .lines()
            .filter(|l| l.starts_with("solo_http_request_duration_seconds_bucket"))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(counts.len(), BUCKETS_US.len() + 1);
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "not cumulative: {counts:?}");
        assert_eq!(*counts.last().unwrap(), 7);
        // 10 µs is at most 50 µs; the two 60 µs fall in a bucket that ends
        // below 100 µs.
        assert_eq!(counts[0], 1);
        assert_eq!(counts[1], 3);
        assert!(text.contains("solo_http_request_duration_seconds_count 7\n"));
        assert!(text.contains(&format!(
            "solo_http_request_duration_seconds_sum {}\n",
            seconds(h.sum())
        )));
        // Every sample line belongs to a family declared before it.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(text.contains(&format!("# TYPE {family} ")), "{name} has no TYPE line");
        }
    }
}
