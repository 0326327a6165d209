//! The cloudlet registry: a JSON index (schema in `registry/schema.json`) fetched over HTTP(S)
//! or read from `file://`, cached with its ETag and max-age, usable offline.
//!
//! Refreshing is lazy: only a command that needs the index and finds the cache stale goes to
//! the network, and an unreachable registry falls back to the cache with a warning.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::write_atomic;
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheMeta {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    fetched_at: u64,
    max_age: u64,
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
    pub sources: Vec<String>,
    pub cache_dir: PathBuf,
    pub default_max_age: u64,
}

/// What a refresh did, for `registry:update` output.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RefreshReport {
    pub source: String,
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
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// Decodes an index body: gzip is detected by its magic bytes; anything invalid is an error
/// naming the source.
pub fn parse_index(bytes: &[u8], source: &str) -> Result<RegistryIndex> {
    let decoded;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| Error::invalid(format!("registry index {source}: bad gzip data: {e}")))?;
        decoded = out;
        &decoded[..]
    } else {
        bytes
    };
    let index: RegistryIndex = serde_json::from_slice(bytes).map_err(|e| {
        Error::invalid(format!(
            "registry index {source} is not a valid index (line {}, column {}): {e}",
            e.line(),
            e.column()
        ))
        .with_hint(
            "check the registry URL in your config, or `nepho registry:update` once it is fixed",
        )
    })?;
    if index.version != 1 {
        return Err(Error::invalid(format!(
            "registry index {source} has version {}, this nepho reads version 1",
            index.version
        ))
        .with_hint("upgrade nepho"));
    }
    Ok(index)
}

impl Registry {
    fn cache_paths(&self, url: &str) -> (PathBuf, PathBuf) {
        let key = fnv1a(url);
        (
            self.cache_dir.join(format!("{key}.json")),
            self.cache_dir.join(format!("{key}.meta.json")),
        )
    }

    /// Loads every configured index, refreshing as asked. Warnings (stale, unreachable) go to
    /// `warn`.
    pub fn load(
        &self,
        refresh: Refresh,
        warn: &dyn Fn(&str),
    ) -> Result<(Vec<LoadedIndex>, Vec<RefreshReport>)> {
        let mut loaded = Vec::new();
        let mut reports = Vec::new();
        if self.sources.is_empty() {
            let index = parse_index(BUILTIN_INDEX.as_bytes(), BUILTIN_SOURCE)?;
            reports.push(RefreshReport {
                source: BUILTIN_SOURCE.into(),
                status: "builtin".into(),
                entries: index.cloudlets.len(),
            });
            loaded.push(LoadedIndex {
                source: BUILTIN_SOURCE.into(),
                index,
            });
            return Ok((loaded, reports));
        }
        for url in &self.sources {
            let (index, status) = self.load_one(url, refresh, warn)?;
            reports.push(RefreshReport {
                source: url.clone(),
                status: status.into(),
                entries: index.cloudlets.len(),
            });
            loaded.push(LoadedIndex {
                source: url.clone(),
                index,
            });
        }
        Ok((loaded, reports))
    }

