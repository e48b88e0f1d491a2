//! A connection's bytes: the transport seam, the read buffer and output
//! queue, reading until `WouldBlock` and writing until done, and the pool the
//! buffers come from.
//!
//! Owns: the transport (a socket, or an in-memory pipe for tests, the bench
//! and the fuzzer) and its peer's address, the cached readiness of each
//! direction, and the buffers
//! a connection holds only while a request is in progress. Must never: parse
//! or decide anything about HTTP, or keep a buffer past `release` (an idle
//! connection holds none).
//!
//! # Edge-triggered readiness
//!
//! The reactor reports a direction once when it becomes ready. `readable` and
//! `writable` cache that until an operation returns `WouldBlock` (or, for
//! reads, a short read, which means the socket was drained).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};

use super::access::AccessPending;
use super::read_buf::ReadBuf;
use super::upgrade::OnUpgrade;
use crate::reactor::SHORT_IO_DRAINS;

/// Bodies at most this long are copied into the output buffer next to their
/// head (one write); longer ones are queued as they are (`writev`).
pub(crate) const COPY_BODY_MAX: usize = 4096;

/// Reads per `fill` call: the fairness budget of one connection.
const READS_PER_FILL: usize = 4;

/// Free buffers the pool keeps.
const POOL_KEEP: usize = 256;

