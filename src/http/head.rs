//! Request heads, parsed strictly (RFC 9112 §2–§3, §5–§6; RFC 9110 §5, §7.2).
//!
//! Owns: turning bytes into a validated [`Head`] (offsets into the bytes, no
//! copies), the request [`Method`], and [`HeadError`], which names the one
//! status each rejection gets. Must never: accept a head whose framing two
//! parsers could read differently (the root of request smuggling), allocate
//! on the path of a valid HTTP/1.0 or HTTP/1.1 request, or read past the
//! bytes it is given.
//!
//! Two parsers, one verdict: a head in the plain shape nearly every client
//! sends is read in one pass (`head/scan.rs`); any other head, and every
//! invalid one, goes to the full parser here, so each rejection has one
//! source. Both apply the same field rules (`head/fields.rs`).
//!
//! In the full parser, httparse checks the syntax of the request line and of
//! each field (token characters, no whitespace before the colon, no obs-fold,
//! no bare CR). This file adds what httparse leaves to its caller or accepts
//! where we do not:
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

/// The header fields of a parsed head, read again from its bytes: each
/// `(name, value)` as ranges of those bytes, in order, the value without
/// its surrounding whitespace, and (unless the server keeps them) without
/// the fields whose name has `_`, which the parsers dropped.
///
/// Why no list of positions is kept: both parsers have already checked every
/// line of the head (CRLF ends, a token name, `:`, a value with no CR or LF),
/// so its fields can be found again unambiguously, and a request whose
/// handler never asks for a header never pays for one. Keeping positions cost
/// a push per field at parse time and made a `Request` 56 bytes larger,
/// copied on every move from the parser into the handler's future.
///
/// Invariant: `bytes[at..]` is what follows a line end of a head that one of
/// the parsers accepted, so it is field lines, then the empty line.
#[derive(Clone, Debug)]
pub(crate) struct FieldLines<'a> {
    bytes: &'a [u8],
    at: usize,
    underscores: bool,
}

impl<'a> FieldLines<'a> {
    /// The fields of the head in `bytes` whose request target ends at
    /// `target_end` (the fields start after ` HTTP/1.x` and its CRLF).
    pub(crate) fn new(bytes: &'a [u8], target_end: usize, underscores: bool) -> FieldLines<'a> {
        FieldLines {
            bytes,
            at: target_end + " HTTP/1.x\r\n".len(),
            underscores,
        }
    }
}

impl Iterator for FieldLines<'_> {
    type Item = (std::ops::Range<usize>, std::ops::Range<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = self.bytes.get(self.at..)?;
            // A checked head's every line ends with CR LF, and it ends with an
            // empty line: running out of either means the invariant broke.
            let Some(line_len) = rest.iter().position(|&b| b == b'\r') else {
                debug_assert!(false, "a head without its empty line");
                return None;
            };
            if line_len == 0 {
                // The empty line: the head's end.
                self.at = self.bytes.len();
                return None;
            }
            let line = &rest[..line_len];
            let start = self.at;
            self.at += line_len + 2;
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                debug_assert!(false, "a field line without a colon");
                return None;
            };
            let name = &line[..colon];
            if !self.underscores && name.contains(&b'_') {
                continue;
            }
            let value = trim(&line[colon + 1..]);
            let value_start = start + (value.as_ptr() as usize - line.as_ptr() as usize);
            return Some((start..start + colon, value_start..value_start + value.len()));
        }
    }
}

/// How the body of a request is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

