//! `accept` failing with EMFILE must not spin the loop: the server backs off
//! on the timer wheel and serves again once descriptors are free. Its own
//! test binary, since it lowers the process's descriptor limit.
#![cfg(all(unix, feature = "http-server"))]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use solo::http::{process_usage, Request, Response, Server};

fn set_soft_nofile(n: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        let old = lim.rlim_cur as u64;
        lim.rlim_cur = n as libc::rlim_t;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        old
    }
}

fn open_fds() -> u64 {
    std::fs::read_dir("/dev/fd")
        .or_else(|_| std::fs::read_dir("/proc/self/fd"))
        .map(|d| d.count() as u64)
        .unwrap()
}

/// Connects a socket made before the descriptor limit was lowered (a new
/// one could not be made under it), as a `TcpStream`.
fn connect_fd(fd: i32, to: std::net::SocketAddrV4) -> TcpStream {
    // SAFETY: `fd` is a socket this test made and owns; the address is a
    // local, fully initialised `sockaddr_in` of the size passed; on success
    // the descriptor's ownership moves into the `TcpStream`.
    unsafe {
        let mut sin: libc::sockaddr_in = std::mem::zeroed();
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_port = to.port().to_be();
        sin.sin_addr = libc::in_addr {
            s_addr: u32::from_ne_bytes(to.ip().octets()),
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(libc::connect(fd, &sin as *const _ as *const libc::sockaddr, len), 0);
        std::os::fd::FromRawFd::from_raw_fd(fd)
    }
}

#[test]
fn out_of_descriptors_backs_off_instead_of_spinning() {
    let (tx, rx) = mpsc::channel();
    let server_thread = thread::spawn(move || {
        let server = Server::bind("127.0.0.1:0")
            .unwrap()
            .get("/", |_req: Request| async { Response::text("ok") });
        let stats = server.stats_handle();
        tx.send((server.local_addr().unwrap(), server.shutdown_handle()))
            .unwrap();
        let rt = solo::Runtime::new().unwrap();
        let r = rt.block_on(server.serve());
        (r, stats.snapshot(), rt.stats().timers_pending)
    });
    let (addr, shutdown) = rx.recv().unwrap();
    // Clients connect first (the kernel completes the handshakes from the
    // backlog); then the limit leaves the server no descriptor to accept with.
    let mut clients: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
    thread::sleep(Duration::from_millis(100)); // the server accepts all 20
                                               // The second batch's sockets exist before the limit drops (they need
                                               // descriptors too) and connect after, so the server cannot have
                                               // accepted them in advance: it must meet EMFILE.
    let fds: Vec<i32> = (0..20)
        // SAFETY: socket(2) with constant arguments.
        .map(|_| unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) })
        .collect();
    assert!(fds.iter().all(|&fd| fd >= 0));
    let old = set_soft_nofile(open_fds());
    let std::net::SocketAddr::V4(v4) = addr else {
        unreachable!()
    };
    // SAFETY: an all-zero sockaddr_in, then filled in; connect reads it.
    let more: Vec<TcpStream> = fds.into_iter().map(|fd| connect_fd(fd, v4)).collect();
    let cpu_before = process_usage().1.unwrap();
    thread::sleep(Duration::from_millis(600));
    let cpu_used = process_usage().1.unwrap() - cpu_before;
    // A loop retrying accept at once would burn the whole 600 ms of a core.
    assert!(
        cpu_used < Duration::from_millis(150),
        "the loop spun on EMFILE: {cpu_used:?} of CPU in 600 ms"
    );
    // Every connection accepted before is still served, repeatedly, while
    // the listener has connections it cannot take.
    let mut buf = [0u8; 256];
    for round in 0..5 {
        for c in clients.iter_mut() {
            c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let n = c.read(&mut buf).unwrap();
            assert!(
                buf[..n].starts_with(b"HTTP/1.1 200 "),
                "round {round}: not served while saturated"
            );
        }
    }
    // And the loop is still quiet once they are done.
    let cpu_before = process_usage().1.unwrap();
    thread::sleep(Duration::from_millis(300));
    let cpu_used = process_usage().1.unwrap() - cpu_before;
    assert!(
        cpu_used < Duration::from_millis(75),
        "the loop spun on EMFILE after serving: {cpu_used:?} of CPU in 300 ms"
    );
    // Descriptors come back: the waiting connections are served.
    set_soft_nofile(old);
    clients.clear();
    for mut c in more {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let n = c.read(&mut buf).unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200 "),
            "not served after the limit was lifted"
        );
    }
    // Out of descriptors once more, and stopped inside the back-off: the
    // acceptor's retry timer must not outlive `serve`.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0);
    let old = set_soft_nofile(open_fds());
    let last = connect_fd(fd, v4);
    thread::sleep(Duration::from_millis(30)); // accept fails: a 100 ms back-off is set
    shutdown.stop_now();
    let (result, stats, timers_left) = server_thread.join().unwrap();
    set_soft_nofile(old);
    drop(last);
    result.unwrap();
    assert_eq!(timers_left, 0, "a timer (the acceptor's back-off) outlived serve");
    assert!(
        stats.accept_errors > 0,
        "accept never failed: the test did not test anything"
    );
    assert!(
        stats.accept_errors < 100,
        "accept was retried {} times",
        stats.accept_errors
    );
}
