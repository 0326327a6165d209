//! The cloudlet registry: a JSON index (schema in `registry/schema.json`) fetched over HTTP(S)
//! or read from `file://`, cached with its ETag and max-age, usable offline.
//!
//! Refreshing is lazy: only a command that needs the index and finds the cache stale goes to
//! the network, and an unreachable registry falls back to the cache with a warning.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub mod build;
pub mod serve;
pub mod sign;
pub mod site;

use crate::config::{RegistrySource, write_atomic};
use crate::error::{Error, Result};

/// The index shipped with nepho, used when no registry is configured.
pub const BUILTIN_INDEX: &str = include_str!("../registry/index.json");
pub const BUILTIN_SOURCE: &str = "builtin";
pub const DEFAULT_MAX_AGE: u64 = 3600;

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryIndex {
    /// Index format version (1).
    pub version: u32,
    pub cloudlets: Vec<RegistryEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegistryEntry {
    /// `owner/name` (or a bare name for bundled examples).
    pub name: String,
    /// Where `cloudlet:install` clones from: a git URL, or `bundled:NAME`.
    pub url: String,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub license: Option<String>,
    #[serde(default)]
    pub project_page: Option<String>,
    /// The commit `cloudlet:install NAME` checks out (that of the newest version); install
    /// refuses when the repository's `tag` no longer points at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The git tree of `commit`, checked after checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<String>,
    /// The git tag of the newest version (`v1.2.0`); absent for an untagged repository, whose
    /// HEAD at build time is pinned by `commit` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// `native` or `v1` (the Nepho 1.x layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Every published version, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<RegistryVersion>,
    /// The scenarios of the newest version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scenarios: Vec<IndexScenario>,
}

/// One published version of a cloudlet, pinned to a commit.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RegistryVersion {
    /// The version (`1.2.0`): the tag without its `v`, or the manifest's version when untagged.
    pub version: String,
    /// The git tag (`v1.2.0`); absent for an untagged repository's HEAD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The commit the tag pointed at when the registry was built.
    pub commit: String,
    /// That commit's tree.
    pub tree: String,
}

/// A scenario (1.x: a blueprint) as the registry lists it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IndexScenario {
    pub name: String,
    /// `vagrant`, `aws` (CloudFormation) or `kvm`.
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<IndexParameter>,
}

/// A scenario parameter as the registry lists it. A secret's default is never published.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IndexParameter {
    pub name: String,
    /// Declared type (`string`, `integer`, ...); absent for untyped (1.x) parameters.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub ty: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheMeta {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    fetched_at: u64,
    max_age: u64,
    /// Which keys the cached index was verified with (a digest), if any: a config that
    /// trusts other keys than the cache was checked against refetches.
    #[serde(default)]
    verified_with: Option<String>,
}

/// An index with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedIndex {
    pub source: String,
    pub index: RegistryIndex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Fetch only if the cached copy is older than its max-age (or missing).
    IfStale,
    /// Always revalidate with the server (`registry:update`).
    Force,
}

pub struct Registry {
    pub sources: Vec<RegistrySource>,
    /// Keys trusted for every source that lists none of its own (`registry_keys`).
    pub trusted_keys: Vec<String>,
    pub cache_dir: PathBuf,
    pub default_max_age: u64,
}

/// What a refresh did, for `registry:update` output.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RefreshReport {
    /// The registry's name (its URL when the config names none).
    pub source: String,
    pub url: String,
    /// True when the index's SSH signature was checked against trusted keys.
    #[serde(default)]
    pub verified: bool,
    /// fetched | not-modified | cached | local | builtin
    pub status: String,
    pub entries: usize,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn fnv1a(s: &str) -> String {
    fnv1a_bytes(s.as_bytes())
}

