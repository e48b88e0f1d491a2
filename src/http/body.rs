//! Request bodies: the chunked decoder, the channel a handler reads a body
//! through, and the reader that moves bytes from the connection's input into
//! that channel with flow control.
//!
//! Owns: body framing after the head (`Content-Length` left, or the chunked
//! state), the body size limit, and the window past which a slow reader makes
//! the connection stop reading. Must never: answer a bad body (it returns a
//! [`BodyError`]; the connection decides what the client hears), consume a
//! byte past the body's end (that byte is the next request), or buffer more
//! than the window for a reader that takes the body piece by piece.
//!
//! # Chunked framing (RFC 9112 §7.1)
//!
//! ```text
//! chunked-body = *chunk last-chunk trailer-section CRLF
//! chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-ext    = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
//! ext-val      = token / quoted-string
//! trailer      = *( field-name ":" OWS field-value OWS CRLF )
//! ```
//!
//! Every line ends with CRLF: a bare LF anywhere is an error, as in the head
//! (`head.rs`). Extensions are checked and skipped; trailer fields are checked
//! and discarded. Extensions and trailers together are bounded.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::task::Waker;

use bytes::{Bytes, BytesMut};

use super::head::{is_tchar, BodyKind};
use super::read_buf::ReadBuf;

/// Body bytes buffered for a handler that reads them piece by piece before
/// the connection stops reading (flow control for large uploads).
pub(crate) const BODY_WINDOW: usize = 256 * 1024;

/// Least capacity of a block of buffered body bytes. Body bytes are copied
/// into blocks of at least this size, never into one growing buffer: a
/// growing buffer is reallocated at ever larger sizes (up to twice the
/// window), which makes glibc raise its mmap threshold and keep the heap's
/// high-water mark; blocks stay small and alike, and a body sent in tiny
/// chunks costs no more per byte than one sent whole.
const BLOCK: usize = 16 * 1024;

/// Most bytes of chunk extensions and trailer fields accepted per body.
const MAX_CHUNK_OVERHEAD: u32 = 16 * 1024;

/// Most hex digits in a chunk size: 15 keep the size below 2⁶⁰, so it can
/// never overflow.
const MAX_SIZE_DIGITS: u8 = 15;

/// Decodes a `chunked` body incrementally.
#[derive(Clone, Debug)]
pub(crate) struct ChunkedDecoder {
    state: ChunkState,
    /// Bytes left in the current chunk, or the size being parsed.
    size: u64,
    digits: u8,
    /// Bytes of extensions and trailers seen, to bound them.
    overhead: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    Size,
    /// Whitespace after the size: only `;` may follow.
    SizeBws,
    /// After `;`: whitespace, then a name.
    ExtStart,
    ExtName,
    /// After a name: whitespace, `=`, `;` or the line end.
    ExtAfterName,
    /// After `=`: whitespace, then a token or a quoted string.
    ExtValueStart,
    ExtToken,
    ExtQuoted,
    ExtQuotedPair,
    /// After a value: whitespace, `;` or the line end.
    ExtAfterValue,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final CRLF).
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,
    Done,
}

