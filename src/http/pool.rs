//! Vectors that go back to a per-thread free list when dropped, so the small
//! collections a request carries (its route parameters) cost no allocation
//! once the server is warm, and a `Request` stays small enough to move
//! cheaply (inline arrays made every move of it copy their whole capacity).
//!
//! Must never: hand a vector to another thread (each kind has one free list
//! per thread, and requests never leave theirs: they hold `Rc`s), keep more
//! than `POOL_MAX` vectors of a kind, or keep one grown past its kind's
//! `KEEP_CAPACITY` (one huge request must not pin its memory forever).

use std::cell::RefCell;
use std::mem::ManuallyDrop;
use std::thread::LocalKey;

/// Most vectors kept per kind and thread.
const POOL_MAX: usize = 1024;

/// An element kind with a free list of its own.
pub(crate) trait Pooled: Sized + 'static {
    /// Vectors with a larger capacity are freed rather than kept.
    const KEEP_CAPACITY: usize;
    /// Capacity of a vector made when the free list is empty.
    const FIRST_CAPACITY: usize;
    /// This kind's free list on the current thread.
    fn free_list() -> &'static LocalKey<RefCell<Vec<Vec<Self>>>>;
}

/// A vector whose buffer is reused through `T`'s free list. Creating one
/// takes nothing: the buffer is taken at the first push.
///
/// The vector is in a `ManuallyDrop` so that dropping a `PooledVec` is its
/// `Drop` alone: a capacity check, inlined, and for a vector that never
/// took a buffer nothing more (the vector's own drop glue, a loop over its
/// elements and a check before freeing, ran out of line on every request).
pub(crate) struct PooledVec<T: Pooled>(ManuallyDrop<Vec<T>>);

impl<T: Pooled> PooledVec<T> {
    pub(crate) fn new() -> PooledVec<T> {
        PooledVec(ManuallyDrop::new(Vec::new()))
    }

    #[inline]
    pub(crate) fn push(&mut self, item: T) {
        if self.0.capacity() == 0 {
            self.take_buffer();
        }
        self.0.push(item);
    }

    // Once per vector, not per push: kept out of line so the push that
    // parsing does per header stays a few instructions.
    #[cold]
    fn take_buffer(&mut self) {
        // During thread teardown the list may be gone: allocate instead.
        let reused = T::free_list().try_with(|l| l.borrow_mut().pop()).ok().flatten();
        *self.0 = reused.unwrap_or_else(|| Vec::with_capacity(T::FIRST_CAPACITY));
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        &self.0
    }

    // Out of line: a request's drop runs `drop` for vectors that never took
    // a buffer (most requests capture no parameter), and that check alone
    // should be all it costs them.
    #[inline(never)]
    fn give_back(&mut self) {
        let mut v = std::mem::take(&mut *self.0);
        if v.capacity() > T::KEEP_CAPACITY {
            return;
        }
        v.clear();
        let _ = T::free_list().try_with(|l| {
            let mut list = l.borrow_mut();
            if list.len() < POOL_MAX {
                list.push(v);
            }
        });
    }
}

impl<T: Pooled> Drop for PooledVec<T> {
    #[inline]
    fn drop(&mut self) {
        if self.0.capacity() != 0 {
            self.give_back();
        }
    }
}

impl<T: Pooled> Default for PooledVec<T> {
    fn default() -> PooledVec<T> {
        PooledVec::new()
    }
}

impl<T: Pooled + PartialEq> PartialEq for PooledVec<T> {
    fn eq(&self, other: &PooledVec<T>) -> bool {
        *self.0 == *other.0
    }
}

impl<T: Pooled + std::fmt::Debug> std::fmt::Debug for PooledVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Item(#[allow(dead_code)] u64);

    impl Pooled for Item {
        const KEEP_CAPACITY: usize = 8;
        const FIRST_CAPACITY: usize = 4;
        fn free_list() -> &'static LocalKey<RefCell<Vec<Vec<Self>>>> {
            thread_local!(static FREE: RefCell<Vec<Vec<Item>>> = const { RefCell::new(Vec::new()) });
            &FREE
        }
    }

    fn listed() -> usize {
        Item::free_list().with(|l| l.borrow().len())
    }

    /// A dropped vector serves the next one, empty; an unused one takes
    /// nothing; an oversized one is freed, not kept.
    #[test]
    fn buffers_are_reused_and_bounded() {
        drop(PooledVec::<Item>::new());
        assert_eq!(listed(), 0, "an unused vector took a buffer");
        let mut a = PooledVec::new();
        a.push(Item(1));
        let buffer = a.as_slice().as_ptr();
        drop(a);
        assert_eq!(listed(), 1);
        let mut b = PooledVec::new();
        b.push(Item(2));
        assert_eq!(b.as_slice().as_ptr(), buffer, "not reused");
        assert_eq!(b.as_slice().len(), 1);
        for i in 0..20 {
            b.push(Item(i));
        }
        drop(b);
        assert_eq!(listed(), 0, "a vector past KEEP_CAPACITY was kept");
        let many: Vec<PooledVec<Item>> = (0..POOL_MAX + 10)
            .map(|i| {
                let mut v = PooledVec::new();
                v.push(Item(i as u64));
                v
            })
            .collect();
        drop(many);
        assert_eq!(listed(), POOL_MAX);
    }
}
