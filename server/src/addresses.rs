//! Connections per client address: the per-address connection limit.
//!
//! One host opening connection after connection must not take every slot of the global limit.
//! Each connection being served holds a [`AddressSlot`] for its peer's IP address, given back
//! when it ends; past `--max-connections-per-address`, a new one from that address is answered
//! `Error too_many_connections` and closed.

use std::net::IpAddr;
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

/// Live connections by peer address.
#[derive(Debug)]
pub(crate) struct Addresses {
    limit: usize,
    live: DashMap<IpAddr, usize>,
}

/// One connection's share of its address's count; dropping it gives it back.
#[derive(Debug)]
pub(crate) struct AddressSlot {
    addresses: Arc<Addresses>,
    ip: IpAddr,
}

impl Addresses {
    /// `limit` connections per address at most; 0 for no limit.
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            live: DashMap::new(),
        })
    }

    /// A slot for one more connection from `ip`, or `None` when the address has its fill.
    pub(crate) fn take(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        if self.limit == 0 {
            return Some(AddressSlot {
                addresses: self.clone(),
                ip,
            });
        }
        let mut live = self.live.entry(ip).or_insert(0);
        if *live >= self.limit {
            return None;
        }
        *live += 1;
        drop(live);
        Some(AddressSlot {
            addresses: self.clone(),
            ip,
        })
    }

    /// Live connections from `ip` (0 when there is no limit to count against).
    #[cfg(test)]
    fn live(&self, ip: IpAddr) -> usize {
        self.live.get(&ip).map_or(0, |n| *n)
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if self.addresses.limit == 0 {
            return;
        }
        // The entry goes when its count does, so the map holds only addresses now connected.
        if let Entry::Occupied(mut e) = self.addresses.live.entry(self.ip) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_limit_and_a_slot_back_when_one_ends() {
        let a = Addresses::new(2);
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        let other: IpAddr = "10.0.0.2".parse().expect("ip");
        let first = a.take(ip).expect("first");
        let _second = a.take(ip).expect("second");
        assert!(a.take(ip).is_none());
        assert!(a.take(other).is_some(), "another address has its own count");
        drop(first);
        assert_eq!(a.live(ip), 1);
        assert!(a.take(ip).is_some());
    }

    #[test]
    fn no_limit_counts_nothing() {
        let a = Addresses::new(0);
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        let slots: Vec<_> = (0..1000).map(|_| a.take(ip).expect("slot")).collect();
        assert_eq!(a.live(ip), 0);
        drop(slots);
        assert!(a.live.is_empty());
    }
}
