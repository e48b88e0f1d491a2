//! Async TCP on the reactor: `TcpListener` and `TcpStream`.
//!
//! Owns: non-blocking sockets registered with the current runtime's reactor,
//! and the loop "try the operation; on `WouldBlock` clear the cached readiness
//! and wait for the next edge" that every operation goes through (a short
//! read or write clears it too, where that drains the socket:
//! `reactor::SHORT_IO_DRAINS`). Must never: block the thread, or leave a
//! descriptor registered after it is dropped.
//!
//! Every operation is charged to the running task's fairness budget, so a
//! task on an always-ready socket yields to others every 128 operations.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::task::{Context, Poll};

use mio::{Interest, Token};

use crate::executor::Core;
use crate::reactor::Direction;

/// A mio source registered with the current runtime; deregistered on drop.
struct Registration<S: mio::event::Source> {
    core: Rc<Core>,
    token: Token,
    io: S,
}

impl<S: mio::event::Source> Registration<S> {
    fn new(mut io: S, interest: Interest) -> io::Result<Self> {
        let core = Core::current();
        let token = core.reactor.register_io(&mut io, interest)?;
        Ok(Registration { core, token, io })
    }

    /// Runs `op` when `dir` is ready, until it does not return `WouldBlock`.
    fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        std::task::ready!(crate::coop::poll_budget(cx));
        loop {
            std::task::ready!(self.core.reactor.poll_ready(self.token, dir, cx));
            match op(&self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.core.reactor.clear_ready(self.token, dir),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
    }

    /// `poll_io` for a stream operation offered `len` bytes: one that moved
    /// fewer (but some) drained the socket, or filled its send buffer, for
    /// now, so the readiness it ran on is spent where that holds
    /// (`Reactor::drained`). That saves the next operation's syscall, which
    /// would only return `WouldBlock` (for a client that writes a request
    /// and reads its response, one `recv` of two).
    fn poll_stream_io(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        len: usize,
        op: impl FnMut(&S) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let polled = self.poll_io(cx, dir, op);
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 && n < len {
                self.core.reactor.drained(self.token, dir);
            }
        }
        polled
    }
}

impl<S: mio::event::Source> Drop for Registration<S> {
    fn drop(&mut self) {
        self.core.reactor.deregister(&mut self.io, self.token);
    }
}

fn resolve<A: ToSocketAddrs>(addr: A) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no socket address to use"));
    }
    Ok(addrs)
}

