//! `registry:build`: turns cloudlet repositories (every tagged version, validated) or a manifest
//! of ready entries into a registry directory: `index.json` pinned to commits and trees, its
//! schema, an optional SSH signature, and the static web site (see [`super::site`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{
    IndexParameter, IndexScenario, MAX_INDEX_BYTES, RegistryEntry, RegistryIndex, RegistryVersion,
};
use crate::cloudlet::{Cloudlet, CloudletFormat, CloudletName};
use crate::error::{Error, IoContext, Result};
use crate::git::Git;
use crate::validate;

/// The most of a README that is published.
pub const MAX_README_BYTES: u64 = 256 << 10;
/// A manifest may be larger than an index (it carries READMEs).
pub const MAX_MANIFEST_BYTES: u64 = 4 * MAX_INDEX_BYTES;
/// Versions read per repository: the newest ones win.
pub const MAX_VERSIONS: usize = 50;

pub struct BuildOptions<'a> {
    /// Git URLs or local cloudlet directories.
    pub sources: &'a [String],
    /// A JSON file of ready entries (`{"cloudlets": [ENTRY + optional "readme"]}`).
    pub manifest: Option<&'a Path>,
    pub out: &'a Path,
    /// A private SSH key: `index.json.sig` is written with it.
    pub sign_key: Option<&'a Path>,
    pub git: &'a Git,
    pub progress: &'a dyn Fn(&str),
}

/// A version that was left out of the index, and why.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SkippedVersion {
    pub source: String,
    /// The tag, or `HEAD`.
    pub version: String,
    pub reason: String,
}

/// What `registry:build` wrote.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BuildReport {
    pub out: String,
    pub cloudlets: usize,
    pub versions: usize,
    /// HTML pages written.
    pub pages: usize,
    /// True when `index.json.sig` was written.
    pub signed: bool,
    pub skipped: Vec<SkippedVersion>,
    pub seconds: f64,
}

/// A manifest entry: an index entry, plus the Markdown README its page shows.
#[derive(Deserialize)]
struct ManifestEntry {
    #[serde(flatten)]
    entry: RegistryEntry,
    #[serde(default)]
    readme: Option<String>,
}

#[derive(Deserialize)]
struct Manifest {
    cloudlets: Vec<ManifestEntry>,
}

/// One cloudlet ready to publish.
pub struct Published {
    pub entry: RegistryEntry,
    pub readme: Option<String>,
}

