//! 100,000 concurrent sleeps of random length (0 to 2 s) on one thread.
//!
//! Every task records how late its sleep completed against its deadline, as
//! measured by the clock; the example prints the distribution and fails if
//! any sleep completed early.
//!
//! ```text
//! cargo run --release --example timers [count] [max_ms]
//! ```

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use solo::{spawn, Runtime};

fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let max_ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let rt = Runtime::new().expect("runtime");
    // Lateness in µs; negative would mean early.
    let lateness = Rc::new(RefCell::new(Vec::with_capacity(count)));
    let start = Instant::now();
    rt.block_on({
        let lateness = lateness.clone();
        async move {
            let mut seed = 0x2545_f491_4f6c_dd1d_u64;
            let mut handles = Vec::with_capacity(count);
            for _ in 0..count {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let delay = Duration::from_micros(seed % (max_ms * 1000 + 1));
                let lateness = lateness.clone();
                handles.push(spawn(async move {
                    let deadline = Instant::now() + delay;
                    solo::time::sleep_until(deadline).await;
                    let now = Instant::now();
                    let late = if now >= deadline {
                        (now - deadline).as_micros() as i64
                    } else {
                        -((deadline - now).as_micros() as i64)
                    };
                    lateness.borrow_mut().push(late);
                }));
            }
            for h in handles {
                h.await.expect("sleep task");
            }
        }
    });
    let total = start.elapsed();
    let mut late = lateness.borrow().clone();
    late.sort_unstable();
    let pct = |p: f64| late[((late.len() as f64 * p) as usize).min(late.len() - 1)];
    let early = late.iter().filter(|&&l| l < 0).count();
    let stats = rt.stats();
    println!(
        "{count} sleeps of 0..{max_ms} ms, all concurrent, one thread: done in {:.3} s",
        total.as_secs_f64()
    );
    println!(
        "lateness against deadline (µs): p50 {}  p99 {}  p999 {}  latest {}",
        pct(0.5),
        pct(0.99),
        pct(0.999),
        late[late.len() - 1]
    );
    println!("fired early: {early}");
    println!(
        "loop: {} polls ({} allowed to block), {} timers fired, {} task polls",
        stats.polls, stats.blocking_polls, stats.timers_fired, stats.tasks_polled
    );
    if early > 0 {
        eprintln!("error: {early} sleeps completed before their deadline");
        std::process::exit(1);
    }
}
