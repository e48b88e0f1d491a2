//! `examples/tour.rs`, driven endpoint by endpoint over real sockets: each
//! figure is plausible and measured, backpressure and shedding really happen,
//! and the pool never grows past its size or leaks a connection.
#![cfg(all(unix, feature = "http-server"))]

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{get, reset, Client, Example, PORT};
use serde_json::Value;

fn tour() -> Example {
    Example::start("tour", &["--port", PORT])
}

fn json(addr: SocketAddr, path: &str) -> (u16, Value) {
    let reply = Client::connect(addr).request(&get(path));
    let value = serde_json::from_slice(&reply.body).unwrap_or_else(|e| panic!("{path}: {e}: {:?}", reply.body));
    (reply.status, value)
}

#[test]
fn concurrent_takes_its_three_steps_and_says_so() {
    let t = tour();
    let reply = Client::connect(t.addr).request(&get("/concurrent"));
    assert_eq!(reply.status, 200);
    let time: u64 = reply
        .header("x-process-time")
        .unwrap()
        .trim_end_matches("us")
        .parse()
        .unwrap();
    assert!(time >= 18_000, "three sleeps of 10, 5 and 3 ms took {time} µs");
    let id: u64 = reply.header("x-request-id").unwrap().parse().unwrap();
    let next: u64 = Client::connect(t.addr)
        .request(&get("/concurrent"))
        .header("x-request-id")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(next, id + 1);
}

#[test]
fn memory_reports_the_os_rss_and_the_runtimes_own_bytes() {
    let t = tour();
    let (_, first) = json(t.addr, "/memory");
    assert_eq!(first["completed"], 1000);
    let rss = &first["rss_bytes"];
    let before = rss["before"].as_u64().unwrap();
    assert!(before > 1_000_000, "RSS {before}");
    // A fresh process's heap must grow for 1,000 tasks: the RSS moves.
    assert!(rss["peak"].as_u64().unwrap() > before, "{rss}");
    let per_task = first["runtime_task_bytes"]["per_task"].as_u64().unwrap();
    assert!((64..1024).contains(&per_task), "{per_task} bytes per task");
}

#[test]
fn event_loop_times_each_task_and_the_longest_turn() {
    let t = tour();
    let (_, v) = json(t.addr, "/event-loop");
    let tasks = v["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 3);
    let took = |name: &str| {
        tasks.iter().find(|t| t["task"] == name).unwrap()["took_us"]
            .as_u64()
            .unwrap()
    };
    assert!(took("io") >= 100_000, "100 sleeps of 1 ms took {} µs", took("io"));
    assert!(took("mixed") >= 25_000, "50 sleeps of 0.5 ms took {} µs", took("mixed"));
    let longest = v["longest_turn_us"].as_u64().unwrap();
    let total = v["total_us"].as_u64().unwrap();
    assert!(longest > 0 && longest < total, "longest turn {longest} µs of {total}");
}

#[test]
fn backpressure_admits_100_and_refuses_the_rest() {
    let t = tour();
    let mut clients: Vec<Client> = (0..150).map(|_| Client::connect(t.addr)).collect();
    for c in &mut clients {
        c.send(get("/backpressure").as_bytes());
    }
    let statuses: Vec<u16> = clients.iter_mut().map(|c| c.read(false).status).collect();
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let busy = statuses.iter().filter(|&&s| s == 503).count();
    assert_eq!((ok, busy), (100, 50), "{statuses:?}");
    // The permits came back.
    assert_eq!(json(t.addr, "/backpressure").0, 200);
}

#[test]
fn adaptive_sheds_when_the_loop_is_made_busy() {
    let t = tour();
    let (status, calm) = json(t.addr, "/adaptive");
    assert_eq!((status, calm["mode"].as_str()), (200, Some("normal")), "{calm}");
    // Keep the loop busy: back-to-back requests that each spin 50 ms.
    let addr = t.addr;
    let stop = Instant::now() + Duration::from_secs(4);
    let spinners: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                while Instant::now() < stop {
                    c.request(&get("/spin?ms=50"));
                }
            })
        })
        .collect();
    let mut shed = None;
    let deadline = Instant::now() + Duration::from_millis(3500);
    while shed.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let (status, v) = json(addr, "/adaptive");
        if status == 503 {
            shed = Some(v);
        }
    }
    for s in spinners {
        s.join().unwrap();
    }
    let shed = shed.expect("/adaptive never shed while the loop spun");
    assert_eq!(shed["mode"], "shed");
    assert!(shed["load"].as_f64().unwrap() > 0.9, "{shed}");
}