impl BodyKind {
    /// What `Request::content_length` says of it: `None` for chunked.
    pub(crate) fn declared_length(self) -> Option<u64> {
        match self {
            BodyKind::None => Some(0),
            BodyKind::Length(n) => Some(n),
            BodyKind::Chunked => None,
        }
    }
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
    /// Bytes the head occupies, final empty line included (at most
    /// `MAX_HEAD_LIMIT`: 16 bits, so that a `Head` is 32 bytes).
    len: u16,
    pub(crate) method: Method,
    /// Positions in the head's bytes, which are at most `MAX_HEAD_LIMIT`
    /// (64 KiB) long: 16 bits each.
    pub(crate) method_pos: (u16, u16),
    pub(crate) target: (u16, u16),
    pub(crate) form: TargetForm,
    /// HTTP/1.x minor version as served: 0 or 1 (1.2 and later are 1).
    pub(crate) minor: u8,
    /// Fields whose name has `_` were kept (`HeadRules::underscores`).
    pub(crate) underscores: bool,
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

/// `offset` for a head's parts, which lie within its first 64 KiB: `len` was
/// checked against `max_head` (at most `MAX_HEAD_LIMIT`) before they are read.
fn offset16(base: &[u8], part: &[u8]) -> (u16, u16) {
    let (start, end) = offset(base, part);
    (start as u16, end as u16)
}

/// `v` without the OWS (spaces and tabs) at either end.
#[inline(always)]
fn trim(v: &[u8]) -> &[u8] {
    // Nearly always none (scan steps over the usual one space first): two
    // compares inline, where the loops (and a call) cost twice as many
    // (callgrind).
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    if !v.first().is_some_and(ows) && !v.last().is_some_and(ows) {
        return v;
    }
    trim_slow(v)
}

/// `trim` where there is OWS to take off.
#[inline(never)]
fn trim_slow(mut v: &[u8]) -> &[u8] {
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

/// Whether `a` and `b` hold the same bytes, eight at a time: for the short
/// strings compared on every request (the `Host` memo, a literal route's
/// path), where a call to `memcmp` costs more than the compare. The last
/// word overlaps the one before it, and 4 to 7 bytes are two overlapping
/// halves, as in `has_byte_or_non_ascii`.
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4 bytes"));
    if n >= 8 {
        let mut at = 0;
        while at + 8 < n {
            if word(a, at) != word(b, at) {
                return false;
            }
            at += 8;
        }
        word(a, n - 8) == word(b, n - 8)
    } else if n >= 4 {
        half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4)
    } else {
        // Up to three bytes: a loop, which (unlike `==` on slices) is not a
        // call.
        a.iter().zip(b).all(|(x, y)| x == y)
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
/// every error, is the full parser's. Always inline, as `scan` is (see
/// there for why).
#[inline(always)]
pub(crate) fn parse_head(buf: &[u8], rules: HeadRules) -> Result<Option<Head>, HeadError> {
    match scan::scan(buf, rules) {
        Some(head) => Ok(Some(head)),
        None => parse_full(buf, rules),
    }
}

/// Panics unless the full parser gives the same head wherever the one-pass
/// parser gives one (the differential tests and the `head` fuzz target).
///
/// Also panics unless, for any head accepted, the fields [`FieldLines`]
/// reads again are the ones httparse saw (trimmed, and without names with
/// `_` unless kept).
pub(crate) fn check_agreement(buf: &[u8], rules: HeadRules) {
    if let Ok(Some(head)) = parse_head(buf, rules) {
        let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut raw);
        // A later minor version is parsed by httparse on a copy; its fields
        // lie at the same offsets, so compare against the copy's parse.
        let mut copy = buf[..head.len()].to_vec();
        let version_at = head.target.1 as usize + " HTTP/1.".len();
        copy[version_at] = b'0' + head.minor;
        let parsed = req.parse(&copy);
        assert!(
            matches!(parsed, Ok(httparse::Status::Complete(_))),
            "httparse refused an accepted head {:?}",
            String::from_utf8_lossy(buf)
        );
        let expected: Vec<(&[u8], &[u8])> = req
            .headers
            .iter()
            .map(|f| (f.name.as_bytes(), trim(f.value)))
            .filter(|(n, _)| rules.underscores || !n.contains(&b'_'))
            .collect();
        let found: Vec<(&[u8], &[u8])> = head.fields(&copy).map(|(n, v)| (&copy[n], &copy[v])).collect();
        assert_eq!(
            found,
            expected,
            "the fields read again differ on {:?}",
            String::from_utf8_lossy(buf)
        );
    }
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
    let mut head = Head::new(len, method, offset16(buf, method_str), offset16(buf, target), minor);
    head.underscores = rules.underscores;
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
        checks.field(known(name), value)?;
    }
    checks.finish(&mut head)?;
    Ok(Some(head))
}

impl Head {
    /// Bytes the head occupies, final empty line included.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Sets `len` (a head is at most `MAX_HEAD_LIMIT` bytes).
    #[inline]
    pub(super) fn set_len(&mut self, len: usize) {
        debug_assert!(len <= MAX_HEAD_LIMIT);
        self.len = len as u16;
    }

    /// The head's fields, as [`FieldLines`] reads them from `buf`, the bytes
    /// it was parsed from.
    pub(crate) fn fields<'a>(&self, buf: &'a [u8]) -> FieldLines<'a> {
        FieldLines::new(&buf[..self.len()], self.target.1 as usize, self.underscores)
    }

    /// A head with no fields yet: no body, the version's default persistence.
    fn new(len: usize, method: Method, method_pos: (u16, u16), target: (u16, u16), minor: u8) -> Head {
        debug_assert!(len <= MAX_HEAD_LIMIT);
        Head {
            len: len as u16,
            method,
            method_pos,
            target,
            form: TargetForm::Origin,
            minor,
            underscores: false,
            body: BodyKind::None,
            keep_alive: minor == 1,
            expect_continue: false,
        }
    }
}

/// The form of a request target whose bytes are already known to be valid
/// (RFC 9112 §3.2).
#[inline(always)]
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

mod fields;
mod scan;

#[cfg(test)]
use fields::token_is;
use fields::{known, FieldChecks, Known};

#[cfg(test)]
mod tests;
