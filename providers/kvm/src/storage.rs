//! Disks, LUNs and seeds on the hosts: qcow2 overlays (qemu-img), iSCSI LUNs (tgtadm) holding
//! raw copies of images, and NoCloud seed ISOs. Commands run locally or over ssh.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nepho_provider_api::ProviderError;

use crate::cluster::{HostConfig, IscsiConfig};
use crate::cmd::{self, io_failed, shell_quote};
use crate::remote::SshTarget;

const IMG_TIMEOUT: Duration = Duration::from_secs(600);
const SHORT: Duration = Duration::from_secs(60);

/// Where a command runs: this machine, or `ssh user@host`.
#[derive(Debug, Clone)]
pub enum Runner {
    Local,
    Ssh(SshTarget),
}

impl Runner {
    pub fn for_host(host: &HostConfig) -> Runner {
        match host.ssh_target() {
            Some(t) if !host.is_local() => Runner::Ssh(t),
            _ => Runner::Local,
        }
    }

    pub fn for_iscsi(iscsi: &IscsiConfig) -> Runner {
        match iscsi.tgtadm.strip_prefix("ssh:") {
            Some(t) => Runner::Ssh(SshTarget::plain(t)),
            None => Runner::Local,
        }
    }

    pub async fn run(
        &self,
        program: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<cmd::Output, ProviderError> {
        match self {
            Runner::Local => cmd::run(program, args, timeout).await,
            Runner::Ssh(target) => {
                let line = std::iter::once(program.to_string())
                    .chain(args.iter().map(|a| shell_quote(a)))
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut ssh = target.ssh_args();
                ssh.push(line);
                let ssh: Vec<&str> = ssh.iter().map(String::as_str).collect();
                cmd::run("ssh", &ssh, timeout).await
            }
        }
    }

    pub async fn check(
        &self,
        program: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<String, ProviderError> {
        let out = self.run(program, args, timeout).await?;
        if out.success {
            Ok(out.stdout)
        } else {
            Err(ProviderError::Failed {
                message: format!(
                    "`{program} {}` failed: {}",
                    args.join(" "),
                    out.stderr.trim()
                ),
                hint: None,
            })
        }
    }

    pub async fn exists(&self, path: &Path) -> bool {
        match self {
            Runner::Local => path.exists(),
            _ => self
                .run("test", &["-e", &path.to_string_lossy()], SHORT)
                .await
                .is_ok_and(|o| o.success),
        }
    }

    /// A directory QEMU (running as libvirt-qemu) can traverse.
    pub async fn mkdir(&self, dir: &Path) -> Result<(), ProviderError> {
        let d = dir.to_string_lossy();
        self.check("mkdir", &["-p", &d], SHORT).await?;
        self.check("chmod", &["0755", &d], SHORT).await.map(|_| ())
    }

    pub async fn remove(&self, paths: &[PathBuf]) -> Result<(), ProviderError> {
        if paths.is_empty() {
            return Ok(());
        }
        let mut args = vec!["-rf".to_string(), "--".to_string()];
        args.extend(paths.iter().map(|p| p.to_string_lossy().into_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.check("rm", &args, SHORT).await.map(|_| ())
    }

    pub async fn rename(&self, from: &Path, to: &Path) -> Result<(), ProviderError> {
        self.check(
            "mv",
            &["-f", &from.to_string_lossy(), &to.to_string_lossy()],
            SHORT,
        )
        .await
        .map(|_| ())
    }

    /// Copies a local file to `dest` on the runner's host with mode 0600.
    pub async fn upload_private(&self, local: &Path, dest: &Path) -> Result<(), ProviderError> {
        let tmp = PathBuf::from(format!("{}.tmp", dest.display()));
        match self {
            Runner::Local => {
                tokio::fs::copy(local, &tmp)
                    .await
                    .map_err(|e| io_failed(&tmp, e))?;
                tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                    .await
                    .map_err(|e| io_failed(&tmp, e))?;
            }
            Runner::Ssh(target) => {
                let mut scp = vec!["-q".to_string(), "-p".to_string()];
                scp.extend(target.scp_args());
                scp.push(local.to_string_lossy().into_owned());
                scp.push(target.scp_path(&tmp));
                let scp: Vec<&str> = scp.iter().map(String::as_str).collect();
                cmd::check("scp", &scp, SHORT).await?;
                self.check("chmod", &["0600", &tmp.to_string_lossy()], SHORT)
                    .await?;
            }
        }
        self.rename(&tmp, dest).await
    }
}

/// Virtual size in bytes of an image.
pub async fn virtual_size(runner: &Runner, image: &Path) -> Result<u64, ProviderError> {
    let out = runner
        .check(
            "qemu-img",
            &["info", "-U", "--output=json", &image.to_string_lossy()],
            SHORT,
        )
        .await?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| ProviderError::Failed {
        message: format!("qemu-img info {}: {e}", image.display()),
        hint: None,
    })?;
    Ok(v["virtual-size"].as_u64().unwrap_or(0))
}

/// A qcow2 disk: an overlay of `base` (boot disk) or an empty volume. Written under a
/// temporary name and renamed, so an existing file is always complete.
pub async fn create_qcow2(
    runner: &Runner,
    path: &Path,
    base: Option<&Path>,
    size_gb: u64,
) -> Result<bool, ProviderError> {
    if runner.exists(path).await {
        return Ok(false);
    }
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let mut size = size_gb << 30;
    let tmp_s = tmp.to_string_lossy().into_owned();
    match base {
        Some(base) => {
            size = size.max(virtual_size(runner, base).await?);
            let base_s = base.to_string_lossy().into_owned();
            runner
                .check(
                    "qemu-img",
                    &[
                        "create",
                        "-q",
                        "-f",
                        "qcow2",
                        "-F",
                        "qcow2",
                        "-b",
                        &base_s,
                        &tmp_s,
                        &size.to_string(),
                    ],
                    IMG_TIMEOUT,
                )
                .await?;
        }
        None => {
            runner
                .check(
                    "qemu-img",
                    &["create", "-q", "-f", "qcow2", &tmp_s, &size.to_string()],
                    IMG_TIMEOUT,
                )
                .await?;
        }
    }
    runner.rename(&tmp, path).await?;
    Ok(true)
}

/// A machine's swap file: raw and sparse (it takes space as the guest swaps), 0600. The
/// guest makes it swap at boot. `false` when it exists already.
pub async fn create_swap(
    runner: &Runner,
    swap: &crate::libvirt::SwapRecord,
) -> Result<bool, ProviderError> {
    if runner.exists(&swap.path).await {
        return Ok(false);
    }
    if let Some(dir) = swap.path.parent() {
        runner.mkdir(dir).await?;
    }
    let tmp = PathBuf::from(format!("{}.tmp", swap.path.display()));
    let t = tmp.to_string_lossy();
    runner
        .check(
            "truncate",
            &["-s", &format!("{}M", swap.size_mb), &t],
            SHORT,
        )
        .await?;
    runner.check("chmod", &["0600", &t], SHORT).await?;
    runner.rename(&tmp, &swap.path).await?;
    Ok(true)
}

/// A raw LUN backing file: a full copy of `base` (boot disk) or an empty sparse file.
pub async fn create_raw(
    runner: &Runner,
    path: &Path,
    base: Option<&Path>,
    size_gb: u64,
) -> Result<bool, ProviderError> {
    if runner.exists(path).await {
        return Ok(false);
    }
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let tmp_s = tmp.to_string_lossy().into_owned();
    let mut size = size_gb << 30;
    if let Some(base) = base {
        size = size.max(virtual_size(runner, base).await?);
        runner
            .check(
                "qemu-img",
                &[
                    "convert",
                    "-q",
                    "-U",
                    "-O",
                    "raw",
                    &base.to_string_lossy(),
                    &tmp_s,
                ],
                IMG_TIMEOUT,
            )
            .await?;
        runner
            .check(
                "qemu-img",
                &["resize", "-q", "-f", "raw", &tmp_s, &size.to_string()],
                IMG_TIMEOUT,
            )
            .await?;
    } else {
        runner
            .check(
                "qemu-img",
                &["create", "-q", "-f", "raw", &tmp_s, &size.to_string()],
                IMG_TIMEOUT,
            )
            .await?;
    }
    runner.rename(&tmp, path).await?;
    Ok(true)
}

/// One tgt target as `tgtadm --op show --mode target` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub tid: u32,
    pub iqn: String,
    pub luns: Vec<(u32, String)>,
}

pub fn parse_targets(show: &str) -> Vec<Target> {
    let mut targets: Vec<Target> = Vec::new();
    let mut lun: Option<u32> = None;
    for line in show.lines() {
        if let Some(rest) = line.strip_prefix("Target ") {
            if let Some((tid, iqn)) = rest.split_once(": ")
                && let Ok(tid) = tid.trim().parse()
            {
                targets.push(Target {
                    tid,
                    iqn: iqn.trim().to_string(),
                    luns: Vec::new(),
                });
                lun = None;
            }
            continue;
        }
        let t = line.trim();
        if let Some(n) = t.strip_prefix("LUN: ") {
            lun = n.trim().parse().ok();
        } else if let Some(path) = t.strip_prefix("Backing store path: ")
            && let (Some(n), Some(target)) = (lun, targets.last_mut())
            && n > 0
        {
            target.luns.push((n, path.trim().to_string()));
        }
    }
    targets
}

/// tgtadm on the iSCSI target host.
pub struct Tgt<'a> {
    pub iscsi: &'a IscsiConfig,
    pub runner: Runner,
}

impl Tgt<'_> {
    pub fn new(iscsi: &IscsiConfig) -> Tgt<'_> {
        Tgt {
            iscsi,
            runner: Runner::for_iscsi(iscsi),
        }
    }

    async fn tgtadm(&self, args: &[&str]) -> Result<String, ProviderError> {
        let port = self.iscsi.control_port.to_string();
        let mut full = vec!["-C", &port, "--lld", "iscsi"];
        full.extend_from_slice(args);
        self.runner.check("tgtadm", &full, SHORT).await
    }

    pub async fn targets(&self) -> Result<Vec<Target>, ProviderError> {
        let out = self
            .tgtadm(&["--op", "show", "--mode", "target"])
            .await
            .map_err(|e| ProviderError::Unavailable {
                message: format!("the iSCSI target (tgtd) does not answer: {e}"),
                hint: Some(
                    "start it: scripts/setup/tgtd.sh start 3260 (Debian package tgt)".to_string(),
                ),
            })?;
        Ok(parse_targets(&out))
    }

    /// The target's tid, creating and binding it when missing.
    pub async fn ensure_target(&self, iqn: &str) -> Result<u32, ProviderError> {
        for _attempt in 0..5 {
            let targets = self.targets().await?;
            if let Some(t) = targets.iter().find(|t| t.iqn == iqn) {
                return Ok(t.tid);
            }
            let tid = targets.iter().map(|t| t.tid).max().unwrap_or(0) + 1;
            let tid_s = tid.to_string();
            if self
                .tgtadm(&[
                    "--op", "new", "--mode", "target", "--tid", &tid_s, "-T", iqn,
                ])
                .await
                .is_err()
            {
                continue; // another process took the tid meanwhile
            }
            self.tgtadm(&[
                "--op",
                "bind",
                "--mode",
                "target",
                "--tid",
                &tid_s,
                "-I",
                &self.iscsi.allow,
            ])
            .await?;
            return Ok(tid);
        }
        Err(ProviderError::Failed {
            message: format!("could not create iSCSI target {iqn}"),
            hint: None,
        })
    }

    pub async fn ensure_lun(&self, tid: u32, lun: u32, file: &Path) -> Result<bool, ProviderError> {
        let targets = self.targets().await?;
        if targets
            .iter()
            .any(|t| t.tid == tid && t.luns.iter().any(|(n, _)| *n == lun))
        {
            return Ok(false);
        }
        self.tgtadm(&[
            "--op",
            "new",
            "--mode",
            "logicalunit",
            "--tid",
            &tid.to_string(),
            "--lun",
            &lun.to_string(),
            "-b",
            &file.to_string_lossy(),
        ])
        .await?;
        Ok(true)
    }

    /// Removes one LUN from a target (a no-op when it is not there).
    pub async fn delete_lun(&self, iqn: &str, lun: u32) -> Result<(), ProviderError> {
        let targets = self.targets().await?;
        let Some(t) = targets.iter().find(|t| t.iqn == iqn) else {
            return Ok(());
        };
        if !t.luns.iter().any(|(n, _)| *n == lun) {
            return Ok(());
        }
        self.tgtadm(&[
            "--op",
            "delete",
            "--mode",
            "logicalunit",
            "--tid",
            &t.tid.to_string(),
            "--lun",
            &lun.to_string(),
        ])
        .await
        .map(|_| ())
    }

    /// Deletes every target whose IQN matches; returns the backing files of their LUNs.
    pub async fn delete_targets(
        &self,
        matches: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Vec<PathBuf>, ProviderError> {
        let mut files = Vec::new();
        for t in self.targets().await? {
            if matches(&t.iqn) {
                self.tgtadm(&[
                    "--op",
                    "delete",
                    "--mode",
                    "target",
                    "--tid",
                    &t.tid.to_string(),
                    "--force",
                ])
                .await?;
                files.extend(t.luns.into_iter().map(|(_, f)| PathBuf::from(f)));
            }
        }
        Ok(files)
    }
}

