//! Local records of formations: what nepho built (cloudlet, scenario, provider), the inputs
//! needed to resume it, the event journal, and the lock that makes one name one build at a time.
//! The provider stays the source of truth for what exists; these files only cache it.
//!
//! Layout: `<state>/formations/<name>/` holds `formation.json` (record), `spec.json` (rendered
//! pattern and parameters, secrets redacted), `secrets.json` (0600, secret values only),
//! `journal.ndjson` (versioned events), `lock`, `nanny.log`. A successful destroy removes the
//! whole directory.

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nepho_provider_api::{FormationSpec, ProviderKind, REDACTED, RenderedFile};
use serde::{Deserialize, Serialize};

use crate::config::{Paths, write_atomic};
use crate::error::{Error, IoContext, Result};
use crate::secret::{Secret, StoredSecrets};

/// A validated formation name: it becomes a directory, a socket and a stack name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FormationName(String);

impl FormationName {
    pub fn parse(s: &str) -> Result<FormationName> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !s.ends_with('-');
        if ok {
            Ok(FormationName(s.to_string()))
        } else {
            Err(Error::invalid(format!("invalid formation name \"{s}\""))
                .with_hint("use 1 to 64 letters, digits and `-`, starting with a letter (it also names stacks and machines)"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FormationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lifecycle of the local record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    Creating,
    Created,
    Updating,
    Failed,
    /// The build was cancelled (`formation:cancel`, Ctrl-C in the foreground) and rolled back.
    Cancelled,
    Destroying,
    Destroyed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FormationRecord {
    pub name: String,
    pub cloudlet: String,
    pub scenario: String,
    pub provider: ProviderKind,
    pub created_at: String,
    #[serde(default = "default_state")]
    pub state: RecordState,
    #[serde(default)]
    pub updated_at: Option<String>,
    /// The context it was made in (`None`: the default context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

fn default_state() -> RecordState {
    RecordState::Created
}

/// The files of one formation.
#[derive(Debug, Clone)]
pub struct FormationDir {
    pub name: FormationName,
    pub dir: PathBuf,
}

impl FormationDir {
    pub fn new(paths: &Paths, name: &FormationName) -> FormationDir {
        FormationDir {
            name: name.clone(),
            dir: paths.formations_dir().join(name.as_str()),
        }
    }

    pub fn record_file(&self) -> PathBuf {
        self.dir.join("formation.json")
    }
    pub fn spec_file(&self) -> PathBuf {
        self.dir.join("spec.json")
    }
    pub fn secrets_file(&self) -> PathBuf {
        self.dir.join("secrets.json")
    }
    pub fn journal_file(&self) -> PathBuf {
        self.dir.join("journal.ndjson")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.dir.join("lock")
    }
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("nanny.log")
    }
    /// The provider's own working directory for this formation.
    pub fn work_dir(&self) -> PathBuf {
        self.dir.join("work")
    }

    pub fn create_dirs(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir).at(&self.dir)?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700)).at(&self.dir)?;
        std::fs::create_dir_all(self.work_dir()).at(self.work_dir())
    }

    pub fn read_record(&self) -> Result<Option<FormationRecord>> {
        match std::fs::read(self.record_file()) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::invalid(format!("{}: {e}", self.record_file().display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(self.record_file(), e)),
        }
    }

    pub fn write_record(&self, record: &FormationRecord) -> Result<()> {
        write_atomic(
            &self.record_file(),
            &serde_json::to_vec_pretty(record).map_err(|e| Error::Other(e.to_string()))?,
        )
    }

    pub fn set_state(&self, state: RecordState) -> Result<()> {
        if let Some(mut record) = self.read_record()? {
            record.state = state;
            record.updated_at = Some(crate::util::now_rfc3339());
            self.write_record(&record)?;
        }
        Ok(())
    }

    /// Stores the spec with secret values split out into a 0600 file. A rendered pattern that
    /// embeds a secret is stored there too; `spec.json` keeps a copy with the secret replaced.
    pub fn write_spec(&self, spec: &FormationSpec) -> Result<()> {
        let mut public = spec.clone();
        public.parameters = spec.redacted_parameters();
        let mut private: serde_json::Map<String, serde_json::Value> = spec
            .parameters
            .iter()
            .filter(|(k, _)| spec.secret_keys.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let texts: Vec<String> = private.values().filter_map(scrubbable_text).collect();
        let mut embeds_secret = false;
        for file in &mut public.pattern {
            for text in &texts {
                if file.contents.contains(text.as_str()) {
                    file.contents = file.contents.replace(text.as_str(), REDACTED);
                    embeds_secret = true;
                }
            }
        }
        if embeds_secret {
            let pattern =
                serde_json::to_value(&spec.pattern).map_err(|e| Error::Other(e.to_string()))?;
            private.insert(PRIVATE_PATTERN_KEY.into(), pattern);
        }
        // Secrets first: a spec.json whose pattern was scrubbed must find its original.
        write_atomic(
            &self.secrets_file(),
            &serde_json::to_vec(&private).unwrap_or_default(),
        )?;
        write_atomic(
            &self.spec_file(),
            &serde_json::to_vec_pretty(&public).map_err(|e| Error::Other(e.to_string()))?,
        )
    }

    /// `secrets.json`: the secret values, and the rendered pattern when it embeds one.
    fn read_private(&self) -> Result<(StoredSecrets, Option<Vec<RenderedFile>>)> {
        let path = self.secrets_file();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((StoredSecrets::default(), None));
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        let mut map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes)
            .map_err(|e| {
                Error::invalid(format!(
                    "{}: not a JSON object of secret values (line {}, column {})",
                    path.display(),
                    e.line(),
                    e.column()
                ))
            })?;
        let pattern = map
            .remove(PRIVATE_PATTERN_KEY)
            .and_then(|p| serde_json::from_value(p).ok());
        let secrets = map.into_iter().map(|(k, v)| (k, Secret::new(v))).collect();
        Ok((secrets, pattern))
    }

    /// The spec as stored in `spec.json`: secret values redacted.
    pub fn read_public_spec(&self) -> Result<FormationSpec> {
        let bytes = std::fs::read(self.spec_file()).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::not_found(format!("formation {} has no saved build inputs", self.name))
            } else {
                Error::io(self.spec_file(), e)
            }
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid(format!("{}: {e}", self.spec_file().display())))
    }

    /// The secret values the formation was last built with. No file means none; a file that
    /// cannot be read is an error that quotes nothing of its contents.
    pub fn read_secrets(&self) -> Result<StoredSecrets> {
        self.read_private().map(|(secrets, _)| secrets)
    }

    /// Secret parameters that had a value when `public` was stored but whose value is gone.
    pub fn lost_secrets(public: &FormationSpec, stored: &StoredSecrets) -> Vec<String> {
        public
            .secret_keys
            .iter()
            .filter(|k| public.parameters.contains_key(*k) && !stored.contains(k))
            .cloned()
            .collect()
    }

    /// The spec with secret values restored. Fails, naming them, when a secret's value is lost
    /// (its placeholder must never reach a provider).
    pub fn read_spec(&self) -> Result<FormationSpec> {
        let mut spec = self.read_public_spec()?;
        let (stored, pattern) = self.read_private().unwrap_or_default();
        let lost = Self::lost_secrets(&spec, &stored);
        if !lost.is_empty() {
            return Err(lost_secrets_error(&self.name, &lost, &self.secrets_file()));
        }
        for (k, secret) in stored.iter() {
            spec.parameters.insert(k.clone(), secret.expose().clone());
        }
        if let Some(pattern) = pattern {
            spec.pattern = pattern;
        }
        Ok(spec)
    }

    /// The spec for tearing the formation down: secret values restored where they still exist,
    /// left out where they are lost (a destroy does not need them).
    pub fn read_spec_for_destroy(&self) -> Result<FormationSpec> {
        let mut spec = self.read_public_spec()?;
        let (stored, pattern) = self.read_private().unwrap_or_default();
        for k in Self::lost_secrets(&spec, &stored) {
            spec.parameters.remove(&k);
        }
        for (k, secret) in stored.iter() {
            spec.parameters.insert(k.clone(), secret.expose().clone());
        }
        if let Some(pattern) = pattern {
            spec.pattern = pattern;
        }
        Ok(spec)
    }

    /// The spec a teardown falls back on when `spec.json` is missing or unreadable: only the
    /// name, provider and working directory from the record. Providers find what to delete from
    /// their own record of the formation (stack tags, domain metadata, the Vagrant project).
    pub fn bare_spec(&self) -> Result<FormationSpec> {
        let record = self
            .read_record()?
            .ok_or_else(|| Error::not_found(format!("no formation named {}", self.name)))?;
        Ok(FormationSpec {
            name: self.name.to_string(),
            cloudlet: record.cloudlet,
            scenario: record.scenario,
            provider: record.provider,
            pattern: Vec::new(),
            parameters: serde_json::Map::new(),
            secret_keys: Default::default(),
            provisioner: None,
            payload_dir: None,
            v1: false,
            work_dir: self.work_dir(),
        })
    }

    /// Secret values, for scrubbing them from anything written or shown.
    pub fn secret_values(&self) -> Vec<String> {
        self.read_secrets()
            .unwrap_or_default()
            .iter()
            .filter_map(|(_, s)| scrubbable_text(s.expose()))
            .collect()
    }

    /// Removes everything kept locally for the formation (record, spec, secrets, journal,
    /// provider work dir): called once a destroy has succeeded.
    pub fn remove_all(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&self.dir, e)),
            _ => Ok(()),
        }
    }
}

