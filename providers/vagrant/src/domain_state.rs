//! Machine states of libvirt-backed Vagrant projects without starting Ruby.
//!
//! vagrant-libvirt records each machine's libvirt domain UUID in
//! `.vagrant/machines/<machine>/libvirt/id` as soon as the domain is defined, and
//! `vagrant status` is then `Provider#state` (provider.rb) + `Driver#state` (driver.rb):
//!
//! - no id → `not_created`; the id `preparing` → `preparing`;
//! - no domain with that UUID on the connection → `not_created`;
//! - otherwise fog's name for the libvirt state (`nostate running blocked paused
//!   shutting_down shutoff crashed pmsuspended`), except that a running domain without a DHCP
//!   lease (within 2 s) is `inaccessible`.
//!
//! The same answer is read here with one batched `virsh` call per libvirt connection (plus one
//! for the leases of running domains). Whatever this module cannot vouch for (another Vagrant
//! provider, a Vagrantfile choosing its own libvirt connection, machine names computed in
//! Ruby, a state virsh does not report) is left to `vagrant status`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::project;

/// What the project records for one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    NotCreated,
    Preparing,
    /// A libvirt domain UUID (lower case).
    Domain(String),
}

/// A project whose states can be read from libvirt: its connection and machines, in
/// Vagrantfile order (the order of `vagrant status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub uri: String,
    pub machines: Vec<(String, Recorded)>,
}

/// What libvirt says about the domains asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every domain UUID on the connection.
    pub domains: BTreeSet<String>,
    /// UUID → virsh's state word (`running`, `shut off`, …), for the domains asked for.
    pub states: BTreeMap<String, String>,
    /// Running domains that have an IPv4 DHCP lease (asked separately).
    pub addressed: BTreeSet<String>,
}

/// Provider-block settings that make vagrant-libvirt connect somewhere else than
/// `LIBVIRT_DEFAULT_URI` / `qemu:///system` (config.rb `_default_uri`, `_generate_uri`).
const CONNECTION_KEYS: &[&str] = &[
    "uri",
    "host",
    "username",
    "password",
    "id_ssh_key_file",
    "qemu_use_session",
    "socket",
    "connect_via_ssh",
];

/// Whether a Vagrantfile sets the libvirt connection (or a non-QEMU driver) itself:
/// `<block>.<key> = …` on a single-receiver line (so `config.ssh.username` does not count).
pub fn sets_connection(vagrantfile: &str) -> bool {
    vagrantfile.lines().any(|line| {
        let line = line.trim();
        if line.starts_with('#') {
            return false;
        }
        let Some(eq) = line.find('=') else {
            return false;
        };
        if line[eq + 1..].starts_with(['=', '~']) {
            return false;
        }
        let lhs = line[..eq].trim();
        let Some((receiver, key)) = lhs.split_once('.') else {
            return false;
        };
        if receiver.is_empty()
            || !receiver
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return false;
        }
        if CONNECTION_KEYS.contains(&key) {
            return true;
        }
        if key == "driver" {
            let value = line[eq + 1..].trim().trim_matches(['"', '\'']);
            let literal = line[eq + 1..].trim().starts_with(['"', '\'']);
            return literal && !matches!(value, "kvm" | "qemu");
        }
        false
    })
}

