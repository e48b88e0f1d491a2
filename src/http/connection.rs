//! One HTTP/1.1 connection: a state machine the reactor drives directly.
//!
//! Owns: a socket, its read buffer and output queue, the framing state of
//! the request being read, and the one timer that bounds whatever it is
//! waiting for. Must never: block, run a handler other than through the
//! router's first poll or a task, hold a buffer while idle, or parse request
//! N+1 before request N's body has been consumed and its response queued.
//!
//! ```text
//!            bytes arrive                    head complete
//!   Idle ─────────────────────▶ Head ─────────────────────────┐
//!    ▲  (keep-alive timer)       (header timer; 408)          │
//!    │                                                        ▼
//!    │                                 body still arriving? ──▶ Body (body timer; 408)
//!    │                                                        │
//!    │                                 handler ready at once? │ no: task ──▶ Handler
//!    │                                                        ▼               │
//!    └──────── output drained, keep-alive ◀──── response queued ◀─────────────┘
//!                                   │
//!              close requested ────▶ Closing: flush, then close (write timer)
//! ```
//!
//! Phases are not stored as one enum: they are derived from what the
//! connection holds (`body`, `pending`, bytes read, output queued), which
//! keeps them from disagreeing. `docs/http.md` describes each transition.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use mio::Token;

use super::parse::{BodyKind, ChunkedDecoder};
use super::request::BodyChannel;
use crate::task::JoinHandle;
use crate::timer::TimerKey;

/// Bodies at most this long are copied into the output buffer next to their
/// head (one write); longer ones are queued as they are (`writev`).
pub(crate) const COPY_BODY_MAX: usize = 4096;

/// How the rest of the current request's body is framed.
pub(crate) enum BodyFraming {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// The body of the request in progress, still arriving.
pub(crate) struct BodyReader {
    pub(crate) framing: BodyFraming,
    /// Where the bytes go; `None` once nobody wants them (they are drained).
    pub(crate) channel: Option<Rc<RefCell<BodyChannel>>>,
    pub(crate) received: u64,
}

impl BodyReader {
    pub(crate) fn new(kind: BodyKind, channel: Option<Rc<RefCell<BodyChannel>>>) -> BodyReader {
        BodyReader {
            framing: match kind {
                BodyKind::Length(n) => BodyFraming::Length(n),
                BodyKind::Chunked => BodyFraming::Chunked(ChunkedDecoder::new()),
                BodyKind::None => BodyFraming::Length(0),
            },
            channel,
            received: 0,
        }
    }
}

/// Where a connection is in its life (the diagram above). Computed from
/// what the connection holds rather than stored beside it, so the two can
/// never disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Keep-alive, between requests: nothing buffered, no buffers held.
    Idle,
    /// Part of a request head has arrived.
    ReadingHead,
    /// A request body is arriving.
    ReadingBody,
    /// A body is arriving faster than its handler reads it; reading paused.
    BodyPaused,
    /// A handler did not finish on its first poll and runs as a task.
    HandlerPending,
    /// A streamed response is being fed by a task.
    Streaming,
    /// Output is queued and the client is not taking it.
    Writing,
    /// Half-closed, reading and discarding until the client closes.
    Closing,
}

/// A streamed (chunked) response being fed by a task.
pub(crate) struct Streaming {
    pub(crate) task: JoinHandle<()>,
    /// The feeding task, waiting for the output to drain below the mark.
    pub(crate) waker: Option<std::task::Waker>,
}

/// The peer's address, in 16 bytes: IPv4 inline, IPv6 (rare on the hot
/// path, and 28 bytes) boxed.
pub(crate) enum Peer {
    V4(std::net::SocketAddrV4),
    V6(Box<std::net::SocketAddrV6>),
}

impl Peer {
    pub(crate) fn new(addr: SocketAddr) -> Peer {
        match addr {
            SocketAddr::V4(a) => Peer::V4(a),
            SocketAddr::V6(a) => Peer::V6(Box::new(a)),
        }
    }

    pub(crate) fn get(&self) -> SocketAddr {
        match self {
            Peer::V4(a) => SocketAddr::V4(*a),
            Peer::V6(a) => SocketAddr::V6(**a),
        }
    }
}

