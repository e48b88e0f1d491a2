//! solo's executor against tokio's current_thread runtime, in the same run:
//! spawn-and-complete of a trivial task, and a waker round trip (a task that
//! wakes itself and is polled again).
//!
//! tokio is a dev-dependency for this comparison only.

use std::future::poll_fn;
use std::hint::black_box;
use std::task::Poll;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const TASKS: u64 = 1_000;
const ROUND_TRIPS: u64 = 1_000;

/// Completes after waking itself `n` times.
async fn self_wake(n: u64) -> u64 {
    let mut left = n;
    poll_fn(|cx| {
        if left == 0 {
            return Poll::Ready(n);
        }
        left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

fn spawn_and_complete(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn and complete");
    g.throughput(Throughput::Elements(TASKS));
    let solo_rt = solo::Runtime::new().unwrap();
    let mut handles = Vec::with_capacity(TASKS as usize);
    g.bench_function("solo", |b| {
        b.iter(|| {
            solo_rt.block_on(async {
                for i in 0..TASKS {
                    handles.push(solo::spawn(async move { black_box(i) }));
                }
                for h in handles.drain(..) {
                    black_box(h.await.unwrap());
                }
            })
        })
    });
    let tokio_rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut handles = Vec::with_capacity(TASKS as usize);
    g.bench_function("tokio_current_thread", |b| {
        b.iter(|| {
            tokio_rt.block_on(async {
                for i in 0..TASKS {
                    handles.push(tokio::spawn(async move { black_box(i) }));
                }
                for h in handles.drain(..) {
                    black_box(h.await.unwrap());
                }
            })
        })
    });
    g.finish();
}

fn waker_round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("waker round trip");
    g.throughput(Throughput::Elements(ROUND_TRIPS));
    let solo_rt = solo::Runtime::new().unwrap();
    g.bench_function("solo", |b| {
        b.iter(|| solo_rt.block_on(async { solo::spawn(self_wake(ROUND_TRIPS)).await.unwrap() }))
    });
    let tokio_rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    g.bench_function("tokio_current_thread", |b| {
        b.iter(|| tokio_rt.block_on(async { tokio::spawn(self_wake(ROUND_TRIPS)).await.unwrap() }))
    });
    g.finish();
}

criterion_group!(benches, spawn_and_complete, waker_round_trip);
criterion_main!(benches);
