//! The common request head in one pass over its bytes.
//!
//! Owns: recognising a head whose every byte is in the plain, strictly valid
//! shape nearly every client sends (CRLF lines, a token method, a visible
//! ASCII target, `HTTP/1.0` or `HTTP/1.1`, token names without `_`, ASCII
//! values) and building its [`Head`] with the same field rules as the full
//! parser. Must never: reject anything, or accept a head the full parser
//! would not, or read it differently. Whatever is outside that shape (an
//! incomplete head, a byte it does not expect, a field rule broken, a head
//! past `max_head`) gives `None`, and the full parser (`parse_full`, on
//! httparse) decides: so every error, and every rare valid form, keeps the
//! one answer the full parser gives. The differential test and the `head`
//! fuzz target check that the two agree wherever this one answers.
//!
//! Why a second parser: httparse is general (it records every field as a
//! slice pair, checks each byte class in a separate pass) and the rules here
//! then walk the fields again; on a pipelined "Hello, World!" that was the
//! largest part of a request's instructions. Here each byte is looked at
//! once, with one table load.

use super::{known, trim, FieldChecks, Head, HeadRules, Known, Method, MAX_HEADERS, MAX_METHOD_LEN};

/// A `tchar` (RFC 9110 §5.6.2) other than `_`: methods and field names.
const TOKEN: u8 = 1;
/// A visible ASCII byte other than `#`: the request target.
const TARGET: u8 = 2;
/// A visible ASCII byte, space or tab: a field value.
const VALUE: u8 = 4;

/// The classes of each byte (bytes ≥ 0x80 are in none: obs-text is rare,
/// and the full parser handles it).
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        if super::is_tchar(c) && c != b'_' {
            t[b] |= TOKEN;
        }
        if c > b' ' && c < 0x7f && c != b'#' {
            t[b] |= TARGET;
        }
        if (c >= b' ' && c < 0x7f) || c == b'\t' {
            t[b] |= VALUE;
        }
        b += 1;
    }
    t
};

/// The end of the run of `class` bytes from `at` (`buf.len()` if it runs to
/// the end).
#[inline(always)]
fn run(buf: &[u8], at: usize, class: u8) -> usize {
    let rest = buf.get(at..).unwrap_or_default();
    at + rest
        .iter()
        .position(|&b| CLASS[b as usize] & class == 0)
        .unwrap_or(rest.len())
}

/// `run(buf, at, VALUE)`, eight bytes at a time. On a little-endian word,
/// the classic has-less test (`w - 0x20…` with the byte's own top bit
/// clear) and has-more test (`w + 0x01…` or the top bit set) flag every byte
/// below a space or from DEL up; a borrow or carry can flag a byte only
/// *above* one truly flagged, so the lowest flag is exact. That byte (a tab
/// a value may hold, the CR that ends it, or one the full parser must judge)
/// is where the byte loop takes over. Fewer than eight bytes left: the byte
/// loop alone.
fn value_run(buf: &[u8], mut at: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let start = at;
    while let Some(bytes) = buf.get(at..at + 8) {
        let w = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        let below_space = w.wrapping_sub(LO * 0x20) & !w & HI;
        let del_or_above = (w.wrapping_add(LO) | w) & HI;
        let flagged = below_space | del_or_above;
        if flagged != 0 {
            at += (flagged.trailing_zeros() / 8) as usize;
            debug_assert!(CLASS[buf[at] as usize] & VALUE == 0 || buf[at] == b'\t');
            debug_assert!(buf[start..at].iter().all(|&b| (b' '..0x7f).contains(&b)));
            break;
        }
        at += 8;
    }
    // Where the words stopped is nearly always the CR that ends the value:
    // only a tab (or fewer than eight bytes left) needs the byte loop.
    match buf.get(at) {
        Some(b'\r') => at,
        _ => run(buf, at, VALUE),
    }
}

/// `HTTP/1.1` and `HTTP/1.0` as little-endian words: the version is
/// compared in one load.
const HTTP_1_1: u64 = u64::from_le_bytes(*b"HTTP/1.1");
const HTTP_1_0: u64 = u64::from_le_bytes(*b"HTTP/1.0");

