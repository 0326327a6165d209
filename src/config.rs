//! Where nepho keeps things, and the user's configuration file.
//!
//! Directories follow XDG (via `directories`) unless `NEPHO_HOME` puts everything under one
//! root. Precedence for settings: command-line flags > environment > config file > defaults.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, IoContext, Result};
use crate::yaml::{self, Dialect, Node};

#[derive(Debug, Clone)]
pub struct Paths {
    pub config_file: PathBuf,
    pub config_dir: PathBuf,
    pub data_dir: PathBuf,
    pub cache_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Sockets of this home's nannies: `NEPHO_HOME/run`, else a directory named after this
    /// home's state directory under `XDG_RUNTIME_DIR` (or the temp dir).
    pub runtime_dir: PathBuf,
    /// The named context in use (`--context`, `NEPHO_CONTEXT`, else `nepho context:use`):
    /// its own provider settings and cluster file; `None` is the default context.
    pub context: Option<String>,
}

/// The name every nepho has: settings directly under the config directory.
pub const DEFAULT_CONTEXT: &str = "default";

impl Paths {
    /// Where this context's provider settings and cluster file live.
    pub fn provider_dir(&self) -> PathBuf {
        match &self.context {
            Some(name) => self.config_dir.join("contexts").join(name),
            None => self.config_dir.clone(),
        }
    }

    /// The context chosen with `nepho context:use` (the file `<config>/context`).
    pub fn chosen_context_file(&self) -> PathBuf {
        self.config_dir.join("context")
    }

    /// Applies a context name: `--context`/`NEPHO_CONTEXT` if given, else the chosen one.
    pub fn with_context(mut self, explicit: Option<&str>) -> Result<Paths> {
        let chosen = std::fs::read_to_string(self.chosen_context_file())
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let name = explicit.map(str::to_string).or(chosen);
        self.context = match name.as_deref() {
            None | Some(DEFAULT_CONTEXT) => None,
            Some(n) => Some(context_name(n)?),
        };
        Ok(self)
    }
}

/// A context name: letters, digits, `-`, `_`, `.` (it names a directory).
pub fn context_name(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(Error::usage(format!("invalid context name \"{name}\""))
            .with_hint("context names use letters, digits, `-`, `_` and `.`"))
    }
}

impl Paths {
    pub fn discover(config_override: Option<&Path>) -> Result<Paths> {
        let mut paths = if let Some(home) = std::env::var_os("NEPHO_HOME").filter(|h| !h.is_empty())
        {
            let home = PathBuf::from(home);
            Paths {
                config_file: home.join("config.yaml"),
                config_dir: home.clone(),
                data_dir: home.clone(),
                cache_dir: home.join("cache"),
                state_dir: home.join("state"),
                runtime_dir: home.join("run"),
                context: None,
            }
        } else {
            let dirs = directories::ProjectDirs::from("", "", "nepho").ok_or_else(|| {
                Error::Other("cannot determine a home directory".into())
                    .with_hint("set HOME, or NEPHO_HOME to keep everything under one directory")
            })?;
            let uid = crate::util::euid();
            // `~/.local/state/nepho`. Earlier versions used `~/.local/state/nepho/state`: a
            // home that has formations there keeps using it, so nothing it built is forgotten.
            let base = dirs.state_dir().unwrap_or_else(|| dirs.data_dir());
            let legacy = base.join("state");
            let state_dir = if legacy.join("formations").is_dir() {
                legacy
            } else {
                base.to_path_buf()
            };
            // One user may run nepho with several HOMEs, which share XDG_RUNTIME_DIR (or /tmp):
            // the runtime directory is named after the home's state, so sockets never cross.
            let home_key = crate::util::short_hash(
                crate::util::canonical_lenient(&state_dir)
                    .as_os_str()
                    .as_encoded_bytes(),
            );
            Paths {
                config_file: dirs.config_dir().join("config.yaml"),
                config_dir: dirs.config_dir().to_path_buf(),
                data_dir: dirs.data_dir().to_path_buf(),
                cache_dir: dirs.cache_dir().to_path_buf(),
                state_dir,
                runtime_dir: match dirs.runtime_dir() {
                    Some(dir) => dir.join(format!("nepho-{home_key}")),
                    None => std::env::temp_dir().join(format!("nepho-{uid}-{home_key}")),
                },
                context: None,
            }
        };
        if let Some(file) = config_override {
            paths.config_file = file.to_path_buf();
        }
        Ok(paths)
    }

    /// Installed cloudlets live here, one directory each.
    pub fn cloudlets_dir(&self) -> PathBuf {
        self.data_dir.join("cloudlets")
    }

    /// Per-cloudlet user values (the "user config" merge layer): `values/<cloudlet>.yaml`.
    pub fn user_values_file(&self, cloudlet_dir_name: &str) -> PathBuf {
        self.config_dir
            .join("values")
            .join(format!("{cloudlet_dir_name}.yaml"))
    }

    pub fn registry_cache_dir(&self) -> PathBuf {
        self.cache_dir.join("registry")
    }

    /// Local records of formations (the provider remains the source of truth).
    pub fn formations_dir(&self) -> PathBuf {
        self.state_dir.join("formations")
    }
}

