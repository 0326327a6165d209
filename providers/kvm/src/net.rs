//! Network details: deterministic MAC addresses, static address pools, and what a host bridge
//! can do.

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

/// `virsh net-dhcp-leases` output → (MAC, IPv4 address) of each lease.
pub fn parse_leases(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let i = words.iter().position(|w| *w == "ipv4")?;
            let mac = words.get(i.checked_sub(1)?)?;
            let ip = words.get(i + 1)?.split('/').next()?;
            Some((mac.to_string(), ip.to_string()))
        })
        .collect()
}

/// `virsh net-dumpxml` output → (MAC, IPv4 address) of each DHCP reservation
/// (`<host mac='…' name='…' ip='…'/>`; an entry without a MAC or address is skipped).
pub fn parse_reservations(xml: &str) -> Vec<(String, String)> {
    let attr = |element: &str, name: &str| {
        let start = element.find(&format!(" {name}="))? + name.len() + 2;
        let quote = element[start..].chars().next()?;
        let value = &element[start + 1..];
        Some(value[..value.find(quote)?].to_string())
    };
    xml.split("<host ")
        .skip(1)
        .filter_map(|rest| {
            let element = format!(" {}", &rest[..rest.find('>')?]);
            Some((attr(&element, "mac")?, attr(&element, "ip")?))
        })
        .collect()
}

/// Whether a libvirt network (its `virsh net-dumpxml`) serves a subnet of its own on its host
/// (NAT, routed or isolated, with libvirt's DHCP), as opposed to only attaching guests to an
/// existing bridge (`<forward mode='bridge'/>`): two hosts' networks that both serve one are
/// two separate segments, whatever their names.
pub fn serves_subnet(network_xml: &str) -> bool {
    network_xml.contains("<ip ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_networks_with_an_address_serve_a_subnet() {
        assert!(super::serves_subnet(
            "<network><name>default</name><forward mode='nat'/><bridge name='virbr0'/><ip address='192.168.122.1' netmask='255.255.255.0'/></network>"
        ));
        assert!(!super::serves_subnet(
            "<network><name>lan</name><forward mode='bridge'/><bridge name='br0'/></network>"
        ));
    }

    #[test]
    fn reservations_are_read_from_the_network_xml() {
        let xml = "<network>\n  <name>default</name>\n  <ip address='192.168.122.1' netmask='255.255.255.0'>\n    <dhcp>\n      <range start='192.168.122.2' end='192.168.122.254'/>\n      <host mac='52:54:00:67:a6:23' name='hello' ip='192.168.122.201'/>\n      <host mac=\"52:54:00:00:00:01\" ip=\"192.168.122.9\"/>\n      <host name='nomac' ip='192.168.122.7'/>\n    </dhcp>\n  </ip>\n</network>\n";
        assert_eq!(
            super::parse_reservations(xml),
            [
                (
                    "52:54:00:67:a6:23".to_string(),
                    "192.168.122.201".to_string()
                ),
                ("52:54:00:00:00:01".to_string(), "192.168.122.9".to_string())
            ]
        );
    }

    #[test]
    fn leases_are_read_from_virsh() {
        let out = " Expiry Time           MAC address         Protocol   IP address           Hostname   Client ID or DUID\n\
                   ------------------------------------------------------------------------------------------------------------\n\
                   2026-11-23 00:55:15   52:54:00:04:78:af   ipv4       192.168.122.158/24   web-2      01:52:54:00:04:78:af\n\
                   2026-11-23 00:28:41   52:54:00:0b:97:e4   ipv4       192.168.122.214/24   -          -\n";
        assert_eq!(
            super::parse_leases(out),
            [
                (
                    "52:54:00:04:78:af".to_string(),
                    "192.168.122.158".to_string()
                ),
                (
                    "52:54:00:0b:97:e4".to_string(),
                    "192.168.122.214".to_string()
                )
            ]
        );
    }

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
