//! WebSocket over real sockets, from a raw client written to the RFC: the
//! handshake and its refusals, echo, fragmentation with a ping inside, the
//! close handshake, every protocol violation with its close code, limits,
//! the idle timeout, bytes sent with the handshake, split halves, and a
//! graceful shutdown.
#![cfg(feature = "http-server")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::start_with;
use solo::http::ws::{self, client_frame, Message, WsConfig};
use solo::http::{Request, Server};

const MASK: [u8; 4] = [1, 2, 3, 4];
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn app() -> Server {
    Server::bind("127.0.0.1:0")
        .unwrap()
        .get("/echo", |req: Request| async move {
            let config = WsConfig {
                max_message: 1 << 20,
                protocols: &["chat.v2", "chat"],
                ..WsConfig::default()
            };
            ws::upgrade(&req, config, |mut socket| async move {
                while let Some(Ok(message)) = socket.recv().await {
                    if let Message::Text(_) | Message::Binary(_) = message {
                        if socket.send(message).await.is_err() {
                            break;
                        }
                    }
                }
            })
        })
        .get("/idle", |req: Request| async move {
            let config = WsConfig {
                idle_timeout: Some(Duration::from_millis(200)),
                ..WsConfig::default()
            };
            ws::upgrade(&req, config, |mut socket| async move {
                while socket.recv().await.is_some() {}
            })
        })
        .get("/ticker", |req: Request| async move {
            // Split: one task writes a tick every 10 ms, the reader echoes
            // nothing but answers pings and the close.
            ws::upgrade(&req, WsConfig::default(), |socket| async move {
                let (mut reader, mut writer) = socket.split();
                let ticker = solo::spawn(async move {
                    for i in 0..5 {
                        if writer.send(Message::Text(format!("tick {i}"))).await.is_err() {
                            return;
                        }
                        solo::time::sleep(Duration::from_millis(10)).await;
                    }
                    let _ = writer.close(1000, "done").await;
                });
                while reader.recv().await.is_some() {}
                let _ = ticker.await;
            })
        })
}

/// A client's connection after its handshake.
struct Client {
    reader: BufReader<TcpStream>,
    head: String,
}

fn handshake_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

fn connect(addr: std::net::SocketAddr, request: &str, first_bytes: &[u8]) -> Client {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut all = request.as_bytes().to_vec();
    all.extend_from_slice(first_bytes);
    s.write_all(&all).unwrap();
    let mut reader = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        head.push_str(&line);
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    Client { reader, head }
}

impl Client {
    fn send(&mut self, frame: &[u8]) {
        self.reader.get_mut().write_all(frame).unwrap();
    }

    /// One server frame: (fin, opcode, payload); `None` at EOF.
    fn frame(&mut self) -> Option<(bool, u8, Vec<u8>)> {
        let mut h = [0u8; 2];
        if self.reader.read_exact(&mut h).is_err() {
            return None;
        }
        assert_eq!(h[1] & 0x80, 0, "a server must not mask");
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.reader.read_exact(&mut b).unwrap();
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                self.reader.read_exact(&mut b).unwrap();
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        self.reader.read_exact(&mut payload).unwrap();
        Some((h[0] & 0x80 != 0, h[0] & 0x0f, payload))
    }

    /// The close the server sent: its code.
    fn close_code(&mut self) -> u16 {
        loop {
            let (_, opcode, payload) = self.frame().expect("a close frame before EOF");
            if opcode == 8 {
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
    }

    fn is_eof(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0) | Err(_))
    }
}

