//! No descriptor leaks: 10,000 sources opened, registered and dropped leave
//! `/proc/self/fd` as it was. Its own test binary, so no other test's sockets
//! move the count.
#![cfg(target_os = "linux")]

use solo::net::{TcpListener, TcpStream};
use solo::Runtime;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn ten_thousand_sources_open_and_drop_without_leaking() {
    let before = open_fds();
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // 10 rounds of 500 client streams + 500 accepted streams = 10,000
        // registered sources, at most 1,000 (plus the listener) at once.
        for _ in 0..10 {
            let mut held = Vec::with_capacity(1000);
            for _ in 0..500 {
                let client = TcpStream::connect(addr).await.unwrap();
                let (server, _) = listener.accept().await.unwrap();
                held.push(client);
                held.push(server);
            }
            assert!(open_fds() >= before + 1000);
            drop(held);
        }
    });
    assert_eq!(rt.stats().io_sources, 0);
    drop(rt);
    assert_eq!(open_fds(), before, "descriptors leaked");
}
