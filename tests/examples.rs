//! Each example in `examples/` does what its doc comment says: started as
//! its own process (the binary `cargo test` builds next to this one) on a
//! free port, and driven over real sockets.
#![cfg(feature = "http-server")]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use common::{get, Client, Example, PORT};

/// Starts an example whose first argument is its port.
fn start(name: &str, args: &[&str]) -> Example {
    let mut all = vec![PORT];
    all.extend_from_slice(args);
    Example::start(name, &all)
}

#[test]
fn sse_streams_events_and_ends_when_asked() {
    let ex = start("sse", &[]);
    let mut c = Client::connect(ex.addr);
    let reply = c.request(&get("/events?count=3"));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    assert_eq!(reply.header("cache-control"), Some("no-cache"));
    let text = String::from_utf8(reply.body).unwrap();
    assert!(text.starts_with("retry: 2000\n\n"), "{text}");
    assert_eq!(text.matches("event: tick\n").count(), 3, "{text}");
    assert!(text.contains("id: 3\nevent: tick\ndata: {\"n\":3,"), "{text}");
    let page = c.request(&get("/"));
    assert!(String::from_utf8(page.body)
        .unwrap()
        .contains("new EventSource(\"/events\")"));
}

#[test]
fn upload_streams_a_body_to_a_file() {
    let dir = std::env::temp_dir().join(format!("solo-upload-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ex = start("upload", &[dir.to_str().unwrap()]);
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut c = Client::connect(ex.addr);
    c.send(
        format!(
            "PUT /upload/data.bin HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(&body);
    let reply = c.read(false);
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    assert!(String::from_utf8_lossy(&reply.body).starts_with("3000000 bytes to "));
    assert_eq!(std::fs::read(dir.join("data.bin")).unwrap(), body);
    let bad = c.request("PUT /upload/..hidden HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx");
    assert_eq!(bad.status, 400);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hooks_authenticate_and_add_cors() {
    let ex = start("hooks", &[]);
    let mut c = Client::connect(ex.addr);
    let denied = c.request(&get("/admin/stats"));
    assert_eq!(denied.status, 401);
    assert_eq!(denied.header("www-authenticate"), Some("Bearer"));
    let allowed = c.request("GET /admin/stats HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer let-me-in\r\n\r\n");
    assert_eq!(allowed.status, 200);
    let preflight = c.request(
        "OPTIONS /api/items HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: PUT\r\n\r\n",
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(preflight
        .header("access-control-allow-methods")
        .unwrap()
        .contains("PUT"));
    let stranger = c.request(
        "OPTIONS /api/items HTTP/1.1\r\nHost: t\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: PUT\r\n\r\n",
    );
    assert_eq!(stranger.header("access-control-allow-methods"), None);
    let items = c.request(&get("/api/items"));
    assert_eq!(items.header("access-control-allow-origin"), Some("*"));
    let (a, b) = (
        items.header("x-request-id"),
        c.request(&get("/nope")).header("x-request-id").map(str::to_string),
    );
    assert!(
        a.is_some() && b.is_some() && a != b.as_deref(),
        "one id per response, 404s too"
    );
}

#[test]
#[cfg(target_os = "linux")]
fn workers_share_the_port() {
    let ex = start("workers", &["2"]);
    let mut seen = std::collections::BTreeSet::new();
    // The kernel hashes each connection to a listener: 40 connections all
    // landing on one of two workers has a chance of 2^-39.
    for _ in 0..40 {
        let text = String::from_utf8(Client::connect(ex.addr).request(&get("/")).body).unwrap();
        seen.insert(text.split(':').next().unwrap().to_string());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[test]
fn shutdown_from_a_handler_lets_the_slow_request_finish() {
    let mut ex = start("shutdown", &[]);
    let addr = ex.addr;
    let slow = std::thread::spawn(move || Client::connect(addr).request(&get("/slow")));
    std::thread::sleep(Duration::from_millis(300));
    let asked = Client::connect(addr).request("POST /admin/shutdown HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(asked.status, 202);
    let slow = slow.join().unwrap();
    assert_eq!(String::from_utf8(slow.body).unwrap(), "finished despite the shutdown\n");
    let status = ex.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    ex.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("every request answered"), "{err}");
}

#[test]
fn access_log_writes_common_log_format() {
    let mut ex = start("access_log", &[]);
    let mut c = Client::connect(ex.addr);
    c.request("GET /hello HTTP/1.1\r\nHost: t\r\nUser-Agent: test-agent/1\r\n\r\n");
    c.request(&get("/missing"));
    let mut lines = BufReader::new(ex.child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    // 127.0.0.1 - - [02/Dec/2026:09:15:02 +0000] "GET /hello HTTP/1.1" 200 <bytes> "-" "test-agent/1" <n>us
    let (host, rest) = first.split_once(" - - [").unwrap();
    assert_eq!(host, "127.0.0.1");
    let (time, rest) = rest.split_once("] ").unwrap();
    assert!(time.len() == 26 && time.ends_with(" +0000"), "{first}");
    assert!(rest.starts_with("\"GET /hello HTTP/1.1\" 200 "), "{first}");
    assert!(
        rest.contains(" \"-\" \"test-agent/1\" ") && rest.ends_with("us"),
        "{first}"
    );
    let second = lines.next().unwrap().unwrap();
    assert!(second.contains("\"GET /missing HTTP/1.1\" 404 "), "{second}");
}

#[test]
fn prometheus_adds_the_applications_counter() {
    let ex = start("prometheus", &[]);
    let mut c = Client::connect(ex.addr);
    for _ in 0..2 {
        assert_eq!(
            c.request("POST /orders HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
                .status,
            201
        );
    }
    let metrics = c.request(&get("/metrics"));
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(text.contains("\nshop_orders_total 2\n"), "{text}");
    assert!(
        text.contains("# TYPE solo_http_request_duration_seconds histogram"),
        "{text}"
    );
}

#[test]
fn chat_clients_in_one_room_see_each_other() {
    use solo::http::ws::client_frame;
    let ex = Example::start("chat", &["--port", PORT]);
    let join = |query: &str| {
        let mut s = std::net::TcpStream::connect(ex.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        std::io::Write::write_all(
            &mut s,
            format!(
                "GET /ws?{query} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 101"), "{line}");
        while line != "\r\n" {
            line.clear();
            reader.read_line(&mut line).unwrap();
        }
        reader
    };
    // Reads text frames until one equals `wanted`.
    let until = |r: &mut BufReader<std::net::TcpStream>, wanted: &str| loop {
        let mut h = [0u8; 2];
        r.read_exact(&mut h).unwrap();
        let mut payload = vec![0u8; (h[1] & 0x7f) as usize];
        r.read_exact(&mut payload).unwrap();
        if payload == wanted.as_bytes() {
            return;
        }
    };
    let mut alice = join("room=rust&name=alice");
    let mut bob = join("room=rust&name=bob");
    let mut other = join("room=elsewhere&name=carol");
    until(&mut alice, "* bob joined rust");
    std::io::Write::write_all(alice.get_mut(), &client_frame(true, 1, b"hello", [9, 8, 7, 6])).unwrap();
    until(&mut bob, "alice: hello");
    until(&mut alice, "alice: hello");
    // Another room hears nothing of it; the next thing carol sees is her own.
    std::io::Write::write_all(other.get_mut(), &client_frame(true, 1, b"anyone?", [1, 1, 1, 1])).unwrap();
    until(&mut other, "* carol joined elsewhere");
    until(&mut other, "carol: anyone?");
    // No room given: the lobby.
    let mut guest = join("name=dave");
    until(&mut guest, "* dave joined lobby");
}
