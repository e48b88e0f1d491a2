//! Executor and time: spawn, join, abort, panics, wakers from other threads,
//! spawn_blocking, sleep/timeout/interval, and the idle loop.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use solo::time::{interval, sleep, sleep_until, timeout, MissedTickBehavior};
use solo::{spawn, spawn_blocking, yield_now, Runtime};

#[test]
fn block_on_returns_output() {
    let rt = Runtime::new().unwrap();
    assert_eq!(rt.block_on(async { 1 + 1 }), 2);
    // A runtime can be entered again.
    assert_eq!(rt.block_on(async { 3 }), 3);
}

#[test]
fn spawned_tasks_run_and_join_with_non_send_state() {
    let rt = Runtime::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let sum = rt.block_on({
        let log = log.clone();
        async move {
            let handles: Vec<_> = (0..100)
                .map(|i| {
                    let log = log.clone();
                    spawn(async move {
                        log.borrow_mut().push(i);
                        i * 2
                    })
                })
                .collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            sum
        }
    });
    assert_eq!(sum, (0..100).map(|i| i * 2).sum::<i32>());
    assert_eq!(*log.borrow(), (0..100).collect::<Vec<_>>(), "tasks run in spawn order");
}

#[test]
fn panic_in_task_is_reported_and_loop_survives() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let bad = spawn(async {
            if true {
                panic!("boom");
            }
            5
        });
        let err = bad.await.unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.to_string(), "task panicked: boom");
        // The loop keeps running tasks.
        assert_eq!(spawn(async { 7 }).await.unwrap(), 7);
    });
}

#[test]
fn abort_cancels_a_pending_task_and_drops_its_future() {
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let rt = Runtime::new().unwrap();
    let dropped = Rc::new(Cell::new(false));
    rt.block_on({
        let dropped = dropped.clone();
        async move {
            let flag = Flag(dropped.clone());
            let h = spawn(async move {
                let _flag = flag;
                sleep(Duration::from_secs(3600)).await;
            });
            yield_now().await; // let it start and park on the timer
            assert!(!h.is_finished());
            h.abort();
            let err = h.await.unwrap_err();
            assert!(err.is_cancelled());
            assert!(dropped.get());
        }
    });
    assert_eq!(rt.stats().timers_pending, 0, "the aborted task's sleep left the wheel");
}

#[test]
fn abort_after_completion_keeps_output() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let h = spawn(async { 9 });
        yield_now().await;
        assert!(h.is_finished());
        h.abort();
        assert_eq!(h.await.unwrap(), 9);
    });
}

#[test]
fn dropped_handle_detaches_task() {
    let rt = Runtime::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    rt.block_on({
        let ran = ran.clone();
        async move {
            drop(spawn(async move {
                sleep(Duration::from_millis(5)).await;
                ran.set(true);
            }));
            sleep(Duration::from_millis(30)).await;
        }
    });
    assert!(ran.get());
}

#[test]
fn runtime_drop_cancels_live_tasks() {
    let rt = Runtime::new().unwrap();
    let dropped = Rc::new(Cell::new(0));
    struct Count(Rc<Cell<i32>>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    rt.block_on({
        let dropped = dropped.clone();
        async move {
            for _ in 0..10 {
                let c = Count(dropped.clone());
                spawn(async move {
                    let _c = c;
                    sleep(Duration::from_secs(3600)).await;
                });
            }
            yield_now().await;
        }
    });
    assert_eq!(rt.stats().tasks_alive, 10);
    drop(rt);
    assert_eq!(dropped.get(), 10);
}

#[test]
#[should_panic(expected = "within a solo runtime")]
fn nested_block_on_panics() {
    let rt = Runtime::new().unwrap();
    let rt2 = Runtime::new().unwrap();
    rt.block_on(async move {
        rt2.block_on(async {});
    });
}

#[test]
#[should_panic(expected = "from within a solo runtime")]
fn spawn_outside_runtime_panics() {
    drop(spawn(async {}));
}

#[test]
fn waker_woken_from_another_thread_wakes_the_loop() {
    let rt = Runtime::new().unwrap();
    let got = rt.block_on(async {
        let h = spawn(async {
            let mut sent = false;
            std::future::poll_fn(|cx| {
                if sent {
                    return Poll::Ready(42);
                }
                sent = true;
                let waker = cx.waker().clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    waker.wake();
                });
                Poll::Pending
            })
            .await
        });
        h.await.unwrap()
    });
    assert_eq!(got, 42);
    let stats = rt.stats();
    assert!(stats.blocking_polls >= 1, "the loop parked while waiting: {stats:?}");
}

