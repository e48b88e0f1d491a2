//! WebSocket (RFC 6455) on an upgraded connection: `recv` and `send` of
//! [`Message`]s, split into halves for two tasks if need be.
//!
//! Owns: a WebSocket's life after the handshake: reading frames into
//! messages (`frame.rs`), answering pings and the close handshake on its
//! own, failing a peer that breaks the protocol with the close code RFC
//! 6455 §7.4 names, the idle timeout (a ping, then a close), the server's
//! shutdown (a 1001 close), and writing with backpressure. Must never: hold
//! a read or write buffer while idle (an idle WebSocket costs its task and
//! the socket, nothing more), interleave a control frame inside another
//! frame's bytes, or send anything after its close frame.
//!
//! ```no_run
//! use solo::http::ws::{self, Message, WsConfig};
//! use solo::http::{Request, Server};
//!
//! Server::bind("127.0.0.1:8080")?
//!     .get("/echo", |req: Request| async move {
//!         ws::upgrade(&req, WsConfig::default(), |mut socket| async move {
//!             while let Some(Ok(message)) = socket.recv().await {
//!                 if let Message::Text(_) | Message::Binary(_) = message {
//!                     if socket.send(message).await.is_err() {
//!                         break;
//!                     }
//!                 }
//!             }
//!         })
//!     })
//!     .run()
//! # ; Ok::<(), std::io::Error>(())
//! ```
//!
//! Memory: the read buffer exists only while a frame is arriving (it is
//! dropped whenever `recv` waits with nothing buffered), the write buffer
//! only while a send is in progress.

mod frame;
mod handshake;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};

pub use frame::{CloseFrame, Message};
use frame::{Decoder, Violation};

use super::request::Request;
use super::response::Response;
use super::upgrade::Upgraded;
use crate::time::TickTimer;

#[doc(hidden)]
pub use frame::client_frame;

/// For the fuzz target (`__bench::ws_decode`).
pub(crate) fn decode_pieces(pieces: &[&[u8]], max_frame: usize, max_message: usize) -> (Vec<Message>, Option<u16>) {
    let mut decoder = Decoder::new(max_frame, max_message);
    let mut input = BytesMut::new();
    let mut out = Vec::new();
    for piece in pieces {
        input.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(v) => return (out, Some(v.code)),
            }
        }
    }
    (out, None)
}

/// Limits and timeouts of a WebSocket.
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// Largest frame accepted (1009 past it). Default 16 MiB.
    pub max_frame: usize,
    /// Largest message, all fragments together (1009 past it). Default
    /// 64 MiB.
    pub max_message: usize,
    /// After this long with nothing received, a ping is sent; after as long
    /// again, the connection is closed (1001). `None`: never. Default 60 s.
    pub idle_timeout: Option<Duration>,
    /// Subprotocols this endpoint speaks. The client lists the ones it
    /// wants in its order of preference (RFC 6455 §4.1); the first of them
    /// found here is chosen (`WebSocket::protocol`). Default none.
    pub protocols: &'static [&'static str],
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_frame: 16 << 20,
            max_message: 64 << 20,
            idle_timeout: Some(Duration::from_secs(60)),
            protocols: &[],
        }
    }
}

/// Answers a WebSocket handshake: a `101` whose connection becomes a
/// [`WebSocket`] for `on_open`, or the refusal RFC 6455 asks for (400 for a
/// malformed handshake; 426 with `Sec-WebSocket-Version: 13` for a request
/// that is not one, or of another version).
pub fn upgrade<F, Fut>(req: &Request, config: WsConfig, on_open: F) -> Response
where
    F: FnOnce(WebSocket) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let accept = match handshake::check(req) {
        Ok(accept) => accept,
        Err(refusal) => return refusal,
    };
    let protocol = handshake::choose_protocol(req, config.protocols);
    let resp = Response::upgrade("websocket", move |conn| on_open(WebSocket::new(conn, config, protocol)))
        .header("Sec-WebSocket-Accept", accept);
    match protocol {
        Some(p) => resp.header("Sec-WebSocket-Protocol", *p),
        None => resp,
    }
}

/// What the two halves share: the connection and the output.
struct Shared {
    conn: RefCell<Upgraded>,
    out: RefCell<BytesMut>,
    /// A send is flushing: the reader leaves the output to it.
    writing: Cell<bool>,
    /// A close frame is queued or sent: nothing may follow it.
    close_sent: Cell<bool>,
    /// The write side failed or was shut down.
    broken: Cell<bool>,
}