#[test]
fn the_pool_stays_within_its_size_and_cancelled_requests_give_back() {
    let t = tour();
    let addr = t.addr;
    // 500 at once, each holding a connection 5 ms.
    let mut clients: Vec<Client> = (0..500).map(|_| Client::connect(addr)).collect();
    for c in &mut clients {
        c.send(get("/pool").as_bytes());
    }
    for c in &mut clients {
        let r = c.read(false);
        assert_eq!(r.status, 200);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let during = &v["pool_during"];
        assert!(
            during["in_use"].as_u64().unwrap() <= 10 && during["size"].as_u64().unwrap() <= 10,
            "{v}"
        );
    }
    drop(clients);
    // Ten holders for 300 ms, then five waiters behind them; reset three of
    // the holders and all the waiters mid-request.
    let mut holders: Vec<Client> = (0..10).map(|_| Client::connect(addr)).collect();
    for c in &mut holders {
        c.send(get("/pool?hold_ms=300").as_bytes());
    }
    std::thread::sleep(Duration::from_millis(50));
    let mut waiters: Vec<Client> = (0..5).map(|_| Client::connect(addr)).collect();
    for c in &mut waiters {
        c.send(get("/pool?hold_ms=1").as_bytes());
    }
    std::thread::sleep(Duration::from_millis(50));
    for c in waiters.drain(..).chain(holders.drain(..3)) {
        reset(c.reader.into_inner());
    }
    for c in &mut holders {
        assert_eq!(c.read(false).status, 200);
    }
    std::thread::sleep(Duration::from_millis(50));
    let (_, v) = json(addr, "/pool?hold_ms=0");
    let after = &v["pool_after"];
    assert_eq!(after["in_use"], 0, "a cancelled request kept its connection: {v}");
    assert_eq!(after["waiting"], 0, "{v}");
    assert_eq!(after["idle"], after["size"], "{v}");
    assert!(after["most_in_use"].as_u64().unwrap() <= 10, "{v}");
}

#[test]
fn stats_are_counted_not_made_up() {
    let t = tour();
    let mut c = Client::connect(t.addr);
    for _ in 0..20 {
        c.request(&get("/hello"));
    }
    // Wait for two samples, so the windowed figures exist.
    std::thread::sleep(Duration::from_millis(2300));
    let (_, v) = json(t.addr, "/stats");
    assert!(v["total_requests"].as_u64().unwrap() >= 21, "{v}");
    assert!(v["active_connections"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["rss_bytes"].as_u64().unwrap() > 1_000_000, "{v}");
    assert!(v["cpu_seconds_total"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["latency_us_since_start"]["count"].as_u64().unwrap() >= 20, "{v}");
    let loop_now = v["loop"]["utilisation_last_second"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&loop_now), "{v}");
    assert!(v["samples"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["throughput_rps_last_10s"].as_f64().is_some(), "{v}");
}

#[test]
fn the_dashboard_is_one_self_contained_page_fed_by_events() {
    let t = tour();
    let mut c = Client::connect(t.addr);
    let page = String::from_utf8(c.request(&get("/")).body).unwrap();
    assert!(page.contains("new EventSource(\"/events\")"));
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "a page that needs the network"
    );
    // The stream starts with the history, then a sample a second.
    let mut events = TcpStream::connect(t.addr).unwrap();
    events.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::Write::write_all(&mut events, get("/events").as_bytes()).unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen.contains("event: sample") && Instant::now() < deadline {
        let n = std::io::Read::read(&mut events, &mut buf).unwrap();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        seen.contains("text/event-stream") && seen.contains("event: history"),
        "{seen}"
    );
    assert!(seen.contains("event: sample\ndata: {"), "{seen}");
}