/// What one call to [`ChunkedDecoder::decode`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// Input bytes used.
    pub(crate) consumed: usize,
    /// Whether the body ended (the last chunk and trailers were read).
    pub(crate) done: bool,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub(crate) fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: ChunkState::Size,
            size: 0,
            digits: 0,
            overhead: 0,
        }
    }

    fn overhead(&mut self, what: &'static str) -> Result<(), &'static str> {
        self.overhead += 1;
        if self.overhead > MAX_CHUNK_OVERHEAD {
            return Err(what);
        }
        Ok(())
    }

    /// Decodes from `input`, handing each run of body bytes to `data`. Stops
    /// right after the body's final CRLF; an error is final.
    pub(crate) fn decode(&mut self, input: &[u8], mut data: impl FnMut(&[u8])) -> Result<Decoded, &'static str> {
        use ChunkState::*;
        let is_ws = |b: u8| b == b' ' || b == b'\t';
        let mut i = 0;
        while i < input.len() && self.state != Done {
            let b = input[i];
            self.state = match self.state {
                Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = (b as char).to_digit(16).expect("hex digit") as u64;
                        self.digits += 1;
                        if self.digits > MAX_SIZE_DIGITS {
                            return Err("chunk size too large");
                        }
                        self.size = self.size * 16 + digit;
                        Size
                    }
                    b';' if self.digits > 0 => ExtStart,
                    b'\r' if self.digits > 0 => SizeLf,
                    b' ' | b'\t' if self.digits > 0 => SizeBws,
                    _ => return Err("invalid chunk size"),
                },
                SizeBws => match b {
                    b' ' | b'\t' => SizeBws,
                    b';' => ExtStart,
                    _ => return Err("invalid chunk size line"),
                },
                ExtStart | ExtName | ExtAfterName | ExtValueStart | ExtToken | ExtQuoted | ExtQuotedPair
                | ExtAfterValue => {
                    self.overhead("chunk extensions too long")?;
                    match (self.state, b) {
                        (ExtStart, _) if is_ws(b) => ExtStart,
                        (ExtStart, _) if is_tchar(b) => ExtName,
                        (ExtStart, _) => return Err("chunk extension without a name"),
                        (ExtName, _) if is_tchar(b) => ExtName,
                        (ExtName | ExtAfterName, _) if is_ws(b) => ExtAfterName,
                        (ExtName | ExtAfterName, b'=') => ExtValueStart,
                        (ExtName | ExtAfterName | ExtToken | ExtAfterValue, b';') => ExtStart,
                        (ExtName | ExtAfterName | ExtToken | ExtAfterValue, b'\r') => SizeLf,
                        (ExtName | ExtAfterName, _) => return Err("invalid chunk extension name"),
                        (ExtValueStart, _) if is_ws(b) => ExtValueStart,
                        (ExtValueStart, b'"') => ExtQuoted,
                        (ExtValueStart | ExtToken, _) if is_tchar(b) => ExtToken,
                        (ExtToken | ExtAfterValue, _) if is_ws(b) => ExtAfterValue,
                        (ExtQuoted, b'"') => ExtAfterValue,
                        (ExtQuoted, b'\\') => ExtQuotedPair,
                        // qdtext: HTAB, SP, visible ASCII but `"` and `\`, obs-text.
                        (ExtQuoted, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff) => ExtQuoted,
                        (ExtQuotedPair, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff) => ExtQuoted,
                        _ => return Err("invalid chunk extension"),
                    }
                }
                SizeLf => {
                    if b != b'\n' {
                        return Err("chunk size line not ended by CRLF");
                    }
                    self.digits = 0;
                    if self.size == 0 {
                        TrailerStart
                    } else {
                        Data
                    }
                }
                Data => {
                    let take = (self.size as usize).min(input.len() - i);
                    data(&input[i..i + take]);
                    self.size -= take as u64;
                    i += take;
                    if self.size == 0 {
                        self.state = DataCr;
                    }
                    continue;
                }
                DataCr if b == b'\r' => DataLf,
                DataLf if b == b'\n' => Size,
                DataCr | DataLf => return Err("chunk data not followed by CRLF"),
                TrailerStart => match b {
                    b'\r' => EndLf,
                    b'\n' => return Err("bare LF in trailer section: lines end with CRLF"),
                    b' ' | b'\t' => return Err("obs-fold in trailer section"),
                    _ if is_tchar(b) => {
                        self.overhead("trailer section too long")?;
                        TrailerName
                    }
                    _ => return Err("invalid trailer field name"),
                },
                TrailerName => {
                    self.overhead("trailer section too long")?;
                    match b {
                        b':' => TrailerValue,
                        _ if is_tchar(b) => TrailerName,
                        _ => return Err("invalid trailer field name"),
                    }
                }
                TrailerValue => {
                    self.overhead("trailer section too long")?;
                    match b {
                        b'\r' => TrailerLf,
                        b'\n' => return Err("bare LF in trailer section: lines end with CRLF"),
                        b'\t' | 0x20..=0x7e | 0x80..=0xff => TrailerValue,
                        _ => return Err("invalid byte in trailer section"),
                    }
                }
                TrailerLf if b == b'\n' => TrailerStart,
                TrailerLf => return Err("bare CR in trailer section"),
                EndLf if b == b'\n' => Done,
                EndLf => return Err("chunked body not ended by CRLF"),
                Done => unreachable!("the loop stops at Done"),
            };
            i += 1;
        }
        Ok(Decoded {
            consumed: i,
            done: self.state == Done,
        })
    }
}