/// Where `secrets.json` keeps a rendered pattern that embeds a secret (not a parameter name:
/// those cannot contain `:`).
const PRIVATE_PATTERN_KEY: &str = "nepho:pattern";

/// A secret's text as it would appear in rendered or logged output; too short to be told from
/// ordinary text (under 3 characters) means none, as in the journal.
fn scrubbable_text(value: &serde_json::Value) -> Option<String> {
    let text = value
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string());
    (text.len() >= 3).then_some(text)
}

/// The error for secrets whose stored value is gone: which ones, and the flag that gives them.
pub fn lost_secrets_error(name: &FormationName, lost: &[String], file: &std::path::Path) -> Error {
    let flags: Vec<String> = lost.iter().map(|k| format!("--set {k}=VALUE")).collect();
    Error::invalid(format!(
        "the stored value of secret parameter{} {} of formation {name} is lost ({} is missing or unreadable)",
        if lost.len() == 1 { "" } else { "s" },
        lost.join(", "),
        file.display()
    ))
    .with_hint(format!(
        "give {} again: nepho formation:update {name} {} (or put {} in a -f values file)",
        if lost.len() == 1 { "it" } else { "them" },
        flags.join(" "),
        if lost.len() == 1 { "it" } else { "them" },
    ))
}

/// An exclusive lock on a formation name. It is an `flock`, so a process that dies (even by
/// kill -9) releases it and the next nepho takes it over safely.
pub struct FormationLock {
    file: File,
}