impl Shared {
    /// Queues `message` as one whole frame (the output only ever holds
    /// whole frames, so a control frame never lands inside another).
    fn queue(&self, message: &Message) -> io::Result<()> {
        if self.close_sent.get() || self.broken.get() {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "the WebSocket is closed"));
        }
        if matches!(message, Message::Close(_)) {
            self.close_sent.set(true);
        }
        frame::encode(&mut self.out.borrow_mut(), message);
        Ok(())
    }

    /// Writes the output until it is empty.
    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut out = self.out.borrow_mut();
            if out.is_empty() {
                // No write buffer between sends: an idle WebSocket holds none.
                *out = BytesMut::new();
                return Poll::Ready(Ok(()));
            }
            match self.conn.borrow().poll_write(cx, &out) {
                Poll::Ready(Ok(0)) => {
                    self.broken.set(true);
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => out.advance(n),
                Poll::Ready(Err(e)) => {
                    self.broken.set(true);
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Ends the write side once the close frame is out.
    fn finish(&self) {
        if !self.broken.replace(true) {
            let _ = self.conn.borrow().shutdown_write();
        }
    }
}

/// Where a reader finds the shared state: inside itself while the
/// WebSocket is whole (no separate allocation: an idle WebSocket is one
/// task), behind an `Rc` once split.
enum SharedRef {
    Inline(Shared),
    Split(Rc<Shared>),
    /// Only inside `split`, while the state moves into its `Rc`.
    Moving,
}

impl std::ops::Deref for SharedRef {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        match self {
            SharedRef::Inline(s) => s,
            SharedRef::Split(s) => s,
            SharedRef::Moving => unreachable!("a WebSocket's state is in place outside `split`"),
        }
    }
}

/// A WebSocket connection. `recv` answers pings and the close handshake
/// itself; `send` returns once the frame is handed to the kernel (so a
/// sender waits while the client reads slowly).
pub struct WebSocket {
    reader: WsReader,
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("protocol", &self.reader.protocol)
            .field("closed", &self.reader.done)
            .finish_non_exhaustive()
    }
}

impl WebSocket {
    fn new(conn: Upgraded, config: WsConfig, protocol: Option<&'static &'static str>) -> WebSocket {
        let shared = Shared {
            conn: RefCell::new(conn),
            out: RefCell::new(BytesMut::new()),
            writing: Cell::new(false),
            close_sent: Cell::new(false),
            broken: Cell::new(false),
        };
        WebSocket {
            reader: WsReader {
                shared: SharedRef::Inline(shared),
                decoder: Decoder::new(config.max_frame, config.max_message),
                input: BytesMut::new(),
                idle_timeout_ms: config
                    .idle_timeout
                    .map_or(0, |d| d.as_millis().clamp(1, u128::from(u32::MAX)) as u32),
                idle_at: 0,
                idle: TickTimer::default(),
                pinged: false,
                protocol,
                done: false,
            },
        }
    }

    /// The next message; `None` once the connection is closed (after the
    /// close handshake, or after an error, which is returned once first).
    pub async fn recv(&mut self) -> Option<io::Result<Message>> {
        self.reader.recv().await
    }

    /// Sends `message` and waits until it is written.
    pub fn send(&mut self, message: Message) -> impl Future<Output = io::Result<()>> + '_ {
        send_on(&self.reader.shared, message)
    }

    /// Starts the close handshake with `code` and `reason` (`recv` then
    /// returns the peer's close and `None`).
    pub async fn close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        close_on(&self.reader.shared, code, reason).await
    }

    /// The subprotocol chosen in the handshake.
    pub fn protocol(&self) -> Option<&'static str> {
        self.reader.protocol.copied()
    }

    /// The client's address.
    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.reader.shared.conn.borrow().peer_addr()
    }

    /// Two halves, for a task that reads and one that writes. The reader
    /// still answers pings and closes; the writer's `send` fails once a
    /// close has been sent.
    pub fn split(self) -> (WsReader, WsWriter) {
        let mut reader = self.reader;
        let shared: Rc<Shared> = match std::mem::replace(&mut reader.shared, SharedRef::Moving) {
            SharedRef::Inline(s) => Rc::new(s),
            SharedRef::Split(s) => s,
            SharedRef::Moving => unreachable!("split twice"),
        };
        reader.shared = SharedRef::Split(shared.clone());
        (reader, WsWriter { shared })
    }
}

