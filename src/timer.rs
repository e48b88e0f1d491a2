//! A hierarchical hashed timing wheel (Varghese & Lauck, 1987).
//!
//! Owns: every pending timer of one runtime, keyed by a [`TimerKey`], and the
//! answer to "when is the next one due?" that becomes the reactor's poll timeout.
//! Must never: read the clock (time is given to it in ticks), fire a timer before
//! its deadline, or allocate per insert once its slab has grown.
//!
//! # Layout
//!
//! Time is counted in *ticks* (the runtime uses 1 ms). The wheel keeps
//! `LEVELS = 6` levels of `SLOTS = 64` slots. A slot at level `L` spans
//! `64^L` ticks, so a whole level spans `64^(L+1)` ticks and the six levels
//! together cover `64^6 = 2^36` ticks (about 795 days at 1 ms). Each slot is
//! the head of an intrusive doubly-linked list threaded through the entries,
//! which live in one [`Slab`]; a 64-bit occupancy mask per level says which
//! slots are non-empty.
//!
//! # Invariants
//!
//! 1. `elapsed` is the tick up to which the wheel has been advanced. It never
//!    goes backwards. Every linked entry has `deadline >= elapsed`, or sits in
//!    the *expired* list waiting to be popped.
//! 2. An entry lives at the level of the highest 6-bit digit in which its
//!    deadline differs from `elapsed` (at the time it was linked), in the slot
//!    given by that digit of the deadline. So it shares every higher digit with
//!    `elapsed`: it is in the *current* rotation of its level, never in a past
//!    one, and the wheel never needs to compare deadlines to find the next slot.
//! 3. A deadline more than `2^36 - 1` ticks away is linked as if it were due at
//!    the far edge of the wheel; its true deadline stays in the entry.
//!
//! # Expiry and cascading
//!
//! [`TimerWheel::advance`] repeatedly finds the earliest non-empty slot (per
//! level, one rotate and one `trailing_zeros` on the occupancy mask), and if
//! that slot's start is not after `now`, moves `elapsed` to it and empties it:
//! each entry whose deadline has come is moved to the expired list; every other
//! entry (a coarse slot at a higher level, or a clamped far deadline) is linked
//! again from the new `elapsed`, which puts it at a strictly lower level or
//! closer slot. An entry cascades at most once per level, so expiry costs
//! amortised O(1) per timer. Insert and cancel are O(1): a slab insert or
//! remove and a list link or unlink.
//!
//! Keys carry a generation, so a key whose timer already fired or was cancelled
//! can never cancel a newer timer that reuses the same slab slot.

use slab::Slab;

const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const LEVELS: usize = 6;
/// The furthest a deadline can be linked ahead of `elapsed` (invariant 3).
const MAX_SPAN: u64 = (1 << (SLOT_BITS * LEVELS as u32)) - 1;
const NIL: u32 = u32::MAX;
/// `Entry::level` value of an entry waiting in the expired list.
const EXPIRED: u8 = u8::MAX;

/// Identifies one timer. Cheap to copy; stale keys are harmless.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey {
    index: u32,
    generation: u32,
}

struct Entry<T> {
    deadline: u64,
    generation: u32,
    prev: u32,
    next: u32,
    level: u8,
    slot: u8,
    payload: T,
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
}

/// A hierarchical timing wheel holding a payload `T` per timer.
pub struct TimerWheel<T> {
    entries: Slab<Entry<T>>,
    slots: [[List; SLOTS]; LEVELS],
    occupied: [u64; LEVELS],
    expired: List,
    elapsed: u64,
    next_generation: u32,
}

impl<T> std::fmt::Debug for TimerWheel<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerWheel")
            .field("timers", &self.entries.len())
            .field("elapsed_ms", &self.elapsed)
            .finish_non_exhaustive()
    }
}

impl<T> Default for TimerWheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TimerWheel<T> {
    /// An empty wheel at tick 0.
    pub fn new() -> Self {
        TimerWheel {
            entries: Slab::new(),
            slots: [[List { head: NIL }; SLOTS]; LEVELS],
            occupied: [0; LEVELS],
            expired: List { head: NIL },
            elapsed: 0,
            next_generation: 0,
        }
    }

