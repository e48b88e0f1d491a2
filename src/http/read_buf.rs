//! A connection's read buffer: the bytes read and not yet consumed, in one
//! chunk that the request heads parsed from it share ([`HeadBytes`]).
//!
//! Owns: the chunk, which part of it is unread input, and handing heads out
//! of it. Must never: write into a chunk that a head still shares, count
//! references atomically, or let a head see bytes other than its own.
//!
//! Why not `BytesMut`: a head split off a `BytesMut` is a `Bytes`, whose
//! count is atomic (a `Bytes` may go to another thread), and a pipelined
//! request paid two atomic operations for it, its split and its drop: a
//! sixth of its time in the in-memory bench (`connection turn/wrk pipeline
//! of 16`, on an Intel host). A request never leaves its connection's
//! thread (`Request` is not `Send`), so its head can share the chunk with a
//! plain `Rc`.
//!
//! # Invariants
//!
//! 1. `start <= end <= chunk.len()`, and `chunk[start..end]` is initialised
//!    (read into, or copied from initialised bytes).
//! 2. The chunk is written only through `Rc::get_mut`, so never while a
//!    `HeadBytes` shares it; a read that finds it shared moves the unread
//!    bytes to a chunk of its own first (as `BytesMut` does when a split-off
//!    part is still alive). A head's bytes therefore never change.
//! 3. A `HeadBytes` covers initialised bytes of its chunk: the input they
//!    were when it was split off.

use std::mem::MaybeUninit;
use std::ops::Deref;
use std::rc::Rc;

use bytes::Bytes;

type Chunk = Rc<[MaybeUninit<u8>]>;

/// Bytes read from a connection and not yet consumed.
pub(crate) struct ReadBuf {
    chunk: Chunk,
    /// The first unread byte.
    start: usize,
    /// One past the last byte read.
    end: usize,
}

impl Default for ReadBuf {
    fn default() -> ReadBuf {
        ReadBuf {
            chunk: Rc::new_uninit_slice(0),
            start: 0,
            end: 0,
        }
    }
}

impl Deref for ReadBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        debug_assert!(self.start <= self.end && self.end <= self.chunk.len());
        // SAFETY: `chunk[start..end]` is in bounds and initialised
        // (invariant 1); `u8` and `MaybeUninit<u8>` have the same layout.
        unsafe { std::slice::from_raw_parts(self.chunk.as_ptr().add(self.start).cast::<u8>(), self.end - self.start) }
    }
}

impl ReadBuf {
    /// Unread bytes held (`len()` of the slice, without building it).
    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Room left after the unread bytes, in this chunk (all of it when
    /// nothing is unread: `spare_mut` then starts at the front).
    pub(crate) fn spare(&self) -> usize {
        if self.is_empty() {
            self.chunk.len()
        } else {
            self.chunk.len() - self.end
        }
    }

    /// Drops every unread byte. The chunk is kept (heads may still share it;
    /// the next read then takes a chunk of its own).
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Consumes `n` unread bytes.
    pub(crate) fn advance(&mut self, n: usize) {
        debug_assert!(n <= self.len(), "advanced past the input");
        self.start += n.min(self.len());
    }

    /// The first `n` unread bytes as a head of their own, sharing the chunk
    /// (a count, no copy); they are consumed.
    pub(crate) fn split_head(&mut self, n: usize) -> HeadBytes {
        assert!(
            n <= self.len() && self.end <= u32::MAX as usize,
            "a head past the input"
        );
        let head = HeadBytes {
            chunk: self.chunk.clone(),
            start: self.start as u32,
            len: n as u32,
        };
        self.start += n;
        head
    }

    /// The first `n` unread bytes, copied into a `Bytes` (a body already in
    /// the buffer); they are consumed.
    pub(crate) fn split_bytes(&mut self, n: usize) -> Bytes {
        let bytes = Bytes::copy_from_slice(&self[..n]);
        self.start += n;
        bytes
    }

    /// Makes room for at least `additional` bytes after the unread ones in
    /// a chunk no head shares: the unread bytes move to the front when that
    /// makes the room, else to a new chunk (twice as large, or as large as
    /// needed, like a `Vec`).
    pub(crate) fn reserve(&mut self, additional: usize) {
        let len = self.len();
        let unique = Rc::get_mut(&mut self.chunk).is_some();
        if unique && self.spare() >= additional {
            return;
        }
        if unique && self.chunk.len() - len >= additional {
            self.compact();
            return;
        }
        let capacity = if unique {
            (self.chunk.len() * 2).max(len + additional)
        } else {
            self.chunk.len().max(len + additional)
        };
        self.move_to_new_chunk(capacity);
    }

    /// The room after the unread bytes, to read into; `commit` then says
    /// how much was written. A shared chunk is left first (invariant 2).
    pub(crate) fn spare_mut(&mut self) -> &mut [MaybeUninit<u8>] {
        if self.is_empty() {
            // Nothing unread: the read starts at the front (bytes before
            // `start` are either a head's, which a write never reaches, or
            // nobody's).
            self.clear();
        }
        if Rc::get_mut(&mut self.chunk).is_none() {
            self.move_to_new_chunk(self.chunk.len().max(self.len() + 1));
        }
        let end = self.end;
        match Rc::get_mut(&mut self.chunk) {
            Some(chunk) => &mut chunk[end..],
            None => unreachable!("a new chunk is not shared"),
        }
    }

    /// `n` bytes were written at the front of `spare_mut`'s room.
    ///
    /// # Safety
    ///
    /// Those `n` bytes must have been initialised through `spare_mut`.
    pub(crate) unsafe fn commit(&mut self, n: usize) {
        debug_assert!(n <= self.spare(), "committed past the chunk");
        self.end += n;
    }

    /// Moves the unread bytes to the front of the (unshared) chunk.
    fn compact(&mut self) {
        let (start, len) = (self.start, self.len());
        let Some(chunk) = Rc::get_mut(&mut self.chunk) else {
            debug_assert!(false, "compacting a shared chunk");
            return;
        };
        chunk.copy_within(start..start + len, 0);
        self.start = 0;
        self.end = len;
    }

    /// Copies the unread bytes to the front of a new chunk of `capacity`.
    fn move_to_new_chunk(&mut self, capacity: usize) {
        let len = self.len();
        debug_assert!(capacity >= len);
        let mut chunk: Chunk = Rc::new_uninit_slice(capacity);
        let Some(fresh) = Rc::get_mut(&mut chunk) else {
            unreachable!("a new chunk is not shared")
        };
        fresh[..len].copy_from_slice(&self.chunk[self.start..self.end]);
        self.chunk = chunk;
        self.start = 0;
        self.end = len;
    }
}

/// A request's head: bytes of a connection's read chunk, shared with it.
#[derive(Clone)]
pub(crate) struct HeadBytes {
    chunk: Chunk,
    start: u32,
    len: u32,
}

impl Deref for HeadBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let (start, len) = (self.start as usize, self.len as usize);
        debug_assert!(start + len <= self.chunk.len());
        // SAFETY: `chunk[start..start + len]` was initialised input when the
        // head was split off (invariant 3), and no write reaches a shared
        // chunk (invariant 2); `u8` and `MaybeUninit<u8>` have the same
        // layout.
        unsafe { std::slice::from_raw_parts(self.chunk.as_ptr().add(start).cast::<u8>(), len) }
    }
}

