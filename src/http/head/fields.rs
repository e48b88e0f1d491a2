//! The rules for the header fields that frame a request (RFC 9112 §6,
//! RFC 9110 §5.3, §7.2, §10.1.1), one field at a time, shared by both head
//! parsers.
//!
//! Owns: recognising the fields the rules look at, checking each one's value
//! (`Content-Length`, `Transfer-Encoding`, `Host`, `Connection`, `Expect`,
//! the fields that must not repeat), judging them together once the head is
//! complete, and the memo of the last valid `Host` (a thread's own). Must
//! never: look at a field's syntax (the parsers have checked it), allocate,
//! or let the memo answer anything but what the check would.

use std::cell::RefCell;

use super::{trim, BodyKind, Head, HeadError, TargetForm};

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
pub(super) fn valid_host(v: &[u8]) -> bool {
    if let Some(rest) = v.strip_prefix(b"[") {
        return valid_ip_literal_host(rest);
    }
    // reg-name or IPv4 (both fit the table), then an optional `:` and
    // digits (a fold without an early exit: ports are a few digits).
    let host = v.iter().position(|&b| !REG_NAME[b as usize]).unwrap_or(v.len());
    match &v[host..] {
        [] => true,
        [b':', port @ ..] => port.iter().fold(true, |ok, b| ok & b.is_ascii_digit()),
        _ => false,
    }
}

/// The last `Host` value this thread found valid (at most `LAST_HOST_MAX`
/// bytes). Nearly every request names the host the one before it named, and
/// comparing with it costs a fraction of checking it byte by byte; only a
/// value `valid_host` accepted is ever kept, so a match is valid.
struct LastHost {
    bytes: [u8; LAST_HOST_MAX],
    len: usize,
}

const LAST_HOST_MAX: usize = 32;

impl LastHost {
    /// Whether `v` is the value kept: compared as `same_bytes` does, a word
    /// at a time (a call to `memcmp` cost more than the compare itself on a
    /// `Host` this short).
    #[inline]
    fn holds(&self, v: &[u8]) -> bool {
        debug_assert!(self.len <= LAST_HOST_MAX);
        super::same_bytes(v, &self.bytes[..self.len])
    }
}

thread_local! {
    static LAST_HOST: RefCell<LastHost> = const {
        RefCell::new(LastHost { bytes: [0; LAST_HOST_MAX], len: 0 })
    };
}

/// `valid_host(v)`, answered from `LastHost` when `v` is the last valid one.
/// Always inline, the full check kept out of line: called, the compare paid
/// a call's register saves and restores (12 instructions a request).
#[inline(always)]
pub(super) fn valid_host_cached(v: &[u8]) -> bool {
    LAST_HOST.try_with(|last| last.borrow().holds(v)).unwrap_or(false) || valid_host_remembered(v)
}

/// `valid_host(v)`, and a valid `v` kept as the last one.
#[inline(never)]
fn valid_host_remembered(v: &[u8]) -> bool {
    let valid = valid_host(v);
    if valid && v.len() <= LAST_HOST_MAX {
        // Only while the thread exits is the storage gone: then the value
        // is just not remembered.
        let _ = LAST_HOST.try_with(|last| {
            let mut last = last.borrow_mut();
            last.bytes[..v.len()].copy_from_slice(v);
            last.len = v.len();
        });
    }
    valid
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
pub(super) enum Known {
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
pub(super) fn token_is(name: &[u8], lower: &[u8]) -> bool {
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

#[inline(always)]
pub(super) fn known(name: &[u8]) -> Known {
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

/// What the header fields said about framing, gathered one field at a time
/// (the same rules for both parsers) and judged once all are seen.
#[derive(Default)]
pub(super) struct FieldChecks {
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
    pub(super) fn field(&mut self, kind: Known, value: &[u8]) -> Result<(), HeadError> {
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
            Known::Host => self.host(value)?,
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

    /// A `Host` field, its value trimmed (what `field` does for one).
    #[inline]
    pub(super) fn host(&mut self, value: &[u8]) -> Result<(), HeadError> {
        self.hosts += 1;
        self.host_empty = value.is_empty();
        if !self.host_empty && !valid_host_cached(value) {
            return Err(HeadError::Bad("invalid Host"));
        }
        Ok(())
    }

    /// All fields seen: the body's framing, persistence and `Host`.
    ///
    /// Always inline: called, it wrote its verdicts into the `Head` with
    /// byte stores that the 16-byte loads copying the head out right after
    /// could not forward from (perf: an eighth of the connection loop's
    /// samples on that copy, Intel host).
    #[inline(always)]
    pub(super) fn finish(self, head: &mut Head) -> Result<(), HeadError> {
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
