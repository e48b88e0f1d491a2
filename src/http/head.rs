//! Request heads, parsed strictly (RFC 9112 §2–§3, §5–§6; RFC 9110 §5, §7.2).
//!
//! Owns: turning bytes into a validated [`Head`] (offsets into the bytes, no
//! copies), the request [`Method`], and [`HeadError`], which names the one
//! status each rejection gets. Must never: accept a head whose framing two
//! parsers could read differently (the root of request smuggling), allocate
//! on the path of a valid HTTP/1.0 or HTTP/1.1 request, or read past the
//! bytes it is given.
//!
//! httparse checks the syntax of the request line and of each field (token
//! characters, no whitespace before the colon, no obs-fold, no bare CR). This
//! file adds what httparse leaves to its caller or accepts where we do not:
//!
//! - **Line ends are CRLF, everywhere.** httparse accepts a bare LF; we reject
//!   it in the request line and header section, as `body.rs` does in chunk
//!   lines and trailers. A parser that frames exactly like the strictest proxy
//!   in front of it cannot be smuggled through (`docs/http.md`).
//! - The request line: exactly `method SP target SP HTTP/DIGIT.DIGIT`; a
//!   malformed version is 400, a well-formed one whose major is not 1 is 505,
//!   and `HTTP/1.2` and later minors are served as HTTP/1.1 (RFC 9110 §6.2).
//! - The target: visible ASCII only, no `#fragment`, one of the four forms.
//! - Framing: `Content-Length` and `Transfer-Encoding` (§6), `Host` (§3.2),
//!   `Connection`, `Expect`, fields that must not repeat, and names with `_`
//!   (dropped unless the server keeps them: some proxies map them onto `-`).

use std::fmt;

/// Most header fields a request may have (431 past it).
pub(crate) const MAX_HEADERS: usize = 64;

/// The largest `max_head` a server accepts: field offsets are 16-bit.
pub(crate) const MAX_HEAD_LIMIT: usize = u16::MAX as usize;

/// A method token longer than this is refused (400) as soon as it is seen:
/// the longest registered method (`UPDATEREDIRECTREF`) has 17 letters, and
/// waiting for `max_head` bytes of letters would only hold a buffer.
pub(crate) const MAX_METHOD_LEN: usize = 32;

/// An HTTP request method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// PATCH
    Patch,
    /// OPTIONS
    Options,
    /// CONNECT
    Connect,
    /// TRACE
    Trace,
    /// Any other (valid token) method; see `Request::method_str`.
    Other,
}

impl Method {
    pub(crate) fn from_bytes(b: &[u8]) -> Method {
        match b {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"PATCH" => Method::Patch,
            b"OPTIONS" => Method::Options,
            b"CONNECT" => Method::Connect,
            b"TRACE" => Method::Trace,
            _ => Method::Other,
        }
    }

    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Connect => "CONNECT",
            Method::Trace => "TRACE",
            Method::Other => "OTHER",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one header field lies in the head's bytes. Heads are at most 64 KiB
/// (`MAX_HEAD_LIMIT`), so 16-bit offsets do, and a field costs 8 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldPos {
    pub(crate) name: (u16, u16),
    pub(crate) value: (u16, u16),
}

impl super::pool::Pooled for FieldPos {
    const KEEP_CAPACITY: usize = MAX_HEADERS;
    const FIRST_CAPACITY: usize = 16;
    fn free_list() -> &'static std::thread::LocalKey<std::cell::RefCell<Vec<Vec<Self>>>> {
        thread_local!(static FREE: std::cell::RefCell<Vec<Vec<FieldPos>>> = const { std::cell::RefCell::new(Vec::new()) });
        &FREE
    }
}

/// The positions of a request's header fields: the first `INLINE_FIELDS`
/// inline, more in a pooled vector. Not all inline: a request is moved
/// several times on its way from the parser into the handler's future, and
/// 128 bytes of inline positions made those moves a quarter of a pipelined
/// request's user-space time (`benches/http.rs`); and not all pooled: taking
/// and giving back a vector costs more than a short head's whole parse.
///
/// Invariant: with `len <= INLINE_FIELDS` the fields are `inline[..len]` and
/// `spill` is empty; past it, all of them are in `spill` (the inline ones
/// were moved there), so they are always one slice.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    len: u16,
    inline: [FieldPos; INLINE_FIELDS],
    spill: super::pool::PooledVec<FieldPos>,
}

