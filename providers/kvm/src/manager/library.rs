//! The image and ISO library on the hosts ([`LibraryOps`]): every host keeps a copy of each
//! entry in `<dir>/_library/` (see [`names::library_path`]), checked with `sha256sum` on the
//! host itself after the copy.
//!
//! A copy is written as a hidden `.NAME.EXT.WRITER.part` next to its place, checked, and
//! renamed into place only once every host has a checked one: a failed add leaves no new copy
//! anywhere, and a `--replace` that fails leaves the old copies as they were. What a killed
//! nepho leaves is swept by the next add or sync ([`sweep_parts`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use nepho_provider_api::writer::Writer;
use nepho_provider_api::{
    BoxFuture, HostCopies, HostSync, LibraryItem, LibraryKind, LibraryOps, LibraryUser,
    ProviderError, SyncedItem,
};

use super::migrate::copy_between;
use crate::KvmProvider;
use crate::cluster::HostConfig;
use crate::cmd;
use crate::libvirt;
use crate::media::attached_iso;
use crate::names::{library_kind_dir, library_path};
use crate::storage::Runner;

/// Copying and checking a multi-GiB image over ssh takes a while.
const COPY_TIMEOUT: Duration = Duration::from_secs(3600);
const SHORT: Duration = Duration::from_secs(60);
/// How long a copy written by a nepho on another machine may lie untouched before it counts
/// as abandoned: every step of a live copy (upload, checksum) gives up after [`COPY_TIMEOUT`].
const FOREIGN_PART_MINUTES: u64 = 2 * COPY_TIMEOUT.as_secs() / 60;

fn on_host(host: &str, e: ProviderError) -> ProviderError {
    match e {
        ProviderError::Failed { message, hint } | ProviderError::Invalid { message, hint } => {
            ProviderError::Failed {
                message: format!("host {host}: {message}"),
                hint,
            }
        }
        ProviderError::Unavailable { message, hint } => ProviderError::Unavailable {
            message: format!("host {host}: {message}"),
            hint,
        },
        ProviderError::NotFound(m) => ProviderError::NotFound(format!("host {host}: {m}")),
        ProviderError::Cancelled => ProviderError::Cancelled,
    }
}

/// The hidden name this process writes and checks a copy under before it takes its place.
fn part_path(dest: &Path, writer: &Writer) -> PathBuf {
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    dest.with_file_name(format!(".{name}.{writer}.part"))
}

/// Deletes the copies in `dir` on the runner's host that no live nepho is writing: their
/// writer is gone, or it ran on another machine (or an older nepho, whose names carry no
/// writer) and the copy has not changed for longer than any live copy stays unchanged.
async fn sweep_parts(runner: &Runner, dir: &Path) -> Result<(), ProviderError> {
    if !runner.exists(dir).await {
        return Ok(());
    }
    let old = format!("+{FOREIGN_PART_MINUTES}");
    let dir_arg = dir.to_string_lossy();
    let args = [
        &*dir_arg,
        "-maxdepth",
        "1",
        "-type",
        "f",
        "-name",
        ".*.part",
        "(",
        "-mmin",
        &old,
        "-printf",
        "old %f\\n",
        "-o",
        "-printf",
        "new %f\\n",
        ")",
    ];
    let found = runner.check("find", &args, SHORT).await?;
    let stale: Vec<PathBuf> = found
        .lines()
        .filter_map(|line| {
            let (age, name) = line.split_once(' ')?;
            let writer = name.strip_suffix(".part").and_then(Writer::ending);
            let stale = match writer {
                Some(writer) => writer.gone().unwrap_or(age == "old"),
                None => age == "old",
            };
            stale.then(|| dir.join(name))
        })
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    tracing::info!(?stale, "removing copies abandoned by a nepho that died");
    runner.remove(&stale).await
}

/// `sha256sum` of `path` on the runner's host; `None` when the file is missing.
async fn sha256_on(runner: &Runner, path: &Path) -> Result<Option<String>, ProviderError> {
    if !runner.exists(path).await {
        return Ok(None);
    }
    let out = runner
        .check("sha256sum", &["--", &path.to_string_lossy()], COPY_TIMEOUT)
        .await?;
    Ok(out.split_whitespace().next().map(str::to_ascii_lowercase))
}

/// Copies this machine's `file` to `dest` on the runner's host (mode 0644: QEMU reads it).
async fn upload(runner: &Runner, file: &Path, dest: &Path) -> Result<(), ProviderError> {
    let (f, d) = (file.to_string_lossy(), dest.to_string_lossy());
    match runner {
        Runner::Local => {
            cmd::check("cp", &["--sparse=always", "--", &f, &d], COPY_TIMEOUT).await?;
        }
        Runner::Ssh(target) => {
            let mut scp = vec!["-q".to_string()];
            scp.extend(target.scp_args());
            scp.push(f.into_owned());
            scp.push(target.scp_path(dest));
            let scp: Vec<&str> = scp.iter().map(String::as_str).collect();
            cmd::check("scp", &scp, COPY_TIMEOUT).await?;
        }
    }
    runner
        .check("chmod", &["0644", &d], SHORT)
        .await
        .map(|_| ())
}

