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

/// Whether one of this namespace's own interfaces is on the network of [`SERVER_ADDR`] (a
/// machine whose real network is TEST-NET-1, as some virtual machines' are): that address is
/// then a host of its own here, not only a path's server side.
pub fn server_addr_on_a_network_here() -> bool {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return false;
    };
    let ours = |a: std::net::Ipv4Addr, mask: std::net::Ipv4Addr| {
        let (a, m, s) = (u32::from(a), u32::from(mask), u32::from(SERVER_ADDR));
        m != 0 && a & m == s & m
    };
    interfaces.into_iter().any(|i| {
        let addr = i
            .address
            .as_ref()
            .and_then(|a| a.as_sockaddr_in())
            .map(|a| a.ip());
        let mask = i
            .netmask
            .as_ref()
            .and_then(|a| a.as_sockaddr_in())
            .map(|a| a.ip());
        matches!((addr, mask), (Some(a), Some(m)) if ours(a, m))
    })
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
