//! Request heads and chunked bodies, parsed strictly (RFC 9112).
//!
//! Owns: turning bytes into a validated [`Head`] (offsets into the bytes, no
//! copies) and decoding `chunked` bodies. Must never: accept a message whose
//! framing two parsers could read differently (the root of request
//! smuggling), allocate, or read past the bytes it is given.
//!
//! httparse checks the syntax of the request line and of each field (token
//! characters, no whitespace before the colon, no obs-fold, no bare CR). This
//! file adds what httparse leaves to its caller: the framing rules for
//! `Content-Length` and `Transfer-Encoding`, `Host`, `Connection`, `Expect`,
//! control bytes in values, and the size limits.

use super::request::Method;

/// Most header fields a request may have (431 past it).
pub(crate) const MAX_HEADERS: usize = 64;

/// Where one header field lies in the head's bytes. Heads are at most 64 KiB
/// (`MAX_HEAD_LIMIT`), so 16-bit offsets do, and a field costs 8 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldPos {
    pub(crate) name: (u16, u16),
    pub(crate) value: (u16, u16),
}

/// The largest `max_head` a server accepts.
pub(crate) const MAX_HEAD_LIMIT: usize = u16::MAX as usize;

impl super::pool::Pooled for FieldPos {
    const KEEP_CAPACITY: usize = MAX_HEADERS;
    const FIRST_CAPACITY: usize = 16;
    fn free_list() -> &'static std::thread::LocalKey<std::cell::RefCell<Vec<Vec<Self>>>> {
        thread_local!(static FREE: std::cell::RefCell<Vec<Vec<FieldPos>>> = const { std::cell::RefCell::new(Vec::new()) });
        &FREE
    }
}

/// The positions of a request's header fields. Pooled rather than inline: a
/// request is moved several times on its way from the parser into the
/// handler's future, and 128 bytes of inline positions made those moves a
/// quarter of a pipelined request's user-space time (`benches/http.rs`).
pub(crate) type Fields = super::pool::PooledVec<FieldPos>;

/// How the body of a request is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// A validated request head: positions into the bytes it was parsed from.
#[derive(Debug)]
pub(crate) struct Head {
    /// Bytes the head occupies, final empty line included.
    pub(crate) len: usize,
    pub(crate) method: Method,
    pub(crate) method_pos: (u32, u32),
    pub(crate) target: (u32, u32),
    /// HTTP/1.x minor version: 0 or 1.
    pub(crate) minor: u8,
    pub(crate) fields: Fields,
    pub(crate) body: BodyKind,
    pub(crate) keep_alive: bool,
    pub(crate) expect_continue: bool,
}

/// Why a head was rejected; each maps to one status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// 400, with the reason sent in the body.
    Bad(&'static str),
    /// 414: the request line alone exceeds the head limit.
    UriTooLong,
    /// 431: the header section exceeds the head limit or has too many fields.
    HeadersTooLarge,
    /// 505: not HTTP/1.0 or HTTP/1.1.
    VersionNotSupported,
    /// 501: a transfer coding other than chunked.
    NotImplemented(&'static str),
    /// 417: an expectation other than 100-continue.
    ExpectationFailed,
}

impl HeadError {
    pub(crate) fn status(self) -> u16 {
        match self {
            HeadError::Bad(_) => 400,
            HeadError::UriTooLong => 414,
            HeadError::HeadersTooLarge => 431,
            HeadError::VersionNotSupported => 505,
            HeadError::NotImplemented(_) => 501,
            HeadError::ExpectationFailed => 417,
        }
    }

    pub(crate) fn reason(self) -> &'static str {
        match self {
            HeadError::Bad(why) | HeadError::NotImplemented(why) => why,
            HeadError::UriTooLong => "request line too long",
            HeadError::HeadersTooLarge => "request header section too large",
            HeadError::VersionNotSupported => "only HTTP/1.0 and HTTP/1.1 are supported",
            HeadError::ExpectationFailed => "only the 100-continue expectation is supported",
        }
    }
}

fn offset(base: &[u8], part: &[u8]) -> (u32, u32) {
    let start = part.as_ptr() as usize - base.as_ptr() as usize;
    (start as u32, (start + part.len()) as u32)
}

