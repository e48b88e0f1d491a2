//! Futures from other crates run on solo unchanged: futures-util's
//! combinators bring their own wakers, which wrap solo's.

use std::time::{Duration, Instant};

use futures_util::future::{join_all, select, Either};
use futures_util::stream::{FuturesUnordered, StreamExt};
use solo::time::sleep;
use solo::{spawn, Runtime};

#[test]
fn join_all_over_solo_timers_and_tasks() {
    let rt = Runtime::new().unwrap();
    let out = rt.block_on(async {
        let futs = (0..20u64).map(|i| async move {
            sleep(Duration::from_millis(20 - i)).await;
            i
        });
        join_all(futs).await
    });
    assert_eq!(out, (0..20).collect::<Vec<_>>());
}

#[test]
fn select_picks_the_first_and_drops_the_other() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let start = Instant::now();
        let fast = Box::pin(sleep(Duration::from_millis(5)));
        let slow = Box::pin(sleep(Duration::from_secs(30)));
        match select(fast, slow).await {
            Either::Left(((), _slow)) => {}
            Either::Right(_) => panic!("the slow sleep won"),
        }
        assert!(start.elapsed() < Duration::from_secs(5));
    });
    assert_eq!(rt.stats().timers_pending, 0);
}

#[test]
fn futures_unordered_of_join_handles() {
    let rt = Runtime::new().unwrap();
    let sum = rt.block_on(async {
        let mut set: FuturesUnordered<_> = (0..50u64)
            .map(|i| {
                spawn(async move {
                    sleep(Duration::from_millis(i % 7)).await;
                    i
                })
            })
            .collect();
        let mut sum = 0;
        while let Some(r) = set.next().await {
            sum += r.unwrap();
        }
        sum
    });
    assert_eq!(sum, (0..50).sum::<u64>());
}