/// Fields kept inline: as many as curl sends (`Host`, `User-Agent`,
/// `Accept`).
const INLINE_FIELDS: usize = 3;

impl Fields {
    #[inline]
    pub(crate) fn push(&mut self, field: FieldPos) {
        let len = usize::from(self.len);
        if len < INLINE_FIELDS {
            self.inline[len] = field;
        } else {
            if len == INLINE_FIELDS {
                for f in self.inline {
                    self.spill.push(f);
                }
            }
            self.spill.push(field);
        }
        self.len += 1;
        debug_assert_eq!(self.as_slice().len(), usize::from(self.len));
    }

    pub(crate) fn as_slice(&self) -> &[FieldPos] {
        let len = usize::from(self.len);
        if len <= INLINE_FIELDS {
            &self.inline[..len]
        } else {
            self.spill.as_slice()
        }
    }

    /// A copy (its vector, if any, from the pool like any other).
    pub(crate) fn copied(&self) -> Fields {
        Fields {
            len: self.len,
            inline: self.inline,
            spill: self.spill.copied(),
        }
    }
}

impl PartialEq for Fields {
    fn eq(&self, other: &Fields) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// How the body of a request is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// The form of the request target (RFC 9112 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TargetForm {
    /// `/path?query`
    Origin,
    /// `http://host/path`
    Absolute,
    /// `*`, with OPTIONS only.
    Asterisk,
}

/// A validated request head: positions into the bytes it was parsed from.
#[derive(Debug, PartialEq)]
pub(crate) struct Head {
    /// Bytes the head occupies, final empty line included.
    pub(crate) len: usize,
    pub(crate) method: Method,
    pub(crate) method_pos: (u32, u32),
    pub(crate) target: (u32, u32),
    pub(crate) form: TargetForm,
    /// HTTP/1.x minor version as served: 0 or 1 (1.2 and later are 1).
    pub(crate) minor: u8,
    pub(crate) fields: Fields,
    pub(crate) body: BodyKind,
    pub(crate) keep_alive: bool,
    pub(crate) expect_continue: bool,
}

/// What a head parse is allowed: the server's limits and choices.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeadRules {
    /// Largest head in bytes (at most `MAX_HEAD_LIMIT`).
    pub(crate) max_head: usize,
    /// Pass fields whose name has `_` to handlers (nginx's
    /// `underscores_in_headers`); dropped when false.
    pub(crate) underscores: bool,
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
    /// 505: a well-formed version whose major is not 1.
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
            HeadError::VersionNotSupported => "only HTTP/1.x is supported",
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

/// `tchar` of RFC 9110 §5.6.2: the characters of a token.
pub(crate) const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' |
        b'^' | b'_' | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// Whether `bytes` holds `needle` or a byte at or above 0x80, eight bytes
/// at a time (the classic has-zero-byte test on `word ^ needle`): it runs
/// over every field name and the target of every request. The last word
/// overlaps the one before it, and 4 to 7 bytes are read as two overlapping
/// halves, so there is no byte-by-byte tail.
fn has_byte_or_non_ascii(bytes: &[u8], needle: u8) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * u64::from(needle);
    let hit = |x: u64| {
        let w = x ^ pattern;
        (x & HI) | (w.wrapping_sub(LO) & !w & HI) != 0
    };
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let half = |at: usize| u64::from(u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")));
    let n = bytes.len();
    if n >= 8 {
        let mut at = 0;
        while at + 8 < n {
            if hit(word(at)) {
                return true;
            }
            at += 8;
        }
        hit(word(n - 8))
    } else if n >= 4 {
        hit(half(0) | half(n - 4) << 32)
    } else {
        bytes.iter().any(|&b| b == needle || b >= 0x80)
    }
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

/// The bytes of a `reg-name` (RFC 3986 §3.2.2: unreserved, pct-encoded,
/// sub-delims) but `,`, which proxies split a list on. A table: `Host` is
/// checked on every request, one load per byte.
const REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'_' | b'~' | b'%' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b';' | b'='
            );
        b += 1;
    }
    t
};

