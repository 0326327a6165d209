//! Cloudlets on disk: the native layout and the Nepho 1.x layout, loaded into one model.
//!
//! Native: `cloudlet.yaml`, `scenarios/*.yaml`, `patterns/<provider>/`, `provisioners/`.
//! Nepho 1.x: `cloudlet.yaml`, `blueprints/*.yaml`, `resources/<pattern>/` (+ `resources/common/`),
//! `payload/`. Both become a [`Cloudlet`] with [`Scenario`]s.

pub mod bundled;
pub mod scaffold;

use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use nepho_provider_api::ProviderKind;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::params::{self, LayerKind, ParamDecl};
use crate::util::safe_relative;
use crate::yaml::{self, Dialect, Node, YamlError};

/// A validated cloudlet name: `hello`, `huit/mediawiki`, `my-org/web_app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CloudletName(String);

impl CloudletName {
    pub fn parse(s: &str) -> Result<CloudletName> {
        let bad = |why: &str| {
            Error::invalid(format!("invalid cloudlet name \"{s}\": {why}")).with_hint(
                "names use letters, digits, `.`, `_`, `-`, and at most one `/` (owner/name)",
            )
        };
        if s.is_empty() || s.len() > 100 {
            return Err(bad("must be 1 to 100 characters"));
        }
        if s.split('/').count() > 2 {
            return Err(bad("at most one `/`"));
        }
        for part in s.split('/') {
            if part.is_empty()
                || part == "."
                || part == ".."
                || part.starts_with('.')
                || part.starts_with('-')
            {
                return Err(bad("each part must start with a letter or digit"));
            }
            if !part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                return Err(bad("unexpected character"));
            }
        }
        Ok(CloudletName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The directory name it installs under: `huit/mediawiki` → `huit-mediawiki`.
    pub fn dir_name(&self) -> String {
        self.0.replace('/', "-")
    }

    /// The part after the owner: `huit/mediawiki` → `mediawiki`.
    pub fn short(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for CloudletName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CloudletFormat {
    /// The current layout (scenarios/ + patterns/).
    Native,
    /// Nepho 1.x (blueprints/ + resources/).
    V1,
}

impl CloudletFormat {
    pub fn dialect(self) -> Dialect {
        match self {
            CloudletFormat::Native => Dialect::Yaml12,
            CloudletFormat::V1 => Dialect::PyYaml11,
        }
    }
}

/// `cloudlet.yaml`, as in a puppet Modulefile.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Manifest {
    pub name: String,
    pub version: Option<String>,
    pub source: Option<String>,
    pub author: Option<String>,
    pub license: Option<String>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub project_page: Option<String>,
    pub tags: Vec<String>,
}

const MANIFEST_KEYS: &[&str] = &[
    "name",
    "version",
    "source",
    "author",
    "license",
    "summary",
    "description",
    "project_page",
    "tags",
    "parameters",
    "format",
];
const SCENARIO_KEYS: &[&str] = &[
    "name",
    "summary",
    "description",
    "provider",
    "pattern",
    "provisioner",
    "parameters",
];
const BLUEPRINT_KEYS: &[&str] = &[
    "name",
    "summary",
    "description",
    "provider",
    "pattern",
    "parameters",
    "provisioner",
];

#[derive(Debug, Clone)]
pub struct Cloudlet {
    pub root: PathBuf,
    pub format: CloudletFormat,
    pub manifest: Manifest,
    pub manifest_file: PathBuf,
    /// Native: typed declarations from `cloudlet.yaml` (their defaults are the first layer).
    pub decls: IndexMap<String, ParamDecl>,
    /// Nepho 1.x: the flat `parameters:` of `cloudlet.yaml`.
    pub v1_parameters: Option<Node>,
    /// Nepho 1.x: the `name:` written in cloudlet.yaml, if any. A 1.x cloudlet is named by the
    /// directory it is installed in (`manifest.name`), as 1.x did; this is shown, not used.
    pub declared_name: Option<String>,
    pub warnings: Vec<String>,
}

/// Where a scenario's pattern lives and how templates are looked up.
#[derive(Debug, Clone, Serialize)]
pub struct PatternRef {
    /// The entry template, relative to the first search directory.
    pub entry: String,
    /// Absolute path of the entry template.
    pub path: PathBuf,
    /// Template search path, first match wins.
    pub search_path: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub provider: ProviderKind,
    pub pattern: PatternRef,
    pub provisioner: Option<PathBuf>,
    pub payload_dir: Option<PathBuf>,
    /// Declarations from this scenario (native) layered over the cloudlet's.
    pub decls: IndexMap<String, ParamDecl>,
    /// Nepho 1.x blueprint `parameters:`.
    pub v1_parameters: Option<Node>,
    pub file: PathBuf,
    pub warnings: Vec<String>,
}

impl Cloudlet {
    pub fn load(root: &Path) -> Result<Cloudlet> {
        Cloudlet::load_named(root, None)
    }

    /// Loads a cloudlet; a Nepho 1.x one takes `name` (else its directory's name) as its name,
    /// whatever its cloudlet.yaml says, as 1.x did. Native cloudlets keep their `name:`.
    pub fn load_named(root: &Path, name: Option<&str>) -> Result<Cloudlet> {
        let root = root.canonicalize().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::not_found(format!("no cloudlet at {}", root.display()))
            } else {
                Error::io(root, e)
            }
        })?;
        let format = if root.join("scenarios").is_dir() {
            CloudletFormat::Native
        } else if root.join("blueprints").is_dir() {
            CloudletFormat::V1
        } else {
            return Err(Error::invalid(format!(
                "{} is not a cloudlet: it has neither scenarios/ (native) nor blueprints/ (Nepho 1.x)",
                root.display()
            ))
            .with_hint("create one with `nepho cloudlet:create NAME`"));
        };
        let manifest_file = root.join("cloudlet.yaml");
        let src = read_confined(&root, &manifest_file, MAX_YAML_BYTES)?.ok_or_else(|| {
            Error::invalid(format!("{} is missing cloudlet.yaml", root.display()))
                .with_hint("every cloudlet needs a cloudlet.yaml with at least `name:`")
        })?;
        let parsed = yaml::parse(&src, &manifest_file, format.dialect(), yaml::Tags::CoreOnly)?
            .filter(|n| !(format == CloudletFormat::V1 && n.is_null()));
        let node = match (parsed, format) {
            (Some(node), _) => node,
            // Many 1.x cloudlet.yaml files are a comment and nothing else (`--- # my-cloudlet`).
            (None, CloudletFormat::V1) => Node {
                value: yaml::NodeValue::Map(IndexMap::new()),
                pos: yaml::Pos { line: 1, col: 1 },
                plain: None,
            },
            (None, CloudletFormat::Native) => {
                return Err(Error::from(YamlError::at(
                    &manifest_file,
                    Some(&src),
                    yaml::Pos { line: 1, col: 1 },
                    "cloudlet.yaml is empty",
                )));
            }
        };
        let map = node.as_map().ok_or_else(|| {
            Error::from(YamlError::at(
                &manifest_file,
                Some(&src),
                node.pos,
                "cloudlet.yaml must be a mapping",
            ))
        })?;
        let mut warnings = Vec::new();
        let mut manifest = Manifest::default();
        let mut decls = IndexMap::new();
        let mut v1_parameters = None;
        let err =
            |n: &Node, m: String| Error::from(YamlError::at(&manifest_file, Some(&src), n.pos, m));
        for (key, entry) in map {
            let v = &entry.value;
            let text = || -> Result<Option<String>> {
                match v.to_value() {
                    serde_json::Value::Null => Ok(None),
                    serde_json::Value::String(s) => Ok(Some(s)),
                    serde_json::Value::Number(n) => {
                        Ok(Some(v.plain.clone().unwrap_or_else(|| n.to_string())))
                    }
                    _ => Err(err(v, format!("`{key}` must be text"))),
                }
            };
            match key.as_str() {
                "name" => manifest.name = text()?.unwrap_or_default(),
                "version" => manifest.version = text()?,
                "source" => manifest.source = text()?,
                "author" => manifest.author = text()?,
                "license" => manifest.license = text()?,
                "summary" => manifest.summary = text()?,
                "description" => manifest.description = text()?,
                // `projectpage` is how Nepho 1.x cloudlets spelled it.
                "project_page" | "projectpage" => manifest.project_page = text()?,
                "format" => {}
                "tags" => match v.to_value() {
                    serde_json::Value::Array(items) => {
                        manifest.tags = items
                            .into_iter()
                            .map(|t| {
                                t.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| t.to_string())
                            })
                            .collect()
                    }
                    _ => return Err(err(v, "`tags` must be a list".into())),
                },
                "parameters" => match format {
                    CloudletFormat::Native => {
                        decls = params::parse_decls(
                            v,
                            &manifest_file,
                            &src,
                            LayerKind::Cloudlet,
                            &mut warnings,
                        )?
                    }
                    CloudletFormat::V1 => {
                        if !v.is_null() && v.as_map().is_none() {
                            return Err(err(v, "`parameters` must be a mapping".into()));
                        }
                        v1_parameters = Some(v.clone());
                    }
                },
                other => warnings.push(format!(
                    "{}:{}:{}: unknown key \"{other}\" in cloudlet.yaml (known: {})",
                    manifest_file.display(),
                    entry.key_pos.line,
                    entry.key_pos.col,
                    MANIFEST_KEYS.join(", ")
                )),
            }
        }
        let mut declared_name = None;
        if format == CloudletFormat::V1 {
            // 1.x: the install directory names the cloudlet (cloudlet.yaml's `name:` is optional
            // and, where present, only informative).
            let dir_name = root.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let chosen = name
                .map(str::to_string)
                .or_else(|| CloudletName::parse(dir_name).ok().map(|_| dir_name.to_string()))
                .or_else(|| {
                    CloudletName::parse(&manifest.name)
                        .ok()
                        .map(|n| n.dir_name())
                })
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "{}: a Nepho 1.x cloudlet is named by its directory, and \"{dir_name}\" is not a valid name",
                        root.display()
                    ))
                    .with_hint("install it with `--name NAME`")
                })?;
            CloudletName::parse(&chosen)?;
            declared_name =
                Some(std::mem::replace(&mut manifest.name, chosen)).filter(|n| !n.is_empty());
        }
        if manifest.name.is_empty() {
            return Err(err(&node, "cloudlet.yaml has no `name`".into())
                .into_hint("add `name: owner/cloudlet` to cloudlet.yaml"));
        }
        CloudletName::parse(&manifest.name).map_err(|e| {
            let pos = map.get("name").map(|e| e.value.pos).unwrap_or(node.pos);
            Error::from(YamlError::at(
                &manifest_file,
                Some(&src),
                pos,
                e.to_string(),
            ))
        })?;
        Ok(Cloudlet {
            root,
            format,
            manifest,
            manifest_file,
            decls,
            v1_parameters,
            declared_name,
            warnings,
        })
    }

    pub fn name(&self) -> CloudletName {
        CloudletName(self.manifest.name.clone())
    }

    fn scenario_dir(&self) -> PathBuf {
        match self.format {
            CloudletFormat::Native => self.root.join("scenarios"),
            CloudletFormat::V1 => self.root.join("blueprints"),
        }
    }

    /// Scenario names, sorted with `default` first.
    pub fn scenario_names(&self) -> Result<Vec<String>> {
        let dir = self.scenario_dir();
        let mut names = Vec::new();
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                continue;
            };
            if let Some(stem) = name
                .strip_suffix(".yaml")
                .or_else(|| name.strip_suffix(".yml"))
                && !stem.starts_with('.')
            {
                names.push(stem.to_string());
            }
        }
        names.sort_by(|a, b| (a != "default").cmp(&(b != "default")).then(a.cmp(b)));
        Ok(names)
    }

    pub fn scenario(&self, name: &str) -> Result<Scenario> {
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(Error::invalid(format!("invalid scenario name \"{name}\"")));
        }
        let dir = self.scenario_dir();
        let file = [
            dir.join(format!("{name}.yaml")),
            dir.join(format!("{name}.yml")),
        ]
        .into_iter()
        .find(|p| p.is_file());
        let Some(file) = file else {
            let known = self.scenario_names().unwrap_or_default().join(", ");
            return Err(Error::not_found(format!(
                "cloudlet {} has no scenario \"{name}\" (it has: {known})",
                self.manifest.name
            ))
            .with_hint(format!(
                "list them with `nepho scenario:list {}`",
                self.manifest.name
            )));
        };
        let src = read_confined(&self.root, &file, MAX_YAML_BYTES)?.unwrap_or_default();
        let node = yaml::parse(&src, &file, self.format.dialect(), yaml::Tags::CoreOnly)?;
        let empty = Node {
            value: yaml::NodeValue::Map(IndexMap::new()),
            pos: yaml::Pos { line: 1, col: 1 },
            plain: None,
        };
        let node = node.unwrap_or(empty);
        let map = node.as_map().ok_or_else(|| {
            Error::from(YamlError::at(
                &file,
                Some(&src),
                node.pos,
                "a scenario must be a mapping",
            ))
        })?;
        let err = |pos: yaml::Pos, m: String| Error::from(YamlError::at(&file, Some(&src), pos, m));
        let mut warnings = Vec::new();
        let (mut summary, mut description, mut provider, mut pattern, mut provisioner) =
            (None, None, None, None, None);
        let mut decls = self.decls.clone();
        let mut v1_parameters = None;
        let known = if self.format == CloudletFormat::Native {
            SCENARIO_KEYS
        } else {
            BLUEPRINT_KEYS
        };
        for (key, entry) in map {
            let v = &entry.value;
            let text = || {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| err(v.pos, format!("`{key}` must be text")))
            };
            match key.as_str() {
                "name" => {}
                "summary" => summary = Some(text()?),
                "description" => description = Some(text()?),
                "provider" => {
                    let p = text()?;
                    provider = Some(ProviderKind::parse(&p).ok_or_else(|| {
                        err(
                            v.pos,
                            format!("unknown provider \"{p}\" (expected aws, vagrant or kvm)"),
                        )
                    })?);
                }
                "pattern" => pattern = Some((text()?, v.pos)),
                "provisioner" => provisioner = Some((text()?, v.pos)),
                "parameters" => match self.format {
                    CloudletFormat::Native => {
                        let own = params::parse_decls(
                            v,
                            &file,
                            &src,
                            LayerKind::Scenario,
                            &mut warnings,
                        )?;
                        params::overlay_decls(&mut decls, own);
                    }
                    CloudletFormat::V1 => {
                        if !v.is_null() && v.as_map().is_none() {
                            return Err(err(v.pos, "`parameters` must be a mapping".into()));
                        }
                        v1_parameters = Some(v.clone());
                    }
                },
                other => warnings.push(format!(
                    "{}:{}:{}: unknown key \"{other}\" in scenario (known: {})",
                    file.display(),
                    entry.key_pos.line,
                    entry.key_pos.col,
                    known.join(", ")
                )),
            }
        }
        let provider = provider.ok_or_else(|| {
            err(
                node.pos,
                "the scenario does not say which provider it uses".into(),
            )
            .into_hint("add `provider: kvm` (or aws, vagrant)")
        })?;
        let pattern = match self.format {
            CloudletFormat::Native => self.native_pattern(name, provider, pattern, &file, &src)?,
            CloudletFormat::V1 => {
                if let Some((p, pos)) = pattern.as_ref().filter(|(p, _)| p != name) {
                    warnings.push(format!(
                        "{}:{}:{}: `pattern: {p}` is ignored, as Nepho 1.x ignored it: the template comes from resources/{name}/",
                        file.display(),
                        pos.line,
                        pos.col
                    ));
                }
                self.v1_pattern(name, provider, pattern, &file, &src)?
            }
        };
        let provisioner = match (self.format, provisioner) {
            (CloudletFormat::Native, Some((p, pos))) => {
                let rel = safe_relative(&p).ok_or_else(|| {
                    err(
                        pos,
                        format!("provisioner \"{p}\" must be a relative path inside provisioners/"),
                    )
                })?;
                let path = self.root.join("provisioners").join(rel);
                if !path.is_file() {
                    return Err(err(
                        pos,
                        format!("provisioner {} does not exist", path.display()),
                    ));
                }
                Some(path)
            }
            (CloudletFormat::Native, None) => {
                Some(self.root.join("provisioners/bootstrap.sh")).filter(|p| p.is_file())
            }
            (CloudletFormat::V1, Some((p, pos))) => {
                let rel = safe_relative(&p).ok_or_else(|| {
                    err(pos, format!("provisioner \"{p}\" must be a relative path"))
                })?;
                Some(self.root.join(rel)).filter(|p| p.is_file())
            }
            (CloudletFormat::V1, None) => None,
        };
        let payload_dir = match self.format {
            CloudletFormat::Native => Some(self.root.join("provisioners")).filter(|p| p.is_dir()),
            CloudletFormat::V1 => Some(self.root.join("payload")).filter(|p| p.is_dir()),
        };
        Ok(Scenario {
            name: name.to_string(),
            summary,
            description,
            provider,
            pattern,
            provisioner,
            payload_dir,
            decls,
            v1_parameters,
            file,
            warnings,
        })
    }

    fn native_pattern(
        &self,
        scenario: &str,
        provider: ProviderKind,
        pattern: Option<(String, yaml::Pos)>,
        file: &Path,
        src: &str,
    ) -> Result<PatternRef> {
        let dir = self.root.join("patterns").join(provider.as_str());
        let entry = match pattern {
            Some((p, pos)) => {
                let rel = safe_relative(&p).ok_or_else(|| {
                    Error::from(YamlError::at(
                        file,
                        Some(src),
                        pos,
                        format!(
                            "pattern \"{p}\" must be a relative path inside patterns/{provider}/"
                        ),
                    ))
                })?;
                if !dir.join(&rel).is_file() {
                    return Err(YamlError::at(
                        file,
                        Some(src),
                        pos,
                        format!("pattern {} does not exist", dir.join(&rel).display()),
                    )
                    .into());
                }
                rel.to_string_lossy().into_owned()
            }
            None => {
                let mut files: Vec<String> = std::fs::read_dir(&dir)
                    .map_err(|_| {
                        Error::invalid(format!(
                            "scenario {scenario} uses provider {provider} but {} does not exist",
                            dir.display()
                        ))
                    })?
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().is_file())
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter(|n| !n.starts_with('.') && !n.starts_with('_'))
                    .collect();
                files.sort();
                let by_name = files
                    .iter()
                    .find(|f| f.split('.').next() == Some(scenario))
                    .cloned();
                match (by_name, files.len()) {
                    (Some(f), _) => f,
                    (None, 1) => files.remove(0),
                    _ => {
                        return Err(Error::invalid(format!(
                            "scenario {scenario}: cannot tell which file in {} is its pattern",
                            dir.display()
                        ))
                        .with_hint(format!("add `pattern: FILE` to {}", file.display())));
                    }
                }
            }
        };
        Ok(PatternRef {
            path: dir.join(&entry),
            entry,
            search_path: vec![dir, self.root.join("patterns")],
        })
    }

    fn v1_pattern(
        &self,
        blueprint: &str,
        provider: ProviderKind,
        pattern: Option<(String, yaml::Pos)>,
        file: &Path,
        src: &str,
    ) -> Result<PatternRef> {
        // 1.2.3 takes the template from resources/<blueprint file stem>; a `pattern:` key (pre-1.0
        // blueprints have one) is ignored, as it was then.
        let pos = pattern
            .as_ref()
            .map(|(_, pos)| *pos)
            .unwrap_or(yaml::Pos { line: 1, col: 1 });
        let name = blueprint.to_string();
        let rel = safe_relative(&name).ok_or_else(|| {
            Error::from(YamlError::at(
                file,
                Some(src),
                pos,
                format!("pattern \"{name}\" must be a name under resources/"),
            ))
        })?;
        let resources = self.root.join("resources");
        let dir = resources.join(&rel);
        let entry = match provider {
            ProviderKind::Aws => "cf.json",
            ProviderKind::Vagrant => "Vagrantfile",
            ProviderKind::Kvm => "kvm.yaml",
        };
        let path = dir.join(entry);
        if !path.is_file() {
            return Err(YamlError::at(
                file,
                Some(src),
                pos,
                format!("pattern {} does not exist", path.display()),
            )
            .into());
        }
        // 1.2.3 (nepho/core/scenario.py): FileSystemLoader([resources/common/<provider>,
        // resources/<blueprint>]); the shared library wins, includes resolve against both.
        let search_path = vec![resources.join("common").join(provider.as_str()), dir];
        Ok(PatternRef {
            entry: entry.to_string(),
            path,
            search_path,
        })
    }
}