pub fn build(opts: &BuildOptions) -> Result<BuildReport> {
    let started = Instant::now();
    if opts.sources.is_empty() && opts.manifest.is_none() {
        return Err(Error::usage(
            "nothing to build: give cloudlet sources or --manifest FILE",
        ));
    }
    let mut published = Vec::new();
    let mut skipped = Vec::new();
    if let Some(manifest) = opts.manifest {
        published.extend(read_manifest(manifest)?);
    }
    let work = tempfile::Builder::new()
        .prefix("nepho-registry-build-")
        .tempdir()
        .map_err(|e| Error::Other(format!("cannot make a temporary directory: {e}")))?;
    for (n, source) in opts.sources.iter().enumerate() {
        (opts.progress)(&format!("Reading {source} ..."));
        let clone = work.path().join(n.to_string());
        if let Some(p) = from_repository(opts.git, source, &clone, &mut skipped)? {
            published.push(p);
        }
    }
    published.sort_by(|a, b| a.entry.name.cmp(&b.entry.name));
    if let Some(w) = published
        .windows(2)
        .find(|w| w[0].entry.name == w[1].entry.name)
    {
        return Err(Error::invalid(format!(
            "two sources publish a cloudlet named {}",
            w[0].entry.name
        ))
        .with_hint("a registry lists each name once; drop one source"));
    }
    let index = RegistryIndex {
        version: 1,
        cloudlets: published.iter().map(|p| p.entry.clone()).collect(),
    };
    prepare_out(opts.out)?;
    let json = serde_json::to_vec_pretty(&index).map_err(|e| Error::Other(e.to_string()))?;
    if json.len() as u64 > MAX_INDEX_BYTES {
        return Err(Error::invalid(format!(
            "the index would be {} MiB, over the {} MiB a client reads",
            json.len() >> 20,
            MAX_INDEX_BYTES >> 20
        )));
    }
    let index_path = opts.out.join("index.json");
    crate::config::write_atomic(&index_path, &json)?;
    // The same schema (with its `$id` and version) as `schema/registry-index.json`.
    let schema =
        crate::schema::versioned("registry-index.json", schemars::schema_for!(RegistryIndex));
    let schema = serde_json::to_vec_pretty(&schema).map_err(|e| Error::Other(e.to_string()))?;
    crate::config::write_atomic(&opts.out.join("schema.json"), &schema)?;
    let signed = match opts.sign_key {
        Some(key) => {
            super::sign::sign(key, &index_path)?;
            true
        }
        None => {
            // A signature of an older index must not sit beside the new one.
            let _ = std::fs::remove_file(opts.out.join("index.json.sig"));
            false
        }
    };
    let pages = super::site::write(opts.out, &published)?;
    Ok(BuildReport {
        out: opts.out.display().to_string(),
        cloudlets: index.cloudlets.len(),
        versions: index.cloudlets.iter().map(|c| c.versions.len()).sum(),
        pages,
        signed,
        skipped,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Makes `out` ready for a build: created if missing, the pages of a previous build removed.
/// A directory with other things in it is not a registry: nepho refuses to write into it.
fn prepare_out(out: &Path) -> Result<()> {
    if out.is_dir() {
        let mut entries = std::fs::read_dir(out).at(out)?.flatten();
        let empty = entries.next().is_none();
        if !empty && !out.join("index.json").is_file() {
            return Err(Error::conflict(format!(
                "{} is not empty and holds no registry (no index.json); refusing to write into it",
                out.display()
            ))
            .with_hint(
                "give --out a new or empty directory, or one a previous registry:build made",
            ));
        }
        let pages = out.join("cloudlets");
        if pages.is_dir() {
            std::fs::remove_dir_all(&pages).at(&pages)?;
        }
        let browse = out.join("browse");
        if browse.is_dir() {
            std::fs::remove_dir_all(&browse).at(&browse)?;
        }
    }
    std::fs::create_dir_all(out).at(out)?;
    Ok(())
}

fn read_manifest(path: &Path) -> Result<Vec<Published>> {
    use std::io::Read;
    let mut text = Vec::new();
    std::fs::File::open(path)
        .at(path)?
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut text)
        .at(path)?;
    if text.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(Error::invalid(format!(
            "{} is larger than {} MiB",
            path.display(),
            MAX_MANIFEST_BYTES >> 20
        )));
    }
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| {
        Error::invalid(format!(
            "{} is not a registry manifest (line {}, column {}): {e}",
            path.display(),
            e.line(),
            e.column()
        ))
        .with_hint("a manifest is {\"cloudlets\": [{\"name\": ..., \"url\": ..., ...}]}, the index format plus an optional \"readme\"")
    })?;
    manifest
        .cloudlets
        .into_iter()
        .map(|m| {
            CloudletName::parse(&m.entry.name).map_err(|e| {
                Error::invalid(format!("{}: entry {}: {e}", path.display(), m.entry.name))
            })?;
            if m.entry.url.trim().is_empty() {
                return Err(Error::invalid(format!(
                    "{}: entry {} has no url",
                    path.display(),
                    m.entry.name
                )));
            }
            let readme = m.readme.map(|r| truncate(r, MAX_README_BYTES as usize));
            Ok(Published {
                entry: m.entry,
                readme,
            })
        })
        .collect()
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// A release tag: `v1.2.0`, `1.2`, `v2.0.0-rc.1`.
fn release_version(tag: &str) -> Option<(Vec<u64>, bool)> {
    let v = tag.strip_prefix('v').unwrap_or(tag);
    let (core, pre) = match v.split_once(['-', '+']) {
        Some((c, rest)) => (c, v.as_bytes()[c.len()] == b'-' && !rest.is_empty()),
        None => (v, false),
    };
    let parts: Option<Vec<u64>> = core.split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| !p.is_empty()).map(|p| (p, pre))
}

/// Newest first: numbers compared part by part, a pre-release below its release.
fn sort_tags(tags: &mut [(String, (Vec<u64>, bool))]) {
    tags.sort_by(|(_, (a, a_pre)), (_, (b, b_pre))| b.cmp(a).then(a_pre.cmp(b_pre)));
}

