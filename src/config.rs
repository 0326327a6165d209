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
            }
        } else {
            let dirs = directories::ProjectDirs::from("", "", "nepho").ok_or_else(|| {
                Error::Other("cannot determine a home directory".into())
                    .with_hint("set HOME, or NEPHO_HOME to keep everything under one directory")
            })?;
            let uid = unsafe { libc::geteuid() };
            let state_dir = dirs
                .state_dir()
                .unwrap_or_else(|| dirs.data_dir())
                .join("state");
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
    /// Registry index URLs (http, https or file); empty means the built-in index.
    pub registries: Vec<String>,
    /// Seconds a cached registry index stays fresh when the server gives no max-age.
    pub registry_max_age: Option<u64>,
    pub warnings: Vec<String>,
}

const CONFIG_KEYS: &[&str] = &[
    "output",
    "no_input",
    "registry",
    "registries",
    "registry_max_age",
];

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
                            .ok_or_else(|| err(v, "`output` must be table, json or yaml"))?
                            .to_string(),
                    )
                }
                "no_input" => match v.to_value() {
                    Value::Bool(b) => config.no_input = Some(b),
                    _ => return Err(err(v, "`no_input` must be true or false")),
                },
                "registry" => {
                    config.registries = vec![
                        v.as_str()
                            .ok_or_else(|| err(v, "`registry` must be a URL"))?
                            .to_string(),
                    ]
                }
                "registries" => match v.to_value() {
                    Value::Array(items) => {
                        config.registries = items
                            .into_iter()
                            .map(|i| {
                                i.as_str()
                                    .map(str::to_string)
                                    .ok_or_else(|| err(v, "`registries` must be a list of URLs"))
                            })
                            .collect::<Result<_>>()?
                    }
                    _ => return Err(err(v, "`registries` must be a list of URLs")),
                },
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

/// Writes a file atomically: a temporary sibling, fsync'd, then renamed over the target.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).at(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).at(dir)?;
    tmp.write_all(contents).at(path)?;
    tmp.as_file().sync_all().at(path)?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}