/// The machines a Vagrantfile defines, in order (`default` when it defines none). `None`
/// when a name is computed in Ruby (`"web-#{i}"`, a variable): only Vagrant knows then.
pub fn machines_in(vagrantfile: &str) -> Option<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for line in vagrantfile.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some(pos) = line.find(".vm.define") else {
            continue;
        };
        let rest = line[pos + ".vm.define".len()..].trim_start();
        let rest = rest.strip_prefix('(').unwrap_or(rest).trim_start();
        let name = if let Some(sym) = rest.strip_prefix(':') {
            let n: String = sym
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!n.is_empty()).then_some(n)
        } else if let Some(q) = rest.chars().next().filter(|c| matches!(c, '"' | '\'')) {
            let body = &rest[1..];
            body.find(q)
                .map(|end| &body[..end])
                .filter(|n| !n.is_empty())
                .filter(|n| q == '\'' || !n.contains("#{"))
                .map(String::from)
        } else {
            None
        };
        let name = name?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        names.push("default".into());
    }
    Some(names)
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// What `.vagrant/machines/<machine>/libvirt/id` says. `Err` for an id that is no UUID.
pub fn recorded(dir: &Path, machine: &str) -> Result<Recorded, String> {
    let path = dir
        .join(".vagrant/machines")
        .join(machine)
        .join("libvirt/id");
    let id = match std::fs::read_to_string(&path) {
        Ok(s) => s.trim().to_ascii_lowercase(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Recorded::NotCreated),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    match id.as_str() {
        "" => Ok(Recorded::NotCreated),
        "preparing" => Ok(Recorded::Preparing),
        id if is_uuid(id) => Ok(Recorded::Domain(id.to_string())),
        other => Err(format!("{}: unexpected id {other:?}", path.display())),
    }
}

/// Whether some machine of the project was made by another Vagrant provider.
fn other_provider_recorded(dir: &Path) -> bool {
    project::known_machines(dir).iter().any(|m| {
        std::fs::read_dir(dir.join(".vagrant/machines").join(m))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .any(|e| e.file_name() != "libvirt" && e.path().join("id").is_file())
            })
            .unwrap_or(false)
    })
}

/// Box Vagrantfiles are merged into the project's: they may set the connection too.
fn box_vagrantfiles(vagrant_home: &Path, vagrantfile: &str) -> Vec<String> {
    let mut found = Vec::new();
    for name in project::boxes_in(vagrantfile) {
        let dir = vagrant_home
            .join("boxes")
            .join(name.replace('/', "-VAGRANTSLASH-"));
        for version in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let v = version.path();
            let mut candidates = vec![v.join("libvirt/Vagrantfile")];
            for arch in std::fs::read_dir(&v).into_iter().flatten().flatten() {
                candidates.push(arch.path().join("libvirt/Vagrantfile"));
            }
            found.extend(
                candidates
                    .iter()
                    .filter_map(|p| std::fs::read_to_string(p).ok()),
            );
        }
    }
    found
}

/// Whether (and how) the project's states can be read from libvirt. `env` is the
/// environment vagrant would get (the project's, over nepho's own). `Err` says why not.
pub fn probe(
    dir: &Path,
    vagrant_provider: &str,
    env: &BTreeMap<String, String>,
    vagrant_home: &Path,
) -> Result<Probe, String> {
    if vagrant_provider != "libvirt" {
        return Err(format!("the {vagrant_provider} provider"));
    }
    let vagrantfile = std::fs::read_to_string(dir.join("Vagrantfile"))
        .map_err(|e| format!("reading the Vagrantfile: {e}"))?;
    let mut sources = vec![vagrantfile.clone()];
    sources.extend(std::fs::read_to_string(vagrant_home.join("Vagrantfile")).ok());
    sources.extend(box_vagrantfiles(vagrant_home, &vagrantfile));
    if sources.iter().any(|s| sets_connection(s)) {
        return Err("the Vagrantfile sets the libvirt connection".into());
    }
    let machines = machines_in(&vagrantfile).ok_or("machine names computed in Ruby")?;
    if other_provider_recorded(dir) {
        return Err("a machine of another Vagrant provider".into());
    }
    let uri = env
        .get("LIBVIRT_DEFAULT_URI")
        .cloned()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "qemu:///system".into());
    let machines = machines
        .into_iter()
        .map(|m| recorded(dir, &m).map(|r| (m, r)))
        .collect::<Result<_, _>>()?;
    Ok(Probe { uri, machines })
}

/// One virsh batch: every domain UUID, then the state of each domain asked for, between
/// markers (a failing `domstate` prints nothing on stdout and the batch goes on).
pub fn state_script(ids: &BTreeSet<String>) -> String {
    let mut s = String::from("echo @@list; list --all --uuid; echo @@end");
    for id in ids {
        s.push_str(&format!("; echo @@state {id}; domstate {id}"));
    }
    s.push_str("; echo @@done");
    s
}

