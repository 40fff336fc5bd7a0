//! Counting what one source address holds open (connections, sockets waiting to
//! authenticate). IPv6 addresses count per /64: one host usually holds a whole /64, so a
//! per-address limit on full IPv6 addresses would limit nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open things per source address, each held by an [`AddressSlot`].
#[derive(Debug, Default)]
pub struct PerAddress {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted thing; the count drops when this does.
#[derive(Debug)]
pub struct AddressSlot {
    table: Arc<PerAddress>,
    key: IpAddr,
}

impl PerAddress {
    /// A slot for `ip`, or `None` when it already holds `limit`.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<AddressSlot> {
        let key = key_of(ip);
        let mut counts = self.counts.lock().ok()?;
        let n = counts.entry(key).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: self.clone(),
            key,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.table.counts.lock()
            && let Some(n) = counts.get_mut(&self.key)
        {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

fn key_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_address_and_per_ipv6_64() {
        let t = Arc::new(PerAddress::default());
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let one = t.try_acquire(a, 2).expect("first");
        let two = t.try_acquire(a, 2).expect("second");
        assert!(t.try_acquire(a, 2).is_none());
        assert!(t.try_acquire(b, 2).is_some());
        drop(one);
        assert!(t.try_acquire(a, 2).is_some());
        drop(two);
        let x: IpAddr = "2001:db8::1".parse().expect("ip");
        let y: IpAddr = "2001:db8::ffff:2".parse().expect("ip");
        let _x = t.try_acquire(x, 1).expect("x");
        assert!(t.try_acquire(y, 1).is_none(), "same /64");
        let mapped: IpAddr = "::ffff:10.0.0.9".parse().expect("ip");
        let _m = t.try_acquire(mapped, 1).expect("mapped");
        assert!(t.try_acquire("10.0.0.9".parse().expect("ip"), 1).is_none());
    }
}
