//! The access log over the in-memory client: one record per request, in
//! order, with the bytes that really crossed, including the server's own
//! answers, streams, and requests whose connection closed first.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;

use crate::http::test::TestClient;
use crate::http::{AccessEntry, Config, Request, Response, Server};

/// What a test keeps of each record.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    line: String,
    method: String,
    target: String,
    user_agent: Option<String>,
    status: Option<u16>,
    bytes_in: u64,
    bytes_out: u64,
    complete: bool,
}

fn app(config: Config) -> (Server, Rc<RefCell<Vec<Seen>>>) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    let server = Server::new()
        .config(config)
        .access_log(move |e: &AccessEntry<'_>| {
            log.borrow_mut().push(Seen {
                line: e.common_log().to_string(),
                method: e.request.method_str().to_string(),
                target: e.request.target().to_string(),
                user_agent: e.request.header("user-agent").map(str::to_string),
                status: e.status,
                bytes_in: e.bytes_in,
                bytes_out: e.bytes_out,
                complete: e.complete,
            })
        })
        .get("/", |_req: Request| async { Response::text("hello") })
        .post("/echo", |mut req: Request| async move {
            req.body().await.map(Response::bytes)
        })
        .get("/stream", |_req: Request| async {
            let (tx, rx) = crate::sync::mpsc::channel(4);
            crate::spawn(async move {
                for part in ["one;", "two;"] {
                    let _ = tx.send(Bytes::from(part)).await;
                }
            });
            Response::stream(rx)
        });
    (server, seen)
}

#[test]
fn each_request_gets_one_record_with_the_bytes_that_crossed() {
    let (server, seen) = app(Config::default());
    let mut client = TestClient::new(server);
    let c = client.connect();
    let get = b"GET /?q=1 HTTP/1.1\r\nHost: t\r\nUser-Agent: curl/8\r\n\r\n";
    let post = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nping";
    let chunked = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n";
    let mut all = Vec::new();
    all.extend_from_slice(get);
    all.extend_from_slice(post);
    all.extend_from_slice(chunked);
    client.send(c, &all);
    let out = client.received(c);
    let seen = seen.borrow();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(
        (
            seen[0].method.as_str(),
            seen[0].target.as_str(),
            seen[0].user_agent.as_deref()
        ),
        ("GET", "/?q=1", Some("curl/8"))
    );
    assert_eq!(seen.iter().map(|s| s.status).collect::<Vec<_>>(), [Some(200); 3]);
    assert!(seen.iter().all(|s| s.complete));
    // In: each request as sent, body and chunk framing included.
    assert_eq!(
        seen.iter().map(|s| s.bytes_in).collect::<Vec<_>>(),
        [get.len() as u64, post.len() as u64, chunked.len() as u64]
    );
    // Out: the three responses add up to exactly what the client received.
    assert_eq!(seen.iter().map(|s| s.bytes_out).sum::<u64>(), out.len() as u64);
    // The Common Log Format line, as Apache and nginx write it.
    let line = &seen[0].line;
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(line.contains(" +0000] \"GET /?q=1 HTTP/1.1\" 200 "), "{line}");
    assert!(line.ends_with(&format!(" {}", seen[0].bytes_out)), "{line}");
}

#[test]
fn the_servers_own_answers_are_recorded_but_an_unparsable_head_is_not() {
    let (server, seen) = app(Config {
        max_body: 8,
        ..Config::default()
    });
    let mut client = TestClient::new(server);
    assert_eq!(client.get("/missing").status, 404);
    let big = client.request(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n");
    assert_eq!(big.status, 413);
    assert_eq!(
        client
            .request(b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n")
            .status,
        400
    );
    let statuses: Vec<_> = seen.borrow().iter().map(|s| s.status).collect();
    assert_eq!(statuses, [Some(404), Some(413)]);
}

#[test]
fn a_stream_is_recorded_when_it_ends_with_every_chunk_counted() {
    let (server, seen) = app(Config::default());
    let mut client = TestClient::new(server);
    let c = client.connect();
    client.send(c, b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    let out = client.received(c);
    assert!(out.ends_with(b"0\r\n\r\n"), "{:?}", String::from_utf8_lossy(&out));
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].bytes_out, out.len() as u64);
    assert!(seen[0].complete);
}

#[test]
fn a_connection_closed_before_the_answer_is_recorded_unanswered() {
    let (server, seen) = app(Config::default());
    let server = server.get("/never", |_req: Request| async {
        std::future::pending::<()>().await;
        Response::text("unreachable")
    });
    let mut client = TestClient::new(server);
    let c = client.connect();
    let req = b"GET /never HTTP/1.1\r\nHost: t\r\n\r\n";
    client.send(c, req);
    assert!(seen.borrow().is_empty(), "recorded before it ended");
    // Closing the server's connections (as `stop_now` does) ends it.
    drop(client);
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((seen[0].status, seen[0].complete), (None, false));
    assert_eq!((seen[0].bytes_in, seen[0].bytes_out), (req.len() as u64, 0));
    assert!(seen[0].line.ends_with("\" - -"), "{}", seen[0].line);
}

/// A body the client stops sending: the handler sees the error and answers
/// it (500), and that is what the record says.
#[test]
fn a_body_cut_short_is_recorded_with_the_handlers_answer() {
    let (server, seen) = app(Config::default());
    let mut client = TestClient::new(server);
    let c = client.connect();
    let partial = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc";
    client.send(c, partial);
    assert!(seen.borrow().is_empty(), "recorded before it ended");
    client.shutdown_write(c);
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].status, Some(500));
    assert_eq!(seen[0].bytes_in, partial.len() as u64);
}

#[test]
fn a_panicking_hook_does_not_take_the_server_down() {
    let server = Server::new()
        .access_log(|_e: &AccessEntry<'_>| panic!("a broken logger"))
        .get("/", |_req: Request| async { Response::text("still here") });
    let mut client = TestClient::new(server);
    assert_eq!(client.get("/").text(), "still here");
    assert_eq!(client.get("/").text(), "still here");
}