/// Files of a NoCloud seed (relative path → contents); written 0600 into an ISO.
pub async fn build_seed_iso(
    files: &[(String, String)],
    staging: &Path,
    out: &Path,
) -> Result<(), ProviderError> {
    let _ = tokio::fs::remove_dir_all(staging).await;
    tokio::fs::create_dir_all(staging.join("nepho"))
        .await
        .map_err(|e| io_failed(staging, e))?;
    tokio::fs::set_permissions(staging, std::fs::Permissions::from_mode(0o700))
        .await
        .map_err(|e| io_failed(staging, e))?;
    for (name, contents) in files {
        let path = staging.join(name);
        tokio::fs::write(&path, contents)
            .await
            .map_err(|e| io_failed(&path, e))?;
    }
    let tmp = PathBuf::from(format!("{}.tmp", out.display()));
    let result = cmd::check(
        "genisoimage",
        &[
            "-quiet",
            "-output",
            &tmp.to_string_lossy(),
            "-volid",
            "cidata",
            "-joliet",
            "-rock",
            &staging.to_string_lossy(),
        ],
        SHORT,
    )
    .await;
    let _ = tokio::fs::remove_dir_all(staging).await;
    result?;
    tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .await
        .map_err(|e| io_failed(&tmp, e))?;
    tokio::fs::rename(&tmp, out)
        .await
        .map_err(|e| io_failed(out, e))
}