#[test]
fn the_handshake_and_its_refusals() {
    let server = start_with(app);
    let c = connect(
        server.addr,
        &handshake_request("/echo", "Sec-WebSocket-Protocol: chat, chat.v2\r\n"),
        b"",
    );
    assert!(c.head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{}", c.head);
    // RFC 6455 §1.3's own example key and answer.
    assert!(
        c.head
            .contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{}",
        c.head
    );
    assert!(c.head.contains("Upgrade: websocket\r\n") && c.head.contains("Connection: upgrade\r\n"));
    // The client's first choice that the server speaks (RFC 6455 §4.1:
    // the client lists them in its order of preference).
    assert!(c.head.contains("Sec-WebSocket-Protocol: chat\r\n"), "{}", c.head);

    let refused = |request: String| {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut head = String::new();
        BufReader::new(s).read_line(&mut head).unwrap();
        head
    };
    let v8 = handshake_request("/echo", "").replace("Version: 13", "Version: 8");
    assert!(refused(v8).starts_with("HTTP/1.1 426"));
    let no_key = handshake_request("/echo", "").replace(KEY, "short");
    assert!(refused(no_key).starts_with("HTTP/1.1 400"));
    assert!(refused("GET /echo HTTP/1.1\r\nHost: t\r\n\r\n".into()).starts_with("HTTP/1.1 426"));
    let http10 = handshake_request("/echo", "").replace("HTTP/1.1", "HTTP/1.0");
    assert!(refused(http10).starts_with("HTTP/1.1 400"));
}

#[test]
fn echo_fragments_pings_and_the_close_handshake() {
    let server = start_with(app);
    let mut c = connect(server.addr, &handshake_request("/echo", ""), b"");
    c.send(&client_frame(true, 1, "héllo".as_bytes(), MASK));
    assert_eq!(c.frame(), Some((true, 1, "héllo".as_bytes().to_vec())));
    c.send(&client_frame(true, 2, &[0, 1, 2, 255], MASK));
    assert_eq!(c.frame(), Some((true, 2, vec![0, 1, 2, 255])));
    // A fragmented message with a ping between its fragments: the pong
    // comes first, then the whole message.
    c.send(&client_frame(false, 1, b"frag", MASK));
    c.send(&client_frame(true, 9, b"are you there", MASK));
    c.send(&client_frame(true, 0, b"mented", MASK));
    assert_eq!(c.frame(), Some((true, 10, b"are you there".to_vec())));
    assert_eq!(c.frame(), Some((true, 1, b"fragmented".to_vec())));
    // A 200 KiB message: the 64-bit length form both ways.
    let big = vec![7u8; 200 * 1024];
    c.send(&client_frame(true, 2, &big, MASK));
    assert_eq!(c.frame(), Some((true, 2, big)));
    // Close: echoed, then the server ends the connection.
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    c.send(&client_frame(true, 8, &close, MASK));
    let (_, opcode, payload) = c.frame().unwrap();
    assert_eq!((opcode, &payload[..2]), (8, &1000u16.to_be_bytes()[..]));
    assert!(c.is_eof());
}

#[test]
fn bytes_sent_with_the_handshake_are_the_first_frames() {
    let server = start_with(app);
    let first = client_frame(true, 1, b"early", MASK);
    let mut c = connect(server.addr, &handshake_request("/echo", ""), &first);
    assert!(c.head.starts_with("HTTP/1.1 101"));
    assert_eq!(c.frame(), Some((true, 1, b"early".to_vec())));
}

#[test]
fn each_violation_closes_with_its_code_and_the_server_goes_on() {
    let server = start_with(app);
    let mut rsv = client_frame(true, 1, b"x", MASK);
    rsv[0] |= 0x40;
    let mut bad_code = 1005u16.to_be_bytes().to_vec();
    bad_code.extend_from_slice(b"reserved");
    let mut bad_reason = 1000u16.to_be_bytes().to_vec();
    bad_reason.extend_from_slice(&[0xc3, 0x28]);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked", vec![0x81, 0x01, b'x'], 1002),
        ("reserved bit", rsv, 1002),
        ("unknown opcode", client_frame(true, 0xB, b"", MASK), 1002),
        ("control over 125 bytes", client_frame(true, 9, &[0; 126], MASK), 1002),
        ("fragmented control", client_frame(false, 9, b"", MASK), 1002),
        (
            "invalid UTF-8",
            client_frame(
                true,
                1,
                &[0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80],
                MASK,
            ),
            1007,
        ),
        ("reserved close code", client_frame(true, 8, &bad_code, MASK), 1002),
        ("close reason not UTF-8", client_frame(true, 8, &bad_reason, MASK), 1007),
        (
            "message over the limit",
            client_frame(true, 2, &vec![0; (1 << 20) + 1], MASK),
            1009,
        ),
    ];
    for (what, frame, code) in cases {
        let mut c = connect(server.addr, &handshake_request("/echo", ""), b"");
        c.send(&frame);
        assert_eq!(c.close_code(), code, "{what}");
        assert!(c.is_eof(), "{what}: the connection stays open");
    }
    // Unharmed.
    let mut c = connect(server.addr, &handshake_request("/echo", ""), b"");
    c.send(&client_frame(true, 1, b"still here", MASK));
    assert_eq!(c.frame(), Some((true, 1, b"still here".to_vec())));
}