fn fnv1a_bytes(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// The most an index may take, raw and after gzip: a registry of 30,000 cloudlets is ~10 MiB of
/// JSON, and a gzip bomb must not cost gigabytes of memory or of cache.
pub const MAX_INDEX_BYTES: u64 = 64 << 20;

fn too_large(source: &str) -> Error {
    Error::invalid(format!(
        "registry index {source} is larger than {} MiB (after decompression); refusing it",
        MAX_INDEX_BYTES >> 20
    ))
    .with_hint("check the registry URL in your config; the index cached before (if any) is kept")
}

/// Inflates gzip data (one or more members), refusing more than [`MAX_INDEX_BYTES`] of output.
fn gunzip_limited(bytes: &[u8], source: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(MAX_INDEX_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::invalid(format!("registry index {source}: bad gzip data: {e}")))?;
    if out.len() as u64 > MAX_INDEX_BYTES {
        return Err(too_large(source));
    }
    Ok(out)
}

/// Undoes gzip (detected by its magic bytes, for `.json.gz` files and servers that send
/// `application/gzip`), within [`MAX_INDEX_BYTES`].
fn decode(bytes: &[u8], source: &str) -> Result<Vec<u8>> {
    if bytes.len() as u64 > MAX_INDEX_BYTES {
        return Err(too_large(source));
    }
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes.to_vec());
    }
    gunzip_limited(bytes, source)
}

/// Reads an index file (a cache file or a `file://` index), refusing an oversized one before
/// reading it.
fn read_index_file(path: &std::path::Path, source: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| Error::unavailable(format!("cannot read registry index {source}: {e}")))?;
    let mut raw = Vec::new();
    file.take(MAX_INDEX_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|e| Error::unavailable(format!("cannot read registry index {source}: {e}")))?;
    decode(&raw, source)
}

fn invalid_index(source: &str, e: &serde_json::Error) -> Error {
    Error::invalid(format!(
        "registry index {source} is not a valid index (line {}, column {}): {e}",
        e.line(),
        e.column()
    ))
    .with_hint("check the registry URL in your config, or `nepho registry:update` once it is fixed")
}

/// Parses an index (gzip or not); anything invalid is an error naming the source.
pub fn parse_index(bytes: &[u8], source: &str) -> Result<RegistryIndex> {
    let bytes = decode(bytes, source)?;
    let index: RegistryIndex =
        serde_json::from_slice(&bytes).map_err(|e| invalid_index(source, &e))?;
    if index.version != 1 {
        return Err(Error::invalid(format!(
            "registry index {source} has version {}, this nepho reads version 1",
            index.version
        ))
        .with_hint("upgrade nepho"));
    }
    Ok(index)
}

/// The same shape as [`RegistryIndex`], borrowing strings from the input (fast search).
#[derive(Deserialize)]
struct IndexRef<'a> {
    #[serde(borrow)]
    cloudlets: Vec<EntryRef<'a>>,
}

#[derive(Deserialize)]
struct EntryRef<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    url: Cow<'a, str>,
    #[serde(default, borrow)]
    summary: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    description: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tags: Vec<Cow<'a, str>>,
    #[serde(default, borrow)]
    version: Option<Cow<'a, str>>,
}

/// A flat binary form of an index for fast search: a header (magic, source size and mtime,
/// entry count) then per entry the fields as u32-length-prefixed UTF-8.
mod compact {
    use super::{IndexRef, SearchHit, score};
    use crate::error::{Error, Result};

    const MAGIC: &[u8; 8] = b"NEPHOIX1";
    const HEADER: usize = 8 + 8 + 8 + 4;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Stamp {
        pub size: u64,
        pub mtime: u64,
    }

