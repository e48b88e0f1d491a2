//! An HTTP/1.1 server on solo's reactor.
//!
//! Connections are state machines the reactor drives directly (no task per
//! connection); a handler's future is polled once inline and only becomes a
//! task if it is not ready. Read `connection.rs` for the state machine,
//! `server.rs` for how it is driven, `parse.rs` for what is rejected and
//! why; `docs/http.md` has the diagram, the limits and their defaults.
//!
//! ```no_run
//! use solo::http::{Request, Response, Server};
//! Server::bind("127.0.0.1:8080")?
//!     .get("/", |_req: Request| async { Response::text("Hello, World!") })
//!     .run()
//! # ; Ok::<(), std::io::Error>(())
//! ```

mod connection;
mod date;
mod parse;
mod request;
mod response;
mod router;
mod server;
mod stats;

pub use request::{percent_decode, Method, Request};
pub use response::{reason, Body, Response};
pub use router::{Handler, IntoResponse};
pub use server::{Config, Server, ShutdownHandle, StatsHandle};
pub use stats::{process_usage, Histogram, Stats};
