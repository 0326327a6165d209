//! How nepho reaches a remote host's shell for what libvirt does not do (qemu-img, tgtadm, seed
//! uploads): the same ssh destination, port, key and host-key policy as the host's
//! `qemu+ssh://user@host:port/system?keyfile=K&no_verify=1` URI, so one URI describes the host.

/// An ssh destination with the options its URI gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// `user@host` (or `host`).
    pub destination: String,
    pub port: Option<u16>,
    /// `-i`: the URI's `keyfile=` parameter.
    pub keyfile: Option<String>,
    /// `no_verify=1`: do not check (or record) the host's key.
    pub no_verify: bool,
}

impl SshTarget {
    /// `user@host[:port]` with no options (`storage.iscsi.tgtadm: ssh:user@host`).
    pub fn plain(spec: &str) -> SshTarget {
        let (destination, port) = split_port(spec);
        SshTarget {
            destination,
            port,
            keyfile: None,
            no_verify: false,
        }
    }

    /// The ssh part of a `qemu+ssh://` libvirt URI.
    pub fn from_uri(uri: &str) -> Option<SshTarget> {
        let rest = uri.strip_prefix("qemu+ssh://")?;
        let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let mut target = SshTarget::plain(authority);
        let query = tail.split_once('?').map(|(_, q)| q).unwrap_or("");
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "keyfile" => target.keyfile = Some(percent_decode(value)),
                "no_verify" => target.no_verify = value == "1",
                _ => {}
            }
        }
        Some(target)
    }

    fn common_options(&self) -> Vec<String> {
        let mut args = vec!["-o".to_string(), "BatchMode=yes".to_string()];
        if let Some(key) = &self.keyfile {
            args.extend(["-i".to_string(), key.clone()]);
        }
        if self.no_verify {
            args.extend([
                "-o".to_string(),
                "StrictHostKeyChecking=no".to_string(),
                "-o".to_string(),
                "UserKnownHostsFile=/dev/null".to_string(),
                "-o".to_string(),
                "LogLevel=ERROR".to_string(),
            ]);
        }
        args
    }

    /// Arguments for `ssh` before the remote command line.
    pub fn ssh_args(&self) -> Vec<String> {
        let mut args = self.common_options();
        args.extend(["-o".to_string(), "ConnectTimeout=10".to_string()]);
        if let Some(port) = self.port {
            args.extend(["-p".to_string(), port.to_string()]);
        }
        args.push(self.destination.clone());
        args
    }

    /// Arguments for `scp` before the source; the destination is [`SshTarget::scp_path`].
    pub fn scp_args(&self) -> Vec<String> {
        let mut args = self.common_options();
        if let Some(port) = self.port {
            args.extend(["-P".to_string(), port.to_string()]);
        }
        args
    }

    pub fn scp_path(&self, path: &std::path::Path) -> String {
        let host = &self.destination;
        // scp reads `a:b` as host `a`: an IPv6 literal needs brackets.
        if host.rsplit('@').next().is_some_and(|h| h.contains(':')) {
            let (user, h) = host
                .rsplit_once('@')
                .map_or(("", host.as_str()), |(u, h)| (u, h));
            let user = if user.is_empty() {
                String::new()
            } else {
                format!("{user}@")
            };
            return format!("{user}[{h}]:{}", path.display());
        }
        format!("{host}:{}", path.display())
    }
}

fn split_port(authority: &str) -> (String, Option<u16>) {
    // `[::1]:22`, `host:22`, `user@host:22`; a bare IPv6 literal has no port.
    if let Some((left, port)) = authority.rsplit_once(':')
        && let Ok(port) = port.parse::<u16>()
        && (left.ends_with(']') || !left.contains(':'))
    {
        let left = left.replace(['[', ']'], "");
        return (left, Some(port));
    }
    (authority.replace(['[', ']'], ""), None)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uri_gives_destination_port_key_and_verification() {
        let t = SshTarget::from_uri(
            "qemu+ssh://root@127.0.0.1:2222/system?keyfile=/k/id%20x&no_verify=1&socket=/s",
        )
        .unwrap();
        assert_eq!(
            t,
            SshTarget {
                destination: "root@127.0.0.1".into(),
                port: Some(2222),
                keyfile: Some("/k/id x".into()),
                no_verify: true,
            }
        );
        assert_eq!(
            t.ssh_args().join(" "),
            "-o BatchMode=yes -i /k/id x -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=10 -p 2222 root@127.0.0.1"
        );
        assert!(t.scp_args().join(" ").ends_with("-P 2222"));
        let plain = SshTarget::from_uri("qemu+ssh://root@h2/system").unwrap();
        assert_eq!(plain, SshTarget::plain("root@h2"));
        assert_eq!(plain.ssh_args().last().unwrap(), "root@h2");
        assert_eq!(SshTarget::from_uri("qemu:///system"), None);
    }

    #[test]
    fn ipv6_hosts_keep_their_colons() {
        let t = SshTarget::from_uri("qemu+ssh://root@[fd00::2]:2200/system").unwrap();
        assert_eq!(
            (t.destination.as_str(), t.port),
            ("root@fd00::2", Some(2200))
        );
        assert_eq!(t.scp_path("/x".as_ref()), "root@[fd00::2]:/x");
        assert_eq!(SshTarget::plain("fd00::2").port, None);
    }
}
