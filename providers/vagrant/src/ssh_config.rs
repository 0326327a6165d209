//! `vagrant ssh-config` output → ssh endpoints, so `formation:ssh` execs the system ssh
//! instead of paying for `vagrant ssh`'s Ruby start-up.

use std::path::PathBuf;

use nepho_provider_api::SshEndpoint;

pub fn parse(text: &str) -> Vec<SshEndpoint> {
    let mut out: Vec<SshEndpoint> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once(char::is_whitespace) {
            Some((k, v)) => (k, v.trim()),
            None => continue,
        };
        let value = value.trim_matches('"');
        if key.eq_ignore_ascii_case("Host") {
            out.push(SshEndpoint {
                machine: value.to_string(),
                host: String::new(),
                port: 22,
                user: String::new(),
                identity_file: None,
                options: Vec::new(),
            });
            continue;
        }
        let Some(e) = out.last_mut() else { continue };
        match key.to_ascii_lowercase().as_str() {
            "hostname" => e.host = value.to_string(),
            "port" => e.port = value.parse().unwrap_or(22),
            "user" => e.user = value.to_string(),
            "identityfile" if e.identity_file.is_none() => {
                e.identity_file = Some(PathBuf::from(value))
            }
            "identityfile" => e.options.push(format!("IdentityFile={value}")),
            _ => e.options.push(format!("{key}={value}")),
        }
    }
    out.retain(|e| !e.host.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_become_endpoints() {
        let text = "Host default\n  HostName 192.168.121.163\n  User vagrant\n  Port 22\n  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n  PasswordAuthentication no\n  IdentityFile /v/insecure_private_key\n  IdentitiesOnly yes\n  LogLevel FATAL\n\nHost db\n  HostName 10.0.0.2\n  User root\n  Port 2222\n  IdentityFile \"/a b/key\"\n";
        let e = parse(text);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].machine, "default");
        assert_eq!(e[0].host, "192.168.121.163");
        assert_eq!(e[0].user, "vagrant");
        assert_eq!(
            e[0].identity_file.as_deref(),
            Some(std::path::Path::new("/v/insecure_private_key"))
        );
        assert!(
            e[0].options
                .contains(&"StrictHostKeyChecking=no".to_string())
        );
        assert_eq!(e[1].port, 2222);
        assert_eq!(
            e[1].identity_file.as_deref(),
            Some(std::path::Path::new("/a b/key"))
        );
    }
}
