//! WebSocket frames (RFC 6455 §5): decoding a client's bytes into messages,
//! and encoding the server's.
//!
//! Owns: the frame header, unmasking, reassembling fragments into messages,
//! every check §5 and §7 ask of a server, and the close codes its failures
//! carry. Must never: accept an unmasked client frame, a reserved bit, an
//! unknown opcode, a fragmented or oversized control frame, invalid UTF-8 in
//! text (checked as the fragments arrive, so it fails fast) or a close
//! reason, a close code RFC 6455 reserves, or a frame or message over its
//! limit; or hold more than one frame of input and one message being built.
//!
//! The decoder is a pure function of its input (no I/O, no clock), so the
//! fuzz target drives it with bytes split anywhere.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A message, as `recv` gives it and `send` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message (valid UTF-8, checked).
    Text(String),
    /// A binary message.
    Binary(Bytes),
    /// A ping (the server answers it with a pong on its own).
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// The peer's close frame: its code and reason, if it sent one.
    Close(Option<CloseFrame>),
}

/// A close frame's status code and reason (RFC 6455 §7.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code: 1000 normal, 1001 going away, 1002 protocol error,
    /// 1003 unsupported data, 1007 invalid data, 1008 policy, 1009 too big,
    /// 1011 server error; 3000-4999 for applications.
    pub code: u16,
    /// Why, in at most 123 bytes of UTF-8.
    pub reason: String,
}

/// A protocol violation: the close code to answer with, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
}

const PROTOCOL: u16 = 1002;
const INVALID_DATA: u16 = 1007;
const TOO_BIG: u16 = 1009;

fn violation(code: u16, reason: &'static str) -> Violation {
    Violation { code, reason }
}

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    len: u64,
    /// Bytes the header took.
    size: usize,
}

/// The header at the front of `buf`, once it is all there.
fn parse_header(buf: &[u8], max_frame: u64) -> Result<Option<Header>, Violation> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    if b0 & 0x70 != 0 {
        return Err(violation(PROTOCOL, "reserved bits set (no extension was negotiated)"));
    }
    let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0F);
    if !matches!(opcode, CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG) {
        return Err(violation(PROTOCOL, "unknown opcode"));
    }
    if b1 & 0x80 == 0 {
        return Err(violation(PROTOCOL, "a client's frames must be masked"));
    }
    let (len, at) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => (u64::from_be_bytes(b.try_into().expect("8 bytes")), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let control = opcode & 0x8 != 0;
    if control && (!fin || len > 125) {
        return Err(violation(
            PROTOCOL,
            "a control frame must be whole and at most 125 bytes",
        ));
    }
    if len >> 63 != 0 {
        return Err(violation(PROTOCOL, "a 64-bit length must have its top bit clear"));
    }
    if len > max_frame {
        return Err(violation(TOO_BIG, "frame larger than the server accepts"));
    }
    let Some(mask) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask: mask.try_into().expect("4 bytes"),
        len,
        size: at + 4,
    }))
}

/// XORs `data` with the mask, starting `offset` bytes into it.
fn unmask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[(offset + i) % 4];
    }
}

/// A data message being reassembled from fragments.
struct Partial {
    text: bool,
    data: BytesMut,
    /// For text: how far `data` is known to be valid UTF-8 (a code point may
    /// straddle fragments, so the tail may wait for the next one).
    valid_utf8: usize,
}

/// Reassembles a client's frames into messages.
pub(crate) struct Decoder {
    /// Boxed: only a fragmented message in progress needs it, and an idle
    /// WebSocket should not carry its size.
    partial: Option<Box<Partial>>,
    max_frame: u32,
    max_message: u32,
}

impl Decoder {
    pub(crate) fn new(max_frame: usize, max_message: usize) -> Decoder {
        // Limits past 4 GiB mean none: u32 keeps an idle WebSocket small.
        let limit = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Decoder {
            partial: None,
            max_frame: limit(max_frame),
            max_message: limit(max_message),
        }
    }

    /// How many more bytes the frame at the front of `input` needs before
    /// `decode` can take it (0 if it could take one now, or the header is
    /// not complete yet): how much to read, at most.
    pub(crate) fn wants(&self, input: &[u8]) -> usize {
        match parse_header(input, u64::from(self.max_frame)) {
            Ok(Some(h)) => (h.size + h.len as usize).saturating_sub(input.len()),
            _ => 0,
        }
    }