impl ReadBuf {
    /// Appends `bytes` (tests, and input that did not come from a read).
    #[cfg(test)]
    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        let spare = self.spare_mut();
        for (to, &from) in spare.iter_mut().zip(bytes) {
            to.write(from);
        }
        // SAFETY: the loop just initialised the first `bytes.len()` spare
        // bytes (`reserve` made at least that much room).
        unsafe { self.commit(bytes.len()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(buf: &mut ReadBuf, bytes: &[u8]) {
        buf.extend_from_slice(bytes);
    }

    #[test]
    fn heads_keep_their_bytes_while_the_buffer_reads_on() {
        let mut buf = ReadBuf::default();
        buf.reserve(16);
        read(&mut buf, b"GET /a\r\n\r\nGET /b");
        let first = buf.split_head(10);
        assert_eq!(&*first, b"GET /a\r\n\r\n");
        assert_eq!(&*buf, b"GET /b");
        // The chunk is shared: this read moves the unread bytes to a chunk
        // of their own, and the head's bytes stay as they were.
        read(&mut buf, b"\r\n\r\n");
        assert_eq!(&*first, b"GET /a\r\n\r\n");
        let second = buf.split_head(10);
        assert_eq!(&*second, b"GET /b\r\n\r\n");
        assert!(buf.is_empty());
        drop(first);
        assert_eq!(&*second, b"GET /b\r\n\r\n");
    }

    #[test]
    fn an_unshared_chunk_is_reused_in_place() {
        let mut buf = ReadBuf::default();
        buf.reserve(32);
        let chunk = buf.chunk.as_ptr();
        read(&mut buf, b"0123456789");
        drop(buf.split_head(4));
        buf.advance(2);
        assert_eq!(&*buf, b"6789");
        // Room after the bytes: no move.
        buf.reserve(8);
        assert_eq!(buf.chunk.as_ptr(), chunk);
        // Room only with the consumed front: compacted in place.
        buf.reserve(26);
        assert_eq!(buf.chunk.as_ptr(), chunk);
        assert_eq!((buf.start, buf.end), (0, 4));
        assert_eq!(&*buf, b"6789");
        // More than the chunk: a larger one, the bytes with it.
        buf.reserve(100);
        assert!(buf.spare() >= 100);
        assert_eq!(&*buf, b"6789");
        // Everything consumed: the next read starts at the front.
        let chunk = buf.chunk.as_ptr();
        buf.advance(4);
        assert_eq!(buf.spare(), buf.chunk.len());
        read(&mut buf, b"xy");
        assert_eq!((buf.chunk.as_ptr(), buf.start, buf.end), (chunk, 0, 2));
    }

    #[test]
    fn clear_and_split_bytes() {
        let mut buf = ReadBuf::default();
        read(&mut buf, b"bodyrest");
        assert_eq!(&buf.split_bytes(4)[..], b"body");
        assert_eq!(buf.len(), 4);
        let head = buf.split_head(2);
        buf.clear();
        assert!(buf.is_empty());
        read(&mut buf, b"new");
        assert_eq!(&*buf, b"new");
        assert_eq!(&*head, b"re");
    }

    #[test]
    fn a_read_into_a_shared_chunk_keeps_its_capacity() {
        let mut buf = ReadBuf::default();
        buf.reserve(64);
        read(&mut buf, b"abc");
        let head = buf.split_head(3);
        let room = buf.spare_mut().len();
        assert_eq!(room, 64, "a new chunk as large as the last");
        assert_eq!(&*head, b"abc");
    }
}
