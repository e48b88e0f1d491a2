//! The WebSocket opening handshake (RFC 6455 §4.2): which requests may be
//! upgraded, and the `Sec-WebSocket-Accept` value, with the SHA-1 and base64
//! it needs.
//!
//! Owns: the checks on an upgrade request and their answers (400 for a
//! malformed one, 426 with `Sec-WebSocket-Version: 13` for another version),
//! subprotocol choice, and the two small algorithms. Must never: accept a
//! request RFC 6455 says to refuse, or use SHA-1 for anything but this (the
//! protocol fixes it; it is not a security primitive here).
//!
//! SHA-1 and base64 are written here (about 80 lines, checked against RFC
//! 6455's own example and FIPS 180's vectors) rather than taken from crates:
//! the handshake needs one 20-byte digest of a 60-byte string per
//! connection, and two more dependencies would be larger than the code.

use super::super::request::Request;
use super::super::response::Response;

/// The GUID RFC 6455 §1.3 appends to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why a request cannot be upgraded, as the answer to send.
pub(crate) fn refuse(status: u16, why: &'static str) -> Response {
    let resp = Response::text(why).with_status(status);
    if status == 426 {
        // RFC 6455 §4.2.2: say which version this server speaks.
        resp.header("Sec-WebSocket-Version", "13")
            .header("Upgrade", "websocket")
    } else {
        resp
    }
}

/// Whether a comma-separated header list holds `token` (case-insensitive).
fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Checks `req` is a valid opening handshake; gives the accept value, or the
/// response refusing it.
pub(crate) fn check(req: &Request) -> Result<String, Response> {
    if req.method_str() != "GET" || req.version() != "HTTP/1.1" {
        return Err(refuse(400, "a WebSocket handshake is an HTTP/1.1 GET"));
    }
    if !has_token(req.header("upgrade"), "websocket") || !has_token(req.header("connection"), "upgrade") {
        return Err(refuse(
            426,
            "this resource speaks WebSocket: send Upgrade: websocket, Connection: Upgrade",
        ));
    }
    if req.header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(refuse(426, "WebSocket version 13 only"));
    }
    let key = req.header("sec-websocket-key").map(str::trim).unwrap_or("");
    if base64_decode(key).is_none_or(|raw| raw.len() != 16) {
        return Err(refuse(400, "Sec-WebSocket-Key must be 16 bytes in base64"));
    }
    if req.content_length() != Some(0) {
        return Err(refuse(400, "a WebSocket handshake has no body"));
    }
    Ok(accept(key))
}

/// The first of the client's offered subprotocols that `supported` lists.
pub(crate) fn choose_protocol(req: &Request, supported: &'static [&'static str]) -> Option<&'static &'static str> {
    let offered = req.header("sec-websocket-protocol")?;
    offered
        .split(',')
        .map(str::trim)
        .find_map(|p| supported.iter().find(|s| **s == p))
}

/// `Sec-WebSocket-Accept` for the client's `key`.
pub(crate) fn accept(key: &str) -> String {
    let mut input = Vec::with_capacity(key.len() + GUID.len());
    input.extend_from_slice(key.as_bytes());
    input.extend_from_slice(GUID.as_bytes());
    base64_encode(&sha1(&input))
}

/// SHA-1 (FIPS 180-4), for inputs of any length.
pub(crate) fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
    let bit_len = (data.len() as u64).wrapping_mul(8);
    // The message, a 1 bit, zeros to 56 mod 64, then the length.
    let mut padded = data.to_vec();
    padded.push(0x80);
    while padded.len() % 64 != 56 {
        padded.push(0);
    }
    padded.extend_from_slice(&bit_len.to_be_bytes());
    for block in padded.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, &wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(wi);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4).
pub(crate) fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard, padded base64; `None` for anything else.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let value = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|v| v as u32);
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, quad) in bytes.chunks_exact(4).enumerate() {
        let last = i + 1 == bytes.len() / 4;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = n << 6 | value(c)?;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn rfc_6455s_own_example() {
        assert_eq!(accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn sha1_matches_the_fips_vectors() {
        assert_eq!(hex(&sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(
            hex(&sha1(&vec![b'a'; 1_000_000])),
            "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
        );
    }

    #[test]
    fn base64_round_trips_and_refuses_garbage() {
        for (raw, text) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(raw), text);
            assert_eq!(base64_decode(text).unwrap(), raw);
        }
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zm9*", "Zm 9"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }
}