trait IntoHint {
    fn into_hint(self, hint: &str) -> Error;
}

impl IntoHint for Error {
    fn into_hint(self, hint: &str) -> Error {
        match self {
            Error::Yaml(y) => Error::invalid(y.to_string()).with_hint(hint),
            other => other.with_hint(hint),
        }
    }
}

/// The most nepho reads of one YAML file of a cloudlet (cloudlet.yaml, a scenario, a blueprint):
/// the largest published ones are a few KiB.
pub const MAX_YAML_BYTES: u64 = 1 << 20;
/// The most nepho reads of one template or provisioner file of a cloudlet.
pub const MAX_TEMPLATE_BYTES: u64 = 4 << 20;

/// Reads a file that must resolve (symlinks included) to a path inside `root` and hold at most
/// `max_bytes` (see [`MAX_YAML_BYTES`], [`MAX_TEMPLATE_BYTES`]).
pub fn read_confined(root: &Path, path: &Path, max_bytes: u64) -> Result<Option<String>> {
    use std::io::Read;
    let real = match path.canonicalize() {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    if !real.starts_with(root) {
        return Err(Error::invalid(format!(
            "{} points outside the cloudlet (to {})",
            path.display(),
            real.display()
        ))
        .with_hint("cloudlets may not contain symlinks that leave the cloudlet directory"));
    }
    let too_large = |size: u64| {
        let shown = path.strip_prefix(root).unwrap_or(path);
        Error::invalid(format!(
            "{} is too large: {} bytes, over the {} limit for this kind of cloudlet file",
            shown.display(),
            size,
            human_size(max_bytes)
        ))
        .with_hint("keep large data out of the cloudlet (download it when the formation boots)")
    };
    let file = std::fs::File::open(&real).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if size > max_bytes {
        return Err(too_large(size));
    }
    // The file may grow between the check and the read: read no more than the limit allows.
    let mut text = String::new();
    file.take(max_bytes + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::io(path, e))?;
    if text.len() as u64 > max_bytes {
        return Err(too_large(text.len() as u64));
    }
    Ok(Some(text))
}

fn human_size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudlet_names() {
        assert_eq!(
            CloudletName::parse("huit/mediawiki").unwrap().dir_name(),
            "huit-mediawiki"
        );
        assert_eq!(
            CloudletName::parse("huit/mediawiki").unwrap().short(),
            "mediawiki"
        );
        for bad in [
            "", "../x", "a/../b", "a/b/c", ".hidden", "-rf", "a b", "a/", "x;rm",
        ] {
            assert!(
                CloudletName::parse(bad).is_err(),
                "{bad} should be rejected"
            );
        }
    }
}