    /// Whether a fragmented message is in progress (its bytes are held).
    pub(crate) fn in_message(&self) -> bool {
        self.partial.is_some()
    }

    /// Takes whole frames off the front of `input` until one completes a
    /// message or is a control frame, and returns it; `None` when the next
    /// frame is not all there yet. After an error nothing more may be fed.
    pub(crate) fn decode(&mut self, input: &mut BytesMut) -> Result<Option<Message>, Violation> {
        loop {
            let Some(h) = parse_header(input, u64::from(self.max_frame))? else {
                return Ok(None);
            };
            if (input.len() as u64) < h.size as u64 + h.len {
                return Ok(None);
            }
            input.advance(h.size);
            let mut payload = input.split_to(h.len as usize);
            unmask(&mut payload, h.mask, 0);
            if let Some(message) = self.frame(h, payload)? {
                return Ok(Some(message));
            }
        }
    }

    fn frame(&mut self, h: Header, payload: BytesMut) -> Result<Option<Message>, Violation> {
        match h.opcode {
            PING => Ok(Some(Message::Ping(payload.freeze()))),
            PONG => Ok(Some(Message::Pong(payload.freeze()))),
            CLOSE => close_frame(&payload).map(|f| Some(Message::Close(f))),
            TEXT | BINARY => {
                if self.partial.is_some() {
                    return Err(violation(PROTOCOL, "a new message before the fragmented one ended"));
                }
                if h.fin {
                    // A whole message in one frame (the usual case): no
                    // reassembly, no copy.
                    return whole_message(h.opcode == TEXT, payload, self.max_message as usize).map(Some);
                }
                self.partial = Some(Box::new(Partial {
                    text: h.opcode == TEXT,
                    data: BytesMut::new(),
                    valid_utf8: 0,
                }));
                self.fragment(h.fin, payload)
            }
            _ => {
                if self.partial.is_none() {
                    return Err(violation(PROTOCOL, "a continuation frame with no message to continue"));
                }
                self.fragment(h.fin, payload)
            }
        }
    }

    fn fragment(&mut self, fin: bool, payload: BytesMut) -> Result<Option<Message>, Violation> {
        let p = self.partial.as_mut().expect("a message in progress");
        if p.data.len() + payload.len() > self.max_message as usize {
            return Err(violation(TOO_BIG, "message larger than the server accepts"));
        }
        if p.data.is_empty() {
            // The first fragment (often the only one): no copy.
            p.data = payload;
        } else {
            p.data.extend_from_slice(&payload);
        }
        if p.text {
            match std::str::from_utf8(&p.data[p.valid_utf8..]) {
                Ok(_) => p.valid_utf8 = p.data.len(),
                // Incomplete at the end: the rest of the code point may
                // come in the next fragment, unless this was the last.
                Err(e) if e.error_len().is_none() && !fin => p.valid_utf8 += e.valid_up_to(),
                Err(_) => return Err(violation(INVALID_DATA, "text that is not valid UTF-8")),
            }
        }
        if !fin {
            return Ok(None);
        }
        let p = self.partial.take().expect("a message in progress");
        Ok(Some(if p.text {
            let text = String::from_utf8(Vec::from(p.data))
                .map_err(|_| violation(INVALID_DATA, "text that is not valid UTF-8"))?;
            Message::Text(text)
        } else {
            Message::Binary(p.data.freeze())
        }))
    }
}

/// A message that came in one frame.
fn whole_message(text: bool, payload: BytesMut, max_message: usize) -> Result<Message, Violation> {
    if payload.len() > max_message {
        return Err(violation(TOO_BIG, "message larger than the server accepts"));
    }
    if !text {
        return Ok(Message::Binary(payload.freeze()));
    }
    String::from_utf8(Vec::from(payload))
        .map(Message::Text)
        .map_err(|_| violation(INVALID_DATA, "text that is not valid UTF-8"))
}

