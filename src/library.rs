//! The image and ISO library's record: what `image:add` and `iso:add` registered (name, kind,
//! checksum, each host's copy), kept in `<state>/cluster/library.json` (one per context) and
//! always rewritten whole and atomically. The copies themselves are the provider's
//! (`LibraryOps`); this module only checks the files given to `add` and keeps the record.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use std::sync::Mutex;

use nepho_provider_api::{HostCopies, ImageHolds, LibraryItem, LibraryKind, ProviderError};
use serde::{Deserialize, Serialize};

use crate::config::Paths;
use crate::error::{Error, IoContext, Result};

/// A library entry's name: 1 to 64 letters, digits and `-`, starting with a letter (as a
/// formation's; it names files on every host).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LibraryName(String);

impl LibraryName {
    pub fn parse(kind: LibraryKind, s: &str) -> Result<LibraryName> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !s.ends_with('-');
        if ok {
            Ok(LibraryName(s.to_string()))
        } else {
            Err(Error::invalid(format!("invalid {kind} name \"{s}\"")).with_hint(
                "use 1 to 64 letters, digits and `-`, starting with a letter (it names a file on every host)",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One registered image or ISO (`image:list -o json` prints a list of these).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LibraryEntry {
    pub name: String,
    pub kind: LibraryKind,
    /// What the image runs (`--os`), free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the file, checked on every host after each copy.
    pub sha256: String,
    /// The file it was added from (on the machine that added it).
    pub source: String,
    /// When it was added (RFC 3339, UTC).
    pub added: String,
    /// Host name → the path of that host's copy.
    pub hosts: BTreeMap<String, PathBuf>,
}

impl LibraryEntry {
    pub fn item(&self) -> LibraryItem {
        LibraryItem {
            kind: self.kind,
            name: self.name.clone(),
            sha256: self.sha256.clone(),
            size: self.size,
        }
    }
}

/// The whole record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Library {
    #[serde(default = "record_version")]
    pub version: u32,
    #[serde(default)]
    pub entries: Vec<LibraryEntry>,
}

fn record_version() -> u32 {
    1
}

/// `<state>/cluster/library.json`, or `<state>/cluster/contexts/<context>/library.json`: a
/// context has a cluster of its own, so a library of its own.
pub fn library_file(paths: &Paths) -> PathBuf {
    let dir = paths.state_dir.join("cluster");
    match &paths.context {
        Some(context) => dir.join("contexts").join(context).join("library.json"),
        None => dir.join("library.json"),
    }
}

impl Library {
    /// The record; an empty library when there is none yet.
    pub fn load(paths: &Paths) -> Result<Library> {
        let path = library_file(paths);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Library::default()),
            Err(e) => return Err(Error::io(path, e)),
        };
        serde_json::from_slice(&text).map_err(|e| {
            Error::invalid(format!(
                "the library record {} is damaged: {e}",
                path.display()
            ))
            .with_hint("restore it from a backup, or remove it and add the images and ISOs again")
        })
    }

    pub fn save(&self, paths: &Paths) -> Result<()> {
        let mut text = serde_json::to_vec_pretty(self).map_err(|e| Error::Other(e.to_string()))?;
        text.push(b'\n');
        crate::config::write_atomic(&library_file(paths), &text)
    }

    pub fn get(&self, kind: LibraryKind, name: &str) -> Option<&LibraryEntry> {
        self.entries
            .iter()
            .find(|e| e.kind == kind && e.name == name)
    }

    /// Adds or replaces the entry of the same kind and name, keeping the list sorted.
    pub fn put(&mut self, entry: LibraryEntry) {
        self.entries
            .retain(|e| !(e.kind == entry.kind && e.name == entry.name));
        self.entries.push(entry);
        self.entries
            .sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    }

    pub fn take(&mut self, kind: LibraryKind, name: &str) -> Option<LibraryEntry> {
        let i = self
            .entries
            .iter()
            .position(|e| e.kind == kind && e.name == name)?;
        Some(self.entries.remove(i))
    }

    /// Image name → each host's copy, for the KVM provider's `image:` lookup.
    pub fn images(&self) -> BTreeMap<String, HostCopies> {
        self.entries
            .iter()
            .filter(|e| e.kind == LibraryKind::Image)
            .map(|e| (e.name.clone(), e.hosts.clone()))
            .collect()
    }
}

/// `path` opened for locking (made, with its directory, when missing).
fn lock_file(path: &Path) -> Result<std::fs::File> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).at(dir)?;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .at(path)
}

