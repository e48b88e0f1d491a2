//! What the socket-level tests share: a server on its own thread, stopped
//! when dropped, and a blocking client that reads one response at a time.
#![allow(dead_code)] // each test binary uses its own part of this

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use solo::http::{Server, ShutdownHandle};

/// An example binary running as its own process, killed when dropped
/// (unless it has exited).
pub struct Example {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

/// The stand-in for the port in an example's arguments; `Example::start`
/// replaces it with the port it drew.
pub const PORT: &str = "{port}";

impl Example {
    /// Starts `examples/NAME` (built by `cargo test` next to the test
    /// binary) on a free port, written into `args` wherever [`PORT`]
    /// stands, and waits until the child itself listens there.
    ///
    /// A free port is free only until someone binds it: examples started
    /// by parallel tests can draw the same one. So the wait checks that the
    /// listener belongs to this child (on Linux, through /proc), and when
    /// the child exits first (its bind lost the race) it starts again on a
    /// new port.
    pub fn start(name: &str, args: &[&str]) -> Example {
        // target/debug/deps/TEST-HASH -> target/debug/examples/NAME
        let mut path = std::env::current_exe().unwrap();
        path.pop();
        path.pop();
        path.push("examples");
        path.push(name);
        assert!(
            path.exists(),
            "{} is not built (cargo test builds examples)",
            path.display()
        );
        let mut last_exit = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let port_arg = port.to_string();
            let args: Vec<&str> = args
                .iter()
                .map(|a| if *a == PORT { port_arg.as_str() } else { a })
                .collect();
            let mut child = std::process::Command::new(&path)
                .args(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    last_exit = format!("{status}: {err}");
                    break;
                }
                if TcpStream::connect(addr).is_ok() && listens_on(child.id(), port) {
                    return Example { child, addr };
                }
                if std::time::Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{name} did not listen on {addr} within 10 s");
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("{name} exited before listening, five times; the last: {last_exit}");
    }
}

/// Whether process `pid` holds a socket listening on `port`: the socket's
/// inode from /proc/net/tcp, then the process's descriptors. Where /proc
/// is missing (not Linux) it answers true, and the caller's check that
/// the child is still running is all there is.
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return true;
    };
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT; st 0A is LISTEN; inode is field 9.
            let on_port = f
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok())
                == Some(port);
            let inode = f.get(9).filter(|_| on_port && f.get(3) == Some(&"0A"))?;
            Some(format!("socket:[{inode}]"))
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: ShutdownHandle,
    pub thread: Option<thread::JoinHandle<std::io::Result<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.stop_now();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn start_with(build: impl FnOnce() -> Server + Send + 'static) -> Running {
    let (tx, rx) = mpsc::channel();
    let thread = thread::spawn(move || {
        let server = build();
        tx.send((server.local_addr().unwrap(), server.shutdown_handle()))
            .unwrap();
        server.run()
    });
    let (addr, shutdown) = rx.recv().unwrap();
    Running {
        addr,
        shutdown,
        thread: Some(thread),
    }
}

/// A parsed response: the in-memory test client's type, read here from a
/// socket.
pub type Reply = solo::http::test::TestResponse;

pub struct Client {
    pub reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        Client {
            reader: BufReader::new(s),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// Reads one response; `head_only` for replies to HEAD.
    pub fn read(&mut self, head_only: bool) -> Reply {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        assert!(line.starts_with("HTTP/1.1 "), "bad status line {line:?}");
        let status: u16 = line[9..12].parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).unwrap();
            let h = h.trim_end_matches("\r\n");
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(": ").expect("header line");
            headers.push((n.to_string(), v.to_string()));
        }
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
        };
        if status == 100 {
            return reply;
        }
        if head_only || status == 204 || status == 304 {
            return reply;
        }
        if reply.header("transfer-encoding") == Some("chunked") {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim_end(), 16).unwrap();
                let mut chunk = vec![0; n + 2];
                self.reader.read_exact(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                reply.body.extend_from_slice(&chunk[..n]);
            }
        } else {
            let n: usize = reply.header("content-length").expect("content-length").parse().unwrap();
            reply.body = vec![0; n];
            self.reader.read_exact(&mut reply.body).unwrap();
        }
        reply
    }

    pub fn request(&mut self, raw: &str) -> Reply {
        self.send(raw.as_bytes());
        self.read(raw.starts_with("HEAD "))
    }

    /// Whether the server closed the connection (EOF, or a reset).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0) | Err(_))
    }
}

pub fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// Closes with a reset (`SO_LINGER` 0): what a crashed client or a
/// balancer giving up sends.
#[cfg(unix)]
pub fn reset(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads a `linger` of the size passed from a local,
    // on a socket the test owns.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    drop(stream);
}
