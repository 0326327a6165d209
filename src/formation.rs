//! Local records of formations. The provider is the source of truth for what exists; these
//! records cache what nepho built (cloudlet, scenario, provider) so, for example, a cloudlet in
//! use is not uninstalled from under a formation.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Paths;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FormationRecord {
    pub name: String,
    pub cloudlet: String,
    pub scenario: String,
    pub provider: nepho_provider_api::ProviderKind,
    pub created_at: String,
}

pub fn record_file(paths: &Paths, name: &str) -> PathBuf {
    paths.formations_dir().join(name).join("formation.json")
}

/// Names of the formations whose record says they were made from `cloudlet`.
pub fn records_using(paths: &Paths, cloudlet: &str) -> Result<Vec<String>> {
    let dir = paths.formations_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut users = Vec::new();
    for entry in entries.flatten() {
        let file = entry.path().join("formation.json");
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        if let Ok(record) = serde_json::from_str::<FormationRecord>(&text)
            && record.cloudlet == cloudlet
        {
            users.push(record.name);
        }
    }
    users.sort();
    Ok(users)
}