impl Library {
    /// Reads, changes and writes the record under its lock, so that what other nepho
    /// processes wrote meanwhile (their own entries) is kept. Held only that long.
    pub fn update<T>(paths: &Paths, change: impl FnOnce(&mut Library) -> T) -> Result<T> {
        let path = library_file(paths).with_extension("lock");
        let file = lock_file(&path)?;
        file.lock().map_err(|e| Error::io(&path, e))?;
        let mut library = Library::load(paths)?;
        let out = change(&mut library);
        library.save(paths)?;
        Ok(out)
    }
}

/// One entry held by this process, beside the record in `library.d/KIND-NAME.lock`:
/// exclusively for the whole of an add, replace or remove of it; shared by a `cluster:sync`, and
/// by each nepho building machines on it from when it resolves the name until it exits (by then
/// its machines are defined, and a removal after that sees them using the entry).
#[derive(Debug)]
pub struct EntryLock(#[allow(dead_code)] std::fs::File);

impl EntryLock {
    fn path(paths: &Paths, kind: LibraryKind, name: &str) -> PathBuf {
        let record = library_file(paths);
        record
            .with_file_name("library.d")
            .join(format!("{kind}-{name}.lock"))
    }

    /// For changing the entry; refused while another nepho changes or uses it.
    pub fn exclusive(paths: &Paths, kind: LibraryKind, name: &str) -> Result<EntryLock> {
        EntryLock::take(paths, kind, name, false)
    }

    /// For building on the entry or syncing it; refused while another nepho changes it.
    pub fn shared(paths: &Paths, kind: LibraryKind, name: &str) -> Result<EntryLock> {
        EntryLock::take(paths, kind, name, true)
    }

    fn take(paths: &Paths, kind: LibraryKind, name: &str, shared: bool) -> Result<EntryLock> {
        let path = EntryLock::path(paths, kind, name);
        let file = lock_file(&path)?;
        let taken = if shared {
            file.try_lock_shared()
        } else {
            file.try_lock()
        };
        match taken {
            Ok(()) => Ok(EntryLock(file)),
            Err(std::fs::TryLockError::WouldBlock) if shared => Err(Error::conflict(format!(
                "library {kind} {name} is being added, replaced or removed by another nepho"
            ))
            .with_hint(format!(
                "try again once its {kind}:add or {kind}:remove is done"
            ))),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::conflict(format!(
                "{kind} {name} is being changed or used by another nepho"
            ))
            .with_hint(format!(
                "an {kind}:add, {kind}:remove or cluster:sync of it is running, or a formation being built uses it: try again once it is done"
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
        }
    }
}

/// The [`ImageHolds`] of a home's library: a shared [`EntryLock`] per image a build resolves,
/// kept (with the copies the record names once it is held) until the process ends.
#[derive(Debug)]
pub struct LibraryHolds {
    paths: Paths,
    held: Mutex<BTreeMap<String, (EntryLock, Option<HostCopies>)>>,
}

impl LibraryHolds {
    pub fn new(paths: &Paths) -> LibraryHolds {
        LibraryHolds {
            paths: paths.clone(),
            held: Mutex::default(),
        }
    }
}

impl ImageHolds for LibraryHolds {
    fn hold(&self, name: &str) -> std::result::Result<Option<HostCopies>, ProviderError> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, copies)) = held.get(name) {
            return Ok(copies.clone());
        }
        let unavailable = |e: Error| ProviderError::Unavailable {
            message: e.to_string(),
            hint: e.hint().map(str::to_string),
        };
        let lock = EntryLock::shared(&self.paths, LibraryKind::Image, name).map_err(unavailable)?;
        let copies = Library::load(&self.paths)
            .map_err(unavailable)?
            .get(LibraryKind::Image, name)
            .map(|e| e.hosts.clone());
        held.insert(name.to_string(), (lock, copies.clone()));
        Ok(copies)
    }
}

/// Streams `file` through SHA-256: (lower-case hex, size in bytes).
pub fn sha256_file(file: &Path) -> Result<(String, u64)> {
    use sha2::Digest;
    let mut f = std::fs::File::open(file).at(file)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(file, e)),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok((hex, size))
}

