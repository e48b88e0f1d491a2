//! Timer structures side by side: solo's wheel, a binary heap with lazy
//! deletion, and a BTreeMap, at 1k / 100k / 1M live timers.
//!
//! - insert+cancel: one timer inserted at a random deadline and cancelled
//!   (the common case for connection timeouts, which are reset on activity);
//! - insert+expire: one timer inserted ~N ticks ahead and time advanced one
//!   tick, firing what is due (a steady state of about N live timers).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use solo::timer::{TimerKey, TimerWheel};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The three structures behind one interface.
trait Timers {
    type Handle: Copy;
    fn insert(&mut self, deadline: u64, payload: u64) -> Self::Handle;
    fn cancel(&mut self, handle: Self::Handle) -> Option<u64>;
    /// Advances to `now` and fires everything due; returns how many fired.
    fn expire(&mut self, now: u64) -> usize;
}

impl Timers for TimerWheel<u64> {
    type Handle = TimerKey;
    fn insert(&mut self, deadline: u64, payload: u64) -> TimerKey {
        TimerWheel::insert(self, deadline, payload)
    }
    fn cancel(&mut self, key: TimerKey) -> Option<u64> {
        TimerWheel::cancel(self, key)
    }
    fn expire(&mut self, now: u64) -> usize {
        self.advance(now);
        let mut n = 0;
        while let Some((_, p)) = self.pop_expired() {
            black_box(p);
            n += 1;
        }
        n
    }
}

/// A min-heap with lazy deletion: cancel forgets the id, and stale heap
/// entries are skipped when popped; the heap is rebuilt when more than half
/// of it is stale, so memory stays bounded.
#[derive(Default)]
struct LazyHeap {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    live: HashMap<u64, u64>,
    next_id: u64,
}

impl Timers for LazyHeap {
    type Handle = u64;
    fn insert(&mut self, deadline: u64, payload: u64) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.heap.push(Reverse((deadline, id)));
        self.live.insert(id, payload);
        id
    }
    fn cancel(&mut self, id: u64) -> Option<u64> {
        let p = self.live.remove(&id);
        if self.heap.len() > 2 * self.live.len() + 64 {
            let live = &self.live;
            self.heap.retain(|Reverse((_, id))| live.contains_key(id));
        }
        p
    }
    fn expire(&mut self, now: u64) -> usize {
        let mut n = 0;
        while let Some(Reverse((deadline, id))) = self.heap.peek().copied() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            if let Some(p) = self.live.remove(&id) {
                black_box(p);
                n += 1;
            }
        }
        n
    }
}

#[derive(Default)]
struct Ordered {
    map: BTreeMap<(u64, u64), u64>,
    next_id: u64,
}

impl Timers for Ordered {
    type Handle = (u64, u64);
    fn insert(&mut self, deadline: u64, payload: u64) -> (u64, u64) {
        let key = (deadline, self.next_id);
        self.next_id += 1;
        self.map.insert(key, payload);
        key
    }
    fn cancel(&mut self, key: (u64, u64)) -> Option<u64> {
        self.map.remove(&key)
    }
    fn expire(&mut self, now: u64) -> usize {
        let mut n = 0;
        while let Some(entry) = self.map.first_entry() {
            if entry.key().0 > now {
                break;
            }
            black_box(entry.remove());
            n += 1;
        }
        n
    }
}

const SIZES: [u64; 3] = [1_000, 100_000, 1_000_000];
/// Deadlines of the pre-filled timers: up to 10 minutes of 1 ms ticks.
const SPREAD: u64 = 600_000;

fn prefill<T: Timers>(t: &mut T, n: u64, rng: &mut Rng) {
    for i in 0..n {
        t.insert(1 + rng.next() % SPREAD, i);
    }
}

fn insert_cancel_one<T: Timers + Default>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    n: u64,
) {
    let mut t = T::default();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    prefill(&mut t, n, &mut rng);
    c.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
        b.iter(|| {
            let h = t.insert(1 + rng.next() % SPREAD, 7);
            black_box(t.cancel(h));
        })
    });
}

fn insert_expire_one<T: Timers + Default>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    n: u64,
) {
    let mut t = T::default();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    // Steady state: one insert per tick, each due about n ticks ahead.
    let mut now = 0u64;
    for _ in 0..n {
        t.insert(now + n / 2 + rng.next() % n, 1);
        now += 1;
        t.expire(now);
    }
    c.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
        b.iter(|| {
            t.insert(now + n / 2 + rng.next() % n, 1);
            now += 1;
            black_box(t.expire(now));
        })
    });
}

fn insert_cancel(c: &mut Criterion) {
    let mut g = c.benchmark_group("timer insert+cancel");
    g.throughput(Throughput::Elements(1));
    for n in SIZES {
        insert_cancel_one::<TimerWheel<u64>>(&mut g, "wheel", n);
        insert_cancel_one::<LazyHeap>(&mut g, "binary_heap", n);
        insert_cancel_one::<Ordered>(&mut g, "btree_map", n);
    }
    g.finish();
}

fn insert_expire(c: &mut Criterion) {
    let mut g = c.benchmark_group("timer insert+expire");
    g.throughput(Throughput::Elements(1));
    for n in SIZES {
        insert_expire_one::<TimerWheel<u64>>(&mut g, "wheel", n);
        insert_expire_one::<LazyHeap>(&mut g, "binary_heap", n);
        insert_expire_one::<Ordered>(&mut g, "btree_map", n);
    }
    g.finish();
}

criterion_group!(benches, insert_cancel, insert_expire);
criterion_main!(benches);
