//! Semaphore, oneshot and mpsc: ordering, backpressure, cancellation, close.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use solo::sync::{mpsc, oneshot, Semaphore, TryAcquireError};
use solo::time::{sleep, timeout};
use solo::{spawn, yield_now, Runtime};

#[test]
fn semaphore_limits_concurrency_and_is_fifo() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let sem = Rc::new(Semaphore::new(2));
        let order = Rc::new(RefCell::new(Vec::new()));
        let in_flight = Rc::new(std::cell::Cell::new(0));
        let max_seen = Rc::new(std::cell::Cell::new(0));
        let hs: Vec<_> = (0..6)
            .map(|i| {
                let (sem, order, in_flight, max_seen) =
                    (sem.clone(), order.clone(), in_flight.clone(), max_seen.clone());
                spawn(async move {
                    let _permit = sem.acquire().await.unwrap();
                    order.borrow_mut().push(i);
                    in_flight.set(in_flight.get() + 1);
                    max_seen.set(max_seen.get().max(in_flight.get()));
                    sleep(Duration::from_millis(2)).await;
                    in_flight.set(in_flight.get() - 1);
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
        assert_eq!(max_seen.get(), 2);
        assert_eq!(*order.borrow(), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(sem.available_permits(), 2);
    });
}

#[test]
fn semaphore_try_acquire_and_close() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let sem = Semaphore::new(1);
        let p = sem.try_acquire().unwrap();
        assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
        drop(p);
        assert!(sem.try_acquire().is_ok());
        let sem = Rc::new(Semaphore::new(0));
        let waiter = spawn({
            let sem = sem.clone();
            async move { sem.acquire().await.is_err() }
        });
        yield_now().await;
        sem.close();
        assert!(waiter.await.unwrap(), "a waiter fails when the semaphore closes");
        assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Closed);
    });
}

#[test]
fn dropped_acquire_does_not_strand_permits() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let sem = Rc::new(Semaphore::new(1));
        let held = sem.clone().try_acquire_owned().unwrap();
        // A waiter that gives up (timeout) while queued...
        assert!(timeout(Duration::from_millis(5), sem.acquire()).await.is_err());
        // ...and one that is granted permits but dropped before it runs.
        let granted_then_dropped = spawn({
            let sem = sem.clone();
            async move {
                let _ = sem.acquire().await;
            }
        });
        yield_now().await; // queued
        drop(held); // permit handed to the queued waiter
        granted_then_dropped.abort();
        let _ = granted_then_dropped.await;
        // The permit went back: a new acquire succeeds at once.
        assert!(timeout(Duration::from_millis(50), sem.acquire()).await.is_ok());
        assert_eq!(sem.available_permits(), 1);
    });
}

#[test]
fn oneshot_send_receive_and_drop() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let (tx, rx) = oneshot::channel();
        spawn(async move {
            sleep(Duration::from_millis(2)).await;
            tx.send("hi").unwrap();
        });
        assert_eq!(rx.await, Ok("hi"));

        let (tx, rx) = oneshot::channel::<u8>();
        drop(tx);
        assert!(rx.await.is_err());

        let (tx, rx) = oneshot::channel::<u8>();
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.send(3), Err(3));

        let (mut tx, rx) = oneshot::channel::<u8>();
        let watcher = spawn(async move {
            tx.closed().await;
        });
        yield_now().await;
        drop(rx);
        watcher.await.unwrap();
    });
}

#[test]
fn mpsc_backpressure_order_and_close() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let (tx, mut rx) = mpsc::channel(2);
        let producer = spawn({
            let tx = tx.clone();
            async move {
                for i in 0..10 {
                    tx.send(i).await.unwrap();
                }
            }
        });
        yield_now().await;
        // The producer is stuck after filling both slots.
        assert_eq!(rx.len(), 2);
        assert!(!producer.is_finished());
        assert!(matches!(tx.try_send(99), Err(mpsc::TrySendError::Full(99))));
        drop(tx);
        let mut got = Vec::new();
        while let Some(v) = rx.recv().await {
            got.push(v);
        }
        assert_eq!(got, (0..10).collect::<Vec<_>>(), "None only after every sender is gone");
        producer.await.unwrap();

        let (tx, mut rx) = mpsc::channel::<u8>(1);
        tx.send(1).await.unwrap();
        let blocked = spawn({
            let tx = tx.clone();
            async move { tx.send(2).await }
        });
        yield_now().await;
        rx.close();
        assert_eq!(
            blocked.await.unwrap(),
            Err(mpsc::SendError(2)),
            "a waiting sender fails on close"
        );
        assert_eq!(rx.recv().await, Some(1), "queued values survive close");
        assert!(tx.is_closed());
    });
}

#[test]
fn mpsc_try_recv() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let (tx, mut rx) = mpsc::channel(4);
        assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Empty));
        tx.try_send(5).unwrap();
        assert_eq!(rx.try_recv(), Ok(5));
        drop(tx);
        assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected));
    });
}