/// What a connection needs only while a request is in progress: taken from
/// the server's pool when bytes arrive, given back when it is idle again.
#[derive(Default)]
pub(crate) struct Buffers {
    pub(crate) read: BytesMut,
    pub(crate) out: Output,
    /// When the first response not yet fully written was parsed.
    pub(crate) batch_start: Option<Instant>,
    pub(crate) batch_len: u32,
}

impl Buffers {
    pub(crate) fn is_idle(&self) -> bool {
        self.read.is_empty() && self.out.is_empty()
    }
}

/// One connection. Idle, it is a socket, two ids, a timer key, a peer
/// address and a few flags: everything else hangs off `bufs`, `body`,
/// `pending` and `streaming`, which are empty between requests.
pub(crate) struct Connection {
    pub(crate) stream: mio::net::TcpStream,
    pub(crate) token: Token,
    /// Distinguishes this connection from a later one in the same slab slot,
    /// for completions that arrive from tasks.
    pub(crate) id: u32,
    pub(crate) peer: Peer,
    pub(crate) bufs: Option<Box<Buffers>>,
    pub(crate) timer: Option<TimerKey>,
    pub(crate) body: Option<Box<BodyReader>>,
    /// The task running a handler that did not finish on its first poll.
    pub(crate) pending: Option<JoinHandle<()>>,
    pub(crate) streaming: Option<Box<Streaming>>,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// Read side is finished (EOF or error): serve what is buffered, then close.
    pub(crate) read_closed: bool,
    /// The reactor reported the peer's close (or an error) with readiness.
    pub(crate) peer_closed: bool,
    /// Close once the output is written (Connection: close, or an error).
    pub(crate) close_after_write: bool,
    /// Half-closed after the last response, draining until the client closes.
    pub(crate) lingering: bool,
}

impl Connection {
    pub(crate) fn new(stream: mio::net::TcpStream, token: Token, id: u32, peer: SocketAddr) -> Connection {
        Connection {
            stream,
            token,
            id,
            peer: Peer::new(peer),
            bufs: None,
            timer: None,
            body: None,
            pending: None,
            streaming: None,
            readable: false,
            writable: false,
            read_closed: false,
            peer_closed: false,
            close_after_write: false,
            lingering: false,
        }
    }

    /// Bytes read and not yet consumed.
    pub(crate) fn input(&self) -> &[u8] {
        self.bufs.as_deref().map_or(&[], |b| &b.read[..])
    }

    pub(crate) fn output_len(&self) -> usize {
        self.bufs.as_deref().map_or(0, |b| b.out.len())
    }

    pub(crate) fn output_empty(&self) -> bool {
        self.bufs.as_deref().is_none_or(|b| b.out.is_empty())
    }

    pub(crate) fn phase(&self) -> Phase {
        if self.lingering {
            Phase::Closing
        } else if !self.output_empty() && !self.writable {
            Phase::Writing
        } else if let Some(body) = &self.body {
            if body.channel.as_ref().is_some_and(|ch| ch.borrow().paused) {
                Phase::BodyPaused
            } else {
                Phase::ReadingBody
            }
        } else if self.pending.is_some() {
            Phase::HandlerPending
        } else if self.streaming.is_some() {
            Phase::Streaming
        } else if !self.input().is_empty() {
            Phase::ReadingHead
        } else {
            Phase::Idle
        }
    }

    /// Whether the next request may be parsed: the previous one is fully
    /// read and answered (or being answered by a stream that is done).
    pub(crate) fn ready_for_next(&self) -> bool {
        self.body.is_none() && self.pending.is_none() && self.streaming.is_none() && !self.close_after_write
    }

