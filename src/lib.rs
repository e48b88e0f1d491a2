//! solo: a single-threaded epoll/kqueue reactor, an async runtime and an
//! HTTP/1.1 server, written from scratch on `mio`.
//!
//! Read the source in this order: [`timer`] (the wheel), `reactor` (one poll,
//! one slab of sources), `coop` (the per-poll budget), `task` (one allocation
//! per task, its waker), `executor` (the loop turn), then [`time`], [`net`]
//! and [`sync`], which are small users of the first four, and `http`, whose
//! own docs list its files in dependency order. `docs/walkthrough.md` follows
//! one request through all of it; `docs/architecture.md` draws the whole.
//!
//! Cargo features: `http-server` (on by default) is the `http` module and
//! the crates only it needs (httparse, bytes, log, percent-encoding,
//! form_urlencoded, signal-hook). Without it (`default-features = false`)
//! solo is the runtime alone, on mio, slab and socket2. `http-types` adds
//! `http::interop`: conversions with the `http` crate's types, and
//! handlers written against them.
//!
//! ```
//! use std::time::Duration;
//!
//! let rt = solo::Runtime::new().unwrap();
//! rt.block_on(async {
//!     let worker = solo::spawn(async {
//!         solo::time::sleep(Duration::from_millis(5)).await;
//!         "done"
//!     });
//!     assert_eq!(worker.await.unwrap(), "done");
//! });
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, missing_debug_implementations)]

mod blocking;
mod coop;
mod executor;
#[cfg(feature = "http-server")]
pub mod http;
pub mod net;
mod reactor;
pub mod sync;
mod task;
pub mod time;
pub mod timer;

pub use executor::{spawn, spawn_blocking, stats, watch_turns, yield_now, Runtime, RuntimeStats, TurnWatch};
pub use task::{JoinError, JoinHandle};

/// The README's code blocks, compiled and run as doctests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(all(doctest, feature = "http-server"))]
pub struct ReadmeDoctests;