/// Whether `v` is a valid `Host` value: `uri-host [ ":" port ]` (RFC 9110
/// §7.2, RFC 3986 §3.2.2), and not a list (a comma, allowed in a reg-name,
/// is refused: proxies split on it).
fn valid_host(v: &[u8]) -> bool {
    if let Some(rest) = v.strip_prefix(b"[") {
        return valid_ip_literal_host(rest);
    }
    // reg-name or IPv4 (both fit the table), then an optional `:` and digits.
    let host = v.iter().position(|&b| !REG_NAME[b as usize]).unwrap_or(v.len());
    match &v[host..] {
        [] => true,
        [b':', port @ ..] => port.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// The rest of a `Host` after `[`: an IP-literal (hex digits, colons and
/// dots for IPv6 with an IPv4 suffix, or IPvFuture's letters), `]`, and an
/// optional port.
fn valid_ip_literal_host(rest: &[u8]) -> bool {
    let Some(end) = rest.iter().position(|&b| b == b']') else {
        return false;
    };
    let literal = &rest[..end];
    let literal_ok = !literal.is_empty()
        && literal
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'-' | b'_' | b'~'));
    literal_ok
        && match &rest[end + 1..] {
            [] => true,
            [b':', port @ ..] => port.iter().all(u8::is_ascii_digit),
            _ => false,
        }
}

/// Fields that may appear once: a second one is refused (400) rather than
/// leaving handlers and proxies to pick different ones. `Host` and
/// `Content-Length` have rules of their own.
const SINGLETONS: [&[u8]; 8] = [
    b"content-type",
    b"authorization",
    b"proxy-authorization",
    b"range",
    b"if-range",
    b"if-modified-since",
    b"if-unmodified-since",
    b"max-forwards",
];

/// A field the framing rules look at, found by length first (one compare for
/// most fields) and then by name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Known {
    ContentLength,
    TransferEncoding,
    Host,
    Connection,
    Expect,
    /// Index into `SINGLETONS`.
    Singleton(u8),
    Other,
}

/// Whether the token `name` is `lower` (lowercase letters and `-`) in any
/// case, eight bytes at a time. Setting bit 5 lowercases a letter and keeps
/// `-`, and takes no other token byte to a letter or `-` (`^` becomes `~`,
/// digits and the other symbols have it set already), so on tokens this is
/// exactly `eq_ignore_ascii_case`; it runs on every field name.
fn token_is(name: &[u8], lower: &[u8]) -> bool {
    debug_assert!(lower.iter().all(|&b| b.is_ascii_lowercase() || b == b'-'));
    if name.len() != lower.len() {
        return false;
    }
    let word = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let half = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    let n = name.len();
    if n >= 8 {
        let mut at = 0;
        while at + 8 < n {
            if word(name, at) | 0x2020_2020_2020_2020 != word(lower, at) {
                return false;
            }
            at += 8;
        }
        word(name, n - 8) | 0x2020_2020_2020_2020 == word(lower, n - 8)
    } else if n >= 4 {
        half(name, 0) | 0x2020_2020 == half(lower, 0) && half(name, n - 4) | 0x2020_2020 == half(lower, n - 4)
    } else {
        name.eq_ignore_ascii_case(lower)
    }
}

fn known(name: &[u8]) -> Known {
    let is = |s: &[u8]| token_is(name, s);
    match name.len() {
        4 if is(b"host") => Known::Host,
        6 if is(b"expect") => Known::Expect,
        10 if is(b"connection") => Known::Connection,
        14 if is(b"content-length") => Known::ContentLength,
        17 if is(b"transfer-encoding") => Known::TransferEncoding,
        // The lengths of the names in `SINGLETONS`.
        5 | 8 | 12 | 13 | 17 | 19 => SINGLETONS
            .iter()
            .position(|s| is(s))
            .map_or(Known::Other, |i| Known::Singleton(i as u8)),
        _ => Known::Other,
    }
}