/// A close frame's payload: nothing, or a valid code and a UTF-8 reason.
fn close_frame(payload: &[u8]) -> Result<Option<CloseFrame>, Violation> {
    match payload {
        [] => Ok(None),
        [_] => Err(violation(PROTOCOL, "a close frame of one byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !valid_close_code(code) {
                return Err(violation(PROTOCOL, "a close code that may not be sent"));
            }
            let reason =
                std::str::from_utf8(reason).map_err(|_| violation(INVALID_DATA, "a close reason that is not UTF-8"))?;
            Ok(Some(CloseFrame {
                code,
                reason: reason.to_string(),
            }))
        }
    }
}

/// The codes a peer may send (RFC 6455 §7.4.1 and the IANA registry):
/// 1000-1003, 1007-1014, and 3000-4999. 1004-1006 and 1015 are reserved.
pub(crate) fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Appends one unmasked, final frame (servers never mask, §5.1).
pub(crate) fn encode(out: &mut BytesMut, message: &Message) {
    let (opcode, payload): (u8, &[u8]) = match message {
        Message::Text(t) => (TEXT, t.as_bytes()),
        Message::Binary(b) => (BINARY, b),
        Message::Ping(b) => (PING, b),
        Message::Pong(b) => (PONG, b),
        Message::Close(frame) => {
            let start = out.len();
            let (code, reason) = frame.as_ref().map_or((None, ""), |f| (Some(f.code), f.reason.as_str()));
            // At most 125 bytes: the code and 123 of reason, cut on a char.
            let mut cut = reason.len().min(123);
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            let len = if code.is_some() { 2 + cut } else { 0 };
            out.put_u8(0x80 | CLOSE);
            out.put_u8(len as u8);
            if let Some(code) = code {
                out.put_u16(code);
                out.put_slice(&reason.as_bytes()[..cut]);
            }
            debug_assert!(out.len() - start <= 127);
            return;
        }
    };
    out.put_u8(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => out.put_u8(n as u8),
        n @ 126..=0xFFFF => {
            out.put_u8(126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(127);
            out.put_u64(n as u64);
        }
    }
    out.put_slice(payload);
}

/// Masks a frame as a client would: for tests and the fuzz target.
#[doc(hidden)]
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    unmask(&mut out[start..], mask, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn decode_all(bytes: &[u8]) -> Result<Vec<Message>, Violation> {
        let mut d = Decoder::new(1 << 20, 1 << 22);
        let mut input = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(m) = d.decode(&mut input)? {
            out.push(m);
        }
        assert!(input.is_empty(), "{} bytes left undecoded", input.len());
        Ok(out)
    }

    #[test]
    fn rfc_6455s_masked_hello() {
        // §5.7: a single-frame masked text message containing "Hello".
        let frame = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        assert_eq!(decode_all(&frame).unwrap(), [Message::Text("Hello".into())]);
    }

    #[test]
    fn fragments_with_a_ping_between_them() {
        let mut bytes = client_frame(false, TEXT, "Hel".as_bytes(), M);
        bytes.extend(client_frame(true, PING, b"p", M));
        bytes.extend(client_frame(true, CONTINUATION, "lo ✓".as_bytes(), M));
        assert_eq!(
            decode_all(&bytes).unwrap(),
            [Message::Ping(Bytes::from_static(b"p")), Message::Text("Hello ✓".into())]
        );
    }

    #[test]
    fn every_length_form() {
        for n in [0usize, 125, 126, 65535, 65536] {
            let payload = vec![7u8; n];
            let got = decode_all(&client_frame(true, BINARY, &payload, M)).unwrap();
            assert_eq!(got, [Message::Binary(Bytes::from(payload))], "{n} bytes");
        }
    }

    #[test]
    fn a_code_point_split_across_fragments_is_fine_but_bad_utf8_fails_fast() {
        let check = "€".as_bytes(); // three bytes
        let mut bytes = client_frame(false, TEXT, &check[..1], M);
        bytes.extend(client_frame(true, CONTINUATION, &check[1..], M));
        assert_eq!(decode_all(&bytes).unwrap(), [Message::Text("€".into())]);
        // Invalid in the first fragment: refused before the message ends.
        let mut d = Decoder::new(1 << 20, 1 << 20);
        let mut input = BytesMut::from(&client_frame(false, TEXT, &[0xff, b'a'], M)[..]);
        assert_eq!(d.decode(&mut input).unwrap_err().code, 1007);
        // Truncated at the last fragment.
        assert_eq!(
            decode_all(&client_frame(true, TEXT, &check[..2], M)).unwrap_err().code,
            1007
        );
    }

    #[test]
    fn each_violation_gets_its_close_code() {
        let cases: [(Vec<u8>, u16); 9] = [
            (vec![0x81, 0x05, b'h', b'e', b'l', b'l', b'o'], 1002), // unmasked
            (
                client_frame(true, TEXT, b"x", M)
                    .iter()
                    .enumerate()
                    .map(|(i, &b)| if i == 0 { b | 0x40 } else { b })
                    .collect(),
                1002,
            ), // RSV1
            (client_frame(true, 0x3, b"", M), 1002),                // reserved opcode
            (client_frame(false, PING, b"", M), 1002),              // fragmented control
            (client_frame(true, PING, &[0; 126], M), 1002),         // control over 125
            (client_frame(true, CONTINUATION, b"x", M), 1002),      // nothing to continue
            (client_frame(true, CLOSE, &[0x03], M), 1002),          // one-byte close
            (client_frame(true, CLOSE, &[0x03, 0xed], M), 1002),    // 1005 may not be sent
            (client_frame(true, CLOSE, &[0x03, 0xe8, 0xff], M), 1007), // reason not UTF-8
        ];
        for (bytes, code) in cases {
            assert_eq!(decode_all(&bytes).unwrap_err().code, code, "{bytes:02x?}");
        }
        let mut two = client_frame(false, TEXT, b"a", M);
        two.extend(client_frame(true, BINARY, b"b", M));
        assert_eq!(
            decode_all(&two).unwrap_err().code,
            1002,
            "a new message inside a fragmented one"
        );
    }

    #[test]
    fn limits_answer_1009() {
        let mut d = Decoder::new(16, 20);
        let mut big_frame = BytesMut::from(&client_frame(true, BINARY, &[0; 17], M)[..]);
        assert_eq!(d.decode(&mut big_frame).unwrap_err().code, 1009);
        let mut d = Decoder::new(16, 20);
        let mut parts = BytesMut::from(&client_frame(false, BINARY, &[0; 16], M)[..]);
        parts.extend_from_slice(&client_frame(true, CONTINUATION, &[0; 5], M));
        assert_eq!(d.decode(&mut parts).unwrap_err().code, 1009);
    }

    #[test]
    fn close_frames_and_what_the_server_sends() {
        assert_eq!(
            decode_all(&client_frame(true, CLOSE, b"", M)).unwrap(),
            [Message::Close(None)]
        );
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        assert_eq!(
            decode_all(&client_frame(true, CLOSE, &payload, M)).unwrap(),
            [Message::Close(Some(CloseFrame {
                code: 1000,
                reason: "bye".into()
            }))]
        );
        let mut out = BytesMut::new();
        encode(
            &mut out,
            &Message::Close(Some(CloseFrame {
                code: 1001,
                reason: "é".repeat(100),
            })),
        );
        // 2 header bytes, a 2-byte code and 122 bytes of reason: é is two
        // bytes, so 123 would split one.
        assert_eq!(out.len(), 2 + 2 + 122);
        let mut out = BytesMut::new();
        encode(&mut out, &Message::Binary(Bytes::from(vec![1; 70_000])));
        assert_eq!(&out[..2], &[0x82, 127]);
    }

    #[test]
    fn a_frame_split_anywhere_decodes_the_same() {
        let mut bytes = client_frame(false, TEXT, "ab".as_bytes(), M);
        bytes.extend(client_frame(true, CONTINUATION, "cd".as_bytes(), M));
        bytes.extend(client_frame(true, BINARY, &[9; 300], M));
        let whole = decode_all(&bytes).unwrap();
        for cut in 0..bytes.len() {
            let mut d = Decoder::new(1 << 20, 1 << 20);
            let mut input = BytesMut::new();
            let mut got = Vec::new();
            for piece in [&bytes[..cut], &bytes[cut..]] {
                input.extend_from_slice(piece);
                while let Some(m) = d.decode(&mut input).unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, whole, "cut at {cut}");
        }
    }
}
