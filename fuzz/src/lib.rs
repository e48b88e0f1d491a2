//! The fuzz targets' bodies and oracles, shared by `fuzz_targets/*.rs`
//! (`cargo +nightly fuzz run <target>`) and by solo's `tests/fuzz_corpus.rs`,
//! which replays the checked-in corpus on stable.
//!
//! - `head`: the request-head parser never panics, is consistent on every
//!   prefix of a head it accepts, and never accepts ambiguous framing.
//! - `chunked`: the server's chunked decoder, fed in arbitrary pieces, agrees
//!   with `reference_chunked`, a line-by-line decoder written here from the
//!   grammar in RFC 9112 §7.1.
//! - `connection`: a whole server connection on the in-memory transport, fed
//!   arbitrary bytes split at arbitrary points: never panics (the connection's
//!   own invariants are `debug_assert!`s, on in fuzz builds), never answers
//!   more responses than requests, never hands a handler ambiguous framing,
//!   never stalls (after each piece it has read everything or is closing; after
//!   the client's FIN it closes), and every byte it writes parses as responses.
//! - `ws_frame`: the WebSocket frame decoder, fed arbitrary bytes split at
//!   arbitrary points, never panics, gives the same messages and the same
//!   close code however the bytes are split, never returns more payload than
//!   it was given, keeps control frames within 125 bytes, and only ever
//!   reports a close code a peer may send.

use std::cell::RefCell;
use std::rc::Rc;

use solo::http::__bench::{decode_chunked, parse_one, ws_decode};
use solo::http::test::TestClient;
use solo::http::ws::Message;
use solo::http::{Config, Request, Response, Server};

/// Splits `data` into pieces: the first byte seeds where the cuts fall.
fn pieces(data: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let Some((&seed, rest)) = data.split_first() else {
        return (Vec::new(), &[]);
    };
    let mut out = Vec::new();
    let mut state = u32::from(seed) | 0x9e37_7900;
    let mut left = rest;
    while !left.is_empty() {
        // xorshift: cuts of 1 to 64 bytes (or the whole rest when seed is 0).
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let len = if seed == 0 {
            left.len()
        } else {
            1 + (state % 64) as usize
        };
        let (piece, tail) = left.split_at(len.min(left.len()));
        out.push(piece);
        left = tail;
    }
    (out, rest)
}

/// The names of the header lines of a head (lowercase), read naively.
fn field_names(head: &[u8]) -> Vec<Vec<u8>> {
    head.split(|&b| b == b'\n')
        .skip(1)
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            Some(line[..colon].to_ascii_lowercase())
        })
        .collect()
}