#[test]
fn main_future_woken_from_another_thread() {
    let rt = Runtime::new().unwrap();
    let mut started = false;
    let out = rt.block_on(std::future::poll_fn(|cx| {
        if started {
            return Poll::Ready("woken");
        }
        started = true;
        let waker = cx.waker().clone();
        std::thread::spawn(move || waker.wake());
        Poll::Pending
    }));
    assert_eq!(out, "woken");
}

#[test]
fn concurrent_remote_wakes_lose_nothing() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let counter = Arc::new(AtomicUsize::new(0));
        let c2 = counter.clone();
        let mut started = false;
        let h = spawn(std::future::poll_fn(move |cx| {
            if c2.load(Ordering::SeqCst) == 8 {
                return Poll::Ready(());
            }
            if !started {
                started = true;
                for _ in 0..8 {
                    let w = cx.waker().clone();
                    let c3 = c2.clone();
                    std::thread::spawn(move || {
                        c3.fetch_add(1, Ordering::SeqCst);
                        w.wake_by_ref();
                        w.wake();
                    });
                }
            }
            Poll::Pending
        }));
        h.await.unwrap();
        assert_eq!(counter.load(Ordering::SeqCst), 8);
    });
}

#[test]
fn spawn_blocking_runs_off_thread_and_reports_panics() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let loop_thread = std::thread::current().id();
        let (tid, v) = spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(10));
            (std::thread::current().id(), 5)
        })
        .await
        .unwrap();
        assert_ne!(tid, loop_thread);
        assert_eq!(v, 5);
        let err = spawn_blocking(|| -> u8 { panic!("blocking boom") }).await.unwrap_err();
        assert!(err.is_panic());
        // Many at once.
        let hs: Vec<_> = (0..32).map(|i| spawn_blocking(move || i * i)).collect();
        let mut total = 0;
        for h in hs {
            total += h.await.unwrap();
        }
        assert_eq!(total, (0..32).map(|i| i * i).sum::<i32>());
    });
}

#[test]
fn sleep_never_fires_early() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        for ms in [0u64, 1, 2, 5, 13, 40] {
            let start = Instant::now();
            sleep(Duration::from_millis(ms)).await;
            assert!(
                start.elapsed() >= Duration::from_millis(ms),
                "{ms} ms sleep fired early"
            );
        }
        let deadline = Instant::now() + Duration::from_millis(7);
        sleep_until(deadline).await;
        assert!(Instant::now() >= deadline);
        // A deadline in the past completes at once.
        sleep_until(Instant::now() - Duration::from_millis(5)).await;
    });
}

#[test]
fn concurrent_sleeps_complete_in_deadline_order() {
    let rt = Runtime::new().unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    rt.block_on({
        let order = order.clone();
        async move {
            let hs: Vec<_> = [30u64, 10, 20, 0, 50]
                .into_iter()
                .map(|ms| {
                    let order = order.clone();
                    spawn(async move {
                        sleep(Duration::from_millis(ms)).await;
                        order.borrow_mut().push(ms);
                    })
                })
                .collect();
            for h in hs {
                h.await.unwrap();
            }
        }
    });
    assert_eq!(*order.borrow(), vec![0, 10, 20, 30, 50]);
}