    /// Reads until `WouldBlock`, EOF, `max` buffered bytes, or four reads
    /// (the fairness budget); returns bytes read. Grows the buffer by
    /// `chunk` when it is full.
    /// The caller takes buffers from the pool first.
    pub(crate) fn fill(&mut self, chunk: usize, max: usize) -> io::Result<usize> {
        let buf = &mut self.bufs.as_deref_mut().expect("buffers taken before reading").read;
        let mut total = 0;
        for _ in 0..4 {
            let allowed = max.saturating_sub(buf.len());
            if allowed == 0 {
                break;
            }
            if buf.capacity() == buf.len() {
                buf.reserve(chunk.min(allowed));
            }
            let spare = buf.spare_capacity_mut();
            let room = spare.len().min(allowed);
            // SAFETY: `read` writes at most `room` bytes into the spare
            // capacity, which is valid for writes of `room` bytes; nothing
            // reads it before `set_len` marks exactly the bytes written.
            let n = unsafe {
                libc::read(
                    std::os::fd::AsRawFd::as_raw_fd(&self.stream),
                    spare.as_mut_ptr() as *mut libc::c_void,
                    room,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => {
                        self.readable = false;
                        break;
                    }
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(e),
                }
            }
            if n == 0 {
                self.read_closed = true;
                self.readable = false;
                break;
            }
            // SAFETY: the kernel initialised the first `n` spare bytes.
            unsafe { buf.set_len(buf.len() + n as usize) };
            total += n as usize;
            if (n as usize) < room {
                // A short read took everything the socket held, so it is
                // drained: with edge-triggered readiness any later data raises
                // a new edge. Clearing readiness here saves the read that
                // would only return WouldBlock (one syscall per request) —
                // unless the same edge reported the peer's close, whose EOF
                // no later edge would announce: then read on to the 0.
                if !self.peer_closed {
                    self.readable = false;
                    break;
                }
            }
        }
        Ok(total)
    }

    /// Writes queued output until done or `WouldBlock`; returns bytes written.
    pub(crate) fn flush(&mut self) -> io::Result<usize> {
        let Some(bufs) = self.bufs.as_deref_mut() else {
            return Ok(0);
        };
        let out = &mut bufs.out;
        let mut total = 0;
        while !out.is_empty() {
            let result = if out.queue.is_empty() {
                (&self.stream).write(&out.buf)
            } else {
                let mut slices = [io::IoSlice::new(&[]); 64];
                let n = out.io_slices(&mut slices);
                (&self.stream).write_vectored(&slices[..n])
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    out.advance(n);
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// Reads and discards input while lingering; returns true once the
    /// client has closed its side (or the socket failed), false when it
    /// would block (wait for the next edge or the linger timer).
    pub(crate) fn discard_input(&mut self) -> bool {
        if self.read_closed {
            return true;
        }
        let mut scratch = [0u8; 4096];
        for _ in 0..64 {
            match (&self.stream).read(&mut scratch) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
        false
    }
}

/// Bytes waiting to be written, in order: `queue` first, then `buf`.
#[derive(Default)]
pub(crate) struct Output {
    pub(crate) queue: VecDeque<Bytes>,
    pub(crate) buf: BytesMut,
}

impl Output {
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.buf.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.iter().map(Bytes::len).sum::<usize>() + self.buf.len()
    }

    /// Appends a body: copied when small, queued as it is when large.
    pub(crate) fn push_body(&mut self, body: Bytes) {
        if body.len() <= COPY_BODY_MAX {
            self.buf.extend_from_slice(&body);
        } else {
            if !self.buf.is_empty() {
                self.queue.push_back(self.buf.split().freeze());
            }
            self.queue.push_back(body);
        }
    }

    /// Fills `slices` in write order; `buf` only goes in when every queued
    /// segment before it fits too.
    fn io_slices<'a>(&'a self, slices: &mut [io::IoSlice<'a>; 64]) -> usize {
        let mut n = 0;
        for b in self.queue.iter().take(63) {
            slices[n] = io::IoSlice::new(b);
            n += 1;
        }
        if self.queue.len() <= 63 && !self.buf.is_empty() {
            slices[n] = io::IoSlice::new(&self.buf);
            n += 1;
        }
        n
    }

    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            match self.queue.front_mut() {
                Some(front) => {
                    let take = n.min(front.len());
                    front.advance(take);
                    n -= take;
                    if front.is_empty() {
                        self.queue.pop_front();
                    }
                }
                None => {
                    self.buf.advance(n);
                    return;
                }
            }
        }
        while self.queue.front().is_some_and(Bytes::is_empty) {
            self.queue.pop_front();
        }
    }
}
