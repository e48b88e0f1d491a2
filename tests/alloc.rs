//! A spawned task costs one allocation (header and future together), counted
//! by a global allocator. Its own test binary: the counter is process-wide.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn spawn_and_complete_costs_one_allocation() {
    let rt = solo::Runtime::new().unwrap();
    rt.block_on(async {
        const N: usize = 1000;
        let mut handles = Vec::with_capacity(N);
        // Warm up: grow the run queue and task slab to their working size.
        for i in 0..N {
            handles.push(solo::spawn(async move { i }));
        }
        for h in handles.drain(..) {
            h.await.unwrap();
        }
        let before = ALLOCS.load(Ordering::Relaxed);
        for i in 0..N {
            handles.push(solo::spawn(async move { i }));
        }
        for h in handles.drain(..) {
            h.await.unwrap();
        }
        let per_task = (ALLOCS.load(Ordering::Relaxed) - before) as f64 / N as f64;
        assert_eq!(per_task, 1.0, "allocations per spawned task");
    });
}