/// Checks the copy at `part` against the item's checksum (removing it when it differs).
async fn verify(runner: &Runner, part: &Path, item: &LibraryItem) -> Result<(), ProviderError> {
    let found = sha256_on(runner, part).await?;
    if found.as_deref() == Some(item.sha256.as_str()) {
        return Ok(());
    }
    let _ = runner.remove(&[part.to_path_buf()]).await;
    Err(ProviderError::Failed {
        message: format!(
            "the copy of {item} arrived with SHA-256 {} instead of {}",
            found.as_deref().unwrap_or("(no file)"),
            item.sha256
        ),
        hint: Some("check the host's disk space and the connection, then try again".into()),
    })
}

impl KvmProvider {
    /// One host's checked copy of `file`, under its hidden `.part` name.
    async fn stage(
        &self,
        host: &HostConfig,
        item: &LibraryItem,
        file: &Path,
    ) -> Result<(PathBuf, PathBuf), ProviderError> {
        let runner = Runner::for_host(host);
        let dest = library_path(&self.cluster, host, item.kind, &item.name);
        let part = part_path(&dest, &Writer::this_process());
        if let Some(dir) = dest.parent() {
            runner.mkdir(dir).await?;
        }
        if let Err(e) = upload(&runner, file, &part).await {
            let _ = runner.remove(std::slice::from_ref(&part)).await;
            return Err(e);
        }
        verify(&runner, &part, item).await?;
        Ok((part, dest))
    }

    /// [`sweep_parts`] in both of `host`'s library directories.
    async fn sweep_host(&self, host: &HostConfig) -> Result<(), ProviderError> {
        let runner = Runner::for_host(host);
        for kind in [LibraryKind::Image, LibraryKind::Iso] {
            sweep_parts(&runner, &library_kind_dir(&self.cluster, host, kind)).await?;
        }
        Ok(())
    }

    async fn store_everywhere(
        &self,
        item: &LibraryItem,
        file: &Path,
    ) -> Result<HostCopies, ProviderError> {
        for host in &self.cluster.hosts {
            // Best effort: a host that cannot be swept fails (with a reason) when it is copied to.
            if let Err(e) = self.sweep_host(host).await {
                tracing::warn!(host = %host.name, "cannot sweep abandoned copies: {e}");
            }
        }
        let mut staged: Vec<(&HostConfig, PathBuf, PathBuf)> = Vec::new();
        let mut failure = None;
        for host in &self.cluster.hosts {
            match self.stage(host, item, file).await {
                Ok((part, dest)) => staged.push((host, part, dest)),
                Err(e) => {
                    failure = Some(on_host(&host.name, e));
                    break;
                }
            }
        }
        if let Some(e) = failure {
            for (host, part, _) in &staged {
                let _ = Runner::for_host(host)
                    .remove(std::slice::from_ref(part))
                    .await;
            }
            return Err(e);
        }
        let mut copies = HostCopies::new();
        for (host, part, dest) in staged {
            Runner::for_host(host)
                .rename(&part, &dest)
                .await
                .map_err(|e| on_host(&host.name, e))?;
            copies.insert(host.name.clone(), dest);
        }
        Ok(copies)
    }

    async fn discard_copies(&self, copies: &HostCopies) -> Result<(), ProviderError> {
        for (name, path) in copies {
            let Some(host) = self.cluster.host(name) else {
                continue;
            };
            Runner::for_host(host)
                .remove(std::slice::from_ref(path))
                .await
                .map_err(|e| on_host(name, e))?;
        }
        Ok(())
    }

    async fn library_users(
        &self,
        kind: LibraryKind,
        copies: &HostCopies,
    ) -> Result<Vec<LibraryUser>, ProviderError> {
        let mut users = Vec::new();
        for host in &self.cluster.hosts {
            let Some(copy) = copies.get(&host.name) else {
                continue;
            };
            let domains = libvirt::list_all(&host.uri, Duration::from_secs(20))
                .await
                .map_err(|e| {
                    on_host(
                        &host.name,
                        ProviderError::Unavailable {
                            message: format!(
                                "cannot tell whether its machines use {}: {e}",
                                copy.display()
                            ),
                            hint: Some(
                                "start the host's libvirtd, or take the host out of the cluster file"
                                    .into(),
                            ),
                        },
                    )
                })?;
            for (name, _) in domains {
                let Ok(live) = libvirt::virsh(&host.uri, &["dumpxml", &name]).await else {
                    continue; // vanished meanwhile
                };
                let Some(record) = libvirt::record_from_xml(&live) else {
                    continue; // not nepho's
                };
                let uses = match kind {
                    LibraryKind::Image => record.base_image.as_ref() == Some(copy),
                    LibraryKind::Iso => {
                        let inactive = libvirt::virsh(&host.uri, &["dumpxml", "--inactive", &name])
                            .await
                            .unwrap_or_default();
                        attached_iso(&live).as_ref() == Some(copy)
                            || attached_iso(&inactive).as_ref() == Some(copy)
                    }
                };
                if uses {
                    users.push(LibraryUser {
                        formation: record.formation,
                        machine: record.machine,
                        host: host.name.clone(),
                    });
                }
            }
        }
        Ok(users)
    }