/// Checks the request line of a head httparse refused for its version:
/// 400 if the line is malformed (four parts, `HTTP/1`, `HTTP/01.1`,
/// `http/1.1`), 505 if it is well formed with a major other than 1, and
/// `Ok(true)` for `HTTP/1.x` with x ≥ 2, which is served as HTTP/1.1, and
/// `Ok(false)` for a line not yet complete that may still become valid.
fn check_version_line(buf: &[u8]) -> Result<bool, HeadError> {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        // httparse stops at the first wrong byte of a version, even before
        // the line ends: `HTTP/2` may still become `HTTP/2.0` (505).
        let line = buf.strip_suffix(b"\r").unwrap_or(buf);
        let version = line.rsplit(|&b| b == b' ').next().unwrap_or(&[]);
        let shape = b"HTTP/0.0";
        let plausible = version.len() <= shape.len()
            && version
                .iter()
                .zip(shape)
                .all(|(&b, &s)| if s == b'0' { b.is_ascii_digit() } else { b == s });
        return if plausible && line.iter().filter(|&&b| b == b' ').count() == 2 {
            Ok(false)
        } else {
            Err(HeadError::Bad("malformed request line"))
        };
    };
    let line = &buf[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(_method), Some(_target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Bad("malformed request line"));
    };
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] if major.is_ascii_digit() && minor.is_ascii_digit() => {
            if *major == b'1' {
                Ok(true)
            } else {
                Err(HeadError::VersionNotSupported)
            }
        }
        _ => Err(HeadError::Bad("malformed HTTP version")),
    }
}

/// Parses a request head from the start of `buf`. `Ok(None)`: incomplete,
/// read more (unless `buf` is already `max_head` long, which is an error).
///
/// The common shape is read in one pass (`head/scan.rs`); anything else, and
/// every error, is the full parser's.
pub(crate) fn parse_head(buf: &[u8], rules: HeadRules) -> Result<Option<Head>, HeadError> {
    match scan::scan(buf, rules) {
        Some(head) => Ok(Some(head)),
        None => parse_full(buf, rules),
    }
}

/// Panics unless the full parser gives the same head wherever the one-pass
/// parser gives one (the differential tests and the `head` fuzz target).
#[doc(hidden)]
pub(crate) fn check_agreement(buf: &[u8], rules: HeadRules) {
    if let Some(fast) = scan::scan(buf, rules) {
        let full = parse_full(buf, rules);
        assert_eq!(
            full.as_ref().ok().and_then(Option::as_ref),
            Some(&fast),
            "the parsers disagree on {:?}",
            String::from_utf8_lossy(buf)
        );
    }
}

/// The full parser: httparse's syntax checks, then the rules above.
pub(crate) fn parse_full(buf: &[u8], rules: HeadRules) -> Result<Option<Head>, HeadError> {
    let max_head = rules.max_head;
    // Uninitialised: httparse writes the slots it uses, so 64 slots cost
    // nothing to set up per request.
    let mut raw = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let parsed = req.parse_with_uninit_headers(buf, &mut raw);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return partial(buf, max_head),
        Err(httparse::Error::Version) => {
            return match check_version_line(buf)? {
                true => parse_later_minor(buf, rules),
                false => partial(buf, max_head),
            };
        }
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
    validate_head(
        buf,
        len,
        method_str.as_bytes(),
        target.as_bytes(),
        minor,
        req.headers,
        rules,
    )
}

/// An incomplete head: wait for more, unless what is there already cannot
/// become a valid head within the limits.
fn partial(buf: &[u8], max_head: usize) -> Result<Option<Head>, HeadError> {
    // Empty lines before the request line are skipped (and checked once the
    // head is complete), as httparse does.
    let start = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    let method_len = buf[start..]
        .iter()
        .take(MAX_METHOD_LEN + 1)
        .take_while(|&&b| b != b' ')
        .count();
    if method_len > MAX_METHOD_LEN {
        return Err(HeadError::Bad("method too long"));
    }
    if buf.len() >= max_head {
        let line_done = buf[..max_head].contains(&b'\n');
        return Err(if line_done {
            HeadError::HeadersTooLarge
        } else {
            HeadError::UriTooLong
        });
    }
    Ok(None)
}

/// `HTTP/1.2` and later minors: served as HTTP/1.1 (RFC 9110 §6.2: a
/// recipient of a higher minor version treats it as the highest it
/// implements). httparse knows only 1.0 and 1.1, so a copy with the minor
/// rewritten is parsed; offsets are the same in both. Rare: the copy is fine.
fn parse_later_minor(buf: &[u8], rules: HeadRules) -> Result<Option<Head>, HeadError> {
    let window = &buf[..buf.len().min(rules.max_head + 1)];
    let line_end = window.iter().position(|&b| b == b'\n').unwrap_or(window.len());
    let line = window[..line_end].strip_suffix(b"\r").unwrap_or(&window[..line_end]);
    let mut copy = window.to_vec();
    copy[line.len() - 1] = b'1';
    match parse_full(&copy, rules)? {
        None => Ok(None),
        Some(head) => {
            debug_assert_eq!(head.minor, 1);
            Ok(Some(head))
        }
    }
}