/// The receiving half of a [`WebSocket`].
pub struct WsReader {
    shared: SharedRef,
    decoder: Decoder,
    /// Bytes read and not yet decoded; no allocation while empty and idle.
    input: BytesMut,
    /// The idle timeout in milliseconds; 0 for none (a `u32`, not an
    /// `Option<Duration>`: 12 bytes less per connection).
    idle_timeout_ms: u32,
    /// The idle deadline (a wheel tick; 0 while not armed) and its timer,
    /// while `recv` waits. Cancelled in `Drop`.
    idle_at: u64,
    idle: TickTimer,
    /// A ping was sent for the idle timeout and nothing came since.
    pinged: bool,
    /// Points into `WsConfig::protocols` (8 bytes, not a 16-byte `&str`).
    protocol: Option<&'static &'static str>,
    /// The connection is closed: `recv` says `None`.
    done: bool,
}

impl fmt::Debug for WsReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsReader")
            .field("closed", &self.done)
            .finish_non_exhaustive()
    }
}

impl Drop for WsReader {
    fn drop(&mut self) {
        if !matches!(self.shared, SharedRef::Moving) {
            self.disarm_idle();
        }
    }
}

/// What one read attempt gave.
enum Input {
    Some,
    Eof,
}

impl WsReader {
    /// The next message; see [`WebSocket::recv`].
    pub async fn recv(&mut self) -> Option<io::Result<Message>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Message>>> {
        if self.done {
            return Poll::Ready(None);
        }
        loop {
            // Output the reader queued (pongs, a close) goes out here unless
            // a send is flushing it anyway.
            if !self.shared.writing.get() {
                if let Poll::Ready(Err(e)) = self.shared.poll_flush(cx) {
                    return self.fail(e);
                }
            }
            match self.decoder.decode(&mut self.input) {
                Ok(Some(message)) => {
                    self.pinged = false;
                    if let Some(ready) = self.handle(message, cx) {
                        return ready;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(violation) => return self.violated(violation, cx),
            }
            if self.shared.conn.borrow().poll_shutdown(cx).is_ready() && !self.shared.close_sent.get() {
                let _ = self.shared.queue(&Message::Close(Some(CloseFrame {
                    code: 1001,
                    reason: "the server is shutting down".into(),
                })));
                continue;
            }
            match self.poll_read(cx) {
                Poll::Ready(Ok(Input::Some)) => continue,
                Poll::Ready(Ok(Input::Eof)) => {
                    self.done = true;
                    self.shared.finish();
                    if self.shared.close_sent.get() && self.input.is_empty() {
                        return Poll::Ready(None); // we closed; the peer went
                    }
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection without a close frame",
                    ))));
                }
                Poll::Ready(Err(e)) => return self.fail(e),
                Poll::Pending => {}
            }
            if self.input.is_empty() && !self.decoder.in_message() {
                // Idle: hold no read buffer.
                self.input = BytesMut::new();
            }
            return match self.poll_idle(cx) {
                Some(ready) => ready,
                None => Poll::Pending,
            };
        }
    }

    /// Reads what is there into `input`: at most what the next frame needs
    /// (so one frame of input at a time) or 8 KiB.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Input>> {
        let want = self.decoder.wants(&self.input).clamp(1, 64 * 1024).max(8192);
        let start = self.input.len();
        self.input.resize(start + want, 0);
        let result = self.shared.conn.borrow_mut().poll_read(cx, &mut self.input[start..]);
        let n = match &result {
            Poll::Ready(Ok(n)) => *n,
            _ => 0,
        };
        self.input.truncate(start + n);
        match result {
            Poll::Ready(Ok(0)) => Poll::Ready(Ok(Input::Eof)),
            Poll::Ready(Ok(_)) => {
                self.disarm_idle(); // heard from: the idle deadline restarts
                self.pinged = false;
                Poll::Ready(Ok(Input::Some))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn disarm_idle(&mut self) {
        if self.idle_at != 0 {
            self.idle_at = 0;
            let core = self.shared.conn.borrow().core().clone();
            self.idle.cancel(&core);
        }
    }

    /// The idle timeout while `recv` waits: a ping first, then a close.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Option<Poll<Option<io::Result<Message>>>> {
        if self.idle_timeout_ms == 0 {
            return None;
        }
        let core = self.shared.conn.borrow().core().clone();
        if self.idle_at == 0 {
            let timeout = Duration::from_millis(u64::from(self.idle_timeout_ms));
            self.idle_at = core.deadline_tick(Instant::now() + timeout);
        }
        if self.idle.poll_at(&core, self.idle_at, cx).is_pending() {
            return None;
        }
        self.idle_at = 0;
        if self.shared.close_sent.get() {
            // The peer never answered our close: give up on it.
            self.done = true;
            self.shared.finish();
            return Some(Poll::Ready(None));
        }
        let message = if self.pinged {
            Message::Close(Some(CloseFrame {
                code: 1001,
                reason: "idle timeout".into(),
            }))
        } else {
            Message::Ping(bytes::Bytes::from_static(b"solo"))
        };
        self.pinged = true;
        let _ = self.shared.queue(&message);
        cx.waker().wake_by_ref(); // flush and re-arm on the next poll
        Some(Poll::Pending)
    }

    /// A decoded message: what the reader does itself, and what it returns.
    fn handle(&mut self, message: Message, _cx: &mut Context<'_>) -> Option<Poll<Option<io::Result<Message>>>> {
        match &message {
            Message::Ping(payload) if !self.shared.close_sent.get() => {
                let _ = self.shared.queue(&Message::Pong(payload.clone()));
            }
            Message::Close(frame) => {
                if !self.shared.close_sent.get() {
                    // Echo the code (RFC 6455 §5.5.1); none for none.
                    let echo = frame.as_ref().map(|f| CloseFrame {
                        code: f.code,
                        reason: String::new(),
                    });
                    let _ = self.shared.queue(&Message::Close(echo));
                }
                self.done = true;
                self.flush_then_finish();
            }
            _ => {}
        }
        Some(Poll::Ready(Some(Ok(message))))
    }

    /// The peer broke the protocol: close with the code that says how.
    fn violated(&mut self, v: Violation, _cx: &mut Context<'_>) -> Poll<Option<io::Result<Message>>> {
        if !self.shared.close_sent.get() {
            let _ = self.shared.queue(&Message::Close(Some(CloseFrame {
                code: v.code,
                reason: v.reason.into(),
            })));
        }
        self.done = true;
        self.input = BytesMut::new();
        self.flush_then_finish();
        Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::InvalidData, v.reason))))
    }

    /// Writes what is queued (the close) without waiting for the peer,
    /// then ends the write side. What the socket cannot take now is dropped
    /// with it: the connection is over.
    fn flush_then_finish(&self) {
        let waker = futures_noop_waker();
        let mut cx = Context::from_waker(&waker);
        let _ = self.shared.poll_flush(&mut cx);
        self.shared.finish();
    }

    fn fail(&mut self, e: io::Error) -> Poll<Option<io::Result<Message>>> {
        self.done = true;
        self.shared.finish();
        Poll::Ready(Some(Err(e)))
    }
}