/// The head parser's target.
pub fn head(data: &[u8]) {
    let Some((&pick, buf)) = data.split_first() else { return };
    let max_head = [64, 1024, 16 * 1024][usize::from(pick % 3)];
    let verdict = parse_one(buf, max_head);
    if let Ok(Some(len)) = verdict {
        assert!(
            len <= buf.len() && len <= max_head,
            "head longer than its input or limit"
        );
        assert_eq!(
            parse_one(&buf[..len], max_head),
            Ok(Some(len)),
            "not the same verdict on the head alone"
        );
        // Every prefix of an accepted head is incomplete, never an error or
        // another head: the verdict cannot depend on how bytes were split.
        for cut in [len - 1, len / 2, buf.iter().position(|&b| b == b'\n').unwrap_or(0)] {
            assert_eq!(parse_one(&buf[..cut], max_head), Ok(None), "prefix of {cut} bytes");
        }
        let names = field_names(&buf[..len]);
        let has = |n: &[u8]| names.iter().any(|x| x == n);
        assert!(
            !(has(b"content-length") && has(b"transfer-encoding")),
            "accepted both Content-Length and Transfer-Encoding"
        );
        let bare_lf = buf[0] == b'\n' || buf[..len].windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r');
        assert!(!bare_lf, "bare LF accepted");
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Whether `line` (without its CRLF) is a valid chunk-size line.
fn valid_size_line(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return None;
    }
    let size = u64::from_str_radix(std::str::from_utf8(&line[..digits]).ok()?, 16).ok()?;
    let mut rest = &line[digits..];
    // *( BWS ";" BWS name [ BWS "=" BWS value ] ) with BWS after each part.
    let skip_ws = |r: &mut &[u8]| {
        while let [b, tail @ ..] = *r {
            if !is_ws(*b) {
                break;
            }
            *r = tail;
        }
    };
    let token = |r: &mut &[u8]| -> bool {
        let n = r.iter().take_while(|b| is_tchar(**b)).count();
        *r = &r[n..];
        n > 0
    };
    while !rest.is_empty() {
        skip_ws(&mut rest);
        let [b';', tail @ ..] = rest else { return None };
        rest = tail;
        skip_ws(&mut rest);
        if !token(&mut rest) {
            return None;
        }
        skip_ws(&mut rest);
        if let [b'=', tail @ ..] = rest {
            rest = tail;
            skip_ws(&mut rest);
            if let [b'"', tail @ ..] = rest {
                rest = tail;
                loop {
                    match rest {
                        [b'"', tail @ ..] => {
                            rest = tail;
                            break;
                        }
                        [b'\\', c, tail @ ..] if *c == b'\t' || *c >= 0x20 && *c != 0x7f => rest = tail,
                        [c, tail @ ..] if *c == b'\t' || (*c >= 0x20 && *c != 0x7f && *c != b'\\') => rest = tail,
                        _ => return None,
                    }
                }
            } else if !token(&mut rest) {
                return None;
            }
            skip_ws(&mut rest);
        }
    }
    Some(size)
}

/// A valid trailer field line: `token ":" (VCHAR / obs-text / SP / HTAB)*`.
fn valid_trailer_line(line: &[u8]) -> bool {
    let name = line.iter().take_while(|b| is_tchar(**b)).count();
    name > 0
        && line.get(name) == Some(&b':')
        && line[name + 1..].iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// What `reference_chunked` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reference {
    /// The body and the bytes it used.
    Done(Vec<u8>, usize),
    /// Incomplete, with no error in the complete lines so far.
    Incomplete,
    /// Invalid framing in a complete line or chunk.
    Invalid,
}

/// A chunked-body decoder written from the grammar, line by line, for the
/// differential target: simple rather than incremental.
pub fn reference_chunked(input: &[u8]) -> Reference {
    let mut at = 0;
    let mut body = Vec::new();
    // A line ends at the first LF; it must be preceded by CR, and hold no
    // other CR or LF.
    let line = |at: usize| -> Result<Option<(&[u8], usize)>, ()> {
        let Some(lf) = input[at..].iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let line = &input[at..at + lf];
        match line.split_last() {
            Some((b'\r', content)) if !content.contains(&b'\r') => Ok(Some((content, at + lf + 1))),
            _ => Err(()),
        }
    };
    loop {
        let (size_line, next) = match line(at) {
            Ok(Some(l)) => l,
            Ok(None) => return Reference::Incomplete,
            Err(()) => return Reference::Invalid,
        };
        let Some(size) = valid_size_line(size_line) else {
            return Reference::Invalid;
        };
        at = next;
        if size == 0 {
            loop {
                match line(at) {
                    Ok(Some((b"", next))) => return Reference::Done(body, next),
                    Ok(Some((trailer, next))) if valid_trailer_line(trailer) => at = next,
                    Ok(Some(_)) | Err(()) => return Reference::Invalid,
                    Ok(None) => return Reference::Incomplete,
                }
            }
        }
        let size = size as usize;
        if input.len() < at + size + 2 {
            // The data, or the CRLF after it, is still to come; what is
            // there after the data can only be the CR.
            return if input.len() > at + size && input[at + size] != b'\r' {
                Reference::Invalid
            } else {
                Reference::Incomplete
            };
        }
        body.extend_from_slice(&input[at..at + size]);
        if &input[at + size..at + size + 2] != b"\r\n" {
            return Reference::Invalid;
        }
        at += size + 2;
    }
}

/// The chunked decoder's differential target.
pub fn chunked(data: &[u8]) {
    let (pieces, whole) = pieces(data);
    if whole.len() > 8 * 1024 {
        return; // under the decoder's 16 KiB bound on extensions and trailers
    }
    let server = decode_chunked(&pieces);
    match reference_chunked(whole) {
        Reference::Done(body, used) => assert_eq!(server, Ok(Some((body, used))), "valid body"),
        Reference::Invalid => assert!(server.is_err(), "accepted invalid framing: {server:?}"),
        // The server rejects a bad partial line at once; the reference
        // only judges complete lines.
        Reference::Incomplete => assert!(!matches!(server, Ok(Some(_))), "done early: {server:?}"),
    }
}

/// What the handlers saw that they should never see.
#[derive(Default)]
struct Seen {
    ambiguous: usize,
}

fn fuzz_server(seen: Rc<RefCell<Seen>>) -> Server {
    let check = move |req: &Request| {
        let names: Vec<String> = req.headers().map(|(n, _)| n.to_ascii_lowercase()).collect();
        let has = |n: &str| names.iter().any(|x| x == n);
        // Repeats of the same decimal value (`5` and `05`) frame alike in
        // every parser (RFC 9110 §8.6 allows accepting them); different
        // values, or one that is not a number, are ambiguous.
        let distinct_lengths = {
            let mut v: Vec<Option<u64>> = req
                .headers()
                .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .flat_map(|(_, v)| v.split(|&b| b == b','))
                .map(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok())
                .collect();
            v.sort();
            v.dedup();
            v.len() + usize::from(v.contains(&None))
        };
        // A list in one field (`5, 6`) counts as much as two fields.
        if (has("content-length") && has("transfer-encoding")) || distinct_lengths > 1 {
            seen.borrow_mut().ambiguous += 1;
        }
    };
    let (c1, c2, c3) = (check.clone(), check.clone(), check);
    Server::new()
        .config(Config {
            max_head: 1024,
            max_body: 4096,
            buffer_size: 512,
            output_high_watermark: 4096,
            ..Config::default()
        })
        .get("/", move |req: Request| {
            c1(&req);
            async { Response::text("hi") }
        })
        .post("/echo", move |mut req: Request| {
            c2(&req);
            async move { req.body().await.map(Response::bytes) }
        })
        .post("/count", move |mut req: Request| {
            c3(&req);
            async move {
                let mut n = 0;
                while let Some(chunk) = req.body_chunk().await {
                    n += chunk?.len();
                }
                Ok::<_, std::io::Error>(Response::text(format!("{n}")))
            }
        })
}

/// The whole-connection target.
pub fn connection(data: &[u8]) {
    let (pieces, _) = pieces(data);
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut client = TestClient::new(fuzz_server(seen.clone()));
    let c = client.connect();
    for piece in pieces {
        client.send(c, piece);
        assert!(
            client.unread(c) == 0 || client.is_closed(c),
            "stalled with {} bytes unread",
            client.unread(c)
        );
        let stats = client.stats();
        let answered = stats.responses_2xx + stats.responses_3xx + stats.responses_4xx + stats.responses_5xx;
        assert!(
            answered <= stats.requests,
            "{answered} responses to {} requests",
            stats.requests
        );
        if client.is_closed(c) {
            break;
        }
    }
    client.shutdown_write(c);
    assert!(client.is_closed(c), "still open after the client's FIN");
    assert_eq!(seen.borrow().ambiguous, 0, "a handler saw ambiguous framing");
    let stats = client.stats();
    let final_responses = stats.responses_2xx + stats.responses_3xx + stats.responses_4xx + stats.responses_5xx;
    let parsed = client.responses(c).iter().filter(|r| r.status >= 200).count() as u64;
    assert!(parsed <= final_responses, "parsed more responses than were sent");
}

/// The WebSocket frame decoder's target.
pub fn ws_frame(data: &[u8]) {
    let (pieces, whole) = pieces(data);
    let (max_frame, max_message) = (4096, 16 * 1024);
    let split = ws_decode(&pieces, max_frame, max_message);
    let at_once = ws_decode(&[whole], max_frame, max_message);
    assert_eq!(split, at_once, "the split changed what was decoded");
    let payload: usize = split
        .0
        .iter()
        .map(|m| match m {
            Message::Text(t) => t.len(),
            Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
            Message::Close(f) => f.as_ref().map_or(0, |f| 2 + f.reason.len()),
        })
        .sum();
    assert!(
        payload <= whole.len(),
        "more payload ({payload}) than input ({})",
        whole.len()
    );
    for m in &split.0 {
        match m {
            Message::Ping(b) | Message::Pong(b) => assert!(b.len() <= 125, "a control frame of {} bytes", b.len()),
            Message::Close(Some(f)) => {
                assert!(
                    matches!(f.code, 1000..=1003 | 1007..=1014 | 3000..=4999),
                    "close code {}",
                    f.code
                )
            }
            _ => {}
        }
    }
    if let Some(code) = split.1 {
        assert!(matches!(code, 1002 | 1007 | 1009), "violation answered with {code}");
    }
}
