//! An emulated network path for benchmarks: delay, jitter, loss (random or in bursts),
//! bandwidth and a queue, for each direction, applied packet by packet between two network
//! namespaces joined by TUN devices. What runs in the server namespace and what runs in the
//! client namespace talk over real kernel TCP and UDP stacks, so TCP retransmits and QUIC
//! recovers as they would on such a network. Needs root and /dev/net/tun (no kernel qdisc).

pub mod flows;
pub mod link;
pub mod netns;
pub mod path;

pub use flows::Outages;
pub use link::{Fate, Link, LinkSpec, SpecError};
pub use netns::Namespace;
pub use path::{DirectionStats, NetPath, PathSpec, CLIENT_ADDR, SERVER_ADDR};

/// Where [`SERVER_ADDR`] is, seen from this namespace's own interfaces that are up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ServerAddrHere {
    /// On none of their networks: reached, if at all, through a route (or a held path).
    Elsewhere,
    /// On one of their networks (a machine whose real network is TEST-NET-1, as some virtual
    /// machines' are; or the peer of a point-to-point link): a host of its own here.
    OnANetwork,
    /// An interface's own address (a path's server side, seen from inside it).
    Own,
}

/// Where [`SERVER_ADDR`] is from here (see [`ServerAddrHere`]); `Elsewhere` when the
/// interfaces cannot be read.
pub fn server_addr_here() -> ServerAddrHere {
    use nix::net::if_::InterfaceFlags;
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return ServerAddrHere::Elsewhere;
    };
    let v4 = |a: &Option<nix::sys::socket::SockaddrStorage>| {
        a.as_ref().and_then(|a| a.as_sockaddr_in()).map(|a| a.ip())
    };
    interfaces
        .filter(|i| i.flags.contains(InterfaceFlags::IFF_UP))
        .filter_map(|i| {
            let peer = i
                .flags
                .contains(InterfaceFlags::IFF_POINTOPOINT)
                .then(|| v4(&i.destination))
                .flatten();
            Some(server_addr_from(v4(&i.address)?, v4(&i.netmask), peer))
        })
        .max()
        .unwrap_or(ServerAddrHere::Elsewhere)
}

/// Where [`SERVER_ADDR`] is from one interface with address `addr`, its `mask` (none: the
/// address alone) and the `peer` of a point-to-point link.
fn server_addr_from(
    addr: std::net::Ipv4Addr,
    mask: Option<std::net::Ipv4Addr>,
    peer: Option<std::net::Ipv4Addr>,
) -> ServerAddrHere {
    if addr == SERVER_ADDR {
        return ServerAddrHere::Own;
    }
    let m = mask.map_or(u32::MAX, u32::from);
    let same_network = m != 0 && u32::from(addr) & m == u32::from(SERVER_ADDR) & m;
    if same_network || peer == Some(SERVER_ADDR) {
        ServerAddrHere::OnANetwork
    } else {
        ServerAddrHere::Elsewhere
    }
}

/// Whether this process may make namespaces and TUN devices, and join namespaces.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Why a path cannot be brought up.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("an emulated network path needs root (it makes network namespaces and TUN devices)")]
    NotRoot,
    #[error("{0}")]
    Spec(#[from] SpecError),
    #[error("{0}")]
    Tool(String),
    #[error("network namespace: {0}")]
    Namespace(String),
    #[error("TUN device (is /dev/net/tun there?): {0}")]
    Device(String),
}

#[cfg(test)]
mod tests {
    use super::{server_addr_from, ServerAddrHere as Here};
    use std::net::Ipv4Addr;

    #[test]
    fn the_server_address_is_placed_by_address_mask_and_peer() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().expect("an address");
        let cases = [
            ("192.0.2.2", Some("255.255.255.0"), None, Here::OnANetwork),
            ("192.0.2.2", Some("255.255.255.255"), None, Here::Elsewhere),
            (
                "192.0.2.10",
                Some("255.255.255.255"),
                Some("192.0.2.1"),
                Here::OnANetwork,
            ),
            ("192.0.2.1", None, None, Here::Own),
            ("10.0.0.5", Some("255.255.255.0"), None, Here::Elsewhere),
            // A mask of 0 (a default-route-like /0) makes no network of its own.
            ("10.0.0.5", Some("0.0.0.0"), None, Here::Elsewhere),
            ("192.0.2.2", None, None, Here::Elsewhere),
        ];
        for (addr, mask, peer, want) in cases {
            let got = server_addr_from(ip(addr), mask.map(ip), peer.map(ip));
            assert_eq!(got, want, "{addr} {mask:?} {peer:?}");
        }
    }
}