    /// The tick the wheel has been advanced to.
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Number of timers pending or expired but not yet popped.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no timer is pending or waiting to be popped.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a timer due at tick `deadline`. A deadline already past is due at
    /// the next [`advance`](Self::advance).
    pub fn insert(&mut self, deadline: u64, payload: T) -> TimerKey {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let index = self.entries.insert(Entry {
            deadline,
            generation,
            prev: NIL,
            next: NIL,
            level: 0,
            slot: 0,
            payload,
        });
        assert!(index < NIL as usize, "timer wheel: more than 2^32 - 1 timers");
        let index = index as u32;
        self.link(index);
        TimerKey { index, generation }
    }

    /// Removes a timer that has neither fired nor been cancelled, returning its
    /// payload. Returns `None` for a stale key.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        if !self.contains(key) {
            return None;
        }
        self.unlink(key.index);
        Some(self.entries.remove(key.index as usize).payload)
    }

    /// Whether `key` names a timer that has not yet been popped or cancelled.
    pub fn contains(&self, key: TimerKey) -> bool {
        matches!(self.entries.get(key.index as usize), Some(e) if e.generation == key.generation)
    }

    /// The payload of a live timer, to replace it (e.g. a newer waker).
    pub fn payload_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        match self.entries.get_mut(key.index as usize) {
            Some(e) if e.generation == key.generation => Some(&mut e.payload),
            _ => None,
        }
    }

    /// The deadline of a live timer.
    pub fn deadline(&self, key: TimerKey) -> Option<u64> {
        match self.entries.get(key.index as usize) {
            Some(e) if e.generation == key.generation => Some(e.deadline),
            _ => None,
        }
    }

    /// The earliest tick at which [`advance`](Self::advance) has work to do:
    /// `Some(elapsed)` when timers are waiting in the expired list, `None` when
    /// no timer is pending. It may be earlier than the earliest deadline (the
    /// start of a coarse slot that must cascade), never later.
    pub fn next_expiration(&self) -> Option<u64> {
        if self.expired.head != NIL {
            return Some(self.elapsed);
        }
        (0..LEVELS).find_map(|level| self.next_in_level(level))
    }

    /// Start tick of the earliest occupied slot of `level`, if any. Lower levels
    /// always hold earlier slots than higher ones (invariant 2), so the first
    /// level with an occupied slot holds the answer.
    ///
    /// At level 0 the current slot is the tick `elapsed` itself and is due. At
    /// higher levels the current slot can only hold a clamped far deadline
    /// (invariant 3) that belongs to the *next* rotation, so the search starts
    /// one slot later and a slot at or before `elapsed` is one rotation ahead.
    fn next_in_level(&self, level: usize) -> Option<u64> {
        let mask = self.occupied[level];
        if mask == 0 {
            return None;
        }
        let shift = SLOT_BITS * level as u32;
        let current = ((self.elapsed >> shift) as usize) & (SLOTS - 1);
        let first = if level == 0 {
            current
        } else {
            (current + 1) & (SLOTS - 1)
        };
        let slot = (first + mask.rotate_right(first as u32).trailing_zeros() as usize) & (SLOTS - 1);
        let slot_span = 1u64 << shift;
        let level_span = slot_span << SLOT_BITS;
        let start = (self.elapsed & !(level_span - 1)) + slot as u64 * slot_span;
        let behind = if level == 0 {
            start < self.elapsed
        } else {
            start <= self.elapsed
        };
        Some(if behind { start + level_span } else { start })
    }

    /// Advances the wheel to tick `now` and moves every timer whose deadline is
    /// at or before `now` to the expired list; pop them with
    /// [`pop_expired`](Self::pop_expired). `now` earlier than `elapsed` is a
    /// no-op.
    pub fn advance(&mut self, now: u64) {
        while let Some(start) = (0..LEVELS).find_map(|l| self.next_in_level(l).map(|s| (l, s))) {
            let (level, start) = start;
            if start > now {
                break;
            }
            self.elapsed = start;
            let slot = ((start >> (SLOT_BITS * level as u32)) as usize) & (SLOTS - 1);
            let mut index = self.slots[level][slot].head;
            self.slots[level][slot].head = NIL;
            self.occupied[level] &= !(1u64 << slot);
            while index != NIL {
                let next = self.entries[index as usize].next;
                if self.entries[index as usize].deadline <= now {
                    self.push_expired(index);
                } else {
                    self.link(index);
                }
                index = next;
            }
        }
        self.elapsed = self.elapsed.max(now);
    }

    /// Takes one timer from the expired list. Order among timers expired by the
    /// same `advance` is unspecified.
    pub fn pop_expired(&mut self) -> Option<(TimerKey, T)> {
        let index = self.expired.head;
        if index == NIL {
            return None;
        }
        self.unlink(index);
        let entry = self.entries.remove(index as usize);
        Some((
            TimerKey {
                index,
                generation: entry.generation,
            },
            entry.payload,
        ))
    }

    /// Removes every timer, returning nothing. Used at shutdown.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.slots = [[List { head: NIL }; SLOTS]; LEVELS];
        self.occupied = [0; LEVELS];
        self.expired = List { head: NIL };
    }

    /// Links an unlinked entry at its level and slot, relative to `elapsed`.
    fn link(&mut self, index: u32) {
        let deadline = self.entries[index as usize].deadline;
        if deadline <= self.elapsed {
            self.push_expired(index);
            return;
        }
        let target = deadline.min(self.elapsed + MAX_SPAN);
        let differing = (self.elapsed ^ target) | (SLOTS as u64 - 1);
        // A clamped target can fall in the next rotation of the top level;
        // it is kept at the top level (see `next_in_level`).
        let level = (((63 - differing.leading_zeros()) / SLOT_BITS) as usize).min(LEVELS - 1);
        let slot = ((target >> (SLOT_BITS * level as u32)) as usize) & (SLOTS - 1);
        let head = self.slots[level][slot].head;
        {
            let e = &mut self.entries[index as usize];
            e.level = level as u8;
            e.slot = slot as u8;
            e.prev = NIL;
            e.next = head;
        }
        if head != NIL {
            self.entries[head as usize].prev = index;
        }
        self.slots[level][slot].head = index;
        self.occupied[level] |= 1u64 << slot;
    }

    fn push_expired(&mut self, index: u32) {
        let head = self.expired.head;
        {
            let e = &mut self.entries[index as usize];
            e.level = EXPIRED;
            e.prev = NIL;
            e.next = head;
        }
        if head != NIL {
            self.entries[head as usize].prev = index;
        }
        self.expired.head = index;
    }

    fn unlink(&mut self, index: u32) {
        let (prev, next, level, slot) = {
            let e = &self.entries[index as usize];
            (e.prev, e.next, e.level, e.slot as usize)
        };
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
        if prev != NIL {
            self.entries[prev as usize].next = next;
        } else if level == EXPIRED {
            self.expired.head = next;
        } else {
            let level = level as usize;
            self.slots[level][slot].head = next;
            if next == NIL {
                self.occupied[level] &= !(1u64 << slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    /// xorshift64*: deterministic, dependency-free randomness for the model test.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn drain(w: &mut TimerWheel<u64>) -> Vec<u64> {
        let mut v = Vec::new();
        while let Some((_, p)) = w.pop_expired() {
            v.push(p);
        }
        v.sort_unstable();
        v
    }

    #[test]
    fn fires_at_deadline_not_before() {
        let mut w = TimerWheel::new();
        w.insert(10, 1u64);
        w.advance(9);
        assert!(w.pop_expired().is_none());
        w.advance(10);
        assert_eq!(drain(&mut w), vec![1]);
        assert!(w.is_empty());
    }

    #[test]
    fn zero_and_past_deadlines_fire_on_next_advance() {
        let mut w = TimerWheel::new();
        w.advance(100);
        w.insert(0, 1u64);
        w.insert(100, 2);
        assert_eq!(w.next_expiration(), Some(100));
        w.advance(100);
        assert_eq!(drain(&mut w), vec![1, 2]);
    }

    #[test]
    fn stale_key_cannot_cancel_newer_timer() {
        let mut w = TimerWheel::new();
        let a = w.insert(5, 1u64);
        w.advance(5);
        assert_eq!(drain(&mut w), vec![1]);
        let b = w.insert(50, 2);
        assert_eq!(a.index, b.index, "slot reused");
        assert_eq!(w.cancel(a), None, "cancel after fire is a no-op");
        assert!(w.contains(b));
        assert_eq!(w.cancel(b), Some(2));
        assert_eq!(w.cancel(b), None, "double cancel is a no-op");
    }

    #[test]
    fn cancel_while_waiting_in_expired_list() {
        let mut w = TimerWheel::new();
        let a = w.insert(3, 1u64);
        let b = w.insert(3, 2);
        w.advance(3);
        assert_eq!(w.cancel(a), Some(1));
        assert_eq!(drain(&mut w), vec![2]);
        assert!(!w.contains(b));
    }

    #[test]
    fn long_delays_across_every_level() {
        let mut w = TimerWheel::new();
        let day = 86_400_000u64;
        let deadlines = [
            1,
            63,
            64,
            65,
            4095,
            4096,
            262_143,
            262_144,
            16_777_216,
            day,
            30 * day,
            MAX_SPAN,
            MAX_SPAN + 1,
            3 * MAX_SPAN + 17,
        ];
        for (i, d) in deadlines.iter().enumerate() {
            w.insert(*d, i as u64);
        }
        let mut fired = Vec::new();
        while let Some(next) = w.next_expiration() {
            // Jump straight to each reported expiration: it must never be past
            // a pending deadline, and every fire must happen exactly on time.
            w.advance(next);
            while let Some((_, i)) = w.pop_expired() {
                assert_eq!(deadlines[i as usize], w.elapsed(), "timer {i} fired off its deadline");
                fired.push(i);
            }
        }
        assert_eq!(fired.len(), deadlines.len());
    }

    /// Random insert / cancel / advance against a BTreeMap reference: after
    /// every advance to `now`, the wheel must have fired exactly the timers
    /// with `deadline <= now` that were not cancelled.
    #[test]
    fn model_against_btreemap() {
        for seed in 1..=40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut wheel = TimerWheel::new();
            let mut model: BTreeMap<(u64, u64), ()> = BTreeMap::new();
            let mut keys: HashMap<u64, (TimerKey, u64)> = HashMap::new();
            let mut now = 0u64;
            let mut id = 0u64;
            for _ in 0..3_000 {
                match rng.below(10) {
                    0..=4 => {
                        let delay = match rng.below(4) {
                            0 => rng.below(70),
                            1 => rng.below(5_000),
                            2 => rng.below(300_000),
                            _ => rng.below(MAX_SPAN * 2),
                        };
                        let deadline = now + delay;
                        let key = wheel.insert(deadline, id);
                        model.insert((deadline, id), ());
                        keys.insert(id, (key, deadline));
                        id += 1;
                    }
                    5 | 6 if !keys.is_empty() => {
                        let pick = *keys.keys().nth(rng.below(keys.len() as u64) as usize).unwrap();
                        let (key, deadline) = keys.remove(&pick).unwrap();
                        assert_eq!(wheel.cancel(key), Some(pick));
                        model.remove(&(deadline, pick));
                    }
                    _ => {
                        now += match rng.below(3) {
                            0 => rng.below(3),
                            1 => rng.below(2_000),
                            _ => rng.below(MAX_SPAN / 1_000),
                        };
                        wheel.advance(now);
                        let fired = drain(&mut wheel);
                        let due: Vec<(u64, u64)> = model.range(..(now + 1, 0)).map(|(k, _)| *k).collect();
                        let mut expected: Vec<u64> = due.iter().map(|(_, i)| *i).collect();
                        expected.sort_unstable();
                        assert_eq!(fired, expected, "seed {seed} now {now}");
                        for k in due {
                            model.remove(&k);
                            let (key, _) = keys.remove(&k.1).unwrap();
                            assert!(!wheel.contains(key));
                        }
                        // The reported next expiration is never later than the
                        // earliest pending deadline.
                        if let Some((&(d, _), _)) = model.iter().next() {
                            assert!(wheel.next_expiration().unwrap() <= d);
                        } else {
                            assert_eq!(wheel.next_expiration(), None);
                        }
                    }
                }
                assert_eq!(wheel.len(), model.len());
            }
            let pending: BTreeSet<u64> = model.keys().map(|(_, i)| *i).collect();
            assert_eq!(pending.len(), wheel.len());
        }
    }

    /// Jumping from one reported expiration to the next fires each timer at
    /// exactly its deadline tick: the wheel's "within one tick" guarantee.
    #[test]
    fn fires_exactly_on_its_tick_when_driven_by_next_expiration() {
        let mut rng = Rng(7);
        let mut wheel = TimerWheel::new();
        for _ in 0..5_000 {
            let deadline = rng.below(10_000_000);
            wheel.insert(deadline, deadline);
        }
        let mut last = 0;
        while let Some(next) = wheel.next_expiration() {
            assert!(next >= last);
            last = next;
            wheel.advance(next);
            while let Some((_, deadline)) = wheel.pop_expired() {
                assert_eq!(deadline, next);
            }
        }
        assert!(wheel.is_empty());
    }
}
