//! The image and ISO library: `image:add|list|remove`, `iso:add|list|remove` and
//! `cluster:sync`. The provider copies, checks and deletes the files on the hosts
//! (`LibraryOps`); this keeps the record (`crate::library`) and journals every change in the
//! cluster journal (`cluster:events`).

use std::path::Path;

use nepho_provider_api::{
    EventData, EventStatus, HostSync, IsoMedium, LibraryKind, LibraryOps, LibraryUser,
    OperationData,
};

use super::{Context, runtime};
use crate::engine::Journal;
use crate::error::{Error, Result};
use crate::library::{self, EntryLock, Library, LibraryEntry, LibraryName};
use crate::output::LibraryRemoved;
use crate::providers;

/// What `image:add` / `iso:add` is asked to do.
#[derive(Debug, Clone)]
pub struct AddRequest<'a> {
    pub kind: LibraryKind,
    pub name: &'a str,
    pub file: &'a Path,
    pub os: Option<&'a str>,
    /// Put a different file in the place of an entry of the same name.
    pub replace: bool,
}

fn journal(cx: &Context) -> Result<std::sync::Arc<Journal>> {
    Ok(Journal::open_cluster(&cx.paths.state_dir)?)
}

fn event(kind: LibraryKind, name: &str, action: &str, sha256: Option<&str>) -> OperationData {
    OperationData::Library {
        action: action.to_string(),
        kind: Some(kind),
        name: Some(name.to_string()),
        sha256: sha256.map(str::to_string),
    }
}

/// Runs `work` with the KVM provider's library operations.
fn with_library<T>(
    cx: &Context,
    work: impl AsyncFnOnce(&dyn LibraryOps) -> Result<T>,
) -> Result<T> {
    runtime()?.block_on(async {
        let kvm = providers::kvm(&cx.paths).await?;
        work(providers::library_ops(&*kvm)?).await
    })
}

/// The file `add` was given, checked for its kind; (SHA-256, size).
fn checked_file(kind: LibraryKind, file: &Path) -> Result<(String, u64)> {
    let meta = std::fs::metadata(file).map_err(|e| {
        Error::invalid(format!("cannot read {}: {e}", file.display())).with_hint(format!(
            "give the path of a readable {kind} file on this machine"
        ))
    })?;
    if !meta.is_file() {
        return Err(Error::invalid(format!("{} is not a file", file.display()))
            .with_hint(format!("give the path of a {kind} file on this machine")));
    }
    match kind {
        LibraryKind::Image => library::check_image(file)?,
        LibraryKind::Iso => library::check_iso(file)?,
    }
    library::sha256_file(file)
}