/// `Host: ` as nearly every client spells it, in the low six bytes of a
/// little-endian word: the field every HTTP/1.1 request carries, recognised
/// in one load instead of a run over its name and a lookup of it.
const HOST_FIELD: u64 = u64::from_le_bytes(*b"Host: \0\0");
const HOST_FIELD_MASK: u64 = 0x0000_ffff_ffff_ffff;

/// The head at the start of `buf`, if it has the common shape and is
/// valid; `None` leaves the verdict to the full parser.
///
/// Always inline (into `parse_head`, and so into the connection's loop):
/// returned from a call, the `Head` built here field by field was copied
/// out in 16-byte loads that wait for those narrow stores to retire (no
/// store forwarding), a third of this function's cycles. Inline, it costs
/// about 40 instructions more and 5 % less time on a pipelined request
/// (`connection turn` bench).
#[inline(always)]
pub(super) fn scan(buf: &[u8], rules: HeadRules) -> Option<Head> {
    // A head must end within `max_head`: past it, the full parser chooses
    // between 414 and 431.
    let buf = &buf[..buf.len().min(rules.max_head)];
    // Request line: method SP target SP HTTP/1.x CRLF.
    // `GET` is most requests: one compare instead of a run and a lookup.
    let (method, method_end) = if buf.starts_with(b"GET ") {
        (Method::Get, 3)
    } else {
        let end = run(buf, 0, TOKEN);
        (Method::from_bytes(&buf[..end]), end)
    };
    if method_end == 0 || method_end > MAX_METHOD_LEN || buf.get(method_end) != Some(&b' ') {
        return None;
    }
    let target_start = method_end + 1;
    let target_end = run(buf, target_start, TARGET);
    if target_end == target_start || buf.get(target_end) != Some(&b' ') {
        return None;
    }
    let version_end = target_end + 11;
    let version = buf.get(target_end + 1..version_end)?;
    if version[8..] != *b"\r\n" {
        return None;
    }
    let minor = match u64::from_le_bytes(version[..8].try_into().expect("8 bytes")) {
        HTTP_1_1 => 1,
        HTTP_1_0 => 0,
        _ => return None,
    };
    // Within `max_head`, at most `MAX_HEAD_LIMIT`: 16 bits suffice.
    let target = (target_start as u16, target_end as u16);
    let mut head = Head::new(0, method, (0, method_end as u16), target, minor);
    head.underscores = rules.underscores;
    head.form = super::target_form(method, &buf[target_start..target_end]).ok()?;

    // Fields: name ":" OWS value OWS CRLF, until an empty line.
    let mut checks = FieldChecks::default();
    let mut at = version_end;
    let mut fields = 0;
    loop {
        if buf.get(at..at + 2)? == b"\r\n" {
            head.set_len(at + 2);
            break;
        }
        if fields == MAX_HEADERS {
            return None;
        }
        // A field line and the head's final CRLF nearly always make eight
        // bytes or more (`Host: x` with them makes eleven); fewer, or an
        // incomplete head, and the full parser decides.
        let word = u64::from_le_bytes(buf.get(at..at + 8)?.try_into().expect("8 bytes"));
        let (kind, value_start) = if word & HOST_FIELD_MASK == HOST_FIELD {
            // The name is a token and `Host` (as `known` would find), and the
            // one space after the colon is stepped over, as below.
            (Known::Host, at + b"Host: ".len())
        } else {
            let name_end = run(buf, at, TOKEN);
            if name_end == at || buf.get(name_end) != Some(&b':') {
                return None;
            }
            // The OWS before a value is nearly always one space: stepped
            // over here, so that `trim` finds nothing to do at the start.
            let value_start = name_end + 1 + usize::from(buf.get(name_end + 1) == Some(&b' '));
            (known(&buf[at..name_end]), value_start)
        };
        let line_end = value_run(buf, value_start);
        if buf.get(line_end..line_end + 2)? != b"\r\n" {
            return None;
        }
        let value = trim(&buf[value_start..line_end]);
        // Not kept: `FieldLines` finds the fields again when a handler asks.
        fields += 1;
        // Most fields are none of the framing fields: skip the call.
        match kind {
            Known::Other => {}
            // On nearly every request: checked inline.
            Known::Host => checks.host(value).ok()?,
            kind => checks.field(kind, value).ok()?,
        }
        at = line_end + 2;
    }
    checks.finish(&mut head).ok()?;
    debug_assert!(head.len() <= rules.max_head);
    Some(head)
}
