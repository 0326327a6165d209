//! Network details: deterministic MAC addresses and static address pools.

use std::net::Ipv4Addr;

/// A stable, locally administered MAC for one NIC of one machine of one formation
/// (QEMU's 52:54:00 prefix, then 24 bits of an FNV-1a hash).
pub fn mac_for(formation: &str, machine: &str, nic: usize) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in format!("{formation}/{machine}/{nic}").bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        (h >> 16) as u8,
        (h >> 8) as u8,
        h as u8
    )
}

/// `first-last` → the addresses of the pool, in order.
pub fn parse_pool(pool: &str) -> Result<Vec<Ipv4Addr>, String> {
    let (a, b) = pool
        .split_once('-')
        .ok_or_else(|| format!("`{pool}` is not first-last"))?;
    let a: Ipv4Addr = a
        .trim()
        .parse()
        .map_err(|_| format!("`{a}` is not an IPv4 address"))?;
    let b: Ipv4Addr = b
        .trim()
        .parse()
        .map_err(|_| format!("`{b}` is not an IPv4 address"))?;
    let (a, b) = (u32::from(a), u32::from(b));
    if b < a || b - a > 65535 {
        return Err(format!(
            "`{pool}`: last must follow first (at most 65536 addresses)"
        ));
    }
    Ok((a..=b).map(Ipv4Addr::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_stable_and_distinct() {
        assert_eq!(mac_for("f", "web-1", 0), mac_for("f", "web-1", 0));
        assert_ne!(mac_for("f", "web-1", 0), mac_for("f", "web-2", 0));
        assert!(mac_for("f", "a", 0).starts_with("52:54:00:"));
    }

    #[test]
    fn pools() {
        assert_eq!(parse_pool("10.0.0.1-10.0.0.3").unwrap().len(), 3);
        assert!(parse_pool("10.0.0.3-10.0.0.1").is_err());
    }
}