/// The machines still using an entry, as an error that names them and says how to free it.
fn in_use(kind: LibraryKind, name: &str, users: &[LibraryUser], doing: &str) -> Error {
    let list = users
        .iter()
        .map(|u| {
            format!(
                "formation {} machine {} (host {})",
                u.formation, u.machine, u.host
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let first = &users[0];
    let hint = match kind {
        LibraryKind::Image => format!(
            "destroy the formations built on it first (`nepho formation:destroy {} --yes`)",
            first.formation
        ),
        LibraryKind::Iso => format!(
            "eject it first: `nepho formation:detach-iso {} -m {}`",
            first.formation, first.machine
        ),
    };
    Error::conflict(format!(
        "cannot {doing} {kind} {name}: it is in use by {list}"
    ))
    .with_hint(hint)
}

/// `image:add` / `iso:add`: checks the file, copies it to every host (checked there), records it.
pub fn add(cx: &Context, r: &AddRequest) -> Result<LibraryEntry> {
    let kind = r.kind;
    let name = LibraryName::parse(kind, r.name)?;
    let name = name.as_str();
    let (sha256, size) = checked_file(kind, r.file)?;
    let source = std::fs::canonicalize(r.file).unwrap_or_else(|_| r.file.to_path_buf());
    // Held until the record says what is on the hosts: a second add of the name is refused.
    let _lock = EntryLock::exclusive(&cx.paths, kind, name)?;
    let existing = Library::load(&cx.paths)?.get(kind, name).cloned();
    if let Some(old) = &existing {
        if old.sha256 == sha256 && old.os.as_deref() == r.os.or(old.os.as_deref()) {
            cx.out.notice(&format!(
                "{kind} {name} is already in the library with this content (`nepho cluster:sync` checks the copies)"
            ));
            return Ok(old.clone());
        }
        if !r.replace {
            return Err(Error::conflict(format!(
                "{kind} {name} is already in the library (SHA-256 {}, from {})",
                old.sha256, old.source
            ))
            .with_hint(format!(
                "pass --replace to put {} in its place, or pick another name",
                r.file.display()
            )));
        }
    }
    let action = if existing.is_some() { "replace" } else { "add" };
    cx.out.notice(&format!(
        "{action}: copying {} ({size} bytes, SHA-256 {sha256}) to every host",
        r.file.display()
    ));
    let entry = with_library(cx, async |ops| {
        if kind == LibraryKind::Image && ops.declared_images().iter().any(|i| i == name) {
            return Err(Error::conflict(format!(
                "the cluster file already declares an image `{name}` under `images:`"
            ))
            .with_hint("pick another name, or take it out of the cluster file's `images:` first"));
        }
        if let Some(old) = &existing {
            let users = ops
                .users(kind, &old.hosts)
                .await
                .map_err(providers::provider_error)?;
            if !users.is_empty() {
                return Err(in_use(kind, name, &users, "replace"));
            }
        }
        let mut entry = LibraryEntry {
            name: name.to_string(),
            kind,
            os: r.os.map(str::to_string),
            size,
            sha256: sha256.clone(),
            source: source.display().to_string(),
            added: crate::util::now_rfc3339(),
            hosts: Default::default(),
        };
        let data = event(kind, name, action, Some(&sha256));
        entry.hosts = crate::engine::record_operation(&*journal(cx)?, data, async {
            ops.store(&entry.item(), r.file)
                .await
                .map_err(providers::provider_error)
        })
        .await?;
        if let Err(e) = Library::update(&cx.paths, |library| library.put(entry.clone())) {
            if existing.is_none() {
                let _ = ops.discard(&entry.hosts).await;
            }
            return Err(e);
        }
        Ok(entry)
    })?;
    Ok(entry)
}

/// `image:list` / `iso:list`: the record (no host is asked).
pub fn list(cx: &Context, kind: LibraryKind) -> Result<Vec<LibraryEntry>> {
    Ok(Library::load(&cx.paths)?
        .entries
        .into_iter()
        .filter(|e| e.kind == kind)
        .collect())
}

/// `image:remove` / `iso:remove`: refused while a machine uses it; else every copy and the record.
pub fn remove(cx: &Context, kind: LibraryKind, name: &str) -> Result<LibraryRemoved> {
    // Held while the users are asked and the copies deleted: a formation being built on the
    // entry holds it too, so it is either refused here or sees the entry gone.
    let _lock = EntryLock::exclusive(&cx.paths, kind, name)?;
    let Some(entry) = Library::load(&cx.paths)?.get(kind, name).cloned() else {
        return Err(Error::not_found(format!("no {kind} {name} in the library"))
            .with_hint(format!("`nepho {kind}:list` shows what is there")));
    };
    with_library(cx, async |ops| {
        let users = ops
            .users(kind, &entry.hosts)
            .await
            .map_err(providers::provider_error)?;
        if !users.is_empty() {
            return Err(in_use(kind, name, &users, "remove"));
        }
        let data = event(kind, name, "remove", None);
        crate::engine::record_operation(&*journal(cx)?, data, async {
            ops.discard(&entry.hosts)
                .await
                .map_err(providers::provider_error)
        })
        .await
    })?;
    Library::update(&cx.paths, |library| library.take(kind, name))?;
    Ok(LibraryRemoved {
        kind,
        name: name.to_string(),
        hosts: entry.hosts.keys().cloned().collect(),
    })
}

/// `cluster:sync`: every host gets a checked copy of every entry (copied from a host whose
/// copy is right). The record then lists, per entry, only the hosts with a right copy.
pub fn sync(cx: &Context) -> Result<Vec<HostSync>> {
    // Shared: a sync only puts right copies in place, beside builds and other syncs; an add,
    // replace or remove of an entry waits for it.
    let _locks = Library::load(&cx.paths)?
        .entries
        .iter()
        .map(|e| EntryLock::shared(&cx.paths, e.kind, &e.name))
        .collect::<Result<Vec<_>>>()?;
    // Read again under the locks: an entry removed meanwhile is not synced (one added
    // meanwhile is not either, and is left as its add records it).
    let items: Vec<_> = Library::load(&cx.paths)?
        .entries
        .iter()
        .map(LibraryEntry::item)
        .collect();
    let journal = journal(cx)?;
    let data = OperationData::Library {
        action: "sync".into(),
        kind: None,
        name: None,
        sha256: None,
    };
    let note = |status, message: &str| {
        journal.record(
            None,
            data.kind(),
            status,
            message,
            None,
            Some(EventData::Operation(data.clone())),
        );
    };
    note(EventStatus::Started, &data.to_string());
    let reports = with_library(cx, async |ops| Ok(ops.sync(&items).await));
    let reports = match reports {
        Ok(r) => r,
        Err(e) => {
            note(EventStatus::Failed, &format!("{data} failed: {e}"));
            return Err(e);
        }
    };
    Library::update(&cx.paths, |library| {
        for entry in &mut library.entries {
            if !items.contains(&entry.item()) {
                continue;
            }
            entry.hosts.clear();
            for report in &reports {
                let good = report
                    .items
                    .iter()
                    .find(|i| i.kind == entry.kind && i.name == entry.name && i.status != "failed");
                if let Some(item) = good {
                    entry.hosts.insert(report.host.clone(), item.path.clone());
                }
            }
        }
    })?;
    let copied: usize = reports.iter().map(HostSync::copied).sum();
    let failed: usize = reports.iter().map(HostSync::failed).sum();
    if failed > 0 {
        note(
            EventStatus::Failed,
            &format!("{data}: {copied} copied, {failed} failed"),
        );
    } else {
        note(
            EventStatus::Succeeded,
            &format!("{data}: done, {copied} copied"),
        );
    }
    Ok(reports)
}

/// The error `cluster:sync` exits with (after its report is printed) when a copy failed.
pub fn all_synced(reports: &[HostSync]) -> Result<()> {
    let failed: usize = reports.iter().map(HostSync::failed).sum();
    if failed > 0 {
        return Err(Error::Provider {
            message: format!("{failed} copies could not be made or checked (see REASON)"),
            hint: Some("fix the host, then run `nepho cluster:sync` again".into()),
        });
    }
    Ok(())
}

/// What `formation:attach-iso` inserts: a registered ISO when the argument is one's name (a
/// file of the same name is reached as `./NAME`), else the file. A registered ISO comes with
/// its entry held (shared) until the caller has it in the drive, where `iso:remove` then sees it.
pub fn resolve_iso(cx: &Context, iso: &Path) -> Result<(IsoMedium, Option<EntryLock>)> {
    let arg = iso.to_string_lossy();
    let plain_name = iso.components().count() == 1 && !arg.contains('/');
    if plain_name
        && Library::load(&cx.paths)?
            .get(LibraryKind::Iso, &arg)
            .is_some()
    {
        let lock = EntryLock::shared(&cx.paths, LibraryKind::Iso, &arg)?;
        // Read again under the lock: it may have been removed meanwhile.
        if let Some(entry) = Library::load(&cx.paths)?.get(LibraryKind::Iso, &arg) {
            let medium = IsoMedium::Library {
                name: entry.name.clone(),
                copies: entry.hosts.clone(),
            };
            return Ok((medium, Some(lock)));
        }
    }
    if plain_name && !iso.exists() {
        return Err(Error::not_found(format!(
            "no ISO {arg} in the library, and no file {arg} here"
        ))
        .with_hint("`nepho iso:list` shows the registered ISOs (`nepho iso:add NAME FILE` adds one); a path to an ISO file works too"));
    }
    Ok((IsoMedium::File(iso.to_path_buf()), None))
}