impl FormationLock {
    /// Takes the lock now or fails at once, naming who holds it.
    pub fn acquire(dir: &FormationDir, purpose: &str) -> Result<FormationLock> {
        std::fs::create_dir_all(&dir.dir).at(&dir.dir)?;
        let path = dir.lock_file();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .at(&path)?;
        let try_lock = |f: &File| f.try_lock().is_ok();
        let mut locked = try_lock(&file);
        if !locked && run_finished(dir) {
            // A nanny whose run has ended is only saying goodbye to its clients: wait for it.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while !locked && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
                locked = try_lock(&file);
            }
        }
        if !locked {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            return Err(Error::conflict(format!(
                "formation {} is busy{}",
                dir.name,
                if holder.is_empty() {
                    String::new()
                } else {
                    format!(" ({holder})")
                }
            ))
            .with_hint(format!(
                "watch it with `nepho formation:watch {}`, or wait for it to finish",
                dir.name
            )));
        }
        file.set_len(0).at(&path)?;
        writeln!(
            file,
            "{purpose} by pid {} since {}",
            std::process::id(),
            crate::util::now_rfc3339()
        )
        .at(&path)?;
        Ok(FormationLock { file })
    }

    /// Lets a child process inherit the lock: clears close-on-exec and returns the fd number.
    pub fn inheritable_fd(&self) -> Result<i32> {
        inheritable_fd(&self.file)
            .map_err(|_| Error::Other("cannot pass the formation lock to the nanny".into()))
    }

    /// Adopts a lock inherited from the parent (`--lock-fd`), checking it really is held.
    pub fn adopt(fd: i32, dir: &FormationDir) -> Result<FormationLock> {
        let file = adopt_locked_fd(fd).ok_or_else(|| {
            Error::conflict(format!("formation {} lock was not handed over", dir.name))
        })?;
        Ok(FormationLock { file })
    }

    /// Replaces the lock file's text (who holds it, shown to whoever finds it busy). Written at
    /// offset 0 explicitly: the nanny's file shares its offset with the command that opened it,
    /// so a plain write after truncating would leave a run of NUL bytes before the text.
    pub fn note(&mut self, text: &str) {
        use std::os::unix::fs::FileExt;
        let _ = self.file.set_len(0);
        let _ = self.file.write_all_at(format!("{text}\n").as_bytes(), 0);
    }
}

