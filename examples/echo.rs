//! A TCP echo server and its client, entirely on solo.
//!
//! ```text
//! cargo run --release --example echo                         # both, on a free port, then exit
//! cargo run --release --example echo -- server 127.0.0.1:7000
//! cargo run --release --example echo -- client 127.0.0.1:7000 [connections] [messages]
//! ```
//! The client reports the round-trip latency it measured for each message.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use solo::net::{TcpListener, TcpStream};
use solo::{spawn, Runtime};

async fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        let (mut stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            // Out of descriptors: wait for some to be freed instead of spinning.
            Err(e) if e.raw_os_error() == Some(libc_emfile()) => {
                eprintln!("accept: {e}; backing off 100 ms");
                solo::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        stream.set_nodelay(true)?;
        spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
}

fn libc_emfile() -> i32 {
    24 // EMFILE on Linux, macOS and the BSDs
}

/// Runs `conns` clients that each send `messages` 64-byte messages one at a
/// time and wait for the echo; returns every round trip in microseconds.
async fn client(addr: SocketAddr, conns: usize, messages: usize) -> io::Result<Vec<u64>> {
    let handles: Vec<_> = (0..conns)
        .map(|c| {
            spawn(async move {
                let mut stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let mut rtts = Vec::with_capacity(messages);
                let mut msg = [0u8; 64];
                let mut back = [0u8; 64];
                for m in 0..messages {
                    msg[..16].copy_from_slice(&((c as u64) << 32 | m as u64).to_le_bytes().repeat(2));
                    let start = Instant::now();
                    stream.write_all(&msg).await?;
                    stream.read_exact(&mut back).await?;
                    rtts.push(start.elapsed().as_micros() as u64);
                    if back != msg {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "echo differs from what was sent",
                        ));
                    }
                }
                Ok::<_, io::Error>(rtts)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(conns * messages);
    for h in handles {
        all.extend(h.await??);
    }
    Ok(all)
}

fn report(mut rtts: Vec<u64>, elapsed: Duration) {
    rtts.sort_unstable();
    let pct = |p: f64| rtts[((rtts.len() as f64 * p) as usize).min(rtts.len() - 1)];
    println!(
        "{} round trips in {:.2} s ({:.0}/s); latency p50 {} µs, p99 {} µs, max {} µs",
        rtts.len(),
        elapsed.as_secs_f64(),
        rtts.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        rtts[rtts.len() - 1]
    );
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = Runtime::new()?;
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    match args.first().map(String::as_str) {
        Some("server") => rt.block_on(async {
            let listener = TcpListener::bind(arg(1, "127.0.0.1:7000")).await?;
            println!("echo server on {}", listener.local_addr()?);
            serve(listener).await
        }),
        Some("client") => rt.block_on(async {
            let addr: SocketAddr = arg(1, "127.0.0.1:7000")
                .parse()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let conns = arg(2, "50").parse().unwrap_or(50);
            let messages = arg(3, "1000").parse().unwrap_or(1000);
            let start = Instant::now();
            let rtts = client(addr, conns, messages).await?;
            report(rtts, start.elapsed());
            Ok(())
        }),
        None => rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            println!("echo server on {addr}; 50 clients x 1,000 messages, one thread for both");
            spawn(serve(listener));
            let start = Instant::now();
            let rtts = client(addr, 50, 1000).await?;
            report(rtts, start.elapsed());
            Ok(())
        }),
        Some(other) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unknown mode {other:?}: expected `server [addr]` or `client [addr] [connections] [messages]`"),
        )),
    }
}