    fn put(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    pub fn build(index: &IndexRef<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + index.cloudlets.len() * 256);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&(index.cloudlets.len() as u32).to_le_bytes());
        for e in &index.cloudlets {
            put(&mut out, &e.name);
            put(&mut out, &e.url);
            put(&mut out, e.summary.as_deref().unwrap_or(""));
            put(&mut out, e.description.as_deref().unwrap_or(""));
            put(&mut out, e.version.as_deref().unwrap_or(""));
            out.extend_from_slice(&(e.tags.len() as u32).to_le_bytes());
            for t in &e.tags {
                put(&mut out, t);
            }
        }
        out
    }

    pub fn set_stamp(bytes: &mut [u8], stamp: Stamp) {
        bytes[8..16].copy_from_slice(&stamp.size.to_le_bytes());
        bytes[16..24].copy_from_slice(&stamp.mtime.to_le_bytes());
    }

    pub fn stamp(bytes: &[u8]) -> Option<Stamp> {
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return None;
        }
        Some(Stamp {
            size: u64::from_le_bytes(bytes[8..16].try_into().ok()?),
            mtime: u64::from_le_bytes(bytes[16..24].try_into().ok()?),
        })
    }

    struct Reader<'a> {
        bytes: &'a [u8],
        pos: usize,
    }

    impl<'a> Reader<'a> {
        fn u32(&mut self) -> Option<usize> {
            let v = u32::from_le_bytes(self.bytes.get(self.pos..self.pos + 4)?.try_into().ok()?);
            self.pos += 4;
            Some(v as usize)
        }
        fn str(&mut self) -> Option<&'a str> {
            let len = self.u32()?;
            let s = std::str::from_utf8(self.bytes.get(self.pos..self.pos + len)?).ok()?;
            self.pos += len;
            Some(s)
        }
    }

    pub fn search(
        bytes: &[u8],
        source: &str,
        terms: &[String],
        hits: &mut Vec<SearchHit>,
    ) -> Result<()> {
        let corrupt = || {
            Error::invalid(format!("the search cache for {source} is corrupt"))
                .with_hint("run `nepho registry:update`")
        };
        stamp(bytes).ok_or_else(corrupt)?;
        let mut r = Reader { bytes, pos: 24 };
        let count = r.u32().ok_or_else(corrupt)?;
        let mut tags: Vec<&str> = Vec::new();
        for _ in 0..count {
            let (name, url, summary, description, version) =
                (|| Some((r.str()?, r.str()?, r.str()?, r.str()?, r.str()?)))()
                    .ok_or_else(corrupt)?;
            tags.clear();
            for _ in 0..r.u32().ok_or_else(corrupt)? {
                tags.push(r.str().ok_or_else(corrupt)?);
            }
            let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
            if let Some(score) = score(name, &tags, Some(summary), Some(description), terms) {
                hits.push(SearchHit {
                    name: name.to_string(),
                    summary: opt(summary),
                    url: url.to_string(),
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                    version: opt(version),
                    score,
                    registry: source.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// The raw bytes of one index and how they were obtained.
pub struct RawIndex {
    /// The registry's name.
    pub source: String,
    pub url: String,
    pub verified: bool,
    pub bytes: Vec<u8>,
    /// fetched | not-modified | cached | local | builtin
    pub status: &'static str,
}

impl Registry {
    fn cache_paths(&self, url: &str) -> (PathBuf, PathBuf) {
        let key = fnv1a(url);
        (
            self.cache_dir.join(format!("{key}.json")),
            self.cache_dir.join(format!("{key}.meta.json")),
        )
    }

    /// The decoded bytes of every configured index, refreshing as asked. Warnings (stale,
    /// unreachable) go to `warn`.
    pub fn load_raw(&self, refresh: Refresh, warn: &dyn Fn(&str)) -> Result<Vec<RawIndex>> {
        if self.sources.is_empty() {
            return Ok(vec![RawIndex {
                source: BUILTIN_SOURCE.into(),
                url: BUILTIN_SOURCE.into(),
                verified: false,
                bytes: BUILTIN_INDEX.as_bytes().to_vec(),
                status: "builtin",
            }]);
        }
        self.sources
            .iter()
            .map(|src| {
                let (bytes, status) = self.load_one(src, refresh, warn)?;
                Ok(RawIndex {
                    source: src.name.clone(),
                    url: src.url.clone(),
                    verified: !self.keys_for(src).is_empty(),
                    bytes,
                    status,
                })
            })
            .collect()
    }

    /// Loads and parses every configured index.
    pub fn load(
        &self,
        refresh: Refresh,
        warn: &dyn Fn(&str),
    ) -> Result<(Vec<LoadedIndex>, Vec<RefreshReport>)> {
        let mut loaded = Vec::new();
        let mut reports = Vec::new();
        for raw in self.load_raw(refresh, warn)? {
            let index = parse_index(&raw.bytes, &raw.source)?;
            reports.push(RefreshReport {
                source: raw.source.clone(),
                url: raw.url.clone(),
                verified: raw.verified,
                status: raw.status.into(),
                entries: index.cloudlets.len(),
            });
            loaded.push(LoadedIndex {
                source: raw.source,
                index,
            });
        }
        Ok((loaded, reports))
    }

    /// Searches every index. Large indexes are searched through a compact binary copy kept
    /// next to the cache (rebuilt when the JSON changes), so a 30,000-entry search does not
    /// re-parse megabytes of JSON every time.
    pub fn search(
        &self,
        refresh: Refresh,
        warn: &dyn Fn(&str),
        terms: &[String],
    ) -> Result<Vec<SearchHit>> {
        let terms = normalize_terms(terms);
        let mut hits = Vec::new();
        if self.sources.is_empty() {
            let index: IndexRef<'_> = serde_json::from_str(BUILTIN_INDEX)
                .map_err(|e| invalid_index(BUILTIN_SOURCE, &e))?;
            let compact = compact::build(&index);
            compact::search(&compact, BUILTIN_SOURCE, &terms, &mut hits)?;
        }
        for src in &self.sources {
            let (url, name) = (src.url.as_str(), src.name.as_str());
            let (path, _) = self.current_file(src, refresh, warn)?;
            let compact = self.compact_for(url, &path)?;
            let before = hits.len();
            if compact::search(&compact, name, &terms, &mut hits).is_err() {
                // A damaged search cache is rebuilt from the JSON, never trusted.
                hits.truncate(before);
                let _ = std::fs::remove_file(self.cache_dir.join(format!("{}.idx", fnv1a(url))));
                let compact = self.compact_for(url, &path)?;
                compact::search(&compact, name, &terms, &mut hits)?;
            }
        }
        sort_hits(&mut hits);
        Ok(hits)
    }

    /// The compact copy of the index in `json_path`, rebuilt when the file's size or mtime changed.
    fn compact_for(&self, url: &str, json_path: &std::path::Path) -> Result<Vec<u8>> {
        let meta = std::fs::metadata(json_path).map_err(|e| Error::io(json_path, e))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        let stamp = compact::Stamp {
            size: meta.len(),
            mtime,
        };
        let idx_path = self.cache_dir.join(format!("{}.idx", fnv1a(url)));
        if let Ok(bytes) = std::fs::read(&idx_path)
            && compact::stamp(&bytes) == Some(stamp)
        {
            return Ok(bytes);
        }
        let raw = read_index_file(json_path, url)?;
        let index: IndexRef<'_> =
            serde_json::from_slice(&raw).map_err(|e| invalid_index(url, &e))?;
        let mut bytes = compact::build(&index);
        compact::set_stamp(&mut bytes, stamp);
        // A cache we cannot write only costs speed.
        let _ = std::fs::create_dir_all(&self.cache_dir);
        let _ = write_atomic(&idx_path, &bytes);
        Ok(bytes)
    }

    /// Makes sure a current copy of `url` is on disk and says where: the cache file for
    /// http(s) (fetched or revalidated as `refresh` asks), the file itself for `file://`.
    /// The keys `src`'s index must be signed with (none: signatures are not checked).
    pub fn keys_for<'a>(&'a self, src: &'a RegistrySource) -> &'a [String] {
        if src.keys.is_empty() {
            &self.trusted_keys
        } else {
            &src.keys
        }
    }

    fn current_file(
        &self,
        src: &RegistrySource,
        refresh: Refresh,
        warn: &dyn Fn(&str),
    ) -> Result<(PathBuf, &'static str)> {
        let url = src.url.as_str();
        let keys = self.keys_for(src);
        if let Some(path) = url.strip_prefix("file://") {
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(Error::unavailable(format!(
                    "cannot read registry index {url}: no such file"
                ))
                .with_hint("fix `registry:` in your nepho config"));
            }
            if !keys.is_empty() {
                let data = read_index_file(&path, url)?;
                let sig_path = PathBuf::from(format!("{}.sig", path.display()));
                let sig = std::fs::read(&sig_path).map_err(|e| {
                    Error::invalid(format!(
                        "registry {url} must be signed, but its signature {} cannot be read: {e}",
                        sig_path.display()
                    ))
                })?;
                sign::verify(&data, &sig, keys, url)?;
            }
            return Ok((path, "local"));
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::invalid(format!(
                "unsupported registry URL \"{url}\" (expected http://, https:// or file://)"
            )));
        }
        let (body_path, meta_path) = self.cache_paths(url);
        let meta: Option<CacheMeta> = std::fs::read(&meta_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        // The cache only ever holds an index that parsed when it was fetched.
        let have_body = body_path.is_file();
        let key_digest = (!keys.is_empty()).then(|| fnv1a(&keys.join("\n")));
        // A cache checked against other keys (or none) than the config trusts now is refetched.
        let meta = meta.filter(|m| m.verified_with == key_digest || key_digest.is_none());
        let have_body = have_body && meta.is_some();
        let fresh = meta
            .as_ref()
            .is_some_and(|m| now().saturating_sub(m.fetched_at) < m.max_age);
        if refresh == Refresh::IfStale && fresh && have_body {
            return Ok((body_path, "cached"));
        }
        match fetch(url, meta.as_ref().filter(|_| have_body)) {
            Ok(Fetched::NotModified { max_age }) if have_body => {
                if let Some(mut m) = meta {
                    m.fetched_at = now();
                    m.max_age = max_age.unwrap_or(self.default_max_age);
                    let _ = write_atomic(&meta_path, &serde_json::to_vec(&m).unwrap_or_default());
                }
                Ok((body_path, "not-modified"))
            }
            Ok(Fetched::NotModified { .. }) => Err(Error::unavailable(format!(
                "registry {url} answered 304 but the cache is gone"
            ))
            .with_hint("run `nepho registry:update` again")),
            Ok(Fetched::Body {
                bytes,
                etag,
                last_modified,
                max_age,
            }) => {
                let bytes = decode(&bytes, url)?;
                parse_index(&bytes, url)?;
                if !keys.is_empty() {
                    let sig_url = format!("{url}.sig");
                    let checked = fetch(&sig_url, None).and_then(|f| match f {
                        Fetched::Body { bytes: sig, .. } => sign::verify(&bytes, &sig, keys, url),
                        Fetched::NotModified { .. } => Err(Error::invalid(format!(
                            "registry {url}: unexpected 304 for its signature"
                        ))),
                    });
                    if let Err(e) = checked {
                        // An index that fails verification is never used; a verified one
                        // cached before stays in use.
                        if have_body {
                            warn(&format!("{e}; keeping the index verified before"));
                            return Ok((body_path, "cached"));
                        }
                        return Err(e);
                    }
                }
                write_atomic(&body_path, &bytes)?;
                let m = CacheMeta {
                    url: url.to_string(),
                    etag,
                    last_modified,
                    fetched_at: now(),
                    max_age: max_age.unwrap_or(self.default_max_age),
                    verified_with: key_digest,
                };
                write_atomic(&meta_path, &serde_json::to_vec(&m).unwrap_or_default())?;
                Ok((body_path, "fetched"))
            }
            // An index that is too large or garbage is an error to see, not an outage to ride out.
            Err(e) if have_body && !matches!(e, Error::Invalid { .. }) => {
                let age = meta
                    .map(|m| crate::util::rfc3339(m.fetched_at))
                    .unwrap_or_else(|| "an unknown time".into());
                warn(&format!(
                    "registry {url} is unreachable ({e}); using the cached index from {age}"
                ));
                Ok((body_path, "cached"))
            }
            Err(e) => Err(e),
        }
    }

    fn load_one(
        &self,
        src: &RegistrySource,
        refresh: Refresh,
        warn: &dyn Fn(&str),
    ) -> Result<(Vec<u8>, &'static str)> {
        let (path, status) = self.current_file(src, refresh, warn)?;
        Ok((read_index_file(&path, &src.url)?, status))
    }

    /// Every entry of every index, first source first.
    pub fn entries(
        &self,
        refresh: Refresh,
        warn: &dyn Fn(&str),
    ) -> Result<Vec<(String, RegistryEntry)>> {
        let (loaded, _) = self.load(refresh, warn)?;
        Ok(loaded
            .into_iter()
            .flat_map(|l| {
                let source = l.source;
                l.index
                    .cloudlets
                    .into_iter()
                    .map(move |e| (source.clone(), e))
            })
            .collect())
    }
}

enum Fetched {
    NotModified {
        max_age: Option<u64>,
    },
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
        max_age: Option<u64>,
    },
}

fn max_age_of(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let cc = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    cc.split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|v| v.trim().parse().ok())
}

fn fetch(url: &str, meta: Option<&CacheMeta>) -> Result<Fetched> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(e.to_string()))?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("nepho/", env!("CARGO_PKG_VERSION")))
            // We inflate gzip ourselves, so that the inflated size has a limit too.
            .no_gzip()
            .build()
            .map_err(|e| Error::Other(format!("cannot build an HTTP client: {e}")))?;
        let mut request = client
            .get(url)
            .header(reqwest::header::ACCEPT_ENCODING, "gzip");
        if let Some(m) = meta {
            if let Some(etag) = &m.etag {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &m.last_modified {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, lm);
            }
        }
        let unreachable = |e: reqwest::Error| {
            Error::unavailable(format!("cannot reach registry {url}: {}", error_chain(&e)))
        };
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let headers = response.headers().clone();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified {
                max_age: max_age_of(&headers),
            });
        }
        if !status.is_success() {
            return Err(Error::unavailable(format!(
                "registry {url} answered HTTP {status}"
            )));
        }
        if response.content_length().is_some_and(|n| n > MAX_INDEX_BYTES) {
            return Err(too_large(url));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if (bytes.len() + chunk.len()) as u64 > MAX_INDEX_BYTES {
                return Err(too_large(url));
            }
            bytes.extend_from_slice(&chunk);
        }
        let encoding = headers
            .get(reqwest::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase());
        let bytes = match encoding.as_deref() {
            None | Some("" | "identity") => bytes,
            Some("gzip" | "x-gzip") => gunzip_limited(&bytes, url)?,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "registry {url} answered with Content-Encoding {other}, which nepho does not read"
                )));
            }
        };
        let header = |name: reqwest::header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Ok(Fetched::Body {
            etag: header(reqwest::header::ETAG),
            last_modified: header(reqwest::header::LAST_MODIFIED),
            max_age: max_age_of(&headers),
            bytes,
        })
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// A search hit with its rank.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SearchHit {
    pub name: String,
    pub summary: Option<String>,
    pub url: String,
    pub tags: Vec<String>,
    pub version: Option<String>,
    pub score: u32,
    pub registry: String,
}