/// Does the journal end with a finished run?
fn run_finished(dir: &FormationDir) -> bool {
    crate::engine::journal::read(&dir.journal_file())
        .ok()
        .and_then(|events| events.last().map(crate::engine::journal::is_final))
        .unwrap_or(false)
}

/// Is someone building this formation right now?
pub fn is_busy(dir: &FormationDir) -> bool {
    let Ok(file) = std::fs::OpenOptions::new().read(true).open(dir.lock_file()) else {
        return false;
    };
    file.try_lock().is_err()
}

/// Clears close-on-exec on a lock's descriptor so that a child started next inherits it (the
/// lock travels with the open file); returns the descriptor's number for the child's
/// `--lock-fd`. std has no safe form of `F_SETFD`.
pub fn inheritable_fd(file: &File) -> std::io::Result<i32> {
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFD/F_SETFD only read and set the flags of a descriptor `file` owns and keeps
    // open for the duration of the calls.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// Takes ownership of a lock descriptor inherited from the parent (`--lock-fd N`), if it is
/// one: re-locking a lock this open file already holds succeeds; anything else means the
/// number names something else. Close-on-exec is set again, so the lock is not passed on.
pub fn adopt_locked_fd(fd: i32) -> Option<File> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: the parent passed this descriptor to this process alone (`--lock-fd`) and
    // nothing else here opened, owns or closes it.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    if file.try_lock().is_err() {
        // Not ours to close: forget it rather than closing a descriptor we cannot name.
        std::mem::forget(file);
        return None;
    }
    // SAFETY: as in `inheritable_fd`, on a descriptor `file` now owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
    }
    Some(file)
}

/// Every local record, sorted by name.
pub fn records(paths: &Paths) -> Result<Vec<(FormationDir, FormationRecord)>> {
    let dir = paths.formations_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(name) = entry
            .file_name()
            .to_str()
            .and_then(|n| FormationName::parse(n).ok())
        else {
            continue;
        };
        let fdir = FormationDir::new(paths, &name);
        if let Ok(Some(record)) = fdir.read_record() {
            out.push((fdir, record));
        }
    }
    out.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    Ok(out)
}

/// Names of the live formations whose record says they were made from `cloudlet`.
pub fn records_using(paths: &Paths, cloudlet: &str) -> Result<Vec<String>> {
    Ok(records(paths)?
        .into_iter()
        .filter(|(_, r)| r.cloudlet == cloudlet && r.state != RecordState::Destroyed)
        .map(|(_, r)| r.name)
        .collect())
}

/// The longest path a Unix socket can have (`sun_path` is 108 bytes with its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Where the nanny of `name` listens: `<runtime>/formations/<name>.sock`, or when that is too long
/// for a Unix socket (a deep home, a long name) a hashed name there, or else a short directory of
/// this home's own under the temp dir. Clients and the nanny compute the same path.
pub fn socket_path(paths: &Paths, name: &FormationName) -> PathBuf {
    let formations = paths.runtime_dir.join("formations");
    let hashed = format!("{}.sock", crate::util::short_hash(name.as_str().as_bytes()));
    [
        formations.join(format!("{name}.sock")),
        formations.join(&hashed),
        short_runtime_dir(paths).join(&hashed),
    ]
    .into_iter()
    .find(|p| p.as_os_str().len() <= MAX_SOCKET_PATH)
    .unwrap_or_else(|| short_runtime_dir(paths).join(hashed))
}

