//! The image and ISO library of a provider's cluster (`image:add`, `iso:add`, `cluster:sync`):
//! files nepho copies to every host, checks on arrival and refuses to delete while a machine
//! uses them. The record of what the library holds is the caller's; the provider only places,
//! checks and deletes the copies. Reached through [`crate::Provider::library`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{BoxFuture, ProviderError};

/// What a library entry is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LibraryKind {
    /// A qcow2 base image, for a pattern's `image:`.
    Image,
    /// An ISO image, for `formation:attach-iso`.
    Iso,
}

impl LibraryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LibraryKind::Image => "image",
            LibraryKind::Iso => "iso",
        }
    }

    /// The directory of the host's library holding this kind.
    pub fn dir(self) -> &'static str {
        match self {
            LibraryKind::Image => "images",
            LibraryKind::Iso => "isos",
        }
    }

    /// The copies' file extension.
    pub fn extension(self) -> &'static str {
        match self {
            LibraryKind::Image => "qcow2",
            LibraryKind::Iso => "iso",
        }
    }
}

impl fmt::Display for LibraryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the provider needs to know of an entry to place a copy and check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryItem {
    pub kind: LibraryKind,
    /// A validated name (letters, digits and `-`, starting with a letter).
    pub name: String,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
    pub size: u64,
}

impl fmt::Display for LibraryItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// Where each host keeps its copy: host name → path on that host.
pub type HostCopies = BTreeMap<String, PathBuf>;

/// The library's images as machines are built on them. Taking one holds its entry for the rest
/// of the process, so `image:remove` and `image:add --replace` are refused from when a build
/// resolves the name until its machines are defined (and removal sees them use it).
pub trait ImageHolds: Send + Sync + fmt::Debug {
    /// Each host's copy of library image `name`, held from now on; `Ok(None)` when the
    /// library no longer has it.
    fn hold(&self, name: &str) -> Result<Option<HostCopies>, ProviderError>;
}

/// A machine that uses a library entry: built on the image, or with the ISO in its drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct LibraryUser {
    pub formation: String,
    pub machine: String,
    pub host: String,
}

/// One entry on one host, as `cluster:sync` found and left it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SyncedItem {
    pub kind: LibraryKind,
    pub name: String,
    /// `present` (the copy was there with the right checksum), `copied` (it was missing or
    /// differed and was copied from another host, then checked) or `failed`.
    pub status: String,
    /// The copy's path on the host.
    pub path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What `cluster:sync` did on one host.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct HostSync {
    pub host: String,
    pub items: Vec<SyncedItem>,
}

impl HostSync {
    /// Entries copied to this host.
    pub fn copied(&self) -> usize {
        self.items.iter().filter(|i| i.status == "copied").count()
    }

    pub fn failed(&self) -> usize {
        self.items.iter().filter(|i| i.status == "failed").count()
    }
}

/// The library's copies on the hosts of the provider's cluster.
pub trait LibraryOps: Send + Sync {
    /// The hosts' names, as the cluster file declares them.
    fn hosts(&self) -> Vec<String>;

    /// Image names the cluster file itself declares (its `images:` map).
    fn declared_images(&self) -> Vec<String>;

    /// Copies `file` (on this machine) to every host and checks its SHA-256 there. Either
    /// every host ends up with a checked copy, or none has a new one (partial copies are
    /// removed and an existing copy of the same name is left as it was).
    fn store<'a>(
        &'a self,
        item: &'a LibraryItem,
        file: &'a Path,
    ) -> BoxFuture<'a, Result<HostCopies, ProviderError>>;

    /// Deletes the copies (hosts no longer in the cluster are skipped).
    fn discard<'a>(&'a self, copies: &'a HostCopies) -> BoxFuture<'a, Result<(), ProviderError>>;

    /// The machines that use one of `copies` (as their base image, or in their ISO drive). An
    /// error when a host does not answer: its machines cannot be checked.
    fn users<'a>(
        &'a self,
        kind: LibraryKind,
        copies: &'a HostCopies,
    ) -> BoxFuture<'a, Result<Vec<LibraryUser>, ProviderError>>;

    /// Gives every host a checked copy of every item: a copy missing or with another checksum
    /// is copied again from a host whose copy is right. One report per host.
    fn sync<'a>(&'a self, items: &'a [LibraryItem]) -> BoxFuture<'a, Vec<HostSync>>;
}
