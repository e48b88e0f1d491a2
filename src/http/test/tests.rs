//! The state machine's tests, over the in-memory client: every transition,
//! every deadline, and each defect found in issue review or by the fuzzer,
//! with no socket and no sleep (but for a handler that sleeps on purpose).

use super::*;
use crate::http::{Config, Request, Response};
use std::time::Duration;

fn app() -> Server {
    Server::new()
        .get("/", |_req: Request| async { Response::text("hi") })
        .get("/slow", |_req: Request| async {
            crate::time::sleep(Duration::from_millis(20)).await;
            Response::text("slow")
        })
        .get("/big", |_req: Request| async { Response::bytes(vec![0u8; 1 << 20]) })
        .get("/stream", |_req: Request| async {
            let (tx, rx) = crate::sync::mpsc::channel(4);
            crate::spawn(async move {
                for i in 0..3 {
                    if tx.send(Bytes::from(format!("part{i};"))).await.is_err() {
                        return;
                    }
                }
            });
            Response::stream(rx)
        })
        .get("/headers", |req: Request| async move {
            let names: Vec<String> = req.headers().map(|(n, _)| n.to_string()).collect();
            Response::text(names.join(","))
        })
        .post("/echo", |mut req: Request| async move {
            req.body().await.map(Response::bytes)
        })
        .post("/count", |mut req: Request| async move {
            let mut n = 0;
            while let Some(chunk) = req.body_chunk().await {
                n += chunk?.len();
            }
            Ok::<_, std::io::Error>(Response::text(format!("{n} bytes")))
        })
        .post("/ignore", |_req: Request| async { Response::text("ignored") })
}

use bytes::Bytes;