/// The body as the connection delivers it to the request.
///
/// Flow control: the connection stops reading when a piece-by-piece reader
/// has `BODY_WINDOW` bytes unread ([`BodyChannel::window_full`], a pure
/// check), and says so with [`BodyChannel::pause`]; the reader calls
/// `resume` when it takes data from a paused channel.
pub(crate) struct BodyChannel {
    /// Body bytes not yet taken, oldest first (see [`BLOCK`]).
    blocks: VecDeque<BytesMut>,
    /// Bytes in `blocks`.
    len: usize,
    pub(crate) done: bool,
    pub(crate) error: Option<(io::ErrorKind, &'static str)>,
    pub(crate) waker: Option<Waker>,
    /// Set when the request (or its body handle) is dropped: later bytes are
    /// discarded instead of buffered.
    pub(crate) abandoned: bool,
    /// The reader collects the whole body (`body()`): never pause for it.
    pub(crate) collecting: bool,
    /// The connection stopped reading because the window is full.
    paused: bool,
    resume: Rc<dyn Fn()>,
}

impl BodyChannel {
    pub(crate) fn new(resume: Rc<dyn Fn()>) -> BodyChannel {
        BodyChannel {
            blocks: VecDeque::new(),
            len: 0,
            done: false,
            error: None,
            waker: None,
            abandoned: false,
            collecting: false,
            paused: false,
            resume,
        }
    }

    /// Whether a piece-by-piece reader has a window's worth unread.
    pub(crate) fn window_full(&self) -> bool {
        !self.collecting && !self.abandoned && self.len >= BODY_WINDOW
    }

    /// The oldest buffered block, if any (at most one read's worth).
    pub(crate) fn take_block(&mut self) -> Option<Bytes> {
        let block = self.blocks.pop_front()?;
        self.len -= block.len();
        Some(block.freeze())
    }

    /// Everything buffered, as one `Bytes` (no copy when it is one block).
    pub(crate) fn take_all(&mut self) -> Bytes {
        if self.blocks.len() <= 1 {
            return self.take_block().unwrap_or_default();
        }
        let mut all = BytesMut::with_capacity(self.len);
        for block in self.blocks.drain(..) {
            all.extend_from_slice(&block);
        }
        self.len = 0;
        all.freeze()
    }

    /// Drops what is buffered (nobody will read it).
    pub(crate) fn clear(&mut self) {
        self.blocks = VecDeque::new();
        self.len = 0;
    }

    /// Whether the connection stopped reading for this reader.
    pub(crate) fn is_paused(&self) -> bool {
        self.paused
    }

    /// The connection stops reading until the reader takes data.
    pub(crate) fn pause(&mut self) {
        debug_assert!(self.window_full(), "paused below the window");
        self.paused = true;
    }

    /// Called by the reader after taking data (or deciding to collect it
    /// all): lets a paused connection read again.
    pub(crate) fn taken(&mut self) {
        if std::mem::take(&mut self.paused) {
            (self.resume)();
        }
    }

    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        if self.abandoned || bytes.is_empty() {
            return;
        }
        self.len += bytes.len();
        if let Some(last) = self.blocks.back_mut() {
            let room = last.capacity() - last.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            last.extend_from_slice(now);
            bytes = rest;
        }
        if !bytes.is_empty() {
            let mut block = BytesMut::with_capacity(bytes.len().max(BLOCK));
            block.extend_from_slice(bytes);
            self.blocks.push_back(block);
        }
        self.wake();
    }