    fn load_one(
        &self,
        url: &str,
        refresh: Refresh,
        warn: &dyn Fn(&str),
    ) -> Result<(RegistryIndex, &'static str)> {
        if let Some(path) = url.strip_prefix("file://") {
            let bytes = std::fs::read(path).map_err(|e| {
                Error::unavailable(format!("cannot read registry index {url}: {e}"))
                    .with_hint("fix `registry:` in your nepho config")
            })?;
            return Ok((parse_index(&bytes, url)?, "local"));
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
        let cached = || -> Option<RegistryIndex> {
            std::fs::read(&body_path)
                .ok()
                .and_then(|b| parse_index(&b, url).ok())
        };
        let fresh = meta
            .as_ref()
            .is_some_and(|m| now().saturating_sub(m.fetched_at) < m.max_age);
        if refresh == Refresh::IfStale
            && fresh
            && let Some(index) = cached()
        {
            return Ok((index, "cached"));
        }
        match fetch(url, meta.as_ref().filter(|_| body_path.exists())) {
            Ok(Fetched::NotModified { max_age }) => {
                if let Some(index) = cached() {
                    let mut m = meta.expect("conditional request implies metadata");
                    m.fetched_at = now();
                    m.max_age = max_age.unwrap_or(self.default_max_age);
                    let _ = write_atomic(&meta_path, &serde_json::to_vec(&m).unwrap_or_default());
                    return Ok((index, "not-modified"));
                }
                Err(Error::unavailable(format!(
                    "registry {url} answered 304 but the cache is gone"
                ))
                .with_hint("run `nepho registry:update` again"))
            }
            Ok(Fetched::Body {
                bytes,
                etag,
                last_modified,
                max_age,
            }) => {
                let index = parse_index(&bytes, url)?;
                write_atomic(&body_path, &bytes)?;
                let m = CacheMeta {
                    url: url.to_string(),
                    etag,
                    last_modified,
                    fetched_at: now(),
                    max_age: max_age.unwrap_or(self.default_max_age),
                };
                write_atomic(&meta_path, &serde_json::to_vec(&m).unwrap_or_default())?;
                Ok((index, "fetched"))
            }
            Err(e) => match cached() {
                Some(index) => {
                    let age = meta
                        .map(|m| crate::util::rfc3339(m.fetched_at))
                        .unwrap_or_else(|| "an unknown time".into());
                    warn(&format!(
                        "registry {url} is unreachable ({e}); using the cached index from {age}"
                    ));
                    Ok((index, "cached"))
                }
                None => Err(e),
            },
        }
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
            .build()
            .map_err(|e| Error::Other(format!("cannot build an HTTP client: {e}")))?;
        let mut request = client.get(url);
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
        let response = request.send().await.map_err(unreachable)?;
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
        let bytes = response.bytes().await.map_err(unreachable)?.to_vec();
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

/// Ranks entries: name matches beat tag matches beat summary (and description) matches.
/// Every term must match somewhere; matching is case-insensitive.
pub fn search(entries: &[(String, RegistryEntry)], terms: &[String]) -> Vec<SearchHit> {
    let terms: Vec<String> = terms
        .iter()
        .map(|t| t.to_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let mut hits: Vec<SearchHit> = Vec::new();
    for (source, entry) in entries {
        let mut total = 0;
        let name = entry.name.to_lowercase();
        let short = name.rsplit('/').next().unwrap_or(&name);
        let mut all = true;
        for term in &terms {
            let mut score = 0;
            if name == *term || short == term {
                score = 1000;
            } else if short.starts_with(term.as_str()) {
                score = 700;
            } else if name.contains(term.as_str()) {
                score = 500;
            }
            if score == 0 {
                for tag in &entry.tags {
                    let tag = tag.to_lowercase();
                    if tag == *term {
                        score = score.max(300);
                    } else if tag.contains(term.as_str()) {
                        score = score.max(200);
                    }
                }
            }
            if score == 0
                && entry
                    .summary
                    .as_ref()
                    .is_some_and(|s| s.to_lowercase().contains(term.as_str()))
            {
                score = 100;
            }
            if score == 0
                && entry
                    .description
                    .as_ref()
                    .is_some_and(|s| s.to_lowercase().contains(term.as_str()))
            {
                score = 50;
            }
            if score == 0 {
                all = false;
                break;
            }
            total += score;
        }
        if all {
            hits.push(SearchHit {
                name: entry.name.clone(),
                summary: entry.summary.clone(),
                url: entry.url.clone(),
                tags: entry.tags.clone(),
                version: entry.version.clone(),
                score: total,
                registry: source.clone(),
            });
        }
    }
    hits.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.name.cmp(&b.name)));
    hits
}

/// Looks a name up exactly (`huit/mediawiki`) or by its short form when unambiguous.
pub fn lookup<'a>(entries: &'a [(String, RegistryEntry)], name: &str) -> Result<&'a RegistryEntry> {
    if let Some((_, e)) = entries.iter().find(|(_, e)| e.name == name) {
        return Ok(e);
    }
    let short: Vec<&RegistryEntry> = entries
        .iter()
        .map(|(_, e)| e)
        .filter(|e| e.name.rsplit('/').next() == Some(name))
        .collect();
    match short.as_slice() {
        [one] => Ok(one),
        [] => Err(
            Error::not_found(format!("no cloudlet named \"{name}\" in the registry")).with_hint(
                format!("search with `nepho cloudlet:search {name}`, or install from a git URL"),
            ),
        ),
        many => Err(Error::usage(format!(
            "\"{name}\" matches several cloudlets: {}",
            many.iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
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
}