/// Target IQN -> initiators with a session (`I_T nexus`), from `tgtadm --op show`.
pub fn sessions_by_target(show: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in show.lines() {
        if let Some(rest) = line.strip_prefix("Target ") {
            current = rest.split_once(": ").map(|(_, iqn)| iqn.trim().to_string());
            continue;
        }
        let t = line.trim();
        if let (Some(iqn), Some(who)) = (&current, t.strip_prefix("Initiator: ")) {
            let who = who.split(" alias:").next().unwrap_or(who).trim();
            map.entry(iqn.clone()).or_default().push(who.to_string());
        } else if let (Some(iqn), Some(ip)) = (&current, t.strip_prefix("IP Address: "))
            && let Some(last) = map.get_mut(iqn).and_then(|v| v.last_mut())
        {
            last.push_str(&format!(" ({})", ip.trim()));
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_read_from_tgtadm_show() {
        let show = "Target 1: iqn.a:f:db\n    System information:\n        Driver: iscsi\n        State: ready\n    I_T nexus information:\n        I_T nexus: 3\n            Initiator: iqn.a:f:db:initiator alias: none\n            Connection: 0\n                IP Address: 127.0.0.1\n    LUN information:\n        LUN: 0\nTarget 2: iqn.a:f:idle\n    System information:\n        Driver: iscsi\n    I_T nexus information:\n    LUN information:\n";
        let s = sessions_by_target(show);
        assert_eq!(
            s.get("iqn.a:f:db").unwrap(),
            &vec!["iqn.a:f:db:initiator (127.0.0.1)".to_string()]
        );
        assert!(!s.contains_key("iqn.a:f:idle"));
    }

    #[test]
    fn parses_tgtadm_show() {
        let show = "Target 1: iqn.a:f:web\n    System information:\n        Driver: iscsi\n    LUN information:\n        LUN: 0\n            Type: controller\n            Backing store path: None\n        LUN: 1\n            Type: disk\n            Backing store path: /x/web-disk0.raw\n    ACL information:\n        ALL\nTarget 3: iqn.b\n";
        let t = parse_targets(show);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].luns, vec![(1, "/x/web-disk0.raw".to_string())]);
        assert_eq!(t[1].tid, 3);
    }
}