/// The lease query for running domains (`domifaddr` reads the network's DHCP leases, as
/// vagrant-libvirt does).
pub fn address_script(ids: &BTreeSet<String>) -> String {
    let mut s = String::new();
    for id in ids {
        s.push_str(&format!("echo @@addr {id}; domifaddr {id}; "));
    }
    s.push_str("echo @@done");
    s
}

/// Parses the output of `state_script`. `Err` when the batch did not run to its end.
pub fn parse_states(out: &str) -> Result<Snapshot, String> {
    let mut snap = Snapshot::default();
    let mut section: Option<(&str, String)> = None;
    let mut listed = false;
    let mut done = false;
    for line in out.lines().map(str::trim) {
        if let Some(marker) = line.strip_prefix("@@") {
            let (kind, arg) = marker.split_once(' ').unwrap_or((marker, ""));
            match kind {
                "list" => listed = true,
                "done" => done = true,
                _ => {}
            }
            section = Some((
                match kind {
                    "list" => "list",
                    "state" => "state",
                    _ => "",
                },
                arg.to_ascii_lowercase(),
            ));
            continue;
        }
        if line.is_empty() {
            continue;
        }
        match &section {
            Some(("list", _)) => {
                let id = line.to_ascii_lowercase();
                if !is_uuid(&id) {
                    return Err(format!("unexpected line in virsh list: {line:?}"));
                }
                snap.domains.insert(id);
            }
            Some(("state", id)) if !snap.states.contains_key(id) => {
                snap.states.insert(id.clone(), line.to_string());
            }
            _ => {}
        }
    }
    if listed && done {
        Ok(snap)
    } else {
        Err("virsh did not finish the batch".into())
    }
}

/// Parses the output of `address_script` into `snap.addressed`.
pub fn parse_addresses(out: &str, snap: &mut Snapshot) -> Result<(), String> {
    let mut current: Option<String> = None;
    let mut done = false;
    for line in out.lines().map(str::trim) {
        if let Some(id) = line.strip_prefix("@@addr ") {
            current = Some(id.to_ascii_lowercase());
        } else if line == "@@done" {
            done = true;
        } else if let Some(id) = &current
            && line.split_whitespace().nth(2) == Some("ipv4")
        {
            snap.addressed.insert(id.clone());
        }
    }
    if done {
        Ok(())
    } else {
        Err("virsh did not finish the batch".into())
    }
}

/// virsh's state words (`virshDomainStateToString`, run with `LC_ALL=C`) as Vagrant names
/// them (fog's `states` with `-` → `_`).
pub fn vagrant_state(virsh_state: &str) -> Option<&'static str> {
    Some(match virsh_state {
        "running" => "running",
        "idle" => "blocked",
        "paused" => "paused",
        "in shutdown" => "shutting_down",
        "shut off" => "shutoff",
        "crashed" => "crashed",
        "pmsuspended" => "pmsuspended",
        "no state" => "nostate",
        _ => return None,
    })
}

/// The running domains whose lease decides between `running` and `inaccessible`.
pub fn running_ids(probes: &[&Probe], snap: &Snapshot) -> BTreeSet<String> {
    probes
        .iter()
        .flat_map(|p| p.machines.iter())
        .filter_map(|(_, r)| match r {
            Recorded::Domain(id) if snap.states.get(id).map(String::as_str) == Some("running") => {
                Some(id.clone())
            }
            _ => None,
        })
        .collect()
}