/// Everything past httparse's syntax checks, for a complete head.
fn validate_head(
    buf: &[u8],
    len: usize,
    method_str: &[u8],
    target: &[u8],
    minor: u8,
    headers: &[httparse::Header<'_>],
    rules: HeadRules,
) -> Result<Option<Head>, HeadError> {
    if method_str.len() > MAX_METHOD_LEN {
        return Err(HeadError::Bad("method too long"));
    }
    let method = Method::from_bytes(method_str);
    // CRLF line ends only: httparse also takes a bare LF. The last two lines
    // end the head (checked here); every other line ends right before a
    // field name (checked in the field loop); empty lines before the request
    // line must be CRLF too.
    let method_start = offset(buf, method_str).0 as usize;
    if !buf[..method_start].chunks(2).all(|pair| pair == b"\r\n") || buf[len - 2] != b'\r' || buf[len - 4] != b'\r' {
        return Err(HeadError::Bad("bare LF line end: lines end with CRLF"));
    }
    // httparse refused control bytes, DEL and spaces in the target; it lets
    // bytes ≥ 0x80 and `#` through.
    if has_byte_or_non_ascii(target, b'#') {
        return Err(HeadError::Bad("invalid byte in request target"));
    }
    let mut head = Head::new(len, method, offset(buf, method_str), offset(buf, target), minor);
    head.form = target_form(method, target)?;
    let mut checks = FieldChecks::default();
    for field in headers {
        let name = field.name.as_bytes();
        let name_start = offset16(buf, name).0 as usize;
        if buf[name_start - 2] != b'\r' {
            return Err(HeadError::Bad("bare LF line end: lines end with CRLF"));
        }
        // Names are tokens (ASCII), so this finds `_` alone.
        if !rules.underscores && has_byte_or_non_ascii(name, b'_') {
            // Dropped, as nginx does by default: a proxy may read
            // `Content_Length` as `Content-Length`.
            continue;
        }
        let value = trim(field.value);
        // Control bytes and DEL in values were already refused by httparse
        // (HeaderValue error → 400); the tests check both.
        head.fields.push(FieldPos {
            name: (name_start as u16, (name_start + name.len()) as u16),
            value: offset16(buf, value),
        });
        checks.field(known(name), value)?;
    }
    checks.finish(&mut head)?;
    Ok(Some(head))
}

impl Head {
    /// A head with no fields yet: no body, the version's default persistence.
    fn new(len: usize, method: Method, method_pos: (u32, u32), target: (u32, u32), minor: u8) -> Head {
        Head {
            len,
            method,
            method_pos,
            target,
            form: TargetForm::Origin,
            minor,
            fields: Fields::default(),
            body: BodyKind::None,
            keep_alive: minor == 1,
            expect_continue: false,
        }
    }
}

/// The form of a request target whose bytes are already known to be valid
/// (RFC 9112 §3.2).
fn target_form(method: Method, target: &[u8]) -> Result<TargetForm, HeadError> {
    match target.first() {
        Some(b'/') => Ok(TargetForm::Origin),
        Some(b'*') if target.len() == 1 => {
            if method != Method::Options {
                return Err(HeadError::Bad("asterisk-form is for OPTIONS only"));
            }
            Ok(TargetForm::Asterisk)
        }
        _ if target.starts_with(b"http://") || target.starts_with(b"https://") => Ok(TargetForm::Absolute),
        _ => Err(HeadError::Bad("invalid request target")),
    }
}

/// What the header fields said about framing, gathered one field at a time
/// (the same rules for both parsers) and judged once all are seen.
#[derive(Default)]
struct FieldChecks {
    length: Option<u64>,
    chunked: bool,
    transfer_encoding: bool,
    hosts: u32,
    host_empty: bool,
    connection_close: bool,
    connection_keep_alive: bool,
    expect_continue: bool,
    /// Bits of the `SINGLETONS` seen.
    seen: u16,
}

impl FieldChecks {
    /// One field (what `known` says its name is), its value trimmed.
    fn field(&mut self, kind: Known, value: &[u8]) -> Result<(), HeadError> {
        match kind {
            Known::Other => {}
            Known::ContentLength => {
                // Every element must be the same length: no empty element
                // (`, 5`, `5,,5`), which other parsers may read differently.
                let mut bad = false;
                for part in value.split(|&b| b == b',') {
                    match (parse_length(trim(part)), self.length) {
                        (Some(n), None) => self.length = Some(n),
                        (Some(n), Some(m)) if n == m => {}
                        _ => bad = true,
                    }
                }
                if bad || self.length.is_none() {
                    return Err(HeadError::Bad("invalid or conflicting Content-Length"));
                }
            }
            Known::TransferEncoding => {
                self.transfer_encoding = true;
                let mut bad = None;
                let chunked = &mut self.chunked;
                for_each_element(value, |coding| {
                    let (name, params) = match coding.iter().position(|&b| b == b';') {
                        Some(i) => (trim(&coding[..i]), true),
                        None => (coding, false),
                    };
                    if *chunked {
                        // Nothing may follow chunked, not even chunked again.
                        bad = Some(HeadError::Bad(
                            "chunked must be the final transfer coding, applied once",
                        ));
                    } else if name.eq_ignore_ascii_case(b"chunked") {
                        if params {
                            bad = Some(HeadError::Bad("chunked takes no parameters"));
                        }
                        *chunked = true;
                    } else if bad.is_none() {
                        bad = Some(HeadError::NotImplemented("unsupported transfer coding"));
                    }
                });
                if let Some(e) = bad {
                    return Err(e);
                }
            }
            Known::Host => {
                self.hosts += 1;
                self.host_empty = value.is_empty();
                if !self.host_empty && !valid_host(value) {
                    return Err(HeadError::Bad("invalid Host"));
                }
            }
            Known::Connection => for_each_element(value, |opt| {
                self.connection_close |= opt.eq_ignore_ascii_case(b"close");
                self.connection_keep_alive |= opt.eq_ignore_ascii_case(b"keep-alive");
            }),
            Known::Expect => {
                if std::mem::replace(&mut self.expect_continue, true) {
                    return Err(HeadError::Bad("a field that may appear once is repeated"));
                }
                if !value.eq_ignore_ascii_case(b"100-continue") {
                    return Err(HeadError::ExpectationFailed);
                }
            }
            Known::Singleton(i) => {
                let bit = 1u16 << i;
                if self.seen & bit != 0 {
                    return Err(HeadError::Bad("a field that may appear once is repeated"));
                }
                self.seen |= bit;
            }
        }
        Ok(())
    }

    /// All fields seen: the body's framing, persistence and `Host`.
    fn finish(self, head: &mut Head) -> Result<(), HeadError> {
        let minor = head.minor;
        // 100-continue means nothing to an HTTP/1.0 client.
        head.expect_continue = self.expect_continue && minor == 1;
        if self.transfer_encoding {
            if self.length.is_some() {
                return Err(HeadError::Bad("both Content-Length and Transfer-Encoding"));
            }
            if minor == 0 {
                return Err(HeadError::Bad("Transfer-Encoding in an HTTP/1.0 request"));
            }
            if !self.chunked {
                return Err(HeadError::Bad("the final transfer coding is not chunked"));
            }
            head.body = BodyKind::Chunked;
        } else if let Some(n) = self.length {
            head.body = if n == 0 { BodyKind::None } else { BodyKind::Length(n) };
        }
        if minor == 1 && self.hosts != 1 {
            return Err(HeadError::Bad(if self.hosts == 0 {
                "missing Host header"
            } else {
                "more than one Host header"
            }));
        }
        if self.hosts > 1 {
            return Err(HeadError::Bad("more than one Host header"));
        }
        if self.host_empty && head.form != TargetForm::Absolute {
            // An empty Host is only for a target URI without an authority.
            return Err(HeadError::Bad("empty Host"));
        }
        head.keep_alive = if minor == 1 {
            !self.connection_close
        } else {
            self.connection_keep_alive && !self.connection_close
        };
        Ok(())
    }
}

mod scan;

#[cfg(test)]
mod tests;