#[test]
fn timeout_elapses_and_passes_through() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let start = Instant::now();
        let r = timeout(Duration::from_millis(20), sleep(Duration::from_secs(10))).await;
        assert!(r.is_err());
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(timeout(Duration::from_millis(50), async { 3 }).await, Ok(3));
        // An already-ready future wins even with no time at all.
        assert_eq!(timeout(Duration::ZERO, async { 4 }).await, Ok(4));
        let e = timeout(Duration::ZERO, std::future::pending::<()>()).await.unwrap_err();
        assert_eq!(e.to_string(), "deadline has elapsed");
    });
    assert_eq!(rt.stats().timers_pending, 0, "timeouts cancel their timers");
}

#[test]
fn interval_ticks_on_schedule() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let start = Instant::now();
        let mut iv = interval(Duration::from_millis(10));
        let first = iv.tick().await;
        assert!(
            first.duration_since(start) < Duration::from_millis(5),
            "first tick is immediate"
        );
        for i in 1..=5u32 {
            let t = iv.tick().await;
            assert_eq!(t, first + Duration::from_millis(10) * i, "ticks keep their phase");
            assert!(Instant::now() >= t);
        }
        // Missed ticks with Skip keep the phase and drop the backlog.
        iv.set_missed_tick_behavior(MissedTickBehavior::Skip);
        std::thread::sleep(Duration::from_millis(35)); // block the loop on purpose
        let late = iv.tick().await;
        let next = iv.tick().await;
        assert_eq!((next - first).as_millis() % 10, 0);
        assert!(next > late + Duration::from_millis(5));
    });
}

#[test]
#[should_panic(expected = "non-zero")]
fn zero_period_interval_panics() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        interval(Duration::ZERO);
    });
}

#[test]
fn idle_loop_blocks_instead_of_spinning() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        sleep(Duration::from_millis(300)).await;
    });
    let stats = rt.stats();
    // A busy loop, or one polling every millisecond, would make hundreds of
    // polls in 300 ms; a loop that blocks until the timer makes a handful.
    assert!(stats.polls <= 10, "the loop spun while idle: {stats:?}");
    assert_eq!(stats.timers_fired, 1);
}

#[test]
fn yield_now_lets_others_run() {
    let rt = Runtime::new().unwrap();
    let trace = Rc::new(RefCell::new(Vec::new()));
    rt.block_on({
        let trace = trace.clone();
        async move {
            let mut hs = Vec::new();
            for id in 0..2 {
                let trace = trace.clone();
                hs.push(spawn(async move {
                    for step in 0..3 {
                        trace.borrow_mut().push((id, step));
                        yield_now().await;
                    }
                }));
            }
            for h in hs {
                h.await.unwrap();
            }
        }
    });
    assert_eq!(*trace.borrow(), vec![(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]);
}

#[test]
fn self_waking_task_does_not_starve_timers() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let spinner = spawn(async {
            loop {
                yield_now().await;
            }
        });
        // The sleep must still complete while the spinner keeps the queue busy.
        sleep(Duration::from_millis(20)).await;
        spinner.abort();
        assert!(spinner.await.unwrap_err().is_cancelled());
    });
}

#[test]
fn panicking_destructor_of_an_aborted_task_is_contained() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("drop boom");
        }
    }
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let h = spawn(async {
            let _p = PanicOnDrop;
            std::future::pending::<()>().await;
        });
        yield_now().await;
        h.abort();
        // Abort is reported as cancelled; the destructor's panic did not
        // escape into the loop, which keeps running.
        assert!(h.await.unwrap_err().is_cancelled());
        assert_eq!(spawn(async { 1 }).await.unwrap(), 1);
    });
}

/// Busy-waits for `d` without yielding: one long turn of the loop.
fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