/// The parsed config file. Unknown keys are warnings, not errors, so newer configs still load.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub output: Option<String>,
    pub no_input: Option<bool>,
    /// Registry indexes (http, https or file), first listed first; empty means the built-in
    /// index.
    pub registries: Vec<RegistrySource>,
    /// SSH public keys (`ssh-ed25519 AAAA...`) trusted to sign every registry's `index.json`
    /// that does not list its own `keys:`.
    pub registry_keys: Vec<String>,
    /// Seconds a cached registry index stays fresh when the server gives no max-age.
    pub registry_max_age: Option<u64>,
    pub warnings: Vec<String>,
}

const CONFIG_KEYS: &[&str] = &[
    "output",
    "no_input",
    "registry",
    "registries",
    "registry_keys",
    "registry_max_age",
];

/// One configured registry: a plain URL in the config, or `{name, url, keys}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySource {
    /// Shown beside results (`acme`); the URL itself when the config gives only a URL.
    pub name: String,
    pub url: String,
    /// SSH public keys trusted to sign this registry's index (empty: `registry_keys`, if any).
    pub keys: Vec<String>,
}

impl RegistrySource {
    pub fn from_url(url: &str) -> RegistrySource {
        RegistrySource {
            name: url.to_string(),
            url: url.to_string(),
            keys: Vec::new(),
        }
    }
}

/// A list of strings (`registry_keys`, a registry's `keys`).
fn string_list(node: &Node) -> Option<Vec<String>> {
    match &node.value {
        yaml::NodeValue::Seq(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

/// A `registries:` item: `URL`, or `{name: NAME, url: URL, keys: [KEY...]}`.
fn registry_source(node: &Node) -> std::result::Result<RegistrySource, &'static str> {
    if let Some(url) = node.as_str() {
        return Ok(RegistrySource::from_url(url));
    }
    const SHAPE: &str =
        "each of `registries` is a URL or {name: NAME, url: URL, keys: [SSH public key, ...]}";
    let map = node.as_map().ok_or(SHAPE)?;
    let text = |k: &str| {
        map.get(k)
            .and_then(|e| e.value.as_str())
            .map(str::to_string)
    };
    if map
        .keys()
        .any(|k| !["name", "url", "keys"].contains(&k.as_str()))
    {
        return Err(SHAPE);
    }
    let url = text("url").ok_or(SHAPE)?;
    let keys = match map.get("keys") {
        Some(e) => string_list(&e.value).ok_or(SHAPE)?,
        None => Vec::new(),
    };
    let name = match map.get("name") {
        Some(e) => e.value.as_str().ok_or(SHAPE)?.to_string(),
        None => url.clone(),
    };
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err("a registry's `name` must be a non-empty line of text");
    }
    Ok(RegistrySource { name, url, keys })
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let src = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(Error::io(path, e)),
        };
        let Some(root) = yaml::parse(&src, path, Dialect::Yaml12, yaml::Tags::CoreOnly)? else {
            return Ok(Config::default());
        };
        let map = root.as_map().ok_or_else(|| {
            yaml::YamlError::at(
                path,
                Some(&src),
                root.pos,
                "the config file must be a mapping",
            )
        })?;
        let mut config = Config::default();
        let err =
            |n: &Node, msg: &str| Error::from(yaml::YamlError::at(path, Some(&src), n.pos, msg));
        for (key, entry) in map {
            let v = &entry.value;
            match key.as_str() {
                "output" => {
                    config.output = Some(
                        v.as_str()
                            .filter(|f| ["table", "json", "yaml"].contains(f))
                            .ok_or_else(|| err(v, "`output` must be table, json or yaml"))?
                            .to_string(),
                    )
                }
                "no_input" => match v.to_value() {
                    Value::Bool(b) => config.no_input = Some(b),
                    _ => return Err(err(v, "`no_input` must be true or false")),
                },
                "registry" => {
                    config.registries = vec![RegistrySource::from_url(
                        v.as_str()
                            .ok_or_else(|| err(v, "`registry` must be a URL"))?,
                    )]
                }
                "registries" => match &v.value {
                    yaml::NodeValue::Seq(items) => {
                        config.registries = items
                            .iter()
                            .map(|i| registry_source(i).map_err(|m| err(i, m)))
                            .collect::<Result<_>>()?;
                        let mut names: Vec<&str> =
                            config.registries.iter().map(|r| r.name.as_str()).collect();
                        names.sort_unstable();
                        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
                            return Err(err(v, &format!("two registries are named \"{}\"", w[0])));
                        }
                    }
                    _ => return Err(err(v, "`registries` must be a list of URLs")),
                },
                "registry_keys" => {
                    config.registry_keys = string_list(v).ok_or_else(|| {
                        err(v, "`registry_keys` must be a list of SSH public keys")
                    })?
                }
                "registry_max_age" => match v.to_value() {
                    Value::Number(n) if n.as_u64().is_some() => {
                        config.registry_max_age = n.as_u64()
                    }
                    _ => return Err(err(v, "`registry_max_age` must be a number of seconds")),
                },
                other => config.warnings.push(format!(
                    "{}:{}:{}: unknown config key \"{other}\" (known: {})",
                    path.display(),
                    entry.key_pos.line,
                    entry.key_pos.col,
                    CONFIG_KEYS.join(", ")
                )),
            }
        }
        Ok(config)
    }
}

/// Writes a file atomically: a temporary sibling, fsync'd, then renamed over the target. The
/// file is private (0600) whatever the umask: settings may hold credentials, state may quote
/// secrets.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomic_mode(path, contents, 0o600)
}

/// [`write_atomic`] with another permission mode.
pub fn write_atomic_mode(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).at(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).at(dir)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .at(path)?;
    tmp.write_all(contents).at(path)?;
    tmp.as_file().sync_all().at(path)?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}