    pub(crate) fn finish(&mut self, error: Option<(io::ErrorKind, &'static str)>) {
        self.done = true;
        self.error = error;
        self.wake();
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// How the rest of the current request's body is framed.
enum Framing {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// A body that cannot be read to its end: each maps to one status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// 400: invalid chunked framing.
    Framing(&'static str),
    /// 413: the body grew past the limit.
    TooLarge,
    /// 408: the client stopped sending it.
    TimedOut,
    /// The client closed its side mid-body (no status: nobody to tell).
    Closed,
}

impl BodyError {
    pub(crate) fn status(self) -> u16 {
        match self {
            BodyError::Framing(_) => 400,
            BodyError::TooLarge => 413,
            BodyError::TimedOut | BodyError::Closed => 408,
        }
    }

    pub(crate) fn reason(self) -> &'static str {
        match self {
            BodyError::Framing(why) => why,
            BodyError::TooLarge => "request body too large",
            BodyError::TimedOut => "request body timed out",
            BodyError::Closed => "client closed mid-body",
        }
    }

    fn kind(self) -> io::ErrorKind {
        match self {
            BodyError::Framing(_) => io::ErrorKind::InvalidData,
            BodyError::TooLarge => io::ErrorKind::FileTooLarge,
            BodyError::TimedOut => io::ErrorKind::TimedOut,
            BodyError::Closed => io::ErrorKind::UnexpectedEof,
        }
    }
}

/// The body of the request in progress, still arriving.
pub(crate) struct BodyReader {
    framing: Framing,
    /// Where the bytes go; `None` once nobody wants them (they are drained).
    channel: Option<Rc<RefCell<BodyChannel>>>,
    received: u64,
    max: u64,
    /// The request's response has been queued (the handler answered without
    /// waiting for the whole body): a later body error must not answer again.
    pub(crate) answered: bool,
}

impl BodyReader {
    pub(crate) fn new(kind: BodyKind, max: u64, channel: Option<Rc<RefCell<BodyChannel>>>) -> BodyReader {
        BodyReader {
            framing: match kind {
                BodyKind::Length(n) => Framing::Length(n),
                BodyKind::Chunked => Framing::Chunked(ChunkedDecoder::new()),
                BodyKind::None => Framing::Length(0),
            },
            channel,
            received: 0,
            max,
            answered: false,
        }
    }

    /// Whether the reader has a window's worth unread (pure).
    pub(crate) fn window_full(&self) -> bool {
        self.channel.as_ref().is_some_and(|ch| ch.borrow().window_full())
    }

    /// Whether the connection stopped reading for the reader.
    pub(crate) fn is_paused(&self) -> bool {
        self.channel.as_ref().is_some_and(|ch| ch.borrow().is_paused())
    }

    /// The connection stops reading until the reader takes data.
    pub(crate) fn pause(&self) {
        if let Some(ch) = &self.channel {
            ch.borrow_mut().pause();
        }
    }

    /// Moves body bytes from the front of `input` to the reader; returns
    /// whether the body is complete. Bytes after the body stay in `input`.
    pub(crate) fn feed(&mut self, input: &mut ReadBuf) -> Result<bool, BodyError> {
        let (consumed, done) = match &mut self.framing {
            Framing::Length(left) => {
                let take = (*left).min(input.len() as u64) as usize;
                if let Some(ch) = &self.channel {
                    ch.borrow_mut().push(&input[..take]);
                }
                *left -= take as u64;
                (take, *left == 0)
            }
            Framing::Chunked(decoder) => {
                let (channel, received, max) = (&self.channel, &mut self.received, self.max);
                let mut too_large = false;
                let decoded = decoder
                    .decode(input, |data| {
                        *received += data.len() as u64;
                        if *received > max {
                            too_large = true;
                        } else if let Some(ch) = channel {
                            ch.borrow_mut().push(data);
                        }
                    })
                    .map_err(BodyError::Framing)?;
                if too_large {
                    return Err(BodyError::TooLarge);
                }
                (decoded.consumed, decoded.done)
            }
        };
        input.advance(consumed);
        if done {
            if let Some(ch) = self.channel.take() {
                ch.borrow_mut().finish(None);
            }
        }
        Ok(done)
    }

    /// The body will never complete: its reader learns why.
    pub(crate) fn fail(&mut self, error: BodyError) {
        if let Some(ch) = self.channel.take() {
            ch.borrow_mut().finish(Some((error.kind(), error.reason())));
        }
    }
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        // A body dropped unfinished (the connection closed) fails its reader.
        if let Some(ch) = self.channel.take() {
            ch.borrow_mut()
                .finish(Some((io::ErrorKind::ConnectionAborted, "connection closed")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize), &'static str> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let r = d.decode(input, |b| out.extend_from_slice(b))?;
        assert!(r.done, "not done");
        Ok((out, r.consumed))
    }

    fn bad(s: &[u8]) -> bool {
        ChunkedDecoder::new().decode(s, |_| {}).is_err()
    }

    #[test]
    fn chunked_bodies() {
        let (body, used) = decode_all(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT").unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(used, 44, "stops right after the final CRLF");
        assert_eq!(decode_all(b"0\r\n\r\n").unwrap().0, b"");
        assert_eq!(decode_all(b"A\r\n0123456789\r\n0\r\n\r\n").unwrap().0, b"0123456789");
    }

    #[test]
    fn chunked_byte_by_byte_matches_whole() {
        let input = b"3;a=\"q\\\"x\" ; b\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nA: b\r\n\r\n";
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut done = false;
        for i in 0..input.len() {
            let r = d.decode(&input[i..i + 1], |b| out.extend_from_slice(b)).unwrap();
            assert_eq!(r.consumed, 1);
            done = r.done;
        }
        assert!(done);
        assert_eq!(out, b"abc0123456789abcdef");
    }

    #[test]
    fn extensions() {
        for ok in [
            &b"5;a\r\nhello\r\n0\r\n\r\n"[..],
            b"5;a=b\r\nhello\r\n0\r\n\r\n",
            b"5 ; a = b ; c\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"quoted; \\\" value\"\r\nhello\r\n0\r\n\r\n",
            b"0;last\r\n\r\n",
        ] {
            assert!(decode_all(ok).is_ok(), "{:?}", String::from_utf8_lossy(ok));
        }
        for bad_ext in [
            &b"5;\r\n"[..],
            b"5;bad[=x\r\n",
            b"5;=x\r\n",
            b"5;a=\r\n",
            b"5;a=\"open\r\n",
            b"5;a=b c\r\n",
            b"5 \r\n",
            b"5;a\n",
        ] {
            assert!(bad(bad_ext), "{:?}", String::from_utf8_lossy(bad_ext));
        }
    }

    #[test]
    fn buffered_body_bytes_go_into_small_blocks() {
        let mut ch = BodyChannel::new(Rc::new(|| {}));
        // 10,000 one-byte pieces: a handful of blocks, not 10,000.
        for _ in 0..10_000 {
            ch.push(b"x");
        }
        assert_eq!(ch.blocks.len(), 1);
        for _ in 0..BLOCK {
            ch.push(b"y");
        }
        assert_eq!(ch.blocks.len(), 2);
        // A large piece fills the room left, then takes one block of its own.
        ch.push(&[b'z'; 3 * BLOCK]);
        assert_eq!(ch.blocks.len(), 3);
        assert!(ch.blocks.iter().all(|b| b.capacity() <= 3 * BLOCK));
        assert_eq!(ch.len, 10_000 + BLOCK + 3 * BLOCK);
        let first = ch.take_block().unwrap();
        assert_eq!(first.len(), BLOCK);
        assert!(first[..10_000].iter().all(|&b| b == b'x'));
        let rest = ch.take_all();
        assert_eq!(rest.len(), 10_000 + 3 * BLOCK);
        assert!(rest[..BLOCK - 10_000].iter().all(|&b| b == b'y'));
        assert_eq!(ch.len, 0);
        assert!(ch.take_block().is_none());
        assert!(ch.take_all().is_empty());
    }

    #[test]
    fn chunked_errors() {
        assert!(bad(b"g\r\n"), "not hex");
        assert!(bad(b"zz\r\n"), "not hex");
        assert!(bad(b"\r\n"), "empty size");
        assert!(bad(b"-1\r\n"), "sign");
        assert!(bad(b"ffffffffffffffff\r\n"), "overflow");
        assert!(bad(b"ffffffffffffffffffffffff\r\n"), "overflow");
        assert!(bad(b"3\nabc"), "bare LF after size");
        assert!(bad(b"3\r\nabcX"), "data not followed by CRLF");
        assert!(bad(b"3\r\nabc\n"), "bare LF after data");
        assert!(bad(b"0\r\n\n"), "bare LF ending the body");
        assert!(bad(b"0\r\nX: a\n"), "bare LF after a trailer");
        assert!(bad(b"0\r\nX: a\rb\r\n\r\n"), "bare CR in trailer");
        assert!(bad(b"0\r\n folded\r\n\r\n"), "obs-fold in trailer");
        assert!(bad(b"0\r\nbad name: x\r\n\r\n"), "trailer name not a token");
        assert!(bad(b"0\r\n:x\r\n\r\n"), "trailer without a name");
        assert!(bad(b"3;\x01\r\nabc\r\n"), "control byte in extension");
    }
}
