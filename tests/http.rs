//! The HTTP server over real sockets, with a blocking std client: a request
//! corpus sent whole, byte by byte and split at every offset; pipelines;
//! long keep-alive; every malformed input with its exact status and a close;
//! bodies, async handlers, panics, timeouts, limits, streaming, shutdown.
#![cfg(feature = "http-server")]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use solo::http::{AtLimit, Config, Request, Response, Server};
use solo::time::sleep;

mod common;
use common::{get, start_with, Client, Running};

fn app(config: Config) -> Server {
    Server::bind("127.0.0.1:0")
        .unwrap()
        .config(config)
        .get("/", |_req: Request| async { Response::text("Hello, World!") })
        .get("/users/:id", |req: Request| async move {
            Response::text(format!("user {}", req.param("id").unwrap()))
        })
        .get("/files/*path", |req: Request| async move {
            Response::text(req.param("path").unwrap().to_string())
        })
        .get("/query", |req: Request| async move {
            let pairs: Vec<String> = req.query_pairs().map(|(k, v)| format!("{k}={v}")).collect();
            Response::text(pairs.join("&"))
        })
        .get("/header", |req: Request| async move {
            Response::text(req.header("x-probe").unwrap_or("none").to_string())
        })
        .post("/echo", |mut req: Request| async move {
            req.body().await.map(Response::bytes)
        })
        .post("/chunks", |mut req: Request| async move {
            let mut n = 0;
            while let Some(chunk) = req.body_chunk().await {
                n += chunk?.len();
            }
            Ok::<_, std::io::Error>(Response::text(format!("{n} bytes")))
        })
        .get("/slow/:ms", |req: Request| async move {
            let ms: u64 = req.param("ms").unwrap().parse().unwrap();
            sleep(Duration::from_millis(ms)).await;
            Response::text(format!("slept {ms}"))
        })
        .get("/panic", |_req: Request| async {
            if true {
                panic!("handler boom");
            }
            Response::text("unreachable")
        })
        .get("/panic-later", |_req: Request| async {
            sleep(Duration::from_millis(1)).await;
            if true {
                panic!("handler boom later");
            }
            Response::text("unreachable")
        })
        .get("/stream", |_req: Request| async {
            let (tx, rx) = solo::sync::mpsc::channel(4);
            solo::spawn(async move {
                for i in 0..5 {
                    tx.send(Bytes::from(format!("data: {i}\n\n"))).await.unwrap();
                    sleep(Duration::from_millis(1)).await;
                }
            });
            Response::stream(rx).content_type("text/event-stream")
        })
        .get("/big", |_req: Request| async { Response::bytes(vec![b'x'; 300_000]) })
        .get("/empty", |_req: Request| async { Response::status(204) })
}

fn start(config: Config) -> Running {
    start_with(move || app(config))
}

/// (request, expected status, expected body)
fn corpus() -> Vec<(String, u16, &'static str)> {
    vec![
        (get("/"), 200, "Hello, World!"),
        (get("/users/42"), 200, "user 42"),
        (get("/files/a/b/c.txt"), 200, "a/b/c.txt"),
        (get("/query?a=1&b=x+y&c=%41"), 200, "a=1&b=x y&c=A"),
        ("GET /header HTTP/1.1\r\nHost: t\r\nX-Probe: yes\r\n\r\n".into(), 200, "yes"),
        ("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello".into(), 200, "hello"),
        (
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: v\r\n\r\n"
                .into(),
            200,
            "abcde",
        ),
        (get("/nope"), 404, "Not Found"),
        ("DELETE / HTTP/1.1\r\nHost: t\r\n\r\n".into(), 405, "Method Not Allowed"),
        ("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n".into(), 200, ""),
        (get("/empty"), 204, ""),
        (get("/slow/2"), 200, "slept 2"),
        (get("http://test/users/7"), 200, "user 7"),
    ]
}