/// A TCP socket server, listening for connections.
///
/// An echo server and a client, on one runtime:
///
/// ```
/// use solo::net::{TcpListener, TcpStream};
/// solo::Runtime::new().unwrap().block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0").await?;
///     let addr = listener.local_addr()?;
///     solo::spawn(async move {
///         let (mut conn, _peer) = listener.accept().await?;
///         let mut buf = [0u8; 64];
///         loop {
///             let n = conn.read(&mut buf).await?;
///             if n == 0 {
///                 return Ok::<_, std::io::Error>(()); // the client closed
///             }
///             conn.write_all(&buf[..n]).await?;
///         }
///     });
///     let mut client = TcpStream::connect(addr).await?;
///     client.write_all(b"ping").await?;
///     let mut echo = [0u8; 4];
///     client.read_exact(&mut echo).await?;
///     assert_eq!(&echo, b"ping");
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct TcpListener {
    reg: Registration<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (each resolved address is tried in turn; the last error
    /// is returned if none works). `SO_REUSEADDR` is set on Unix, so a port in
    /// TIME_WAIT can be bound again at once.
    ///
    /// Name resolution, if `addr` needs any, happens on this thread.
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        let mut last = None;
        for addr in resolve(addr)? {
            match mio::net::TcpListener::bind(addr) {
                Ok(listener) => return Self::from_mio(listener),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("resolve returns at least one address"))
    }

    /// Binds with `SO_REUSEPORT` too, so that several listeners (threads or
    /// processes) share one port. On Linux the kernel spreads incoming
    /// connections across them; macOS and FreeBSD accept the option but hand
    /// connections to one listener (FreeBSD's balancing option is
    /// `SO_REUSEPORT_LB`). Elsewhere an `Unsupported` error.
    pub fn bind_reuse_port(addr: SocketAddr) -> io::Result<TcpListener> {
        Self::from_std(listen(addr, true)?)
    }

    /// Wraps a std listener, switching it to non-blocking mode.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Self::from_mio(mio::net::TcpListener::from_std(listener))
    }

    fn from_mio(listener: mio::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            reg: Registration::new(listener, Interest::READABLE)?,
        })
    }

    /// Waits for a connection. Errors such as `EMFILE` (out of descriptors)
    /// are returned as they are; the caller decides whether to back off.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, addr) = poll_fn(|cx| self.poll_accept(cx)).await?;
        Ok((TcpStream::from_mio(stream)?, addr))
    }

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(mio::net::TcpStream, SocketAddr)>> {
        self.reg.poll_io(cx, Direction::Read, |l| l.accept())
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.reg.io.local_addr()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

/// A TCP connection.
pub struct TcpStream {
    reg: Registration<mio::net::TcpStream>,
}

impl TcpStream {
    /// Opens a connection to `addr`, trying each resolved address in turn.
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        let mut last = None;
        for addr in resolve(addr)? {
            match Self::connect_one(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("resolve returns at least one address"))
    }

    async fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = Self::from_mio(mio::net::TcpStream::connect(addr)?)?;
        stream.finish_connect().await?;
        Ok(stream)
    }

    /// Opens a connection from the local address `local` (port 0 picks one):
    /// how a client spreads many connections over several source addresses
    /// (127.0.0.2, 127.0.0.3, ...) so as not to run out of ephemeral ports.
    pub async fn connect_from(local: SocketAddr, remote: SocketAddr) -> io::Result<TcpStream> {
        let socket = new_socket(&local)?;
        #[cfg(unix)]
        socket.set_reuse_address(true)?;
        if local.port() == 0 {
            defer_port_choice(&socket)?;
        }
        socket.bind(&local.into())?;
        start_connect(&socket, &remote)?;
        let stream = Self::from_mio(mio::net::TcpStream::from_std(socket.into()))?;
        stream.finish_connect().await?;
        Ok(stream)
    }

    /// Waits for a non-blocking connect to finish. mio's contract: wait for
    /// writability, then `take_error` reports a failed connect and
    /// `peer_addr` tells a finished connect from a spurious wake-up.
    async fn finish_connect(&self) -> io::Result<()> {
        poll_fn(|cx| {
            self.reg.poll_io(cx, Direction::Write, |s| {
                if let Some(e) = s.take_error()? {
                    return Err(e);
                }
                match s.peer_addr() {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(io::ErrorKind::WouldBlock.into()),
                    Err(e) => Err(e),
                }
            })
        })
        .await
    }

    /// Wraps a connected std stream, switching it to non-blocking mode.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(true)?;
        Self::from_mio(mio::net::TcpStream::from_std(stream))
    }

    /// The runtime the stream is registered with.
    #[cfg_attr(not(feature = "http-server"), allow(dead_code))] // used by the HTTP layer
    pub(crate) fn core(&self) -> &Rc<Core> {
        &self.reg.core
    }

    pub(crate) fn from_mio(stream: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            reg: Registration::new(stream, Interest::READABLE | Interest::WRITABLE)?,
        })
    }

    /// Reads into `buf`; `Ok(0)` means the peer closed its side (or `buf` is
    /// empty).
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// Writes some of `buf`, returning how much was written.
    pub async fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_write(cx, buf)).await
    }

    /// Writes all of `buf`; fails with `WriteZero` if the socket stops taking
    /// bytes.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    /// Reads until `buf` is full; fails with `UnexpectedEof` if the peer
    /// closes first.
    pub async fn read_exact(&mut self, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read(buf).await? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => buf = &mut buf[n..],
            }
        }
        Ok(())
    }

    /// Sends a FIN: the peer reads end-of-stream; this side can still read.
    /// (TCP has nothing to flush: `write` hands bytes to the kernel.)
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.shutdown_std(Shutdown::Write)
    }

    /// Shuts down the read half, the write half, or both, at once.
    pub fn shutdown_std(&self, how: Shutdown) -> io::Result<()> {
        match self.reg.io.shutdown(how) {
            // The peer may already have reset the connection: nothing left
            // to shut down.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        }
    }

    /// Polls a read into `buf`.
    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let len = buf.len();
        self.reg.poll_stream_io(cx, Direction::Read, len, |mut s| s.read(buf))
    }

    /// Polls a write of `buf`.
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.reg
            .poll_stream_io(cx, Direction::Write, buf.len(), |mut s| s.write(buf))
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.reg.io.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.reg.io.local_addr()
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.reg.io.set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.reg.io.nodelay()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}

/// The listen backlog solo asks for: deep enough for bursts of thousands of
/// connects (the kernel caps it at `net.core.somaxconn`).
pub const LISTEN_BACKLOG: i32 = 4096;

