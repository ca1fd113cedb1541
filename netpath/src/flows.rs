//! A link per client: packets are told apart by the client's end of their flow (its TCP or UDP
//! port; every client has the same address on the path), and each client gets a [`Link`] of
//! its own, as each phone has its own radio link: its own bandwidth, queue, loss bursts and
//! jitter. Or, for clients behind one access link, a single link they all share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::link::{Fate, Link, LinkSpec};

/// Client addresses that are out of reach for a while, by client port, on both directions of a
/// path: a phone moving from one network to another loses its old address at once, and its
/// new one works only once the new network is up. Cheap to clone; every clone is the same set.
#[derive(Debug, Clone, Default)]
pub struct Outages(Arc<Mutex<HashMap<u16, Instant>>>);

impl Outages {
    /// Nothing from or to client port `port` gets through before `until`.
    pub fn darken(&self, port: u16, until: Instant) {
        let mut dark = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Forget outages that are over, so that the set stays as small as those in force.
        let now = Instant::now();
        dark.retain(|_, end| *end > now);
        dark.insert(port, until);
    }

    /// Whether client port `port` is out of reach at `now`.
    fn dark(&self, port: u16, now: Instant) -> bool {
        let dark = self.0.lock().unwrap_or_else(|e| e.into_inner());
        dark.get(&port).is_some_and(|end| *end > now)
    }

    fn any(&self) -> bool {
        !self.0.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }
}

/// Which end of a packet is the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEnd {
    /// Client to server: the client is the source.
    Source,
    /// Server to client: the client is the destination.
    Destination,
}

/// The links of one direction.
#[derive(Debug)]
pub struct Flows {
    spec: LinkSpec,
    seed: u64,
    client: ClientEnd,
    shared: bool,
    links: HashMap<u16, Link>,
    outages: Outages,
}

impl Flows {
    /// The links of one direction with `spec`; `shared` puts every client on one link.
    pub fn new(spec: LinkSpec, seed: u64, client: ClientEnd, shared: bool) -> Self {
        Self::with_outages(spec, seed, client, shared, Outages::default())
    }

    /// [`Flows::new`], with client addresses out of reach as `outages` says.
    pub fn with_outages(
        spec: LinkSpec,
        seed: u64,
        client: ClientEnd,
        shared: bool,
        outages: Outages,
    ) -> Self {
        Self {
            spec,
            seed,
            client,
            shared,
            links: HashMap::new(),
            outages,
        }
    }

    /// Offers `packet` (an IP packet) arriving at `now` to its client's link.
    pub fn offer(&mut self, now: Instant, packet: &[u8]) -> Fate {
        let port = client_port(packet, self.client).unwrap_or(0);
        if self.outages.any() && self.outages.dark(port, now) {
            return Fate::Unreachable;
        }
        let key = if self.shared { 0 } else { port };
        let (spec, seed) = (&self.spec, self.seed);
        self.links
            .entry(key)
            .or_insert_with(|| Link::new(spec.clone(), seed ^ u64::from(key).rotate_left(32)))
            .offer(now, packet.len())
    }
}

/// The client's port of an IPv4 TCP or UDP packet, or `None` for anything else.
pub fn client_port(packet: &[u8], client: ClientEnd) -> Option<u16> {
    let first = *packet.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let header = usize::from(first & 0x0f) * 4;
    let protocol = *packet.get(9)?;
    if protocol != 6 && protocol != 17 {
        return None;
    }
    let at = match client {
        ClientEnd::Source => header,
        ClientEnd::Destination => header + 2,
    };
    let port = packet.get(at..at + 2)?;
    Some(u16::from_be_bytes([port[0], port[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// An IPv4 UDP packet from port `from` to port `to`, `len` bytes long.
    fn udp(from: u16, to: u16, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len.max(28)];
        p[0] = 0x45;
        p[9] = 17;
        p[20..22].copy_from_slice(&from.to_be_bytes());
        p[22..24].copy_from_slice(&to.to_be_bytes());
        p
    }

    #[test]
    fn the_clients_port_is_found_at_its_end() {
        let p = udp(40_000, 4433, 100);
        assert_eq!(client_port(&p, ClientEnd::Source), Some(40_000));
        assert_eq!(client_port(&p, ClientEnd::Destination), Some(4433));
        let mut icmp = p.clone();
        icmp[9] = 1;
        assert_eq!(client_port(&icmp, ClientEnd::Source), None);
        assert_eq!(client_port(&[0x60, 0, 0], ClientEnd::Source), None, "IPv6");
        assert_eq!(
            client_port(&[0x45; 21], ClientEnd::Source),
            None,
            "cut short"
        );
        assert_eq!(client_port(&[], ClientEnd::Source), None);
    }

    #[test]
    fn a_dark_address_gets_nothing_through_until_its_outage_ends() {
        let t0 = Instant::now();
        let outages = Outages::default();
        let mut up = Flows::with_outages(
            LinkSpec::default(),
            1,
            ClientEnd::Source,
            false,
            outages.clone(),
        );
        let mut down = Flows::with_outages(
            LinkSpec::default(),
            1,
            ClientEnd::Destination,
            false,
            outages.clone(),
        );
        outages.darken(1, t0 + Duration::from_millis(100));
        assert_eq!(up.offer(t0, &udp(1, 9, 100)), Fate::Unreachable);
        assert_eq!(down.offer(t0, &udp(9, 1, 100)), Fate::Unreachable);
        assert_eq!(
            up.offer(t0, &udp(2, 9, 100)),
            Fate::Deliver(t0),
            "another client"
        );
        let later = t0 + Duration::from_millis(100);
        assert_eq!(up.offer(later, &udp(1, 9, 100)), Fate::Deliver(later));
    }

    #[test]
    fn each_client_has_its_own_bandwidth_unless_shared() {
        // 1 Mbit/s: 1,250 bytes take 10 ms.
        let spec = LinkSpec {
            rate_bps: Some(1_000_000),
            ..LinkSpec::default()
        };
        let t0 = Instant::now();
        let mut own = Flows::new(spec.clone(), 1, ClientEnd::Source, false);
        assert_eq!(
            own.offer(t0, &udp(1, 9, 1_250)),
            Fate::Deliver(t0 + Duration::from_millis(10))
        );
        assert_eq!(
            own.offer(t0, &udp(2, 9, 1_250)),
            Fate::Deliver(t0 + Duration::from_millis(10))
        );
        let mut shared = Flows::new(spec, 1, ClientEnd::Source, true);
        assert_eq!(
            shared.offer(t0, &udp(1, 9, 1_250)),
            Fate::Deliver(t0 + Duration::from_millis(10))
        );
        assert_eq!(
            shared.offer(t0, &udp(2, 9, 1_250)),
            Fate::Deliver(t0 + Duration::from_millis(20))
        );
    }
}