/// Reads every release of one repository. `None` (with the reasons in `skipped`) when no
/// version validates.
fn from_repository(
    git: &Git,
    source: &str,
    clone: &Path,
    skipped: &mut Vec<SkippedVersion>,
) -> Result<Option<Published>> {
    let local = Path::new(source);
    let url = if local.is_dir() {
        let abs = local.canonicalize().at(local)?;
        if !git.ok(Some(&abs), ["rev-parse", "--verify", "--quiet", "HEAD"])? {
            return Err(Error::invalid(format!(
                "{source} is not a git repository with a commit; a registry pins every version to a commit"
            ))
            .with_hint(format!("run `git init && git add -A && git commit` in {source}")));
        }
        abs.display().to_string()
    } else {
        crate::git::check_url(source)?;
        source.to_string()
    };
    git.run(
        None,
        [
            std::ffi::OsStr::new("clone"),
            std::ffi::OsStr::new("--quiet"),
            std::ffi::OsStr::new("--no-checkout"),
            std::ffi::OsStr::new("--"),
            std::ffi::OsStr::new(&url),
            clone.as_os_str(),
        ],
    )?;
    let mut tags: Vec<(String, (Vec<u64>, bool))> = git
        .run(Some(clone), ["tag", "--list"])?
        .lines()
        .filter_map(|t| release_version(t).map(|v| (t.to_string(), v)))
        .collect();
    sort_tags(&mut tags);
    tags.truncate(MAX_VERSIONS);
    // A repository without release tags publishes its HEAD.
    let refs: Vec<Option<String>> = if tags.is_empty() {
        vec![None]
    } else {
        tags.into_iter().map(|(t, _)| Some(t)).collect()
    };
    let v1_name = default_v1_name(&url);
    let mut versions = Vec::new();
    let mut newest: Option<(Cloudlet, Option<String>)> = None;
    for tag in refs {
        let rev = tag
            .as_deref()
            .map_or("HEAD".to_string(), |t| format!("refs/tags/{t}"));
        let shown = tag.clone().unwrap_or_else(|| "HEAD".into());
        let skip = |reason: String, skipped: &mut Vec<SkippedVersion>| {
            skipped.push(SkippedVersion {
                source: source.to_string(),
                version: shown.clone(),
                reason,
            })
        };
        let commit = git.run(Some(clone), ["rev-parse", &format!("{rev}^{{commit}}")])?;
        let tree = git.run(Some(clone), ["rev-parse", &format!("{rev}^{{tree}}")])?;
        let (commit, tree) = (commit.trim().to_string(), tree.trim().to_string());
        git.run(
            Some(clone),
            ["checkout", "--quiet", "--force", "--detach", &commit],
        )?;
        git.run(Some(clone), ["clean", "--quiet", "-ffdx"])?;
        let loaded = validate::check_tree(clone)
            .and_then(|()| Cloudlet::load_named(clone, v1_name.as_deref()))
            .and_then(|c| validate::checked(&c, "it is not published").map(|_| c));
        let cloudlet = match loaded {
            Ok(c) => c,
            Err(e) => {
                skip(e.to_string(), skipped);
                continue;
            }
        };
        let version = match &tag {
            Some(t) => t.strip_prefix('v').unwrap_or(t).to_string(),
            None => cloudlet
                .manifest
                .version
                .clone()
                .unwrap_or_else(|| commit[..12.min(commit.len())].to_string()),
        };
        versions.push(RegistryVersion {
            version,
            tag: tag.clone(),
            commit,
            tree,
        });
        if newest.is_none() {
            let readme = readme(&cloudlet)?;
            newest = Some((cloudlet, readme));
        }
    }
    let Some((cloudlet, readme)) = newest else {
        return Ok(None);
    };
    let m = &cloudlet.manifest;
    let latest = &versions[0];
    let entry = RegistryEntry {
        name: m.name.clone(),
        url,
        summary: m.summary.clone(),
        description: m.description.clone(),
        tags: m.tags.clone(),
        version: Some(latest.version.clone()),
        author: m.author.clone(),
        license: m.license.clone(),
        project_page: m.project_page.clone(),
        commit: Some(latest.commit.clone()),
        tree: Some(latest.tree.clone()),
        tag: latest.tag.clone(),
        format: Some(
            match cloudlet.format {
                CloudletFormat::Native => "native",
                CloudletFormat::V1 => "v1",
            }
            .into(),
        ),
        scenarios: scenarios(&cloudlet),
        versions,
    };
    Ok(Some(Published { entry, readme }))
}