/// A bound, listening, non-blocking std listener with `SO_REUSEADDR` (and
/// `SO_REUSEPORT` if asked; Unix only) and a backlog of [`LISTEN_BACKLOG`].
///
/// On Windows `SO_REUSEADDR` means something else (it lets another socket
/// steal a port in use), so it is not set there, and asking for
/// `reuse_port` is an `Unsupported` error rather than a silent single
/// listener.
pub fn listen(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let socket = new_socket(&addr)?;
    #[cfg(unix)]
    {
        socket.set_reuse_address(true)?;
        if reuse_port {
            socket.set_reuse_port(true)?;
        }
    }
    #[cfg(not(unix))]
    if reuse_port {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "SO_REUSEPORT is a Unix option; use one listener on this platform",
        ));
    }
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// A non-blocking, close-on-exec TCP socket for `addr`'s family. socket2
/// sets close-on-exec atomically where the platform allows.
fn new_socket(addr: &SocketAddr) -> io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(*addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Linux: let `connect` pick the port by the whole 4-tuple instead of `bind`
/// searching for a port free for every destination, which is slow and runs
/// out once tens of thousands are in use or in TIME_WAIT. socket2 has no
/// setter for `IP_BIND_ADDRESS_NO_PORT`, hence the one raw call. Elsewhere a
/// no-op.
fn defer_port_choice(socket: &socket2::Socket) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: the descriptor is open for the call (we borrow its owner),
        // and the option value is a c_int of the size we pass.
        let ret = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
    Ok(())
}

/// Starts a non-blocking connect: `Ok` once it is under way (or done).
fn start_connect(socket: &socket2::Socket, remote: &SocketAddr) -> io::Result<()> {
    match socket.connect(&(*remote).into()) {
        Ok(()) => Ok(()),
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    //! What a short read or write leaves in the reactor's readiness cache,
    //! and that a reader or writer after one still gets its next edge.
    use std::time::Duration;

    use super::{Core, TcpListener, TcpStream};
    use crate::reactor::{Ready, SHORT_IO_DRAINS};
    use crate::time::{sleep, timeout};
    use crate::{spawn, Runtime};

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    fn cached(s: &TcpStream) -> Ready {
        Core::current()
            .reactor
            .cached_ready(s.reg.token)
            .expect("an I/O source")
    }

    #[test]
    fn a_short_read_spends_the_readiness_and_later_data_still_wakes_the_reader() {
        Runtime::new().unwrap().block_on(async {
            let (mut client, mut server) = pair().await;
            server.write_all(b"first").await.unwrap();
            let mut buf = [0u8; 64];
            assert_eq!(client.read(&mut buf).await.unwrap(), 5);
            assert_eq!(
                cached(&client).intersects(Ready::READABLE),
                !SHORT_IO_DRAINS,
                "a short read spends the readiness exactly where it drains the socket"
            );
            let writer = spawn(async move {
                sleep(Duration::from_millis(20)).await;
                server.write_all(b"second").await.unwrap();
                server
            });
            let n = timeout(Duration::from_secs(10), client.read(&mut buf))
                .await
                .expect("the data after a short read raised no edge")
                .unwrap();
            assert_eq!(&buf[..n], b"second");
            drop(writer.await.unwrap());
        });
    }

    #[test]
    fn a_short_read_keeps_the_close_that_came_with_the_data() {
        Runtime::new().unwrap().block_on(async {
            let (mut client, mut server) = pair().await;
            server.write_all(b"last").await.unwrap();
            server.shutdown().await.unwrap();
            // Both the data and the FIN are in before the first read, so one
            // edge reports them together and none follows.
            sleep(Duration::from_millis(50)).await;
            let mut buf = [0u8; 64];
            assert_eq!(client.read(&mut buf).await.unwrap(), 4);
            assert!(cached(&client).intersects(Ready::READ_CLOSED), "the close is kept");
            let n = timeout(Duration::from_secs(10), client.read(&mut buf))
                .await
                .expect("the end of stream after a short read was lost")
                .unwrap();
            assert_eq!(n, 0);
        });
    }

    #[test]
    fn a_short_write_spends_the_readiness_and_the_rest_goes_once_the_peer_reads() {
        Runtime::new().unwrap().block_on(async {
            let (mut client, mut server) = pair().await;
            let data: Vec<u8> = (0..16 << 20).map(|i| i as u8).collect();
            let n = client.write(&data).await.unwrap();
            assert!(
                n > 0 && n < data.len(),
                "16 MiB fit in the socket buffers at once ({n})"
            );
            assert_eq!(cached(&client).intersects(Ready::WRITABLE), !SHORT_IO_DRAINS);
            let len = data.len();
            let reader = spawn(async move {
                let mut got = Vec::with_capacity(len);
                let mut buf = vec![0u8; 64 << 10];
                while got.len() < len {
                    match server.read(&mut buf).await.unwrap() {
                        0 => break,
                        k => got.extend_from_slice(&buf[..k]),
                    }
                }
                got
            });
            timeout(Duration::from_secs(30), client.write_all(&data[n..]))
                .await
                .expect("the space freed after a short write raised no edge")
                .unwrap();
            let got = reader.await.unwrap();
            assert!(got == data, "the bytes arrived in order, once each");
        });
    }
}
