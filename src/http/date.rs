//! The `Date` header value (IMF-fixdate, RFC 9110 §5.6.7), formatted once a
//! second and copied into every response; and the access log's Common Log
//! Format time, from the same calendar arithmetic.
//!
//! Owns: the cached 29-byte date. Must never: allocate when refreshed, or
//! format per response.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) struct DateCache {
    /// `Date: <IMF-fixdate>\r\n`, the whole header line, so a response
    /// copies it in one piece.
    line: [u8; 37],
    second: u64,
}

impl DateCache {
    pub(crate) fn new() -> DateCache {
        let mut cache = DateCache {
            line: *b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n",
            second: u64::MAX,
        };
        cache.refresh();
        cache
    }

    /// The current `Date` header line, CRLF included.
    pub(crate) fn line(&self) -> &[u8] {
        &self.line
    }

    /// The second `line` shows (since the Unix epoch).
    pub(crate) fn second(&self) -> u64 {
        self.second
    }

    /// Re-formats if the wall-clock second changed.
    pub(crate) fn refresh(&mut self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if now != self.second {
            self.second = now;
            let date: &mut [u8; 29] = (&mut self.line[6..35]).try_into().expect("29 bytes");
            format_imf(now, date);
        }
    }
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `secs` since the Unix epoch as the Common Log Format's time, in UTC:
/// `06/Nov/1994:08:49:37 +0000`.
pub(crate) struct Clf(pub(crate) u64);

impl std::fmt::Display for Clf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (days, rem) = (self.0 / 86_400, self.0 % 86_400);
        let (year, month, day) = civil_from_days(days as i64);
        let month = std::str::from_utf8(MONTHS[month as usize - 1]).unwrap_or("???");
        write!(
            f,
            "{day:02}/{month}/{year}:{:02}:{:02}:{:02} +0000",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }
}

/// Formats `secs` since the Unix epoch as `Sun, 06 Nov 1994 08:49:37 GMT`.
fn format_imf(secs: u64, out: &mut [u8; 29]) {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let two = |out: &mut [u8], v: u64| {
        out[0] = b'0' + (v / 10) as u8;
        out[1] = b'0' + (v % 10) as u8;
    };
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    out[3..5].copy_from_slice(b", ");
    two(&mut out[5..7], day as u64);
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[month as usize - 1]);
    out[11] = b' ';
    let y = year as u64;
    two(&mut out[12..14], y / 100);
    two(&mut out[14..16], y % 100);
    out[16] = b' ';
    two(&mut out[17..19], rem / 3600);
    out[19] = b':';
    two(&mut out[20..22], rem % 3600 / 60);
    out[22] = b':';
    two(&mut out[23..25], rem % 60);
    out[25..29].copy_from_slice(b" GMT");
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic
/// Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(secs: u64) -> String {
        let mut b = [0u8; 29];
        format_imf(secs, &mut b);
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn the_cached_line_is_a_whole_header() {
        let cache = DateCache::new();
        let line = std::str::from_utf8(cache.line()).unwrap();
        assert!(line.starts_with("Date: ") && line.ends_with(" GMT\r\n"), "{line:?}");
        assert_eq!(line.len(), 37);
        assert_ne!(&line[6..35], "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn common_log_time() {
        assert_eq!(Clf(784_111_777).to_string(), "06/Nov/1994:08:49:37 +0000");
        assert_eq!(Clf(0).to_string(), "01/Jan/1970:00:00:00 +0000");
    }

    #[test]
    fn known_dates() {
        assert_eq!(fmt(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(fmt(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(fmt(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(fmt(1_796_083_200), "Tue, 01 Dec 2026 00:00:00 GMT");
    }

    /// Cross-check against the `httpdate` crate (a dev-dependency only):
    /// every day from 1970 to 2200 at a pseudo-random second, leap days and
    /// century years included, then 200,000 pseudo-random instants up to
    /// the year 9999 (the largest IMF-fixdate year).
    #[test]
    fn agrees_with_httpdate() {
        let check = |secs: u64| {
            let expected = httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
            assert_eq!(fmt(secs), expected, "at {secs} s");
        };
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for day in 0..84_000u64 {
            check(day * 86_400 + next() % 86_400);
        }
        const LAST: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
        for _ in 0..200_000 {
            check(next() % (LAST + 1));
        }
        check(LAST);
    }
}