/// An image must be a qcow2 with no backing file of its own (`qemu-img info`): overlays of it
/// are what machines boot.
pub fn check_image(file: &Path) -> Result<()> {
    let out = std::process::Command::new("qemu-img")
        .args(["info", "-U", "--output=json", "--"])
        .arg(file)
        .output()
        .map_err(|e| {
            Error::unavailable(format!("cannot run qemu-img: {e}"))
                .with_hint("apt-get install qemu-utils")
        })?;
    let wrong = |why: String| {
        Error::invalid(format!(
            "{} is not a usable base image: {why}",
            file.display()
        ))
        .with_hint("give a qcow2 image (convert one with `qemu-img convert -O qcow2 IN OUT`)")
    };
    if !out.status.success() {
        return Err(wrong(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let info: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| wrong(format!("qemu-img info printed no JSON: {e}")))?;
    match info["format"].as_str() {
        Some("qcow2") => {}
        other => {
            return Err(wrong(format!(
                "its format is {}, not qcow2",
                other.unwrap_or("unknown")
            )));
        }
    }
    if let Some(backing) = info["backing-filename"].as_str() {
        return Err(wrong(format!(
            "it is an overlay of {backing} (flatten it with `qemu-img convert -O qcow2`)"
        )));
    }
    Ok(())
}

/// An ISO 9660 image: whole 2048-byte sectors and the volume descriptor's `CD001` at byte
/// 32769.
pub fn check_iso(file: &Path) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    let wrong = |why: &str| {
        Error::invalid(format!("{} is not an ISO image: {why}", file.display()))
            .with_hint("give an ISO 9660 file (genisoimage or xorriso make one)")
    };
    let size = std::fs::metadata(file).at(file)?.len();
    if size < 34816 || size % 2048 != 0 {
        return Err(wrong(&format!(
            "{size} bytes is not a whole number of 2048-byte sectors past the system area"
        )));
    }
    let mut f = std::fs::File::open(file).at(file)?;
    let mut magic = [0u8; 5];
    f.seek(SeekFrom::Start(32769)).at(file)?;
    f.read_exact(&mut magic).at(file)?;
    if &magic != b"CD001" {
        return Err(wrong("no ISO 9660 volume descriptor"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["debian-12", "a", "Tools2"] {
            assert!(LibraryName::parse(LibraryKind::Image, ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "x-", "a/b", "..", "1abc", "a b", &"x".repeat(65)] {
            let e = LibraryName::parse(LibraryKind::Iso, bad).unwrap_err();
            assert!(e.to_string().contains("invalid iso name"), "{e}");
        }
    }

    #[test]
    fn sha256_streams_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(
            sha256_file(&f).unwrap(),
            (
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_string(),
                3
            )
        );
    }

    #[test]
    fn an_iso_needs_sectors_and_a_volume_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.iso");
        std::fs::write(&f, vec![0u8; 40960]).unwrap();
        let e = check_iso(&f).unwrap_err().to_string();
        assert!(e.contains("no ISO 9660 volume descriptor"), "{e}");
        std::fs::write(&f, b"short").unwrap();
        assert!(check_iso(&f).unwrap_err().to_string().contains("sectors"));
        let mut iso = vec![0u8; 40960];
        iso[32769..32774].copy_from_slice(b"CD001");
        std::fs::write(&f, iso).unwrap();
        check_iso(&f).unwrap();
    }

    #[test]
    fn entries_are_replaced_by_kind_and_name() {
        let entry = |kind, name: &str, sha: &str| LibraryEntry {
            name: name.into(),
            kind,
            os: None,
            size: 1,
            sha256: sha.into(),
            source: "/f".into(),
            added: "t".into(),
            hosts: BTreeMap::from([("h1".to_string(), PathBuf::from("/h1/x"))]),
        };
        let mut lib = Library::default();
        lib.put(entry(LibraryKind::Iso, "tools", "1"));
        lib.put(entry(LibraryKind::Image, "tools", "2"));
        lib.put(entry(LibraryKind::Image, "tools", "3"));
        assert_eq!(lib.entries.len(), 2);
        assert_eq!(lib.get(LibraryKind::Image, "tools").unwrap().sha256, "3");
        assert_eq!(lib.images().len(), 1);
        assert_eq!(lib.take(LibraryKind::Iso, "tools").unwrap().sha256, "1");
        assert!(lib.get(LibraryKind::Iso, "tools").is_none());
    }
}