/// A waker that does nothing, for the one write attempt made on the way out.
fn futures_noop_waker() -> std::task::Waker {
    std::task::Waker::noop().clone()
}

/// The sending half of a [`WebSocket`].
pub struct WsWriter {
    shared: Rc<Shared>,
}

impl fmt::Debug for WsWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsWriter")
            .field("close_sent", &self.shared.close_sent.get())
            .finish()
    }
}

impl WsWriter {
    /// Sends `message` and waits until it (and anything queued before it)
    /// is written. Fails once a close frame has been sent.
    ///
    /// The frame is encoded when `send` is called, not when the future is
    /// first polled, so the future does not carry the message: a task that
    /// sends and receives in a loop stays small while it waits.
    pub fn send(&mut self, message: Message) -> impl Future<Output = io::Result<()>> + '_ {
        send_on(&self.shared, message)
    }

    /// Sends a close frame with `code` and `reason`.
    pub async fn close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        close_on(&self.shared, code, reason).await
    }
}

/// Queues `message` now and writes the output out.
fn send_on(shared: &Shared, message: Message) -> impl Future<Output = io::Result<()>> + '_ {
    let queued = shared.queue(&message);
    drop(message);
    async move {
        queued?;
        // Cleared however the flush ends (a dropped `send` included), so
        // the reader takes the output over again.
        struct Writing<'a>(&'a Cell<bool>);
        impl Drop for Writing<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        shared.writing.set(true);
        let _writing = Writing(&shared.writing);
        poll_fn(|cx| shared.poll_flush(cx)).await
    }
}

async fn close_on(shared: &Shared, code: u16, reason: &str) -> io::Result<()> {
    if !frame::valid_close_code(code) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a close code that may be sent",
        ));
    }
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_string(),
    }));
    send_on(shared, close).await
}

#[cfg(test)]
mod tests {
    /// An idle WebSocket's user-space cost is its task (this state plus the
    /// handler's own) and its slab entries: `benches/ws.rs` measures about
    /// 500 B in all at 10,000 connections. This keeps the state from
    /// creeping up unnoticed.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_websocket_stays_within_its_budget() {
        let size = std::mem::size_of::<super::WebSocket>();
        assert!(size <= 200, "a WebSocket is {size} bytes");
    }
}