/// machine → state, as `vagrant status` would say. `Err` when libvirt's answer is
/// incomplete for some machine.
pub fn resolve(probe: &Probe, snap: &Snapshot) -> Result<Vec<(String, String)>, String> {
    probe
        .machines
        .iter()
        .map(|(machine, rec)| {
            let state = match rec {
                Recorded::NotCreated => "not_created".to_string(),
                Recorded::Preparing => "preparing".to_string(),
                Recorded::Domain(id) if !snap.domains.contains(id) => "not_created".to_string(),
                Recorded::Domain(id) => {
                    let word = snap
                        .states
                        .get(id)
                        .ok_or_else(|| format!("no state for domain {id}"))?;
                    let state = vagrant_state(word)
                        .ok_or_else(|| format!("unknown domain state {word:?}"))?;
                    if state == "running" && !snap.addressed.contains(id) {
                        "inaccessible".to_string()
                    } else {
                        state.to_string()
                    }
                }
            };
            Ok((machine.clone(), state))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "d0a52e8d-87e3-4a1e-a04e-a4c4d2a22697";
    const B: &str = "36e3a506-b938-4c71-903d-6acf132347d9";
    const GONE: &str = "00000000-1111-2222-3333-444444444444";

    #[test]
    fn machine_names_come_from_literal_defines_in_order() {
        let v = r#"
Vagrant.configure("2") do |config|
  # config.vm.define "commented"
  config.vm.define "db" do |db|
  end
  config.vm.define "web-1", primary: true do |web|
  end
  config.vm.define :cache do |c|
  config.vm.define('db') do |again|
end
"#;
        assert_eq!(machines_in(v).unwrap(), ["db", "web-1", "cache"]);
        assert_eq!(
            machines_in("Vagrant.configure(\"2\") do |c|\nend\n").unwrap(),
            ["default"]
        );
        assert_eq!(machines_in("  config.vm.define \"web-#{i}\" do |w|"), None);
        assert_eq!(machines_in("  config.vm.define name do |w|"), None);
        // Single quotes do not interpolate in Ruby.
        assert_eq!(
            machines_in("config.vm.define 'web-#{i}'").unwrap(),
            ["web-#{i}"]
        );
    }

    #[test]
    fn connection_settings_send_the_project_to_vagrant_status() {
        let plain = r#"
  config.ssh.username = "vagrant"
  config.vm.hostname = "h"
  config.vm.provider :libvirt do |libvirt|
    libvirt.driver = ENV.fetch("NEPHO_LIBVIRT_DRIVER", "kvm")
    libvirt.driver = "qemu"
    libvirt.memory = 256
    # libvirt.uri = "qemu+ssh://elsewhere/system"
  end
"#;
        assert!(!sets_connection(plain));
        for line in [
            "libvirt.uri = 'qemu+ssh://h/system'",
            "    lv.host = \"kvm1\"",
            "lv.qemu_use_session = true",
            "lv.socket=\"/run/x.sock\"",
            "lv.connect_via_ssh = true",
            "libvirt.driver = \"lxc\"",
        ] {
            assert!(sets_connection(line), "{line}");
        }
        assert!(!sets_connection("if lv.host == 'x'"));
    }

    #[test]
    fn virsh_states_map_to_vagrant_names() {
        for (virsh, vagrant) in [
            ("running", "running"),
            ("shut off", "shutoff"),
            ("paused", "paused"),
            ("in shutdown", "shutting_down"),
            ("crashed", "crashed"),
            ("pmsuspended", "pmsuspended"),
            ("idle", "blocked"),
            ("no state", "nostate"),
        ] {
            assert_eq!(vagrant_state(virsh), Some(vagrant), "{virsh}");
        }
        assert_eq!(vagrant_state("éteint"), None);
    }

    fn snapshot() -> Snapshot {
        let ids: BTreeSet<String> = [A, B, GONE].iter().map(|s| s.to_string()).collect();
        let script = state_script(&ids);
        assert!(script.starts_with("echo @@list; list --all --uuid; echo @@end"));
        assert!(script.contains(&format!("echo @@state {GONE}; domstate {GONE}")));
        // What virsh prints for that batch (the failed domstate only on stderr).
        let out = format!(
            "@@list\n{A}\n{}\n\n@@end\n@@state {A}\nrunning\n\n@@state {B}\nshut off\n\n@@state {GONE}\n@@done\n",
            B.to_uppercase()
        );
        let mut snap = parse_states(&out).unwrap();
        assert_eq!(snap.domains.len(), 2);
        assert_eq!(snap.states[A], "running");
        assert_eq!(snap.states[B], "shut off");
        let addr = format!(
            "@@addr {A}\n Name       MAC address          Protocol     Address\n-------\n vnet96     52:54:00:46:03:a4    ipv4         192.168.121.140/24\n\n@@done\n"
        );
        parse_addresses(&addr, &mut snap).unwrap();
        snap
    }

    #[test]
    fn states_are_resolved_like_vagrant_libvirt() {
        let snap = snapshot();
        let probe = Probe {
            uri: "qemu:///system".into(),
            machines: vec![
                ("web".into(), Recorded::Domain(A.into())),
                ("db".into(), Recorded::Domain(B.into())),
                ("removed".into(), Recorded::Domain(GONE.into())),
                ("new".into(), Recorded::NotCreated),
                ("mid".into(), Recorded::Preparing),
            ],
        };
        assert_eq!(
            running_ids(&[&probe], &snap),
            BTreeSet::from([A.to_string()])
        );
        let states = resolve(&probe, &snap).unwrap();
        let states: Vec<(&str, &str)> = states
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(
            states,
            [
                ("web", "running"),
                ("db", "shutoff"),
                ("removed", "not_created"),
                ("new", "not_created"),
                ("mid", "preparing"),
            ]
        );
        // Running without a lease: vagrant-libvirt says inaccessible.
        let mut no_lease = snap.clone();
        no_lease.addressed.clear();
        assert_eq!(resolve(&probe, &no_lease).unwrap()[0].1, "inaccessible");
        // A domain listed but whose state is missing: no guess.
        let mut partial = snap.clone();
        partial.states.remove(B);
        assert!(resolve(&probe, &partial).is_err());
    }

    #[test]
    fn an_unfinished_batch_is_an_error() {
        assert!(parse_states("").is_err());
        assert!(parse_states(&format!("@@list\n{A}\n@@end\n@@state {A}\n")).is_err());
        assert!(parse_states("@@list\nerror: garbage\n@@done\n").is_err());
        let mut snap = Snapshot::default();
        assert!(parse_addresses("@@addr x\n", &mut snap).is_err());
    }

    #[test]
    fn the_project_records_ids_and_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(
            p.join("Vagrantfile"),
            "Vagrant.configure(\"2\") do |config|\n  config.vm.box = \"b\"\n  config.vm.define \"db\"\n  config.vm.define \"web\"\n  config.vm.define \"new\"\nend\n",
        )
        .unwrap();
        for (m, id) in [("db", A.to_uppercase()), ("web", "preparing".into())] {
            std::fs::create_dir_all(p.join(".vagrant/machines").join(m).join("libvirt")).unwrap();
            std::fs::write(
                p.join(".vagrant/machines").join(m).join("libvirt/id"),
                format!("{id}\n"),
            )
            .unwrap();
        }
        let env = BTreeMap::new();
        let probe = probe(p, "libvirt", &env, home.path()).unwrap();
        assert_eq!(probe.uri, "qemu:///system");
        assert_eq!(
            probe.machines,
            [
                ("db".to_string(), Recorded::Domain(A.into())),
                ("web".to_string(), Recorded::Preparing),
                ("new".to_string(), Recorded::NotCreated),
            ]
        );
        let env = BTreeMap::from([(
            "LIBVIRT_DEFAULT_URI".to_string(),
            "qemu:///session".to_string(),
        )]);
        assert_eq!(
            super::probe(p, "libvirt", &env, home.path()).unwrap().uri,
            "qemu:///session"
        );
        assert!(super::probe(p, "virtualbox", &env, home.path()).is_err());
        // A box whose Vagrantfile picks the connection.
        let boxdir = home.path().join("boxes/b/0/libvirt");
        std::fs::create_dir_all(&boxdir).unwrap();
        std::fs::write(boxdir.join("Vagrantfile"), "lv.host = 'far'\n").unwrap();
        assert!(super::probe(p, "libvirt", &env, home.path()).is_err());
        std::fs::remove_file(boxdir.join("Vagrantfile")).unwrap();
        // A machine made by another provider.
        std::fs::create_dir_all(p.join(".vagrant/machines/new/virtualbox")).unwrap();
        std::fs::write(p.join(".vagrant/machines/new/virtualbox/id"), "x").unwrap();
        assert!(super::probe(p, "libvirt", &env, home.path()).is_err());
    }
}