/// Every transition of the state machine, in memory, no sleeps.
#[test]
fn each_state_transition() {
    let mut client = TestClient::new(app());
    let c = client.connect();
    assert_eq!(client.phase(c), Some(Phase::Idle));
    assert!(!client.holds_buffers(c), "accepted: no buffers");

    // Part of a head: ReadingHead, with a read buffer from the pool.
    client.send(c, b"GET / HTTP/1.1\r\nHo");
    assert_eq!(client.phase(c), Some(Phase::ReadingHead));
    assert!(client.holds_buffers(c));

    // The rest: answered in the same turn, then idle with no buffers.
    client.send(c, b"st: x\r\n\r\n");
    assert_eq!(client.responses(c)[0].body, b"hi");
    assert_eq!(client.phase(c), Some(Phase::Idle));
    assert!(!client.holds_buffers(c), "idle: buffers back in the pool");

    // A body still arriving: ReadingBody (the handler awaits it as a task).
    client.send(c, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345");
    assert_eq!(client.phase(c), Some(Phase::ReadingBody));
    client.send(c, b"67890");
    assert_eq!(client.responses(c)[0].body, b"1234567890");
    assert_eq!(client.phase(c), Some(Phase::Idle));

    // A piece-by-piece reader a window behind: BodyPaused, then resumed.
    let body = vec![b'u'; 1 << 20];
    let head = format!(
        "POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    client.send(c, head.as_bytes());
    client.send(c, &body);
    assert_eq!(client.responses(c)[0].text(), "1048576 bytes");
    assert_eq!(client.phase(c), Some(Phase::Idle));

    // A handler that is not ready: HandlerPending, no deadline.
    client.send(c, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(client.phase(c), Some(Phase::HandlerPending));
    client.expire(c);
    assert_eq!(
        client.phase(c),
        Some(Phase::HandlerPending),
        "a task paces it: no timeout"
    );
    while client.phase(c) == Some(Phase::HandlerPending) {
        std::thread::sleep(Duration::from_millis(5));
        client.settle();
    }
    assert_eq!(client.responses(c)[0].body, b"slow");

    // A streamed response: Streaming while the task feeds it.
    client.set_window(c, Some(0));
    client.send(c, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(client.phase(c), Some(Phase::Writing), "the client does not read");
    client.set_window(c, None);
    let r = client.responses(c);
    assert_eq!(r[0].body, b"part0;part1;part2;");
    assert_eq!(r[0].header("transfer-encoding"), Some("chunked"));

    // A response the client does not read: Writing, then the write
    // deadline closes it.
    client.set_window(c, Some(1000));
    client.send(c, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(client.phase(c), Some(Phase::Writing));
    client.expire(c);
    assert!(client.is_closed(c), "write timeout");

    // A malformed request: 400, half-close, linger, then close when the
    // client closes.
    let c = client.connect();
    client.send(c, b"BAD REQUEST\r\n\r\n");
    assert_eq!(client.responses(c)[0].status, 400);
    assert!(client.is_write_closed(c));
    assert_eq!(client.phase(c), Some(Phase::Closing));
    client.send(c, b"ignored");
    assert_eq!(client.unread(c), 0, "lingering discards input");
    client.shutdown_write(c);
    assert!(client.is_closed(c));

    // Lingering ends at its deadline if the client never closes.
    let c = client.connect();
    client.send(c, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(client.phase(c), Some(Phase::Closing));
    client.expire(c);
    assert!(client.is_closed(c));

    // Timeouts: header (408), body (408), keep-alive (close).
    let c = client.connect();
    client.send(c, b"GET / HTTP/1.1\r\n");
    client.expire(c);
    assert_eq!(client.responses(c)[0].status, 408);
    let c = client.connect();
    client.send(c, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n123");
    client.expire(c);
    let r = client.responses(c);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].status, 408);
    let c = client.connect();
    client.expire(c);
    assert!(client.is_closed(c), "keep-alive timeout");
    assert_eq!(client.stats().timeouts, 4 + 1);
}

#[test]
fn a_trickled_head_does_not_extend_its_deadline_but_body_progress_does() {
    let mut client = TestClient::new(app());
    let c = client.connect();
    let driver = client.driver.clone();
    let key = client.conns[c.0].key;
    let deadline = |client: &mut TestClient| {
        client
            .runtime
            .enter(|_| driver.with_turn(key, 0, |t| driver.conns.borrow()[key].c.deadline_tick(t)))
    };
    client.send(c, b"GET / HTTP/1.1\r\n");
    let first = deadline(&mut client);
    std::thread::sleep(Duration::from_millis(3));
    client.send(c, b"X: y\r\n");
    assert_eq!(
        deadline(&mut client),
        first,
        "header deadline counts from the first byte"
    );
    let c = client.connect();
    let key = client.conns[c.0].key;
    let deadline2 = |client: &mut TestClient| {
        let driver = client.driver.clone();
        client
            .runtime
            .enter(|_| driver.with_turn(key, 0, |t| driver.conns.borrow()[key].c.deadline_tick(t)))
    };
    client.send(c, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n1");
    let first = deadline2(&mut client).unwrap();
    std::thread::sleep(Duration::from_millis(3));
    client.send(c, b"2");
    assert!(
        deadline2(&mut client).unwrap() > first,
        "body progress moves the deadline"
    );
}

/// Defect 1: one request gets at most one response, even when its body
/// turns out broken after the response was queued.
#[test]
fn a_broken_body_after_the_response_closes_without_a_second_response() {
    for size in ["zz", "ffffffffffffffffffffffff", "5;"] {
        let mut client = TestClient::new(app());
        let c = client.connect();
        // POST to a GET-only path: 405 is queued while the body is read.
        client.send(
            c,
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            .as_bytes(),
        );
        let r = client.responses(c);
        assert_eq!(r.iter().map(|r| r.status).collect::<Vec<_>>(), vec![405], "{size}");
        assert!(client.is_write_closed(c), "{size}: closed after the 405");
        // And a handler that answered before reading its body.
        let c = client.connect();
        client.send(
            c,
            format!("POST /ignore HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\n").as_bytes(),
        );
        let r = client.responses(c);
        assert_eq!(r.iter().map(|r| r.status).collect::<Vec<_>>(), vec![200], "{size}");
        assert!(client.is_write_closed(c));
    }
}

/// Found by the connection fuzzer: the client's FIN in the middle of a
/// body whose request was already answered closes at once, holding no
/// buffer meanwhile.
#[test]
fn fin_mid_body_after_the_answer_closes() {
    let mut client = TestClient::new(app());
    let c = client.connect();
    client.send(c, b"LOST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 99\r\n\r\n");
    assert_eq!(client.responses(c)[0].status, 405);
    client.shutdown_write(c);
    assert!(client.is_closed(c));
}

/// Defect 2 and 5: a malformed chunked body gets 400 and a close at
/// once, never a wait for the body timeout.
#[test]
fn malformed_chunked_bodies_get_400_at_once() {
    for body in [
        "0\r\n\n",
        "5;\r\nhello\r\n0\r\n\r\n",
        "5;bad[=x\r\nhello\r\n0\r\n\r\n",
        "3\nabc",
        "0\r\nX: a\n",
    ] {
        let mut client = TestClient::new(app());
        let c = client.connect();
        client.send(
            c,
            format!("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}").as_bytes(),
        );
        let r = client.responses(c);
        assert_eq!(r.len(), 1, "{body:?}: {r:?}");
        assert_eq!(r[0].status, 400, "{body:?}");
        assert!(client.is_write_closed(c), "{body:?}");
    }
}

/// Defects 3–5 and 7 as a client sees them.
#[test]
fn strict_heads_over_the_connection() {
    let mut client = TestClient::new(app());
    let cases: &[(&str, u16)] = &[
        ("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET / HTTP/1\r\nHost: x\r\n\r\n", 400),
        ("GET / http/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        ("GET / HTTP/1.2\r\nHost: x\r\n\r\n", 200),
        ("GET /#frag HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: user@x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),
        (
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked;ext=val\r\n\r\n",
            400,
        ),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n",
            400,
        ),
        ("GET / HTTP/1.1\nHost: x\r\n\r\n", 400),
        ("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ];
    for (raw, status) in cases {
        let r = client.request(raw.as_bytes());
        assert_eq!(r.status, *status, "{raw:?}");
    }
    let r = client.request(b"GET / HTTP/1.2\r\nHost: x\r\n\r\n");
    assert_eq!(r.body, b"hi");
    let long_method = vec![b'A'; 100 * 1024];
    let c = client.connect();
    client.send(c, &long_method);
    assert_eq!(client.responses(c)[0].status, 400, "a method longer than any: 400");
}

/// Defect 7: header names with `_` are dropped unless configured.
#[test]
fn underscore_fields_are_dropped_by_default() {
    let raw = b"GET /headers HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: evil\r\nContent_Length: 5\r\n\r\n";
    let mut client = TestClient::new(app());
    assert_eq!(client.request(raw).text(), "Host");
    let config = Config {
        underscores_in_headers: true,
        ..Config::default()
    };
    let mut client = TestClient::new(app().config(config));
    assert_eq!(client.request(raw).text(), "Host,X_Forwarded_For,Content_Length");
}

/// Defect 8: `OPTIONS *` and `OPTIONS /path` are answered with `Allow`.
#[test]
fn options_is_answered_with_allow() {
    let mut client = TestClient::new(app());
    let r = client.request(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("allow"), Some("GET, POST, HEAD, OPTIONS"));
    let r = client.request(b"OPTIONS /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("allow"), Some("POST, OPTIONS"));
    assert_eq!(client.request(b"OPTIONS /nope HTTP/1.1\r\nHost: x\r\n\r\n").status, 404);
    let r = client.request(b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
}

/// Defect 10: more buffered work than one `advance`'s budget goes on at
/// the next turn, not at the next timer.
#[test]
fn work_past_the_budget_continues_without_a_timer() {
    let config = Config {
        max_body: 8 << 20,
        ..Config::default()
    };
    let mut client = TestClient::new(app().config(config));
    let c = client.connect();
    let body = vec![b'b'; 4 << 20];
    let mut raw = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    raw.extend_from_slice(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000));
    client.send(c, &raw);
    let r = client.responses(c);
    assert_eq!(
        r.len(),
        2001,
        "every request answered in this settle, no timer waited for"
    );
    assert_eq!(r[0].body.len(), body.len());
    assert_eq!(client.unread(c), 0);
}

/// Defect 9: an idle connection stays within its budget in every build.
#[test]
#[cfg(target_pointer_width = "64")]
fn an_idle_connection_is_at_most_120_bytes() {
    let size = std::mem::size_of::<super::super::driver::Slot<mio::net::TcpStream>>();
    assert!(size <= 120, "a connection's slot is {size} bytes");
}

#[test]
fn head_requests_get_no_body_and_pipelines_keep_order() {
    let mut client = TestClient::new(app());
    let c = client.connect();
    client.send(
        c,
        b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    while client.phase(c) == Some(Phase::HandlerPending) {
        std::thread::sleep(Duration::from_millis(5));
        client.settle();
    }
    let r = client.responses(c);
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].header("content-length"), Some("2"));
    assert!(r[0].body.is_empty());
    assert_eq!(r[1].body, b"slow");
    assert_eq!(r[2].body, b"hi");
}

/// Routing matches the path's bytes: a query, an absolute-form target, and
/// one with no path at all route as their path does.
#[test]
fn routing_matches_the_path_of_every_target_form() {
    let server = Server::new()
        .get("/", |_req: Request| async { Response::text("root") })
        .get("/users/:id", |req: Request| async move {
            Response::text(format!("{}|{}", req.param("id").unwrap(), req.path()))
        });
    let mut client = TestClient::new(server);
    for (target, body) in [
        ("/users/42?tab=x", "42|/users/42"),
        ("http://example.com/users/7?q", "7|/users/7"),
        ("https://example.com", "root"),
        ("/?a=b", "root"),
        ("/users/a%20b", "a%20b|/users/a%20b"),
    ] {
        let r = client.request(format!("GET {target} HTTP/1.1\r\nHost: example.com\r\n\r\n").as_bytes());
        assert_eq!(r.text(), body, "{target}");
    }
    assert_eq!(client.get("/users/").status, 404);
}

/// `*rest` under an absolute-form target with no path captures "" (its
/// position once fell outside the head).
#[test]
fn a_rest_capture_of_an_absolute_form_without_a_path_is_empty() {
    let server = Server::new().get("/*rest", |req: Request| async move {
        Response::text(format!("[{}]", req.param("rest").unwrap()))
    });
    let mut client = TestClient::new(server);
    let r = client.request(b"GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(r.text(), "[]");
    let r = client.request(b"GET http://example.com/a/b?c HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(r.text(), "[a/b]");
}

/// Latency is recorded when the turn that answered ends, not when the
/// figures are next read: after `send` has let the server settle, the
/// histogram already holds the batch (one pipelined batch of three, one
/// entry of three responses).
#[test]
fn latency_is_recorded_when_the_answering_turn_ends() {
    let mut client = TestClient::new(app());
    let c = client.connect();
    client.send(c, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(client.driver.exchange.counters.latency.count(), 1);
    assert_eq!(client.responses(c).len(), 1);
    client.send(
        c,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(client.driver.exchange.counters.latency.count(), 4);
    assert_eq!(client.responses(c).len(), 3);
    assert_eq!(client.stats().latency_count, 4, "a snapshot recorded something twice");
}