#[test]
fn loop_time_is_split_into_busy_and_waiting() {
    let rt = Runtime::new().unwrap();
    // Mostly asleep: 1.3 s of sleeps with 1 ms of work between them.
    rt.block_on(async {
        for _ in 0..13 {
            spin(Duration::from_millis(1));
            sleep(Duration::from_millis(100)).await;
        }
    });
    let idle = rt.stats();
    assert!(idle.waiting >= Duration::from_secs(1), "waited {:?}", idle.waiting);
    assert!(idle.utilisation() < 0.5, "a sleeping loop at {:.2}", idle.utilisation());
    assert!(idle.busy_last_second + idle.waiting_last_second >= Duration::from_millis(900));
    assert!(idle.utilisation_last_second() < 0.5);
    // Then busy: a task that keeps the loop spinning for 1.3 s, and one turn
    // 50 ms long inside the same second.
    rt.block_on(async {
        let start = Instant::now();
        spin(Duration::from_millis(50));
        while start.elapsed() < Duration::from_millis(1300) {
            yield_now().await;
        }
    });
    // Make sure a second boundary has passed since the spin finished.
    rt.block_on(async {
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(1100) {
            yield_now().await;
        }
    });
    let busy = rt.stats();
    assert!(
        busy.utilisation_last_second() > 0.8,
        "a spinning loop at {:.2}",
        busy.utilisation_last_second()
    );
    assert!(busy.busy > idle.busy + Duration::from_secs(2));
    // The 50 ms turn fell in a complete second that is no longer the last
    // one; the last one held only short turns.
    assert!(busy.longest_turn_last_second < Duration::from_millis(50));
}

#[test]
fn the_longest_turn_of_the_last_second_is_reported() {
    let rt = Runtime::new().unwrap();
    let seen = rt.block_on(async {
        // One 80 ms turn, then spin with yields until a second has ended.
        spin(Duration::from_millis(80));
        let start = Instant::now();
        loop {
            yield_now().await;
            let s = solo::stats();
            if s.longest_turn_last_second > Duration::ZERO || start.elapsed() > Duration::from_secs(3) {
                return s.longest_turn_last_second;
            }
        }
    });
    assert!(seen >= Duration::from_millis(80), "longest turn {seen:?}");
    assert!(seen < Duration::from_secs(1), "longest turn {seen:?}");
}

#[test]
fn a_turn_watch_sees_only_the_turns_after_it_started() {
    let rt = Runtime::new().unwrap();
    let (before, after) = rt.block_on(async {
        spin(Duration::from_millis(60)); // before any watch
        yield_now().await;
        let early = solo::watch_turns();
        yield_now().await;
        let short = early.longest();
        let late = solo::watch_turns();
        spin(Duration::from_millis(30));
        yield_now().await;
        yield_now().await;
        (short, (early.longest(), late.longest()))
    });
    assert!(
        before < Duration::from_millis(60),
        "saw a turn from before it started: {before:?}"
    );
    assert!(
        after.0 >= Duration::from_millis(30) && after.1 >= Duration::from_millis(30),
        "{after:?}"
    );
    assert!(after.1 < Duration::from_millis(60), "{after:?}");
}

#[test]
fn task_bytes_count_each_tasks_one_allocation() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let before = solo::stats();
        let payload = [7u8; 1000];
        let tasks: Vec<_> = (0..100).map(|_| spawn(async move { payload.len() })).collect();
        let after = solo::stats();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 1000);
        }
        let per_task = (after.task_bytes - before.task_bytes) / (after.tasks_spawned - before.tasks_spawned);
        // The future holds the 1,000-byte array; the header, state and join
        // waker add a few dozen bytes more, never a kilobyte.
        assert!((1000..1200).contains(&per_task), "{per_task} bytes per task");
    });
}

#[test]
fn wakes_from_other_threads_are_counted() {
    let rt = Runtime::new().unwrap();
    let before = rt.stats().remote_wakeups;
    rt.block_on(async {
        for _ in 0..3 {
            // Long enough that the task is parked when the thread finishes.
            let h = spawn(async {
                spawn_blocking(|| {
                    std::thread::sleep(Duration::from_millis(20));
                    7
                })
                .await
                .unwrap()
            });
            assert_eq!(h.await.unwrap(), 7);
        }
    });
    assert!(rt.stats().remote_wakeups >= before + 3);
}