/// `/tmp/nepho-<uid>-<hash of the runtime dir>`: short, and still one per home and user.
fn short_runtime_dir(paths: &Paths) -> PathBuf {
    let uid = unsafe { libc::geteuid() };
    let key = crate::util::short_hash(paths.runtime_dir.as_os_str().as_encoded_bytes());
    std::env::temp_dir().join(format!("nepho-{uid}-{key}"))
}

/// The socket path for `name`'s nanny with its directory ready (mode 0700, ours), or a clear
/// error at once when no path short enough exists.
pub fn prepare_socket(paths: &Paths, name: &FormationName) -> Result<PathBuf> {
    let socket = socket_path(paths, name);
    let len = socket.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(Error::invalid(format!(
            "the socket path for formation {name} ({}) is {len} bytes, over the {MAX_SOCKET_PATH}-byte limit of Unix sockets",
            socket.display()
        ))
        .with_hint("set TMPDIR (or XDG_RUNTIME_DIR) to a shorter directory"));
    }
    let dir = socket.parent().unwrap_or(Path::new("/"));
    if dir.starts_with(&paths.runtime_dir) {
        private_dir(&paths.runtime_dir)?;
    }
    private_dir(dir)?;
    Ok(socket)
}

/// Creates `dir` if needed and makes sure it is a real directory of ours, mode 0700: in a shared
/// temp dir someone else may have made it first (or put a symlink there).
fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    std::fs::create_dir_all(dir).at(dir)?;
    let meta = std::fs::symlink_metadata(dir).at(dir)?;
    if !meta.is_dir() || meta.uid() != unsafe { libc::geteuid() } {
        return Err(Error::conflict(format!(
            "{} is not a directory of yours; nepho will not put its sockets there",
            dir.display()
        ))
        .with_hint("remove it, or set TMPDIR (or XDG_RUNTIME_DIR) to a directory of your own"));
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).at(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_fit_and_stay_per_home() {
        let paths = |home: &str| Paths {
            config_file: PathBuf::new(),
            config_dir: PathBuf::new(),
            data_dir: PathBuf::new(),
            cache_dir: PathBuf::new(),
            state_dir: PathBuf::new(),
            runtime_dir: PathBuf::from(home).join("run"),
            context: None,
        };
        let short = FormationName::parse("web").unwrap();
        let long = FormationName::parse(&format!("w{}", "x".repeat(63))).unwrap();
        assert_eq!(
            socket_path(&paths("/h"), &short),
            PathBuf::from("/h/run/formations/web.sock")
        );
        let deep = format!("/{}", "d".repeat(150));
        for (home, name) in [
            ("/h", &long),
            (deep.as_str(), &short),
            (deep.as_str(), &long),
        ] {
            let socket = socket_path(&paths(home), name);
            assert!(socket.as_os_str().len() <= MAX_SOCKET_PATH, "{socket:?}");
        }
        // Two deep homes, same name: different sockets.
        let other = format!("/{}", "e".repeat(150));
        assert_ne!(
            socket_path(&paths(&deep), &short),
            socket_path(&paths(&other), &short)
        );
    }

    #[test]
    fn formation_names() {
        assert!(FormationName::parse("agmedia").is_ok());
        assert!(FormationName::parse("web-1").is_ok());
        for bad in ["", "1web", "a/b", "..", "a..b", "-x", "x-", "a_b", "a b"] {
            assert!(FormationName::parse(bad).is_err(), "{bad}");
        }
    }

    /// Found by scripts/faults: a busy formation's error quoted the lock file with a run of NUL
    /// bytes before "create by nanny pid …" (the note was written at the old file offset).
    #[test]
    fn a_lock_note_replaces_the_text_without_a_hole() {
        let home = tempfile::tempdir().unwrap();
        let paths = Paths {
            config_file: PathBuf::new(),
            config_dir: PathBuf::new(),
            data_dir: PathBuf::new(),
            cache_dir: PathBuf::new(),
            state_dir: home.path().join("state"),
            runtime_dir: home.path().join("run"),
            context: None,
        };
        let dir = FormationDir::new(&paths, &FormationName::parse("web").unwrap());
        let mut lock = FormationLock::acquire(&dir, "resume create").unwrap();
        lock.note("create by nanny pid 42 since now");
        let text = std::fs::read_to_string(dir.lock_file()).unwrap();
        assert_eq!(text, "create by nanny pid 42 since now\n");
    }
}
