//! SIGINT/SIGTERM seen by a running server through its own loop, and the
//! default action back once it has stopped.
//!
//! A signal goes to the whole process, so each case runs in a child process
//! (this test binary again, told which case by an environment variable)
//! and the parent checks how the child ended.
#![cfg(all(unix, feature = "http-server"))]

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{start_with, Client};
use solo::http::{Config, Request, Response, Server};

const CASE: &str = "SOLO_SIGNAL_CASE";

fn send_to_self(signal: libc::c_int) {
    // SAFETY: kill has no memory preconditions; our own pid is valid.
    assert_eq!(unsafe { libc::kill(libc::getpid(), signal) }, 0);
}

/// Runs `case` in a child process; returns its exit status and stdout.
fn run_child(case: &str) -> (std::process::ExitStatus, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([case, "--exact", "--nocapture", "--test-threads=1"])
        .env(CASE, case)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("child {case} stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status, stdout)
}

fn is_child(case: &str) -> bool {
    std::env::var(CASE).as_deref() == Ok(case)
}

fn slow_server(delay: Duration) -> common::Running {
    start_with(move || {
        Server::bind("127.0.0.1:0")
            .unwrap()
            .config(Config {
                shutdown_timeout: Duration::from_secs(30),
                ..Config::default()
            })
            .get("/slow", move |_req: Request| async move {
                solo::time::sleep(delay).await;
                Response::text("done")
            })
    })
}

#[test]
fn sigterm_drains_then_the_default_action_is_back() {
    let (status, stdout) = run_child("child_drains");
    assert!(stdout.contains("drained: 200 done"), "child said: {stdout}");
    // The child sent itself SIGTERM after the server stopped: with no server
    // watching, that must terminate it as the default action does.
    assert_eq!(status.signal(), Some(libc::SIGTERM), "child ended with {status:?}");
}

#[test]
fn child_drains() {
    if !is_child("child_drains") {
        return;
    }
    let mut server = slow_server(Duration::from_millis(300));
    let mut client = Client::connect(server.addr);
    client.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    std::thread::sleep(Duration::from_millis(50));
    send_to_self(libc::SIGTERM);
    // The request in flight is answered, then the connection is closed.
    let reply = client.read(false);
    assert!(client.is_closed(), "a draining server closes after the response");
    let ended = server.thread.take().unwrap().join().unwrap();
    assert!(ended.is_ok(), "run returned {ended:?}");
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "still accepting after the drain"
    );
    println!("drained: {} {}", reply.status, String::from_utf8_lossy(&reply.body));
    send_to_self(libc::SIGTERM);
    std::thread::sleep(Duration::from_secs(5));
    println!("still alive after SIGTERM with no server running");
}

#[test]
fn a_second_signal_stops_at_once() {
    let (status, stdout) = run_child("child_second_signal");
    assert!(status.success(), "child ended with {status:?}: {stdout}");
    assert!(stdout.contains("stopped at once"), "child said: {stdout}");
}

#[test]
fn child_second_signal() {
    if !is_child("child_second_signal") {
        return;
    }
    let mut server = slow_server(Duration::from_secs(20));
    let mut client = Client::connect(server.addr);
    client.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    std::thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    send_to_self(libc::SIGINT);
    std::thread::sleep(Duration::from_millis(100));
    send_to_self(libc::SIGINT);
    let ended = server.thread.take().unwrap().join().unwrap();
    let took = start.elapsed();
    assert!(ended.is_ok(), "run returned {ended:?}");
    // Closed without an answer: the handler's 20 s never ran out, and the
    // shutdown timeout is 30 s.
    let mut rest = Vec::new();
    let _ = client.reader.get_mut().read_to_end(&mut rest);
    assert!(rest.is_empty(), "got {:?}", String::from_utf8_lossy(&rest));
    assert!(took < Duration::from_secs(10), "took {took:?}");
    println!("stopped at once ({took:?})");
}
