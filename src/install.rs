//! Installed cloudlets: install (clone, validate, then rename into place), list, update, uninstall.
//!
//! An install never leaves a half-written cloudlet behind: everything happens in a temporary
//! directory next to the target and becomes visible with one `rename`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nepho_provider_api::writer::Writer;

use serde::{Deserialize, Serialize};

use crate::cloudlet::{Cloudlet, CloudletFormat, CloudletName, bundled};
use crate::config::{Paths, write_atomic};
use crate::error::{Error, IoContext, Result};
use crate::git::Git;
use crate::validate::{self, BrokenBlueprint, checked};

/// What nepho remembers about an install (stored in the clone's `.git/nepho-install.json`).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InstallRecord {
    pub name: String,
    /// Git URL, or `bundled:NAME` for the examples compiled into nepho.
    pub source: String,
    /// The `--ref` asked for, if any.
    pub reference: Option<String>,
    /// The branch followed by `cloudlet:update` (none when pinned to a tag or commit).
    pub branch: Option<String>,
    pub commit: String,
    pub installed_at: String,
    pub updated_at: Option<String>,
    pub submodules: Vec<String>,
    /// Nepho 1.x blueprints that failed validation when installed or updated (1.x installed
    /// them anyway and failed only when one was used; so does nepho, and says which).
    #[serde(default)]
    pub broken_blueprints: Vec<BrokenBlueprint>,
}

#[derive(Debug, Clone)]
pub struct Installed {
    pub dir: PathBuf,
    pub cloudlet: Cloudlet,
    pub record: Option<InstallRecord>,
}

fn record_path(dir: &Path) -> PathBuf {
    dir.join(".git").join("nepho-install.json")
}