fn normalize_terms(terms: &[String]) -> Vec<String> {
    terms
        .iter()
        .map(|t| t.to_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Case-insensitive `contains` for an already lower-cased needle, without allocating for
/// ASCII text (the common case, and the hot loop of a 30,000-entry search).
fn contains_ci(haystack: &str, needle: &str) -> bool {
    if haystack.is_ascii() {
        let (h, n) = (haystack.as_bytes(), needle.as_bytes());
        return n.len() <= h.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    haystack.to_lowercase().contains(needle)
}

fn eq_ci(a: &str, lower: &str) -> bool {
    if a.is_ascii() {
        a.eq_ignore_ascii_case(lower)
    } else {
        a.to_lowercase() == lower
    }
}

fn starts_with_ci(a: &str, lower: &str) -> bool {
    if a.is_ascii() {
        a.len() >= lower.len() && a.as_bytes()[..lower.len()].eq_ignore_ascii_case(lower.as_bytes())
    } else {
        a.to_lowercase().starts_with(lower)
    }
}

/// Ranks one entry: name matches beat tag matches beat summary (then description) matches.
/// Every term must match somewhere; `terms` are lower-cased.
fn score(
    name: &str,
    tags: &[&str],
    summary: Option<&str>,
    description: Option<&str>,
    terms: &[String],
) -> Option<u32> {
    let short = name.rsplit('/').next().unwrap_or(name);
    let mut total = 0;
    for term in terms {
        let term = term.as_str();
        let score = if eq_ci(name, term) || eq_ci(short, term) {
            1000
        } else if starts_with_ci(short, term) {
            700
        } else if contains_ci(name, term) {
            500
        } else if tags.iter().any(|t| eq_ci(t, term)) {
            300
        } else if tags.iter().any(|t| contains_ci(t, term)) {
            200
        } else if summary.is_some_and(|s| contains_ci(s, term)) {
            100
        } else if description.is_some_and(|s| contains_ci(s, term)) {
            50
        } else {
            return None;
        };
        total += score;
    }
    Some(total)
}

fn sort_hits(hits: &mut [SearchHit]) {
    hits.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.name.cmp(&b.name)));
}

/// Ranks already loaded entries (see [`Registry::search`] for the fast path).
pub fn search(entries: &[(String, RegistryEntry)], terms: &[String]) -> Vec<SearchHit> {
    let terms = normalize_terms(terms);
    let mut hits: Vec<SearchHit> = entries
        .iter()
        .filter_map(|(source, e)| {
            let tags: Vec<&str> = e.tags.iter().map(String::as_str).collect();
            let score = score(
                &e.name,
                &tags,
                e.summary.as_deref(),
                e.description.as_deref(),
                &terms,
            )?;
            Some(SearchHit {
                name: e.name.clone(),
                summary: e.summary.clone(),
                url: e.url.clone(),
                tags: e.tags.clone(),
                version: e.version.clone(),
                score,
                registry: source.clone(),
            })
        })
        .collect();
    sort_hits(&mut hits);
    hits
}

/// Looks a name up exactly (`huit/mediawiki`) or by its short form when unambiguous, and says
/// which registry it comes from. The same name in two registries is the first registry's (the
/// order of the config); `REGISTRY:NAME` picks another.
pub fn lookup<'a>(
    entries: &'a [(String, RegistryEntry)],
    name: &str,
) -> Result<(&'a str, &'a RegistryEntry)> {
    if let Some((reg, e)) = entries.iter().find(|(_, e)| e.name == name) {
        return Ok((reg, e));
    }
    if let Some((reg, rest)) = name.rsplit_once(':')
        && let Some((r, e)) = entries
            .iter()
            .find(|(r, e)| r == reg && (e.name == rest || e.name.rsplit('/').next() == Some(rest)))
    {
        return Ok((r, e));
    }
    let short: Vec<(&str, &RegistryEntry)> = entries
        .iter()
        .filter(|(_, e)| e.name.rsplit('/').next() == Some(name))
        .map(|(r, e)| (r.as_str(), e))
        .collect();
    let mut distinct: Vec<&str> = short.iter().map(|(_, e)| e.name.as_str()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() == 1 {
        return Ok(short[0]);
    }
    match distinct.as_slice() {
        [] => Err(
            Error::not_found(format!("no cloudlet named \"{name}\" in the registry")).with_hint(
                format!("search with `nepho cloudlet:search {name}`, or install from a git URL"),
            ),
        ),
        many => Err(Error::usage(format!(
            "\"{name}\" matches several cloudlets: {}",
            many.join(", ")
        ))
        .with_hint("use the full owner/name")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, tags: &[&str], summary: &str) -> (String, RegistryEntry) {
        (
            "t".into(),
            RegistryEntry {
                name: name.into(),
                url: format!("https://example.invalid/{name}.git"),
                summary: Some(summary.into()),
                description: None,
                tags: tags.iter().map(|t| t.to_string()).collect(),
                version: None,
                author: None,
                license: None,
                project_page: None,
                commit: None,
                tree: None,
                tag: None,
                format: None,
                versions: Vec::new(),
                scenarios: Vec::new(),
            },
        )
    }

    #[test]
    fn ranking_prefers_name_then_tags_then_summary() {
        let entries = vec![
            entry("acme/blog", &["wiki"], "a blog"),
            entry("acme/notes", &[], "a Wiki for notes"),
            entry("huit/mediawiki", &[], "generic mediawiki"),
            entry("zed/wiki", &[], "plain"),
        ];
        let names: Vec<String> = search(&entries, &["WIKI".into()])
            .into_iter()
            .map(|h| h.name)
            .collect();
        assert_eq!(
            names,
            ["zed/wiki", "huit/mediawiki", "acme/blog", "acme/notes"]
        );
        assert!(search(&entries, &["wiki".into(), "nothing".into()]).is_empty());
    }

    #[test]
    fn builtin_index_parses_and_garbage_is_rejected() {
        let index = parse_index(BUILTIN_INDEX.as_bytes(), "builtin").unwrap();
        assert!(index.cloudlets.iter().any(|c| c.name == "hello"));
        let err = parse_index(b"<html>oops</html>", "http://x").unwrap_err();
        assert!(err.to_string().contains("not a valid index"), "{err}");
    }

    #[test]
    fn inflating_stops_at_the_limit() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b' '; 1 << 20]).unwrap();
        let member = enc.finish().unwrap();
        let fits = member.repeat((MAX_INDEX_BYTES >> 20) as usize);
        assert_eq!(decode(&fits, "x").unwrap().len() as u64, MAX_INDEX_BYTES);
        let bomb = member.repeat((MAX_INDEX_BYTES >> 20) as usize + 1);
        let err = decode(&bomb, "http://x").unwrap_err();
        assert!(err.to_string().contains("larger than 64 MiB"), "{err}");
        assert_eq!(err.exit_code(), crate::error::ExitCode::Invalid);
    }
}
