//! The KVM pattern (`patterns/kvm/*.yaml`, already rendered): machines, their disks and
//! networks, the provisioner environment, and outputs with `${machine.address}` references.

use std::collections::{BTreeMap, BTreeSet};

use nepho_provider_api::{FormationSpec, ProviderError};
use serde::{Deserialize, Serialize};

use crate::yaml;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternFile {
    machines: Vec<MachineDecl>,
    #[serde(default)]
    outputs: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MachineDecl {
    name: String,
    #[serde(default = "one")]
    count: u32,
    #[serde(default = "one")]
    cpus: u32,
    #[serde(default = "default_memory")]
    memory_mb: u64,
    image: String,
    #[serde(default)]
    disks: Vec<Disk>,
    #[serde(default)]
    networks: Vec<String>,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    env: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    secret_env: Vec<String>,
    /// Swap on the host's local storage, in MiB (0: none).
    #[serde(default)]
    swap_mb: u64,
}

fn one() -> u32 {
    1
}
fn default_memory() -> u64 {
    256
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    pub size_gb: u64,
    #[serde(default)]
    pub storage: StorageKind,
}

pub use nepho_provider_api::StorageKind;

/// One machine after `count` expansion (`web` ×2 → `web-1`, `web-2`).
#[derive(Debug, Clone)]
pub struct Machine {
    pub name: String,
    pub cpus: u32,
    pub memory_mb: u64,
    pub image: String,
    pub disks: Vec<Disk>,
    pub networks: Vec<String>,
    pub primary: bool,
    pub labels: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    pub secret_env: Vec<String>,
    pub swap_mb: u64,
}

#[derive(Debug, Clone)]
pub struct Pattern {
    pub machines: Vec<Machine>,
    pub outputs: BTreeMap<String, String>,
}

impl Pattern {
    pub fn from_spec(spec: &FormationSpec) -> Result<Pattern, ProviderError> {
        let file = spec
            .pattern
            .first()
            .ok_or_else(|| invalid("the KVM pattern is empty"))?;
        let pattern = Pattern::parse(&file.contents, &file.name)?;
        for m in &pattern.machines {
            for key in &m.secret_env {
                if !spec.parameters.contains_key(key) {
                    return Err(invalid(format!(
                        "machine {}: secret_env `{key}` is not a scenario parameter",
                        m.name
                    )));
                }
            }
        }
        Ok(pattern)
    }

    /// Everything [`Pattern::from_spec`] reads from the spec: the first file and the parameter
    /// names (never their values).
    pub fn cache_key(spec: &FormationSpec) -> String {
        let mut key = String::new();
        if let Some(file) = spec.pattern.first() {
            key.push_str(&file.name);
            key.push('\0');
            key.push_str(&file.contents);
        }
        for name in spec.parameters.keys() {
            key.push('\0');
            key.push_str(name);
        }
        key
    }

    pub fn parse(src: &str, what: &str) -> Result<Pattern, ProviderError> {
        let file: PatternFile = yaml::from_yaml(src, what).map_err(invalid)?;
        let mut machines = Vec::new();
        let mut primary_seen = false;
        for decl in &file.machines {
            if !is_simple_name(&decl.name) {
                return Err(invalid(format!(
                    "{what}: machine name `{}`: use lower-case letters, digits and -",
                    decl.name
                )));
            }
            if decl.count == 0 || decl.cpus == 0 || decl.memory_mb < 32 {
                return Err(invalid(format!(
                    "{what}: machine {}: count and cpus must be > 0, memory_mb >= 32",
                    decl.name
                )));
            }
            let mut disks = decl.disks.clone();
            if disks.is_empty() {
                disks.push(Disk {
                    size_gb: 1,
                    storage: StorageKind::Qcow2,
                });
            }
            let networks = if decl.networks.is_empty() {
                vec!["default".to_string()]
            } else {
                decl.networks.clone()
            };
            for i in 1..=decl.count {
                let name = if decl.count > 1 {
                    format!("{}-{i}", decl.name)
                } else {
                    decl.name.clone()
                };
                let primary = decl.primary && i == 1 && !primary_seen;
                primary_seen |= primary;
                machines.push(Machine {
                    name,
                    cpus: decl.cpus,
                    memory_mb: decl.memory_mb,
                    image: decl.image.clone(),
                    disks: disks.clone(),
                    networks: networks.clone(),
                    primary,
                    labels: decl.labels.clone(),
                    env: decl
                        .env
                        .iter()
                        .map(|(k, v)| (k.clone(), scalar(v)))
                        .collect(),
                    secret_env: decl.secret_env.clone(),
                    swap_mb: decl.swap_mb,
                });
            }
        }
        if machines.is_empty() {
            return Err(invalid(format!("{what}: `machines` is empty")));
        }
        let mut names = BTreeSet::new();
        for m in &machines {
            if !names.insert(m.name.clone()) {
                return Err(invalid(format!(
                    "{what}: machine `{}` appears twice",
                    m.name
                )));
            }
        }
        if !primary_seen {
            machines[0].primary = true;
        }
        let pattern = Pattern {
            machines,
            outputs: file
                .outputs
                .iter()
                .map(|(k, v)| (k.clone(), scalar(v)))
                .collect(),
        };
        // Every ${x.address} must name a machine (or a group of one).
        for text in pattern
            .outputs
            .values()
            .chain(pattern.machines.iter().flat_map(|m| m.env.values()))
        {
            for r in references(text) {
                if pattern.resolve_name(&r).is_none() {
                    return Err(invalid(format!(
                        "{what}: `${{{r}.address}}` names no machine (machines: {})",
                        pattern.machine_names().join(", ")
                    )));
                }
            }
        }
        Ok(pattern)
    }

    pub fn machine_names(&self) -> Vec<String> {
        self.machines.iter().map(|m| m.name.clone()).collect()
    }

    pub fn machine(&self, name: &str) -> Option<&Machine> {
        self.machines.iter().find(|m| m.name == name)
    }

    /// `db` → `db`; `web` (count 2) → `web-1`.
    pub fn resolve_name(&self, reference: &str) -> Option<String> {
        if self.machine(reference).is_some() {
            return Some(reference.to_string());
        }
        let first = format!("{reference}-1");
        self.machine(&first).map(|m| m.name.clone())
    }

    /// Machines whose address machine `m`'s environment needs.
    pub fn env_dependencies(&self, m: &Machine) -> Vec<String> {
        let mut deps: BTreeSet<String> = BTreeSet::new();
        for v in m.env.values() {
            for r in references(v) {
                if let Some(name) = self.resolve_name(&r) {
                    deps.insert(name);
                }
            }
        }
        deps.into_iter().collect()
    }

    pub fn ssh_user(&self) -> String {
        self.outputs
            .get("ssh_user")
            .cloned()
            .unwrap_or_else(|| "root".to_string())
    }
}

pub use nepho_provider_api::{
    address_references as references, substitute_addresses as substitute,
};

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Lower-case letters, digits and inner dashes (usable in hostnames, domain names, IQNs).
pub fn is_simple_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError::Invalid {
        message: message.into(),
        hint: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEBAPP: &str = "machines:\n  - name: web\n    count: 2\n    image: tiny\n    primary: true\n    env: {DB_HOST: '${db.address}', N: 3}\n  - name: db\n    image: tiny\n    disks: [{size_gb: 1}, {size_gb: 2, storage: iscsi}]\noutputs:\n  ssh_user: root\n  url: http://${web-1.address}/\n";

    #[test]
    fn expands_counts_and_finds_references() {
        let p = Pattern::parse(WEBAPP, "t").unwrap();
        assert_eq!(p.machine_names(), ["web-1", "web-2", "db"]);
        assert!(p.machines[0].primary && !p.machines[1].primary);
        assert_eq!(p.machines[0].env["N"], "3");
        assert_eq!(p.env_dependencies(&p.machines[0]), ["db"]);
        assert_eq!(p.machines[2].disks[1].storage, StorageKind::Iscsi);
        let url = substitute(&p.outputs["url"], &|m| {
            (m == "web-1").then(|| "10.0.0.5".to_string())
        });
        assert_eq!(url, "http://10.0.0.5/");
    }

    #[test]
    fn rejects_unknown_keys_and_references() {
        let e = Pattern::parse("machines: [{name: a, image: t, colour: red}]", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour"), "{e}");
        let e = Pattern::parse(
            "machines: [{name: a, image: t}]\noutputs: {u: '${b.address}'}",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("names no machine"), "{e}");
    }
}