fn read_record(dir: &Path) -> Option<InstallRecord> {
    let text = std::fs::read_to_string(record_path(dir)).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_record(dir: &Path, record: &InstallRecord) -> Result<()> {
    let json = serde_json::to_vec_pretty(record).map_err(|e| Error::Other(e.to_string()))?;
    write_atomic(&record_path(dir), &json)
}

/// How long a temporary directory of a nepho on another machine (a shared home) or before a
/// reboot is left alone: no install runs that long.
const FOREIGN_TEMP_AGE: Duration = Duration::from_secs(24 * 3600);

/// Removes temporary install directories left by a nepho that died (see [`Writer`]).
fn sweep_stale(cloudlets: &Path) {
    let Ok(entries) = std::fs::read_dir(cloudlets) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with(".tmp-") || name.starts_with(".trash-")) {
            continue;
        }
        // `.tmp-install-NONCE-WRITER`, `.trash-NONCE-WRITER`.
        let Some(writer) = Writer::ending(&name) else {
            continue; // not a name nepho makes: leave it alone
        };
        let idle = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default();
        if writer.is_stale(idle, FOREIGN_TEMP_AGE) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A directory that is deleted unless `keep` is called.
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    fn new(parent: &Path, tag: &str) -> Result<TempDir> {
        std::fs::create_dir_all(parent).at(parent)?;
        let nonce: u32 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = parent.join(format!(".{tag}-{nonce:08x}-{}", Writer::this_process()));
        std::fs::create_dir(&path).at(&path)?;
        Ok(TempDir { path, keep: false })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub fn list(paths: &Paths) -> Result<Vec<std::result::Result<Installed, (PathBuf, Error)>>> {
    let dir = paths.cloudlets_dir();
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for d in dirs {
        match Cloudlet::load(&d) {
            Ok(cloudlet) => out.push(Ok(Installed {
                record: read_record(&d),
                dir: d,
                cloudlet,
            })),
            Err(e) => out.push(Err((d, e))),
        }
    }
    Ok(out)
}

/// Finds an installed cloudlet by directory name (`huit-mediawiki`), full name
/// (`huit/mediawiki`) or, when unambiguous, short name (`mediawiki`).
pub fn find(paths: &Paths, name: &str) -> Result<Installed> {
    let wanted = CloudletName::parse(name)?;
    let direct = paths.cloudlets_dir().join(wanted.dir_name());
    if direct.is_dir() {
        let cloudlet = Cloudlet::load(&direct)?;
        return Ok(Installed {
            record: read_record(&direct),
            dir: direct,
            cloudlet,
        });
    }
    let mut matches: Vec<Installed> = list(paths)?
        .into_iter()
        .flatten()
        .filter(|i| {
            let n = i.cloudlet.name();
            n.as_str() == name
                || n.short() == name
                || i.cloudlet.declared_name.as_deref() == Some(name)
        })
        .collect();
    match matches.len() {
        1 => Ok(matches.remove(0)),
        0 => Err(
            Error::not_found(format!("cloudlet \"{name}\" is not installed")).with_hint(format!(
                "install it with `nepho cloudlet:install {name}`, or see `nepho cloudlet:list`"
            )),
        ),
        _ => {
            let names: Vec<String> = matches
                .iter()
                .map(|i| i.cloudlet.manifest.name.clone())
                .collect();
            Err(
                Error::usage(format!("\"{name}\" is ambiguous: {}", names.join(", ")))
                    .with_hint("use the full owner/name"),
            )
        }
    }
}

/// Where to install from.
#[derive(Debug, Clone)]
pub enum Source {
    Bundled(String),
    Git(String),
    /// A git URL found in the registry under `name`.
    Registry {
        name: String,
        url: String,
        /// The commits the registry vouches for (absent in indexes that list none).
        pin: Option<RegistryPin>,
    },
}

/// What a registry entry pins: the newest version's commit and tree, and every version's.
#[derive(Debug, Clone)]
pub struct RegistryPin {
    /// The registry's name, for messages.
    pub registry: String,
    pub tag: Option<String>,
    pub commit: String,
    pub tree: Option<String>,
    pub versions: Vec<crate::registry::RegistryVersion>,
}

impl RegistryPin {
    pub fn from_entry(registry: &str, e: &crate::registry::RegistryEntry) -> Option<RegistryPin> {
        Some(RegistryPin {
            registry: registry.to_string(),
            tag: e.tag.clone(),
            commit: e.commit.clone()?,
            tree: e.tree.clone(),
            versions: e.versions.clone(),
        })
    }

    /// The version `reference` names (its tag, `1.2.0` or `v1.2.0`, or its commit), if listed.
    fn version(&self, reference: &str) -> Option<(Option<String>, String, Option<String>)> {
        let bare = reference.strip_prefix('v').unwrap_or(reference);
        self.versions
            .iter()
            .find(|v| {
                v.tag.as_deref() == Some(reference)
                    || v.version == reference
                    || v.version == bare
                    || v.commit == reference
            })
            .map(|v| (v.tag.clone(), v.commit.clone(), Some(v.tree.clone())))
    }
}

/// Checks out the commit the registry lists for `tag` (or its untagged commit), refusing when
/// the repository's tag has moved or the commit or tree differ. Returns the reference recorded.
fn checkout_pinned(
    git: &Git,
    work: &Path,
    registry: &str,
    tag: Option<&str>,
    commit: &str,
    tree: Option<&str>,
) -> Result<String> {
    let short = |c: &str| c[..12.min(c.len())].to_string();
    if let Some(tag) = tag {
        let found = git.run(
            Some(work),
            [
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/tags/{tag}^{{commit}}"),
            ],
        );
        let found = found.map(|s| s.trim().to_string()).unwrap_or_default();
        if found != commit {
            let now = if found.is_empty() {
                "the tag is gone".to_string()
            } else {
                format!("the tag now points at {}", short(&found))
            };
            return Err(Error::invalid(format!(
                "the repository's {tag} is not the commit the registry lists                  (registry {registry} lists {}; {now}); nothing was installed",
                short(commit)
            ))
            .with_hint(
                "the tag was moved after the registry was built: ask the registry's maintainer to                  rebuild it, or install a commit you trust with --ref COMMIT",
            ));
        }
    }
    let spec = format!("{commit}^{{commit}}");
    if !git.ok(Some(work), ["rev-parse", "--verify", "--quiet", &spec])? {
        return Err(Error::invalid(format!(
            "the commit {} that registry {registry} lists is not in the repository; nothing was installed",
            short(commit)
        ))
        .with_hint("the repository's history was rewritten: ask the registry's maintainer to rebuild it"));
    }
    git.run(Some(work), ["checkout", "--quiet", "--detach", commit])?;
    if let Some(tree) = tree {
        let actual = git.run(Some(work), ["rev-parse", "HEAD^{tree}"])?;
        if actual.trim() != tree {
            return Err(Error::invalid(format!(
                "commit {} has tree {}, not the {} registry {registry} lists; nothing was installed",
                short(commit),
                short(actual.trim()),
                short(tree)
            )));
        }
    }
    Ok(tag.map_or_else(|| commit.to_string(), str::to_string))
}

impl Source {
    /// The name a Nepho 1.x cloudlet from here is installed under, as 1.x named its directory.
    fn default_name(&self) -> Option<String> {
        match self {
            Source::Bundled(n) => Some(CloudletName::parse(n).ok()?.dir_name()),
            Source::Registry { name, .. } => Some(CloudletName::parse(name).ok()?.dir_name()),
            Source::Git(url) => {
                let last = url
                    .trim_end_matches('/')
                    .rsplit(['/', ':'])
                    .next()?
                    .trim_end_matches(".git");
                CloudletName::parse(last).ok().map(|n| n.to_string())
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::Bundled(n) => format!("bundled:{n}"),
            Source::Git(u) | Source::Registry { url: u, .. } => u.clone(),
        }
    }
}

/// Does `arg` look like a git URL or path rather than a registry name?
pub fn looks_like_url(arg: &str) -> bool {
    arg.contains("://")
        || arg.starts_with("git@")
        || arg.starts_with('/')
        || arg.starts_with("./")
        || arg.starts_with("../")
        || arg.ends_with(".git")
}

pub struct InstallOptions<'a> {
    pub reference: Option<&'a str>,
    /// The name to install under (`--name`); a Nepho 1.x cloudlet is otherwise named after its
    /// source: the last part of the git URL without `.git`, or the registry/bundled name.
    pub name: Option<&'a str>,
    pub force: bool,
    pub git: &'a Git,
    /// Progress lines ("Cloning from ...") go here (stderr, unless --quiet).
    pub notice: &'a dyn Fn(&str),
}

pub fn install(paths: &Paths, source: &Source, opts: &InstallOptions) -> Result<Installed> {
    let cloudlets = paths.cloudlets_dir();
    std::fs::create_dir_all(&cloudlets).at(&cloudlets)?;
    sweep_stale(&cloudlets);
    let tmp = TempDir::new(&cloudlets, "tmp-install")?;
    let work = tmp.path.join("cloudlet");
    (opts.notice)(&format!(
        "Preparing to install into {} ...",
        cloudlets.display()
    ));
    let git = opts.git;
    // Set when the registry pinned the commit (the tag or commit installed), or when --ref
    // left the index (a warning).
    let mut pinned_ref: Option<String> = None;
    let mut unvouched: Option<String> = None;
    let (branch, submodules) = match source {
        Source::Bundled(name) => {
            if opts.reference.is_some() {
                return Err(Error::usage("--ref does not apply to a bundled cloudlet"));
            }
            std::fs::create_dir(&work).at(&work)?;
            bundled::extract(name, &work)?;
            git.run(Some(&work), ["init", "--quiet", "--initial-branch=main"])?;
            git.run(Some(&work), ["add", "--all"])?;
            git.run(
                Some(&work),
                [
                    "-c",
                    "user.name=nepho",
                    "-c",
                    "user.email=nepho@localhost",
                    "-c",
                    "commit.gpgsign=false",
                    "commit",
                    "--quiet",
                    "--message",
                    &format!(
                        "bundled cloudlet {name} (nepho {})",
                        env!("CARGO_PKG_VERSION")
                    ),
                ],
            )?;
            (None, Vec::new())
        }
        Source::Git(url) | Source::Registry { url, .. } => {
            (opts.notice)(&format!(
                "Cloning from {} ...",
                crate::git::redact_userinfo(url)
            ));
            git.clone_repo(url, &work)?;
            let pin = match source {
                Source::Registry { pin: Some(p), .. } => Some(p),
                _ => None,
            };
            let pinned = match (pin, opts.reference) {
                (Some(p), None) => Some((p, p.tag.clone(), p.commit.clone(), p.tree.clone())),
                (Some(p), Some(r)) => match p.version(r) {
                    Some((tag, commit, tree)) => Some((p, tag, commit, tree)),
                    None => {
                        unvouched = Some(format!(
                            "--ref {r} is not a version registry {} lists; its commit is not checked against the index",
                            p.registry
                        ));
                        None
                    }
                },
                (None, _) => None,
            };
            let branch = match (pinned, opts.reference) {
                (Some((p, tag, commit, tree)), _) => {
                    pinned_ref = Some(checkout_pinned(
                        git,
                        &work,
                        &p.registry,
                        tag.as_deref(),
                        &commit,
                        tree.as_deref(),
                    )?);
                    None
                }
                (None, Some(r)) => git.checkout(&work, r)?,
                (None, None) => git.current_branch(&work)?,
            };
            let subs = git.init_submodules(&work, &work, 0)?;
            (
                branch,
                subs.into_iter().map(|p| p.display().to_string()).collect(),
            )
        }
    };

    validate::check_tree(&work)?;
    let v1_name = match opts.name {
        Some(n) => Some(CloudletName::parse(n)?.to_string()),
        None => source.default_name(),
    };
    let mut cloudlet = Cloudlet::load_named(&work, v1_name.as_deref())?;
    if cloudlet.format == CloudletFormat::V1 && v1_name.is_none() {
        return Err(Error::usage(format!(
            "cannot name this Nepho 1.x cloudlet after {}: its last part is not a valid name",
            source.describe()
        ))
        .with_hint("give it one with `--name NAME`"));
    }
    if let Some(n) = opts.name
        && cloudlet.format == CloudletFormat::Native
        && n != cloudlet.manifest.name
    {
        return Err(Error::usage(format!(
            "--name {n}: a native cloudlet is named by its cloudlet.yaml ({})",
            cloudlet.manifest.name
        ))
        .with_hint("--name renames Nepho 1.x cloudlets only"));
    }
    let name = cloudlet.name();
    let target = cloudlets.join(name.dir_name());
    let mut broken_blueprints = checked(&cloudlet, "nothing was installed")?;
    // The reasons were found in the temporary clone: name the files where they will be.
    let (from, to) = (
        format!("{}/", work.display()),
        format!("{}/", target.display()),
    );
    for b in &mut broken_blueprints {
        b.reason = b.reason.replace(&from, &to);
        cloudlet.warnings.push(format!(
            "blueprint {} is broken and will fail when used: {}",
            b.name, b.reason
        ));
    }
    let record = InstallRecord {
        name: name.to_string(),
        source: source.describe(),
        reference: pinned_ref.or_else(|| opts.reference.map(str::to_string)),
        branch,
        commit: git.head(&work)?,
        installed_at: crate::util::now_rfc3339(),
        updated_at: None,
        submodules,
        broken_blueprints,
    };
    write_record(&work, &record)?;

    if target.exists() {
        if !opts.force {
            let existing = read_record(&target)
                .map(|r| format!(" from {}", r.source))
                .unwrap_or_default();
            return Err(Error::conflict(format!(
                "{name} is already installed{existing} at {}",
                target.display()
            ))
            .with_hint(format!(
                "use `nepho cloudlet:update {name}`, or `cloudlet:install --force` to replace it"
            )));
        }
        let trash = TempDir::new(&cloudlets, "trash")?;
        std::fs::rename(&target, trash.path.join("old")).at(&target)?;
        if let Err(e) = std::fs::rename(&work, &target) {
            let _ = std::fs::rename(trash.path.join("old"), &target);
            return Err(Error::io(&target, e));
        }
    } else {
        std::fs::rename(&work, &target).at(&target)?;
    }
    drop(tmp);
    let mut cloudlet = Cloudlet::load(&target)?;
    cloudlet.warnings = unvouched
        .into_iter()
        .chain(std::mem::take(&mut cloudlet.warnings))
        .chain(record.broken_blueprints.iter().map(|b| {
            format!(
                "blueprint {} is broken and will fail when used: {}",
                b.name, b.reason
            )
        }))
        .collect();
    Ok(Installed {
        dir: target,
        cloudlet,
        record: Some(record),
    })
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct UpdateOutcome {
    pub name: String,
    pub from: String,
    pub to: String,
    pub updated: bool,
    /// Why nothing changed (pinned, bundled, up to date).
    pub note: Option<String>,
}

pub fn update(paths: &Paths, git: &Git, name: &str) -> Result<UpdateOutcome> {
    let installed = find(paths, name)?;
    let dir = &installed.dir;
    let mut record = installed.record.clone().ok_or_else(|| {
        Error::conflict(format!(
            "{} was not installed by nepho (no install record)",
            installed.cloudlet.manifest.name
        ))
        .with_hint("reinstall it with `nepho cloudlet:install --force`")
    })?;
    let name = record.name.clone();
    let from = git.head(dir)?;
    let unchanged = |note: &str| UpdateOutcome {
        name: name.clone(),
        from: from.clone(),
        to: from.clone(),
        updated: false,
        note: Some(note.into()),
    };
    if record.source.starts_with("bundled:") {
        return Ok(unchanged(
            "bundled with nepho; it changes when nepho is upgraded (reinstall with --force)",
        ));
    }
    let changes = git.local_changes(dir)?;
    if !changes.is_empty() {
        return Err(Error::conflict(format!(
            "{name} has local changes that an update could overwrite:\n  {}",
            changes.join("\n  ")
        ))
        .with_hint(format!(
            "commit or discard them in {} (git -C {} diff), then update again",
            dir.display(),
            dir.display()
        )));
    }
    let Some(branch) = record.branch.clone() else {
        return Ok(unchanged(&format!(
            "pinned to {}; install with another --ref to move it",
            record.reference.as_deref().unwrap_or("a commit")
        )));
    };
    git.run(Some(dir), ["fetch", "--quiet", "origin"])?;
    let upstream = format!("refs/remotes/origin/{branch}");
    let target = git
        .run(Some(dir), ["rev-parse", &upstream])?
        .trim()
        .to_string();
    if target == from {
        return Ok(unchanged("already up to date"));
    }
    if !git.ok(
        Some(dir),
        ["merge-base", "--is-ancestor", "HEAD", &upstream],
    )? {
        return Err(Error::conflict(format!(
            "{name} has local commits that are not on origin/{branch}; refusing to discard them"
        ))
        .with_hint(format!(
            "rebase or reset them yourself in {}",
            dir.display()
        )));
    }
    git.run(Some(dir), ["merge", "--quiet", "--ff-only", &upstream])?;
    let rollback = |err: Error| -> Error {
        let _ = git.run(Some(dir), ["reset", "--quiet", "--hard", &from]);
        let _ = git.run(
            Some(dir),
            ["submodule", "--quiet", "update", "--init", "--recursive"],
        );
        Error::invalid(format!(
            "the update of {name} was rolled back to {}: {err}",
            &from[..12.min(from.len())]
        ))
    };
    let subs = git.init_submodules(dir, dir, 0).map_err(rollback)?;
    validate::check_tree(dir).map_err(rollback)?;
    let cloudlet = Cloudlet::load(dir).map_err(rollback)?;
    record.broken_blueprints = checked(&cloudlet, "nothing was changed").map_err(rollback)?;
    record.commit = git.head(dir)?;
    record.updated_at = Some(crate::util::now_rfc3339());
    record.submodules = subs.into_iter().map(|p| p.display().to_string()).collect();
    write_record(dir, &record)?;
    Ok(UpdateOutcome {
        name,
        from,
        to: record.commit,
        updated: true,
        note: None,
    })
}

pub fn uninstall(paths: &Paths, name: &str, force: bool) -> Result<Installed> {
    let installed = find(paths, name)?;
    let users = crate::formation::records_using(paths, &installed.cloudlet.manifest.name)?;
    if !users.is_empty() && !force {
        return Err(Error::conflict(format!(
            "{} is used by formation{} {}",
            installed.cloudlet.manifest.name,
            if users.len() == 1 { "" } else { "s" },
            users.join(", ")
        ))
        .with_hint("destroy them first, or pass --force to uninstall anyway"));
    }
    let cloudlets = paths.cloudlets_dir();
    let trash = TempDir::new(&cloudlets, "trash")?;
    std::fs::rename(&installed.dir, trash.path.join("old")).at(&installed.dir)?;
    drop(trash);
    Ok(installed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_temporary_directories_of_dead_nepho_processes_are_swept() {
        let cloudlets = tempfile::tempdir().unwrap();
        let mine = TempDir::new(cloudlets.path(), "tmp-install").unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        // A finished process: this boot, its pid, a start time no live process has.
        let me = Writer::this_process().to_string();
        let (boot, _) = me.split_once('-').unwrap();
        let dead = cloudlets
            .path()
            .join(format!(".trash-00000000-{boot}-{}-1", child.id()));
        let foreign = cloudlets.path().join(".tmp-install-1234-00ab12cd");
        for dir in [&dead, &foreign] {
            std::fs::create_dir(dir).unwrap();
        }
        sweep_stale(cloudlets.path());
        assert!(mine.path.is_dir(), "a live writer's directory stays");
        assert!(!dead.exists(), "a dead writer's directory goes");
        assert!(foreign.is_dir(), "a name nepho does not make stays");
    }
}