/// What a connection reads from and writes to.
pub(crate) trait Transport {
    /// Reads into `buf` (possibly uninitialised); returns the bytes
    /// written to its front, which the caller may then treat as initialised.
    fn read_into(&mut self, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize>;
    /// Writes from the slices, in order.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Ends the write side (FIN), keeping the read side open.
    fn shutdown_write(&mut self) -> io::Result<()>;
}

/// A read through mio into `buf` initialised first (one memset): the
/// portable way, and the one that lets mio re-arm the socket on
/// `WouldBlock` where its backend needs that (`SHORT_IO_DRAINS` false).
fn read_initialised(s: &mut mio::net::TcpStream, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    for b in buf.iter_mut() {
        b.write(0);
    }
    // SAFETY: every byte was just initialised.
    let buf = unsafe { &mut *(buf as *mut [MaybeUninit<u8>] as *mut [u8]) };
    io::Read::read(s, buf)
}

impl Transport for mio::net::TcpStream {
    #[cfg(unix)]
    fn read_into(&mut self, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        if !SHORT_IO_DRAINS {
            // mio's poll(2) backend: its `WouldBlock` must pass through mio.
            return read_initialised(self, buf);
        }
        // SAFETY: `read` writes at most `buf.len()` bytes into memory that is
        // valid for writes of that many bytes; it reads none of it.
        let n = unsafe {
            libc::read(
                std::os::fd::AsRawFd::as_raw_fd(self),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    #[cfg(not(unix))]
    fn read_into(&mut self, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        read_initialised(self, buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if let [one] = bufs {
            io::Write::write(self, one)
        } else {
            io::Write::write_vectored(self, bufs)
        }
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        mio::net::TcpStream::shutdown(self, std::net::Shutdown::Write)
    }
}

/// The two ends of an in-memory connection share one `Pipe`: what the
/// client sent waits in `input`, what the server wrote lands in `output`.
#[derive(Debug, Default)]
pub(crate) struct Pipe {
    pub(crate) input: VecDeque<u8>,
    /// The client closed its side: reads past `input` return 0.
    pub(crate) input_closed: bool,
    pub(crate) output: Vec<u8>,
    /// The server shut its write side down (FIN).
    pub(crate) output_closed: bool,
    /// The server closed the connection (dropped its end).
    pub(crate) closed: bool,
    /// Most bytes `output` may hold before writes would block (a client
    /// that does not read).
    pub(crate) window: Option<usize>,
}

/// The server's end of an in-memory connection: `WouldBlock` when `input`
/// is empty (and not closed), or when `output` is at its window.
#[derive(Debug, Default)]
pub(crate) struct MemoryTransport(pub(crate) std::rc::Rc<std::cell::RefCell<Pipe>>);

impl Drop for MemoryTransport {
    fn drop(&mut self) {
        self.0.borrow_mut().closed = true;
    }
}

/// Copies `src` into uninitialised `dst` (of the same length).
fn write_init(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    debug_assert_eq!(dst.len(), src.len());
    for (d, s) in dst.iter_mut().zip(src) {
        d.write(*s);
    }
}

impl Transport for MemoryTransport {
    fn read_into(&mut self, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        let mut pipe = self.0.borrow_mut();
        if pipe.input.is_empty() {
            return if pipe.input_closed {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(pipe.input.len());
        // Copy the deque's two halves in bulk, as a kernel read would.
        let (front, back) = pipe.input.as_slices();
        let (a, b) = (front.len().min(n), n - front.len().min(n));
        write_init(&mut buf[..a], &front[..a]);
        write_init(&mut buf[a..n], &back[..b]);
        pipe.input.drain(..n);
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut pipe = self.0.borrow_mut();
        if pipe.output_closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let room = pipe.window.map_or(usize::MAX, |w| w.saturating_sub(pipe.output.len()));
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut written = 0;
        for b in bufs {
            let take = b.len().min(room - written);
            pipe.output.extend_from_slice(&b[..take]);
            written += take;
            if written == room {
                break;
            }
        }
        Ok(written)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.0.borrow_mut().output_closed = true;
        Ok(())
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
    fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>; 64]) -> usize {
        let mut n = 0;
        for b in self.queue.iter().take(63) {
            slices[n] = IoSlice::new(b);
            n += 1;
        }
        if self.queue.len() <= 63 && !self.buf.is_empty() {
            slices[n] = IoSlice::new(&self.buf);
            n += 1;
        }
        n
    }

    fn advance(&mut self, mut n: usize) {
        if self.queue.is_empty() && n == self.buf.len() {
            // All written, the common case: the buffer starts over where it
            // began (advancing would move its start, and leave the room
            // before it to be reclaimed on the next write).
            self.buf.clear();
            return;
        }
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

/// What a connection holds only while a request is in progress: taken from
/// the pool when bytes arrive, given back when it is idle again.
#[derive(Default)]
pub(crate) struct Buffers {
    pub(crate) read: ReadBuf,
    pub(crate) out: Output,
    /// When the first response not yet fully written was parsed (the
    /// turn's clock, in the runtime's nanoseconds).
    pub(crate) batch_start: Option<u64>,
    /// Responses queued since `batch_start`.
    pub(crate) batch_len: u32,
    /// The access-log record of the request in progress (only when the
    /// server has an access-log hook). Here rather than in the connection:
    /// a request in progress always holds buffers, and an idle connection
    /// must stay small.
    pub(crate) access: Option<Box<AccessPending>>,
    /// A `101` was queued: what takes the connection over once it is
    /// written (here for the same reason as `access`).
    pub(crate) upgrade: Option<OnUpgrade>,
}

/// Free buffers, shared by the connections of one server. Boxed on purpose:
/// a connection holds the same box the pool hands out, so taking and
/// returning buffers moves a pointer, never the buffers.
pub(crate) struct BufferPool {
    #[allow(clippy::vec_box)]
    free: std::cell::RefCell<Vec<Box<Buffers>>>,
    buffer_size: usize,
}

impl BufferPool {
    pub(crate) fn new(buffer_size: usize) -> BufferPool {
        BufferPool {
            free: Default::default(),
            buffer_size,
        }
    }

    fn take(&self) -> Box<Buffers> {
        let mut bufs = self.free.borrow_mut().pop().unwrap_or_default();
        // Below half a buffer of room, `reserve` makes a whole buffer's:
        // the first time it allocates; later the read buffer starts over at
        // its front when it is empty (`read_buf.rs`), and the output buffer
        // is reclaimed (a batch consumes it from the front). Not on every
        // take: the reclaim costs more than the rest of a short batch's
        // bookkeeping (callgrind: 120 of 3,700 instructions a request at
        // depth 1), and half a buffer takes most batches in one read (a
        // larger one fills it, and `fill` reserves and reads on).
        if bufs.read.spare() < self.buffer_size / 2 {
            bufs.read.reserve(self.buffer_size);
        }
        let out = &mut bufs.out.buf;
        if out.capacity() - out.len() < self.buffer_size / 2 {
            out.reserve(self.buffer_size);
        }
        bufs
    }

    fn put(&self, mut bufs: Box<Buffers>) {
        bufs.read.clear();
        bufs.out.buf.clear();
        bufs.out.queue.clear();
        bufs.batch_start = None;
        bufs.batch_len = 0;
        debug_assert!(
            bufs.access.is_none(),
            "buffers returned with an access record unemitted"
        );
        bufs.access = None;
        bufs.upgrade = None;
        let mut free = self.free.borrow_mut();
        if free.len() < POOL_KEEP {
            free.push(bufs);
        }
    }
}

/// A transport with its readiness and its (optional) buffers.
pub(crate) struct Io<T> {
    pub(crate) transport: T,
    bufs: Option<Box<Buffers>>,
    /// Cached: reading may make progress.
    pub(crate) readable: bool,
    /// Cached: writing may make progress.
    pub(crate) writable: bool,
    /// The read side ended (EOF or an error): nothing more will arrive.
    pub(crate) eof: bool,
    /// The edge that made the transport readable also reported the peer's
    /// close: read on to the EOF, which no later edge would announce.
    pub(crate) peer_closed: bool,
}

impl<T: Transport> Io<T> {
    pub(crate) fn new(transport: T) -> Io<T> {
        Io {
            transport,
            bufs: None,
            readable: false,
            writable: false,
            eof: false,
            peer_closed: false,
        }
    }

    /// Whether buffers are held (an idle connection holds none).
    pub(crate) fn has_buffers(&self) -> bool {
        self.bufs.is_some()
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

    /// The buffers, taken from the pool if none are held.
    pub(crate) fn bufs(&mut self, pool: &BufferPool) -> &mut Buffers {
        self.bufs.get_or_insert_with(|| pool.take())
    }

    /// The buffers, if held.
    pub(crate) fn bufs_mut(&mut self) -> Option<&mut Buffers> {
        self.bufs.as_deref_mut()
    }

    /// Gives the buffers back to the pool.
    pub(crate) fn release(&mut self, pool: &BufferPool) {
        if let Some(bufs) = self.bufs.take() {
            pool.put(bufs);
        }
    }

    /// Reads until `WouldBlock`, EOF, `max` buffered bytes, or the fairness
    /// budget; returns bytes read. Grows the buffer by `chunk` when full.
    pub(crate) fn fill(&mut self, pool: &BufferPool, chunk: usize, max: usize) -> io::Result<usize> {
        let buf = &mut self.bufs.get_or_insert_with(|| pool.take()).read;
        let mut total = 0;
        for _ in 0..READS_PER_FILL {
            let allowed = max.saturating_sub(buf.len());
            if allowed == 0 {
                break;
            }
            if buf.spare() == 0 {
                buf.reserve(chunk.min(allowed));
            }
            let spare = buf.spare_mut();
            let room = spare.len().min(allowed);
            let n = match self.transport.read_into(&mut spare[..room]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                self.eof = true;
                self.readable = false;
                break;
            }
            debug_assert!(n <= room);
            // SAFETY: the transport initialised the first `n` spare bytes.
            unsafe { buf.commit(n) };
            total += n;
            if SHORT_IO_DRAINS && n < room && !self.peer_closed {
                // A short read took everything the socket held, so it is
                // drained: on epoll and kqueue any later data raises a new
                // edge. Clearing readiness here saves the read that would
                // only return WouldBlock (one syscall per request), unless
                // the edge also reported the peer's close. Elsewhere mio
                // re-arms the socket only on that WouldBlock: read on.
                self.readable = false;
                break;
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
                // The common case, one buffer: no slice array to set up.
                self.transport.write_vectored(&[IoSlice::new(&out.buf)])
            } else {
                let mut slices = [IoSlice::new(&[]); 64];
                let n = out.io_slices(&mut slices);
                self.transport.write_vectored(&slices[..n])
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
    /// client has closed its side (or the transport failed), false when it
    /// would block.
    pub(crate) fn discard_input(&mut self) -> bool {
        if self.eof {
            return true;
        }
        let mut scratch = [MaybeUninit::<u8>::uninit(); 4096];
        for _ in 0..64 {
            match self.transport.read_into(&mut scratch) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_transport_reads_what_was_sent_and_blocks_when_empty() {
        let mut io = Io::new(MemoryTransport::default());
        let pipe = io.transport.0.clone();
        let pool = BufferPool::new(512);
        pipe.borrow_mut().input.extend(b"hello");
        io.readable = true;
        assert_eq!(io.fill(&pool, 512, 4096).unwrap(), 5);
        assert_eq!(io.input(), b"hello");
        assert!(!io.readable, "a short read drains the transport");
        io.readable = true;
        assert_eq!(io.fill(&pool, 512, 4096).unwrap(), 0);
        assert!(!io.readable && !io.eof);
        pipe.borrow_mut().input_closed = true;
        io.readable = true;
        io.fill(&pool, 512, 4096).unwrap();
        assert!(io.eof);
        io.release(&pool);
        assert!(!io.has_buffers());
    }

    #[test]
    fn flush_stops_at_the_window_and_keeps_order() {
        let mut io = Io::new(MemoryTransport::default());
        let pipe = io.transport.0.clone();
        pipe.borrow_mut().window = Some(10);
        let pool = BufferPool::new(512);
        let out = &mut io.bufs(&pool).out;
        out.buf.extend_from_slice(b"head:");
        out.push_body(Bytes::from(vec![b'x'; COPY_BODY_MAX + 1]));
        out.buf.extend_from_slice(b":tail");
        io.writable = true;
        assert_eq!(io.flush().unwrap(), 10);
        assert!(!io.writable);
        pipe.borrow_mut().window = None;
        io.writable = true;
        io.flush().unwrap();
        let pipe = pipe.borrow();
        let written = &pipe.output;
        assert!(written.starts_with(b"head:x") && written.ends_with(b"x:tail"));
        assert_eq!(written.len(), 5 + COPY_BODY_MAX + 1 + 5);
    }
}
