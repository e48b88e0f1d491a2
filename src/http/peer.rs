//! A connection's peer address, kept small.
//!
//! Owns: the compact form of a `SocketAddr` that every connection and every
//! request holds. Must never: allocate for an IPv4 peer, or copy an IPv6
//! one per request (it is shared).

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::rc::Rc;

/// The peer's address, in 16 bytes: IPv4 inline, IPv6 (rare on the hot
/// path, and 28 bytes) shared, so that each request of a connection gets
/// its own copy at the cost of a count.
#[derive(Clone)]
pub(crate) enum Peer {
    V4(SocketAddrV4),
    V6(Rc<SocketAddrV6>),
}

impl Peer {
    pub(crate) fn new(addr: SocketAddr) -> Peer {
        match addr {
            SocketAddr::V4(a) => Peer::V4(a),
            SocketAddr::V6(a) => Peer::V6(Rc::new(a)),
        }
    }

    pub(crate) fn get(&self) -> SocketAddr {
        match self {
            Peer::V4(a) => SocketAddr::V4(*a),
            Peer::V6(a) => SocketAddr::V6(**a),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Peer;

    #[test]
    fn both_families_come_back_as_they_went_in() {
        for addr in ["127.0.0.1:8080", "[::1]:443", "[fe80::1%2]:1"] {
            let addr: std::net::SocketAddr = addr.parse().unwrap();
            let peer = Peer::new(addr);
            assert_eq!(peer.clone().get(), addr);
            assert_eq!(peer.get(), addr);
        }
    }
}