/// The name a Nepho 1.x cloudlet is published under: the last part of its URL or directory,
/// as `cloudlet:install` names it.
fn default_v1_name(url: &str) -> Option<String> {
    let last = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()?
        .trim_end_matches(".git");
    CloudletName::parse(last).ok().map(|n| n.to_string())
}

fn readme(cloudlet: &Cloudlet) -> Result<Option<String>> {
    for name in [
        "README.md",
        "README.markdown",
        "readme.md",
        "README",
        "README.txt",
    ] {
        let path = cloudlet.root.join(name);
        if path.is_file() {
            let text = match crate::cloudlet::read_confined(&cloudlet.root, &path, MAX_README_BYTES)
            {
                Ok(t) => t,
                // An oversized README is cut, not fatal.
                Err(Error::Invalid { .. }) => std::fs::read(&path).ok().map(|b| {
                    truncate(
                        String::from_utf8_lossy(&b).into_owned(),
                        MAX_README_BYTES as usize,
                    )
                }),
                Err(e) => return Err(e),
            };
            return Ok(text);
        }
    }
    Ok(None)
}

/// The scenarios of a cloudlet with their parameters, as the registry lists them. A scenario
/// that does not load (a broken 1.x blueprint) is left out.
fn scenarios(cloudlet: &Cloudlet) -> Vec<IndexScenario> {
    cloudlet
        .scenario_names()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|name| cloudlet.scenario(&name).ok())
        .map(|s| {
            let secret = |n: &str| crate::scenario::is_secret(cloudlet.format, &s, n);
            let mut parameters: Vec<IndexParameter> = s
                .decls
                .values()
                .map(|d| IndexParameter {
                    name: d.name.clone(),
                    ty: d.ty.map(|t| t.as_str().to_string()),
                    default: d
                        .default
                        .as_ref()
                        .filter(|_| !secret(&d.name))
                        .map(|n| n.to_value()),
                    description: d.description.clone(),
                    required: d.required,
                    secret: secret(&d.name),
                })
                .collect();
            if cloudlet.format == CloudletFormat::V1 {
                // 1.x parameters are untyped values: the blueprint's over the cloudlet's.
                let mut flat = indexmap::IndexMap::new();
                for node in [&cloudlet.v1_parameters, &s.v1_parameters]
                    .into_iter()
                    .flatten()
                {
                    for (k, e) in node.as_map().into_iter().flatten() {
                        flat.insert(k.clone(), e.value.to_value());
                    }
                }
                parameters.extend(flat.into_iter().map(|(name, value)| IndexParameter {
                    secret: secret(&name),
                    default: (!secret(&name)).then_some(value),
                    name,
                    ty: None,
                    description: None,
                    required: false,
                }));
            }
            IndexScenario {
                name: s.name.clone(),
                provider: s.provider.to_string(),
                summary: s.summary.clone(),
                parameters,
            }
        })
        .collect()
}

/// Where a cloudlet's page lives, relative to the registry root: `cloudlets/OWNER/NAME.html`.
pub fn page_path(name: &str) -> PathBuf {
    let mut p = PathBuf::from("cloudlets");
    let mut parts = name.split('/').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_some() {
            p.push(part);
        } else {
            p.push(format!("{part}.html"));
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_tags_sort_newest_first() {
        let mut tags: Vec<(String, (Vec<u64>, bool))> = [
            "v1.2.0",
            "v1.10.0",
            "v2.0.0-rc.1",
            "v2.0.0",
            "latest",
            "1.9",
        ]
        .into_iter()
        .filter_map(|t| release_version(t).map(|v| (t.to_string(), v)))
        .collect();
        sort_tags(&mut tags);
        let order: Vec<&str> = tags.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(order, ["v2.0.0", "v2.0.0-rc.1", "v1.10.0", "1.9", "v1.2.0"]);
    }

    #[test]
    fn pages_are_named_after_cloudlets() {
        assert_eq!(
            page_path("acme/web"),
            PathBuf::from("cloudlets/acme/web.html")
        );
        assert_eq!(page_path("hello"), PathBuf::from("cloudlets/hello.html"));
    }
}