    /// Gives `host` a checked copy of `item` from `source` (another host's right copy).
    async fn repair(
        &self,
        source: &(Runner, PathBuf),
        host: &HostConfig,
        item: &LibraryItem,
        dest: &Path,
    ) -> Result<(), ProviderError> {
        let runner = Runner::for_host(host);
        let part = part_path(dest, &Writer::this_process());
        if let Some(dir) = dest.parent() {
            runner.mkdir(dir).await?;
        }
        if let Err(e) = copy_between(&source.0, &source.1, &runner, &part).await {
            let _ = runner.remove(std::slice::from_ref(&part)).await;
            return Err(e);
        }
        runner
            .check("chmod", &["0644", &part.to_string_lossy()], SHORT)
            .await?;
        verify(&runner, &part, item).await?;
        runner.rename(&part, dest).await
    }

    async fn sync_hosts(&self, items: &[LibraryItem]) -> Vec<HostSync> {
        let hosts = &self.cluster.hosts;
        for host in hosts {
            if let Err(e) = self.sweep_host(host).await {
                tracing::warn!(host = %host.name, "cannot sweep abandoned copies: {e}");
            }
        }
        let mut reports: Vec<HostSync> = hosts
            .iter()
            .map(|h| HostSync {
                host: h.name.clone(),
                items: Vec::new(),
            })
            .collect();
        for item in items {
            // Which hosts have it right, and one of them to copy from.
            let mut checked = Vec::new();
            let mut source = None;
            for host in hosts {
                let runner = Runner::for_host(host);
                let path = library_path(&self.cluster, host, item.kind, &item.name);
                let sum = sha256_on(&runner, &path).await;
                let right = matches!(&sum, Ok(Some(s)) if *s == item.sha256);
                if right && source.is_none() {
                    source = Some((runner, path.clone()));
                }
                checked.push((path, sum, right));
            }
            for ((host, report), (path, sum, right)) in hosts.iter().zip(&mut reports).zip(checked)
            {
                let outcome = match (&sum, right, &source) {
                    (_, true, _) => Ok("present"),
                    (Err(e), _, _) => Err(format!("cannot read the copy: {e}")),
                    (_, false, None) => Err(format!(
                        "no host has a copy with SHA-256 {}: add it again with `nepho {}:add {} FILE --replace`",
                        item.sha256, item.kind, item.name
                    )),
                    (_, false, Some(source)) => self
                        .repair(source, host, item, &path)
                        .await
                        .map(|()| "copied")
                        .map_err(|e| e.to_string()),
                };
                let (status, reason) = match outcome {
                    Ok(status) => (status.to_string(), None),
                    Err(reason) => ("failed".to_string(), Some(reason)),
                };
                report.items.push(SyncedItem {
                    kind: item.kind,
                    name: item.name.clone(),
                    status,
                    path,
                    reason,
                });
            }
        }
        reports
    }
}

impl LibraryOps for KvmProvider {
    fn hosts(&self) -> Vec<String> {
        self.cluster.hosts.iter().map(|h| h.name.clone()).collect()
    }

    fn declared_images(&self) -> Vec<String> {
        self.cluster.images.keys().cloned().collect()
    }

    fn store<'a>(
        &'a self,
        item: &'a LibraryItem,
        file: &'a Path,
    ) -> BoxFuture<'a, Result<HostCopies, ProviderError>> {
        Box::pin(self.store_everywhere(item, file))
    }

    fn discard<'a>(&'a self, copies: &'a HostCopies) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(self.discard_copies(copies))
    }

    fn users<'a>(
        &'a self,
        kind: LibraryKind,
        copies: &'a HostCopies,
    ) -> BoxFuture<'a, Result<Vec<LibraryUser>, ProviderError>> {
        Box::pin(self.library_users(kind, copies))
    }

    fn sync<'a>(&'a self, items: &'a [LibraryItem]) -> BoxFuture<'a, Vec<HostSync>> {
        Box::pin(self.sync_hosts(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_staged_under_a_hidden_name_beside_their_place() {
        let me = Writer::this_process();
        let part = part_path(Path::new("/v/h1/_library/images/deb-12.qcow2"), &me);
        assert_eq!(
            part,
            PathBuf::from(format!("/v/h1/_library/images/.deb-12.qcow2.{me}.part"))
        );
        let name = part.file_name().unwrap().to_string_lossy();
        let stem = name.strip_suffix(".part").unwrap();
        assert_eq!(Writer::ending(stem), Some(me), "the sweep finds the writer");
    }

    #[test]
    fn a_host_error_names_the_host() {
        let e = on_host(
            "h2",
            ProviderError::Invalid {
                message: "disk full".into(),
                hint: None,
            },
        );
        assert_eq!(e.to_string(), "host h2: disk full");
    }
}