#[test]
fn corpus_whole_bytewise_and_split_everywhere() {
    let server = start(Config::default());
    for (raw, status, body) in corpus() {
        // Whole.
        let mut c = Client::connect(server.addr);
        let r = c.request(&raw);
        assert_eq!((r.status, r.text().as_str()), (status, body), "{raw:?}");
        // Byte by byte.
        let mut c = Client::connect(server.addr);
        for b in raw.as_bytes() {
            c.send(std::slice::from_ref(b));
        }
        let r = c.read(raw.starts_with("HEAD "));
        assert_eq!((r.status, r.text().as_str()), (status, body), "bytewise {raw:?}");
        // Split at every offset, on one keep-alive connection.
        let mut c = Client::connect(server.addr);
        for cut in 1..raw.len() {
            c.send(&raw.as_bytes()[..cut]);
            thread::sleep(Duration::from_micros(200));
            c.send(&raw.as_bytes()[cut..]);
            let r = c.read(raw.starts_with("HEAD "));
            assert_eq!((r.status, r.text().as_str()), (status, body), "split at {cut}: {raw:?}");
        }
    }
}

#[test]
fn responses_carry_date_length_and_type() {
    let server = start(Config::default());
    let mut c = Client::connect(server.addr);
    let r = c.request(&get("/"));
    assert_eq!(r.header("content-length"), Some("13"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let date = r.header("date").unwrap();
    assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    let r = c.request("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.header("content-length"), Some("13"), "HEAD keeps GET's length");
    let r = c.request("DELETE / HTTP/1.1\r\nHost: t\r\n\r\n");
    // OPTIONS is answered for every routed path, so Allow lists it too.
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
}

#[test]
fn pipelines_of_16_and_1000_answer_in_order() {
    let server = start(Config::default());
    for depth in [16usize, 1000] {
        let mut c = Client::connect(server.addr);
        let mut batch = String::new();
        for i in 0..depth {
            batch.push_str(&get(&format!("/users/{i}")));
        }
        c.send(batch.as_bytes());
        for i in 0..depth {
            let r = c.read(false);
            assert_eq!(r.text(), format!("user {i}"));
        }
    }
}

#[test]
fn pipeline_with_a_pending_handler_keeps_order() {
    let server = start(Config::default());
    let mut c = Client::connect(server.addr);
    c.send(format!("{}{}{}", get("/slow/20"), get("/"), get("/slow/1")).as_bytes());
    assert_eq!(c.read(false).text(), "slept 20");
    assert_eq!(c.read(false).text(), "Hello, World!");
    assert_eq!(c.read(false).text(), "slept 1");
}

#[test]
fn ten_thousand_requests_on_one_connection() {
    let server = start(Config::default());
    let mut c = Client::connect(server.addr);
    for i in 0..10_000 {
        let r = c.request(&get("/"));
        assert_eq!(r.status, 200, "request {i}");
    }
}

#[test]
fn many_concurrent_connections() {
    let server = start(Config::default());
    let mut clients: Vec<Client> = (0..200).map(|_| Client::connect(server.addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(get(&format!("/users/{i}")).as_bytes());
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.read(false).text(), format!("user {i}"));
    }
}

/// Each malformed request gets exactly this status and a closed
/// connection; a fresh client is served right after.
#[test]
fn bad_input_gets_its_status_and_a_close() {
    let server = start(Config::default());
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(20_000));
    let big_header = format!("GET / HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n", "b".repeat(20_000));
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "CL and TE",
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
            400,
        ),
        (
            "differing CL",
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".into(),
            400,
        ),
        (
            "malformed CL",
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3x\r\n\r\nabc".into(),
            400,
        ),
        (
            "TE not ending in chunked",
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n".into(),
            400,
        ),
        (
            "unknown TE",
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n".into(),
            501,
        ),
        (
            "bad chunk size",
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".into(),
            400,
        ),
        (
            "overflowing chunk size",
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n".into(),
            400,
        ),
        (
            "obs-fold",
            "GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n".into(),
            400,
        ),
        ("space before colon", "GET / HTTP/1.1\r\nHost : t\r\n\r\n".into(), 400),
        ("missing Host", "GET / HTTP/1.1\r\n\r\n".into(), 400),
        ("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(), 400),
        ("bare CR", "GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n".into(), 400),
        (
            "control byte",
            "GET / HTTP/1.1\r\nHost: t\r\nX: a\x01b\r\n\r\n".into(),
            400,
        ),
        (
            "garbage",
            "\x16\x03\x01\x00\x25\x01\x00\x00\x21\x03\x03garbage\r\n\r\n".into(),
            400,
        ),
        ("long request line", long_target, 414),
        ("huge header", big_header, 431),
        (
            "body over limit by CL",
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\n\r\n".into(),
            413,
        ),
        ("HTTP/2.0", "GET / HTTP/2.0\r\nHost: t\r\n\r\n".into(), 505),
        (
            "unknown expectation",
            "GET / HTTP/1.1\r\nHost: t\r\nExpect: tea\r\n\r\n".into(),
            417,
        ),
    ];
    for (what, raw, status) in cases {
        let mut c = Client::connect(server.addr);
        c.send(raw.as_bytes());
        let r = c.read(false);
        assert_eq!(r.status, status, "{what}");
        assert_eq!(r.header("connection"), Some("close"), "{what}");
        assert!(c.is_closed(), "{what}: connection left open");
        let mut fresh = Client::connect(server.addr);
        assert_eq!(fresh.request(&get("/")).status, 200, "after {what}");
    }
}

#[test]
fn chunked_body_over_the_limit_is_413() {
    let config = Config {
        max_body: 10,
        ..Config::default()
    };
    let server = start(config);
    let mut c = Client::connect(server.addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n");
    let r = c.read(false);
    assert_eq!(r.status, 413);
    assert!(c.is_closed());
}

#[test]
fn bodies_arriving_slowly_and_streamed() {
    let server = start(Config::default());
    let mut c = Client::connect(server.addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234");
    thread::sleep(Duration::from_millis(20));
    c.send(b"56789");
    assert_eq!(c.read(false).text(), "0123456789");
    // A 600 KB chunked upload read piece by piece.
    let mut raw = b"POST /chunks HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..600 {
        raw.extend_from_slice(b"400\r\n");
        raw.extend_from_slice(&[b'z'; 1024]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    c.send(&raw);
    assert_eq!(c.read(false).text(), "614400 bytes");
    // The connection is still usable.
    assert_eq!(c.request(&get("/")).status, 200);
}

#[test]
fn expect_100_continue_is_answered() {
    let server = start(Config::default());
    let mut c = Client::connect(server.addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.read(false);
    assert_eq!(interim.status, 100);
    c.send(b"ping");
    assert_eq!(c.read(false).text(), "ping");
}

#[test]
fn unread_body_is_drained_before_the_next_request() {
    let server = start(Config::default());
    let mut c = Client::connect(server.addr);
    // `/` never reads the body; the next request must still parse.
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nxxxxxGET /users/1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read(false).text(), "Hello, World!");
    assert_eq!(c.read(false).text(), "user 1");
}

#[test]
fn panicking_handler_gets_500_and_server_lives() {
    let server = start(Config::default());
    for path in ["/panic", "/panic-later"] {
        let mut c = Client::connect(server.addr);
        let r = c.request(&get(path));
        assert_eq!(r.status, 500, "{path}");
        assert!(c.is_closed(), "{path}");
        assert_eq!(Client::connect(server.addr).request(&get("/")).status, 200);
    }
}

#[test]
fn http_1_0_closes_unless_keep_alive_is_asked() {
    let server = start(Config::default());
    let mut c = Client::connect(server.addr);
    let r = c.request("GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed());
    let mut c = Client::connect(server.addr);
    let r = c.request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(r.header("connection"), Some("keep-alive"));
    assert_eq!(
        c.request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").status,
        200
    );
    let mut c = Client::connect(server.addr);
    let r = c.request("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed());
}

#[test]
fn streamed_response_is_chunked() {
    let server = start(Config::default());
    let mut c = Client::connect(server.addr);
    let r = c.request(&get("/stream"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.text(), "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n");
    // Keep-alive survives a streamed response.
    assert_eq!(c.request(&get("/")).status, 200);
}

#[test]
fn large_body_is_written_whole() {
    let server = start(Config::default());
    let mut c = Client::connect(server.addr);
    // Pipelined so the large body sits between two small responses.
    c.send(format!("{}{}{}", get("/"), get("/big"), get("/users/5")).as_bytes());
    assert_eq!(c.read(false).text(), "Hello, World!");
    let big = c.read(false);
    assert_eq!(big.body.len(), 300_000);
    assert!(big.body.iter().all(|&b| b == b'x'));
    assert_eq!(c.read(false).text(), "user 5");
}

#[test]
fn slowloris_head_gets_408() {
    let config = Config {
        header_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let server = start(config);
    let mut c = Client::connect(server.addr);
    let start = Instant::now();
    // One byte every 50 ms never completes the head in time, and the
    // trickle must not extend the deadline.
    let mut writer = c.reader.get_ref().try_clone().unwrap();
    let trickle = thread::spawn(move || {
        for b in b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
            if writer.write_all(std::slice::from_ref(b)).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
    });
    let r = c.read(false);
    let answered = start.elapsed();
    assert_eq!(r.status, 408);
    assert!(
        answered < Duration::from_millis(1500),
        "deadline was extended by the trickle: {answered:?}"
    );
    assert!(c.is_closed());
    trickle.join().unwrap();
}

#[test]
fn idle_keep_alive_connection_is_closed_after_its_timeout() {
    let config = Config {
        keep_alive_timeout: Duration::from_millis(200),
        ..Config::default()
    };
    let server = start(config);
    let mut c = Client::connect(server.addr);
    assert_eq!(c.request(&get("/")).status, 200);
    let start = Instant::now();
    assert!(c.is_closed());
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(190), "closed early: {waited:?}");
}

/// The keep-alive timeout counts from the last answer, not the first: a
/// connection busy with a request every 50 ms outlives a 200 ms timeout.
#[test]
fn keep_alive_timeout_restarts_after_each_request() {
    let config = Config {
        keep_alive_timeout: Duration::from_millis(200),
        ..Config::default()
    };
    let server = start(config);
    let mut c = Client::connect(server.addr);
    for i in 0..20 {
        assert_eq!(c.request(&get("/")).status, 200, "request {i} after {} ms", i * 50);
        thread::sleep(Duration::from_millis(50));
    }
    let start = Instant::now();
    assert!(c.is_closed());
    assert!(
        start.elapsed() >= Duration::from_millis(140),
        "closed early: {:?}",
        start.elapsed()
    );
}

#[test]
fn connection_limit_pauses_accepting_and_resumes() {
    let config = Config {
        max_connections: 3,
        at_connection_limit: AtLimit::Backlog,
        ..Config::default()
    };
    let server = start(config);
    let mut held: Vec<Client> = (0..3).map(|_| Client::connect(server.addr)).collect();
    for c in held.iter_mut() {
        assert_eq!(c.request(&get("/")).status, 200);
    }
    // The 4th connects (kernel backlog) but is not served while 3 are open.
    let mut fourth = Client::connect(server.addr);
    fourth.send(get("/").as_bytes());
    fourth
        .reader
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut b = [0u8; 1];
    assert!(fourth.reader.read(&mut b).is_err(), "served past the limit");
    drop(held.pop());
    fourth
        .reader
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(fourth.read(false).status, 200, "not resumed after a close");
}

#[test]
fn in_flight_cap_answers_503() {
    let config = Config {
        max_in_flight: Some(1),
        ..Config::default()
    };
    let server = start(config);
    let mut a = Client::connect(server.addr);
    a.send(get("/slow/300").as_bytes());
    thread::sleep(Duration::from_millis(50));
    let mut b = Client::connect(server.addr);
    assert_eq!(b.request(&get("/slow/1")).status, 503);
    assert_eq!(b.request(&get("/")).status, 200, "ready handlers are not capped");
    assert_eq!(a.read(false).text(), "slept 300");
}

#[test]
fn graceful_shutdown_finishes_in_flight_requests() {
    let server = start(Config::default());
    let mut idle = Client::connect(server.addr);
    assert_eq!(idle.request(&get("/")).status, 200);
    let mut busy = Client::connect(server.addr);
    busy.send(get("/slow/200").as_bytes());
    thread::sleep(Duration::from_millis(50));
    server.shutdown.shutdown();
    let r = busy.read(false);
    assert_eq!(r.text(), "slept 200", "in-flight request finished");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(idle.is_closed(), "idle connection closed");
    let mut server = server;
    let result = server.thread.take().unwrap().join().unwrap();
    assert!(result.is_ok());
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn middleware_runs_before_and_after() {
    let server = start_with(|| {
        Server::bind("127.0.0.1:0")
            .unwrap()
            .before(|req: &mut Request| {
                (req.header("authorization") != Some("secret")).then(|| Response::text("no").with_status(401))
            })
            .after(|resp: Response| resp.header("X-Served-By", "solo"))
            .get("/", |_req: Request| async { Response::text("in") })
    });
    let mut c = Client::connect(server.addr);
    let r = c.request(&get("/"));
    assert_eq!((r.status, r.header("x-served-by")), (401, Some("solo")));
    let r = c.request("GET / HTTP/1.1\r\nHost: t\r\nAuthorization: secret\r\n\r\n");
    assert_eq!(
        (r.status, r.text().as_str(), r.header("x-served-by")),
        (200, "in", Some("solo"))
    );
}

/// A hook is application code, as a handler is: one that panics is
/// answered 500 with a close, counted, and the server goes on serving.
#[test]
fn a_panicking_hook_gets_500_and_server_lives() {
    let (tx, rx) = mpsc::channel();
    let server = start_with(move || {
        let server = Server::bind("127.0.0.1:0").unwrap();
        let stats = server.stats_handle();
        let tx = std::sync::Mutex::new(tx);
        server
            .before(|req: &mut Request| {
                assert!(req.path() != "/before", "a before hook fails");
                None
            })
            .after(|resp: Response| {
                assert!(resp.status_code() != 404, "an after hook fails");
                resp.header("X-After", "1")
            })
            .get("/", |_req: Request| async { "in" })
            .get("/before", |_req: Request| async { "never" })
            .get("/stats", move |_req: Request| {
                tx.lock().unwrap().send(stats.snapshot().handler_panics).unwrap();
                async { "sent" }
            })
    });
    // The after hooks run on the 500 of a before hook (as on every answer
    // of the server's own), not on the 500 that replaces one of theirs.
    for (path, after) in [("/before", Some("1")), ("/nowhere", None)] {
        let mut c = Client::connect(server.addr);
        let r = c.request(&get(path));
        assert_eq!((r.status, r.header("x-after")), (500, after), "{path}");
        assert!(c.is_closed(), "{path}");
        let r = Client::connect(server.addr).request(&get("/"));
        assert_eq!((r.status, r.header("x-after")), (200, Some("1")), "{path}");
    }
    Client::connect(server.addr).request(&get("/stats"));
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 2);
}

#[test]
fn stats_count_what_happened() {
    // Stats are read on the server's thread: a handler sends a snapshot out.
    let (tx, rx) = mpsc::channel();
    let stats_server = start_with(move || {
        let server = Server::bind("127.0.0.1:0").unwrap();
        let stats = server.stats_handle();
        let tx = std::sync::Mutex::new(tx);
        server.get("/", move |_req: Request| {
            let s = stats.snapshot();
            tx.lock().unwrap().send(s).unwrap();
            async { Response::text("ok") }
        })
    });
    let mut c = Client::connect(stats_server.addr);
    c.request(&get("/"));
    c.request(&get("/"));
    let _first = rx.recv().unwrap();
    let second = rx.recv().unwrap();
    assert_eq!(second.requests, 2);
    assert_eq!(second.responses_2xx, 1, "the first response was counted");
    assert_eq!(second.accepted, 1);
    assert_eq!(second.active, 1);
    assert!(second.latency_count >= 1);
    assert!(second.rss_bytes.unwrap() > 0);
}

#[cfg(target_os = "linux")]
#[test]
fn workers_share_the_port_and_all_serve() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let shutdown = solo::http::ShutdownHandle::new();
    let stop = shutdown.clone();
    let workers = thread::spawn(move || {
        Server::workers_until(("127.0.0.1", port), 2, stop, |server| {
            server.get("/whoami", |_req: Request| async {
                Response::text(thread::current().name().unwrap_or("?").to_string())
            })
        })
    });
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        for _ in 0..100 {
            if TcpStream::connect(addr).is_ok() {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        // Fresh connections (new source ports) are spread by the kernel.
        let mut c = Client::connect(addr);
        seen.insert(c.request(&get("/whoami")).text());
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec!["solo-worker-0".to_string(), "solo-worker-1".to_string()],
        "both workers served"
    );
    shutdown.shutdown();
    workers.join().unwrap().unwrap();
}

#[test]
fn request_then_half_close_is_answered_and_closed_promptly() {
    let server = start(Config::default());
    for _ in 0..20 {
        let mut c = Client::connect(server.addr);
        // Request and FIN back to back usually arrive in one edge: the EOF
        // must still be noticed, not left for the 75 s keep-alive timer.
        c.send(get("/").as_bytes());
        c.reader.get_ref().shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(c.read(false).text(), "Hello, World!");
        let start = Instant::now();
        assert!(c.is_closed());
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the server noticed the client's FIN late"
        );
    }
}

/// When `serve` ends, none of the server's timers stays in the wheel: the
/// date refresh, the shutdown deadline, and the acceptor's (its resume after
/// a close at the connection limit) are all cancelled, so nothing keeps the
/// server alive or fires into a stopped one.
#[test]
fn serve_leaves_no_timer_behind() {
    use solo::net::TcpStream;
    let rt = solo::Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind("127.0.0.1:0")
            .unwrap()
            .config(Config {
                max_connections: 1,
                at_connection_limit: AtLimit::Backlog,
                ..Config::default()
            })
            .get("/", |_req: Request| async { Response::text("hi") });
        let addr = server.local_addr().unwrap();
        let stop = server.shutdown_handle();
        let serving = solo::spawn(server.serve());
        let get = |mut c: TcpStream| async move {
            c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut reply = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                match c.read(&mut buf).await.unwrap() {
                    0 => return reply,
                    n => reply.extend_from_slice(&buf[..n]),
                }
            }
        };
        let first = TcpStream::connect(addr).await.unwrap();
        sleep(Duration::from_millis(20)).await;
        // At the limit: the second waits in the backlog until the first closes.
        let second = TcpStream::connect(addr).await.unwrap();
        assert!(get(first).await.ends_with(b"hi"));
        assert!(get(second).await.ends_with(b"hi"), "accepted once the first closed");
        stop.shutdown();
        serving.await.unwrap().unwrap();
    });
    assert_eq!(rt.stats().timers_pending, 0, "a timer outlived serve");
}