#[test]
fn an_idle_connection_is_pinged_then_closed() {
    let server = start_with(app);
    let mut c = connect(server.addr, &handshake_request("/idle", ""), b"");
    let (_, opcode, _) = c.frame().unwrap();
    assert_eq!(opcode, 9, "a ping after the idle timeout");
    // Answering keeps it open for another round.
    c.send(&client_frame(true, 10, b"solo", MASK));
    let (_, opcode, _) = c.frame().unwrap();
    assert_eq!(opcode, 9, "pinged again after another idle period");
    assert_eq!(c.close_code(), 1001, "no answer: closed");
}

#[test]
fn split_halves_write_from_one_task_while_the_other_reads() {
    let server = start_with(app);
    let mut c = connect(server.addr, &handshake_request("/ticker", ""), b"");
    c.send(&client_frame(true, 9, b"p", MASK));
    let mut texts = Vec::new();
    let mut pongs = 0;
    loop {
        let (_, opcode, payload) = c.frame().unwrap();
        match opcode {
            1 => texts.push(String::from_utf8(payload).unwrap()),
            10 => pongs += 1,
            8 => break,
            other => panic!("opcode {other}"),
        }
    }
    assert_eq!(texts, ["tick 0", "tick 1", "tick 2", "tick 3", "tick 4"]);
    assert_eq!(pongs, 1);
    c.send(&client_frame(true, 8, &1000u16.to_be_bytes(), MASK));
    assert!(c.is_eof());
}

#[test]
fn a_graceful_shutdown_closes_websockets_with_1001_and_waits_for_them() {
    let server = start_with(app);
    let mut c = connect(server.addr, &handshake_request("/echo", ""), b"");
    c.send(&client_frame(true, 1, b"hi", MASK));
    assert_eq!(c.frame().unwrap().1, 1);
    server.shutdown.shutdown();
    assert_eq!(c.close_code(), 1001);
    // The server waits for the close handshake: answer it, and it stops.
    c.send(&client_frame(true, 8, &1001u16.to_be_bytes(), MASK));
    assert!(c.is_eof());
    let mut server = server;
    let ended = server.thread.take().unwrap().join().unwrap();
    assert!(ended.is_ok());
}

/// Any protocol can take a connection over; a request body is read to its
/// end by HTTP first (RFC 9110 §7.8), and only the bytes after it reach the
/// new protocol.
#[test]
fn a_custom_protocol_gets_the_bytes_after_the_body() {
    let server = start_with(|| {
        Server::bind("127.0.0.1:0")
            .unwrap()
            .post("/shout", |_req: Request| async {
                solo::http::Response::upgrade("shout", |mut conn| async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n @ 1..) = conn.read(&mut buf).await {
                        let loud = buf[..n].to_ascii_uppercase();
                        if conn.write_all(&loud).await.is_err() {
                            break;
                        }
                    }
                })
            })
    });
    let Client { mut reader, head } = connect(
        server.addr,
        "POST /shout HTTP/1.1\r\nHost: t\r\nUpgrade: shout\r\nConnection: upgrade\r\nContent-Length: 4\r\n\r\n",
        b"bodyhello",
    );
    assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{head}");
    assert!(
        head.contains("Upgrade: shout\r\n") && head.contains("Connection: upgrade\r\n"),
        "{head}"
    );
    assert!(!head.contains("Content-Length"), "a 101 has no body framing: {head}");
    let mut got = [0u8; 5];
    reader.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"HELLO", "the body went to HTTP, the rest to the protocol");
    reader.get_mut().write_all(b"again").unwrap();
    reader.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"AGAIN");
}