/// `offset` for header fields, which lie within the first 64 KiB: `len` was
/// checked against `max_head` (at most `MAX_HEAD_LIMIT`) before fields are read.
fn offset16(base: &[u8], part: &[u8]) -> (u16, u16) {
    let (start, end) = offset(base, part);
    (start as u16, end as u16)
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Parses a strictly valid decimal `Content-Length` (digits only).
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Calls `f` with each comma-separated, trimmed, non-empty element.
fn for_each_element(v: &[u8], mut f: impl FnMut(&[u8])) {
    for part in v.split(|&b| b == b',') {
        let part = trim(part);
        if !part.is_empty() {
            f(part);
        }
    }
}

/// Parses a request head from the start of `buf`. `Ok(None)`: incomplete,
/// read more (unless `buf` is already `max_head` long, which is an error).
pub(crate) fn parse_head(buf: &[u8], max_head: usize) -> Result<Option<Head>, HeadError> {
    // Uninitialised: httparse writes the slots it uses, so 64 slots cost
    // nothing to set up per request.
    let mut raw = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut raw) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if buf.len() >= max_head {
                let line_done = buf[..max_head].contains(&b'\n');
                return Err(if line_done {
                    HeadError::HeadersTooLarge
                } else {
                    HeadError::UriTooLong
                });
            }
            return Ok(None);
        }
        Err(httparse::Error::Version) => return Err(HeadError::VersionNotSupported),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::HeadersTooLarge),
        Err(httparse::Error::HeaderName) => return Err(HeadError::Bad("invalid header field name")),
        Err(httparse::Error::HeaderValue) => return Err(HeadError::Bad("invalid header field value")),
        Err(httparse::Error::NewLine) | Err(httparse::Error::Status) => {
            return Err(HeadError::Bad("malformed line ending"))
        }
        Err(httparse::Error::Token) => return Err(HeadError::Bad("invalid method or request target")),
    };
    if len > max_head {
        let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(len);
        return Err(if line_end >= max_head {
            HeadError::UriTooLong
        } else {
            HeadError::HeadersTooLarge
        });
    }
    let method_str = req.method.expect("complete request has a method");
    let target = req.path.expect("complete request has a target");
    let minor = req.version.expect("complete request has a version");
    let method = Method::from_bytes(method_str.as_bytes());
    let target_bytes = target.as_bytes();
    let valid_target = match target_bytes.first() {
        Some(b'/') => true,
        Some(b'*') => target_bytes.len() == 1 && method == Method::Options,
        _ => target_bytes.starts_with(b"http://") || target_bytes.starts_with(b"https://"),
    };
    if !valid_target {
        return Err(HeadError::Bad("invalid request target"));
    }

    let mut head = Head {
        len,
        method,
        method_pos: offset(buf, method_str.as_bytes()),
        target: offset(buf, target_bytes),
        minor,
        fields: Fields::new(),
        body: BodyKind::None,
        keep_alive: minor == 1,
        expect_continue: false,
    };
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut hosts = 0;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    for field in req.headers.iter() {
        let value = trim(field.value);
        // Control bytes and DEL in values were already refused by httparse
        // (HeaderValue error → 400); `syntax_rules` tests both.
        head.fields.push(FieldPos {
            name: offset16(buf, field.name.as_bytes()),
            value: offset16(buf, value),
        });
        let name = field.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let mut bad = false;
            for_each_element(value, |part| match (parse_length(part), length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => bad = true,
            });
            if bad || length.is_none() {
                return Err(HeadError::Bad("invalid or conflicting Content-Length"));
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
            let mut bad = None;
            for_each_element(value, |coding| {
                if chunked {
                    // Nothing may follow chunked, not even chunked again.
                    bad = Some(HeadError::Bad(
                        "chunked must be the final transfer coding, applied once",
                    ));
                } else if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked = true;
                } else if bad.is_none() {
                    bad = Some(HeadError::NotImplemented("unsupported transfer coding"));
                }
            });
            if let Some(e) = bad {
                return Err(e);
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for_each_element(value, |opt| {
                connection_close |= opt.eq_ignore_ascii_case(b"close");
                connection_keep_alive |= opt.eq_ignore_ascii_case(b"keep-alive");
            });
        } else if name.eq_ignore_ascii_case(b"expect") {
            if value.eq_ignore_ascii_case(b"100-continue") {
                head.expect_continue = minor == 1;
            } else {
                return Err(HeadError::ExpectationFailed);
            }
        }
    }
    if transfer_encoding {
        if length.is_some() {
            return Err(HeadError::Bad("both Content-Length and Transfer-Encoding"));
        }
        if minor == 0 {
            return Err(HeadError::Bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if !chunked {
            return Err(HeadError::Bad("the final transfer coding is not chunked"));
        }
        head.body = BodyKind::Chunked;
    } else if let Some(n) = length {
        head.body = if n == 0 { BodyKind::None } else { BodyKind::Length(n) };
    }
    if minor == 1 && hosts != 1 {
        return Err(HeadError::Bad(if hosts == 0 {
            "missing Host header"
        } else {
            "more than one Host header"
        }));
    }
    if hosts > 1 {
        return Err(HeadError::Bad("more than one Host header"));
    }
    head.keep_alive = if minor == 1 {
        !connection_close
    } else {
        connection_keep_alive && !connection_close
    };
    Ok(Some(head))
}

/// Decodes a `chunked` body incrementally (RFC 9112 §7.1). Chunk extensions
/// are skipped, trailer fields are read and discarded.
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
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

/// Most bytes of chunk extensions and trailer fields accepted per body.
const MAX_CHUNK_OVERHEAD: u32 = 16 * 1024;

/// What one call to [`ChunkedDecoder::decode`] found.
pub(crate) struct Decoded {
    /// Input bytes used.
    pub(crate) consumed: usize,
    /// Whether the body ended (the last chunk and trailers were read).
    pub(crate) done: bool,
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

    /// Decodes from `input`, handing each run of body bytes to `data`.
    pub(crate) fn decode(&mut self, input: &[u8], mut data: impl FnMut(&[u8])) -> Result<Decoded, &'static str> {
        let mut i = 0;
        while i < input.len() && self.state != ChunkState::Done {
            let b = input[i];
            match self.state {
                ChunkState::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = (b as char).to_digit(16).expect("hex digit") as u64;
                        self.digits += 1;
                        if self.digits > 15 {
                            return Err("chunk size too large");
                        }
                        self.size = self.size * 16 + digit;
                    }
                    b';' if self.digits > 0 => self.state = ChunkState::Extension,
                    b'\r' if self.digits > 0 => self.state = ChunkState::SizeLf,
                    _ => return Err("invalid chunk size"),
                },
                ChunkState::Extension => {
                    self.overhead += 1;
                    if self.overhead > MAX_CHUNK_OVERHEAD {
                        return Err("chunk extensions too long");
                    }
                    match b {
                        b'\r' => self.state = ChunkState::SizeLf,
                        b'\t' | 0x20..=0x7e | 0x80..=0xff => {}
                        _ => return Err("invalid byte in chunk extension"),
                    }
                }
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err("chunk size line not ended by CRLF");
                    }
                    self.digits = 0;
                    self.state = if self.size == 0 {
                        ChunkState::TrailerStart
                    } else {
                        ChunkState::Data
                    };
                }
                ChunkState::Data => {
                    let take = (self.size as usize).min(input.len() - i);
                    data(&input[i..i + take]);
                    self.size -= take as u64;
                    i += take;
                    if self.size == 0 {
                        self.state = ChunkState::DataCr;
                    }
                    continue;
                }
                ChunkState::DataCr => {
                    if b != b'\r' {
                        return Err("chunk data not followed by CRLF");
                    }
                    self.state = ChunkState::DataLf;
                }
                ChunkState::DataLf => {
                    if b != b'\n' {
                        return Err("chunk data not followed by CRLF");
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::TrailerStart => match b {
                    b'\r' => self.state = ChunkState::EndLf,
                    b' ' | b'\t' => return Err("obs-fold in trailer section"),
                    _ => {
                        self.overhead += 1;
                        self.state = ChunkState::Trailer;
                    }
                },
                ChunkState::Trailer => {
                    self.overhead += 1;
                    if self.overhead > MAX_CHUNK_OVERHEAD {
                        return Err("trailer section too long");
                    }
                    match b {
                        b'\r' => self.state = ChunkState::TrailerLf,
                        b'\n' => return Err("bare LF in trailer section"),
                        b'\t' | 0x20..=0x7e | 0x80..=0xff => {}
                        _ => return Err("invalid byte in trailer section"),
                    }
                }
                ChunkState::TrailerLf => {
                    if b != b'\n' {
                        return Err("bare CR in trailer section");
                    }
                    self.state = ChunkState::TrailerStart;
                }
                ChunkState::EndLf => {
                    if b != b'\n' {
                        return Err("chunked body not ended by CRLF");
                    }
                    self.state = ChunkState::Done;
                }
                ChunkState::Done => unreachable!("loop stops at Done"),
            }
            i += 1;
        }
        Ok(Decoded {
            consumed: i,
            done: self.state == ChunkState::Done,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<Head>, HeadError> {
        parse_head(s.as_bytes(), 8192)
    }

    fn status(s: &str) -> u16 {
        match parse(s) {
            Ok(Some(_)) => 200,
            Ok(None) => 0,
            Err(e) => e.status(),
        }
    }

    #[test]
    fn simple_get() {
        let h = parse("GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.minor, 1);
        assert_eq!(h.body, BodyKind::None);
        assert!(h.keep_alive);
        assert_eq!(h.fields.as_slice().len(), 1);
    }

    #[test]
    fn incomplete_heads_ask_for_more() {
        let full = "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n";
        for cut in 0..full.len() {
            assert!(parse(&full[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        assert_eq!(parse(full).unwrap().unwrap().body, BodyKind::Length(3));
    }

    #[test]
    fn framing_rules() {
        let h = |extra: &str| status(&format!("POST / HTTP/1.1\r\nHost: x\r\n{extra}\r\n"));
        assert_eq!(h("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), 400);
        assert_eq!(h("Content-Length: 5\r\nContent-Length: 6\r\n"), 400);
        assert_eq!(h("Content-Length: 5\r\nContent-Length: 5\r\n"), 200);
        assert_eq!(h("Content-Length: 5, 5\r\n"), 200);
        assert_eq!(h("Content-Length: 5, 6\r\n"), 400);
        assert_eq!(h("Content-Length: +5\r\n"), 400);
        assert_eq!(h("Content-Length: -1\r\n"), 400);
        assert_eq!(h("Content-Length: 0x10\r\n"), 400);
        assert_eq!(h("Content-Length: 99999999999999999999\r\n"), 400);
        assert_eq!(h("Content-Length: \r\n"), 400);
        assert_eq!(h("Transfer-Encoding: chunked\r\n"), 200);
        assert_eq!(h("Transfer-Encoding: gzip\r\n"), 501);
        assert_eq!(h("Transfer-Encoding: chunked, gzip\r\n"), 400);
        assert_eq!(h("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 400);
        assert_eq!(h("Transfer-Encoding: gzip, chunked\r\n"), 501);
        assert_eq!(status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
    }

    #[test]
    fn host_and_version_rules() {
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(status("GET / HTTP/1.0\r\n\r\n"), 200);
        assert_eq!(status("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(status("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505);
    }

    #[test]
    fn syntax_rules() {
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
            400,
            "whitespace before colon"
        );
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n  folded\r\n\r\n"),
            400,
            "obs-fold"
        );
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"), 400, "bare CR");
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n"),
            400,
            "control byte"
        );
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n"), 400, "DEL");
        assert_eq!(status("\x16\x03\x01\x02\x00\x01\x00\x01\x7c\x03\x03"), 400, "TLS hello");
        assert_eq!(status("GET noslash HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
        assert_eq!(status("GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n"), 200);
        assert_eq!(status("GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n"), 417);
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |s: &str| parse(s).unwrap().unwrap().keep_alive;
        assert!(ka("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
        assert!(ka("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
        assert!(!ka(
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n"
        ));
    }

    #[test]
    fn limits() {
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000));
        assert_eq!(status(&long_target), 414);
        assert_eq!(status(&format!("GET /{}", "a".repeat(9000))), 414);
        let big_headers = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "b".repeat(9000));
        assert_eq!(status(&big_headers), 431);
        let many: String = (0..70).map(|i| format!("X{i}: v\r\n")).collect();
        assert_eq!(status(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")), 431);
    }

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize), &'static str> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let r = d.decode(input, |b| out.extend_from_slice(b))?;
        assert!(r.done, "not done");
        Ok((out, r.consumed))
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
        let input = b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nA: b\r\n\r\n";
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
    fn chunked_errors() {
        let bad = |s: &[u8]| {
            let mut d = ChunkedDecoder::new();
            d.decode(s, |_| {}).is_err()
        };
        assert!(bad(b"g\r\n"), "not hex");
        assert!(bad(b"\r\n"), "empty size");
        assert!(bad(b"-1\r\n"), "sign");
        assert!(bad(b"ffffffffffffffff\r\n"), "overflow");
        assert!(bad(b"3\nabc"), "bare LF after size");
        assert!(bad(b"3\r\nabcX"), "data not followed by CRLF");
        assert!(bad(b"0\r\nX: a\rb\r\n\r\n"), "bare CR in trailer");
        assert!(bad(b"0\r\n folded\r\n\r\n"), "obs-fold in trailer");
        assert!(bad(b"3;\x01\r\nabc\r\n"), "control byte in extension");
    }
}
