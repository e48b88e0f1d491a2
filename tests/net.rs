//! TCP over the reactor: echo round trips, many concurrent connections,
//! connect errors, end of stream and the fairness budget.

use std::io;
use std::rc::Rc;
use std::time::Duration;

use solo::net::{TcpListener, TcpStream};
use solo::time::timeout;
use solo::{spawn, Runtime};

async fn echo_server() -> (TcpListener, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

async fn serve_echo(listener: TcpListener, conns: usize) {
    for _ in 0..conns {
        let (mut s, _) = listener.accept().await.unwrap();
        spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => s.write_all(&buf[..n]).await.unwrap(),
                }
            }
        });
    }
}

#[test]
fn echo_round_trip_and_addresses() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let (listener, addr) = echo_server().await;
        spawn(serve_echo(listener, 1));
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.set_nodelay(true).unwrap();
        assert!(c.nodelay().unwrap());
        assert_eq!(c.peer_addr().unwrap(), addr);
        c.write_all(b"hello solo").await.unwrap();
        let mut buf = [0u8; 10];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello solo");
        c.shutdown().await.unwrap();
        // The server sees EOF and closes; we see EOF too.
        assert_eq!(c.read(&mut buf).await.unwrap(), 0);
    });
}

#[test]
fn large_transfer_across_many_would_blocks() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let (listener, addr) = echo_server().await;
        spawn(serve_echo(listener, 1));
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let payload: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let mut received = Vec::with_capacity(payload.len());
        let mut buf = vec![0u8; 65536];
        // Chunks of 256 KiB exceed the socket buffers, so both sides hit
        // WouldBlock many times and must be woken by fresh edges.
        for chunk in payload.chunks(256 * 1024) {
            stream.write_all(chunk).await.unwrap();
            let want = received.len() + chunk.len();
            while received.len() < want {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0);
                received.extend_from_slice(&buf[..n]);
            }
        }
        assert!(received == payload, "echoed bytes differ");
    });
}

#[test]
fn hundreds_of_concurrent_connections() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let (listener, addr) = echo_server().await;
        spawn(serve_echo(listener, 300));
        let clients: Vec<_> = (0..300u32)
            .map(|i| {
                spawn(async move {
                    let mut c = TcpStream::connect(addr).await.unwrap();
                    let msg = format!("client {i}");
                    c.write_all(msg.as_bytes()).await.unwrap();
                    let mut buf = vec![0u8; msg.len()];
                    c.read_exact(&mut buf).await.unwrap();
                    assert_eq!(buf, msg.as_bytes());
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        // The server side sees each EOF a turn or so after its client closed.
        for _ in 0..200 {
            if rt.stats().io_sources == 0 {
                break;
            }
            solo::time::sleep(Duration::from_millis(5)).await;
        }
    });
    assert_eq!(rt.stats().io_sources, 0, "every socket was deregistered");
}

#[test]
fn connect_refused_is_a_clear_error() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        // Bind then drop to find a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = TcpStream::connect(("127.0.0.1", port)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        let err = TcpListener::bind("not-an-address").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    });
}

#[test]
fn bind_to_taken_port_fails() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let (_listener, addr) = echo_server().await;
        let err = TcpListener::bind(addr).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    });
}

#[test]
fn accept_waits_without_spinning() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let (listener, _) = echo_server().await;
        let r = timeout(Duration::from_millis(100), listener.accept()).await;
        assert!(r.is_err(), "nobody connected");
    });
    assert!(rt.stats().polls < 10, "{:?}", rt.stats());
}

#[test]
fn fairness_budget_lets_other_tasks_run() {
    // A reader whose socket is always ready must still yield: another task
    // that only needs one turn completes while the reader is busy.
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let (listener, addr) = echo_server().await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut server_side, _) = listener.accept().await.unwrap();
        // 64 KiB fits in loopback socket buffers: once written, every 16-byte
        // read succeeds at once and the reader never sees WouldBlock, so
        // only the budget can make it yield.
        const TOTAL: usize = 64 * 1024;
        client.write_all(&[7u8; TOTAL]).await.unwrap();
        solo::time::sleep(Duration::from_millis(20)).await;
        let progress = Rc::new(std::cell::Cell::new(0u32));
        let p2 = progress.clone();
        let reader = spawn(async move {
            let mut buf = [0u8; 16];
            let mut total = 0;
            let mut interleaved = false;
            while total < TOTAL {
                total += server_side.read(&mut buf).await.unwrap();
                if p2.get() > 0 {
                    interleaved = true;
                }
            }
            interleaved
        });
        let ticker = spawn(async move {
            progress.set(1);
        });
        ticker.await.unwrap();
        assert!(
            reader.await.unwrap(),
            "the ticker ran while the reader was still reading"
        );
        drop(client);
    });
}

#[test]
fn connect_from_a_chosen_source_address() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let (listener, addr) = echo_server().await;
        let local: std::net::SocketAddr = "127.0.0.2:0".parse().unwrap();
        let client = TcpStream::connect_from(local, addr).await.unwrap();
        let (_server_side, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), local.ip(), "the server sees the chosen source address");
        assert_eq!(client.local_addr().unwrap().ip(), local.ip());
        // Refused connects still fail clearly.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = TcpStream::connect_from(local, ([127, 0, 0, 1], port).into())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    });
}

#[test]
fn listeners_share_a_port_with_reuse_port() {
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let a = TcpListener::bind_reuse_port("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = a.local_addr().unwrap();
        let b = TcpListener::bind_reuse_port(addr).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
        // Without the option the port is taken.
        assert_eq!(
            TcpListener::bind(addr).await.unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
    });
}
