//! What solo logs through the `log` facade, seen by a logger installed the
//! way an application would: lifecycle at info, a rejected request (status,
//! reason, peer) at debug, a panicking handler at warn. Its own test binary,
//! since a process has one logger.
#![cfg(feature = "http-server")]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

use log::{Level, Log, Metadata, Record};
use solo::http::{Request, Response, Server};

struct Capture(Mutex<Vec<(Level, String)>>);

impl Log for Capture {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, record: &Record) {
        if record.target().starts_with("solo") {
            self.0.lock().unwrap().push((record.level(), record.args().to_string()));
        }
    }
    fn flush(&self) {}
}

static LOGGER: Capture = Capture(Mutex::new(Vec::new()));

fn exchange(addr: std::net::SocketAddr, raw: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(raw).unwrap();
    let mut reply = String::new();
    let _ = c.read_to_string(&mut reply);
    reply
}

#[test]
fn lifecycle_rejections_and_panics_are_logged() {
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Debug);
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let server = Server::bind("127.0.0.1:0")
            .unwrap()
            .get("/", |_req: Request| async { Response::text("ok") })
            .get("/boom", |_req: Request| async {
                if true {
                    panic!("boom for the log test");
                }
                Response::text("unreachable")
            });
        tx.send((server.local_addr().unwrap(), server.shutdown_handle()))
            .unwrap();
        solo::Runtime::new().unwrap().block_on(server.serve())
    });
    let (addr, stop) = rx.recv().unwrap();
    assert!(exchange(addr, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").ends_with("ok"));
    assert!(exchange(addr, b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 400 "));
    assert!(exchange(addr, b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\n").starts_with("HTTP/1.1 500 "));
    stop.shutdown();
    thread.join().unwrap().unwrap();
    let logged = LOGGER.0.lock().unwrap().clone();
    let has = |level: Level, text: &str| logged.iter().any(|(l, m)| *l == level && m.contains(text));
    assert!(has(Level::Info, &format!("listening on http://{addr}")), "{logged:?}");
    assert!(has(Level::Debug, "answered 400"), "{logged:?}");
    assert!(
        has(Level::Debug, "127.0.0.1:"),
        "the peer is not in the rejection: {logged:?}"
    );
    assert!(has(Level::Warn, "a handler panicked"), "{logged:?}");
    assert!(has(Level::Info, "draining"), "{logged:?}");
    assert!(has(Level::Info, "stopped serving"), "{logged:?}");
    // Nothing at trace: the level was set to debug, and trace records were
    // filtered before they were formatted.
    assert!(!logged.iter().any(|(l, _)| *l == Level::Trace));
}
