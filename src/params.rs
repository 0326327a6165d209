//! Typed scenario parameters and the layered merge that remembers where each value came from.
//!
//! Layers apply in order (cloudlet defaults → scenario → user config → a formation's stored
//! secrets → each `-f` → each `--set` → prompts), each over the last: maps merge deeply, lists replace unless the parameter declares another
//! list policy, and `null` deletes a key.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::secret::StoredSecrets;
use crate::yaml::{self, Dialect, MapEntry, Node, NodeValue, Pos, YamlError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Number,
    Boolean,
    List,
    Map,
}

impl ParamType {
    fn parse(s: &str) -> Option<ParamType> {
        Some(match s {
            "string" | "str" => ParamType::String,
            "number" | "int" | "integer" | "float" => ParamType::Number,
            "boolean" | "bool" => ParamType::Boolean,
            "list" | "array" => ParamType::List,
            "map" | "dict" | "object" => ParamType::Map,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::List => "list",
            ParamType::Map => "map",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ListPolicy {
    #[default]
    Replace,
    Append,
    /// Items are maps; an item whose `key` field matches an earlier item merges into it.
    MergeByKey(String),
}

impl fmt::Display for ListPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListPolicy::Replace => f.write_str("replace"),
            ListPolicy::Append => f.write_str("append"),
            ListPolicy::MergeByKey(k) => write!(f, "merge-by-key({k})"),
        }
    }
}

/// Where a value (or declaration) came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LayerKind {
    /// Built-in defaults of the provider (Nepho 1.x compatibility, e.g. `VagrantBackend`).
    ProviderDefaults,
    /// `cloudlet.yaml`.
    Cloudlet,
    /// The scenario file (`scenarios/NAME.yaml`, or a 1.x `blueprints/NAME.yaml`).
    Scenario,
    /// The user's stored values for this cloudlet.
    User,
    /// The secret values a formation was last built with (an update keeps them unless `-f`,
    /// `--set` or a prompt gives new ones).
    Stored,
    /// A `-f FILE`.
    ValuesFile,
    /// A `--set KEY=VALUE`.
    Set,
    /// Typed in at a prompt.
    Prompt,
}

impl LayerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LayerKind::ProviderDefaults => "provider-defaults",
            LayerKind::Cloudlet => "cloudlet",
            LayerKind::Scenario => "scenario",
            LayerKind::User => "user",
            LayerKind::Stored => "stored",
            LayerKind::ValuesFile => "values-file",
            LayerKind::Set => "set",
            LayerKind::Prompt => "prompt",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub layer: LayerKind,
    pub file: Option<PathBuf>,
    pub pos: Option<Pos>,
    /// The command-line argument for `--set` values.
    pub arg: Option<String>,
}

impl Origin {
    pub fn describe(&self) -> String {
        self.describe_for(false)
    }

    /// Like `describe`, with the value of a `--set` replaced when it is a secret.
    pub fn describe_for(&self, secret: bool) -> String {
        if secret && let Some(arg) = &self.arg {
            let key = arg.split_once('=').map_or(arg.as_str(), |(k, _)| k);
            return format!("--set {key}={}", nepho_provider_api::REDACTED);
        }
        match (&self.file, self.pos, &self.arg) {
            (Some(f), Some(p), _) => format!("{}:{}:{}", f.display(), p.line, p.col),
            (Some(f), None, _) => f.display().to_string(),
            (None, _, Some(arg)) => format!("--set {arg}"),
            _ => self.layer.as_str().to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ParamDecl {
    pub name: String,
    pub ty: Option<ParamType>,
    pub default: Option<Node>,
    pub description: Option<String>,
    pub allowed: Option<Vec<Value>>,
    pub pattern: Option<String>,
    pub required: bool,
    pub secret: bool,
    pub list_policy: ListPolicy,
    pub declared_at: Origin,
}

const DECL_KEYS: &[&str] = &[
    "type",
    "default",
    "description",
    "allowed",
    "pattern",
    "required",
    "secret",
    "list_policy",
    "merge_key",
];

/// Reads a `parameters:` mapping of declarations. A scalar or list instead of a declaration is
/// shorthand for `{default: VALUE}`.
pub fn parse_decls(
    node: &Node,
    file: &Path,
    src: &str,
    layer: LayerKind,
    warnings: &mut Vec<String>,
) -> Result<IndexMap<String, ParamDecl>> {
    let err = |pos: Pos, msg: String| Error::from(YamlError::at(file, Some(src), pos, msg));
    let map = node.as_map().ok_or_else(|| {
        err(
            node.pos,
            "`parameters` must be a mapping of parameter names".into(),
        )
    })?;
    let mut decls = IndexMap::new();
    for (name, entry) in map {
        check_param_name(name).map_err(|m| err(entry.key_pos, m))?;
        let declared_at = Origin {
            layer,
            file: Some(file.to_path_buf()),
            pos: Some(entry.key_pos),
            arg: None,
        };
        let mut decl = ParamDecl {
            name: name.clone(),
            ty: None,
            default: None,
            description: None,
            allowed: None,
            pattern: None,
            required: false,
            secret: false,
            list_policy: ListPolicy::Replace,
            declared_at,
        };
        let Some(fields) = entry.value.as_map() else {
            decl.default = Some(entry.value.clone()).filter(|n| !n.is_null());
            decls.insert(name.clone(), decl);
            continue;
        };
        let mut merge_key = None;
        let mut policy_name = None;
        for (key, field) in fields {
            let v = &field.value;
            let want_bool = |what: &str| match v.to_value() {
                Value::Bool(b) => Ok(b),
                _ => Err(err(v.pos, format!("`{what}` must be true or false"))),
            };
            let want_str = |what: &str| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| err(v.pos, format!("`{what}` must be a string")))
            };
            match key.as_str() {
                "type" => {
                    let t = want_str("type")?;
                    decl.ty = Some(ParamType::parse(&t).ok_or_else(|| {
                        err(v.pos, format!("unknown parameter type \"{t}\" (expected string, number, boolean, list or map)"))
                    })?);
                }
                "default" => decl.default = Some(v.clone()).filter(|n| !n.is_null()),
                "description" => decl.description = Some(want_str("description")?),
                "allowed" => match v.to_value() {
                    Value::Array(items) => decl.allowed = Some(items),
                    _ => return Err(err(v.pos, "`allowed` must be a list of values".into())),
                },
                "pattern" => {
                    let p = want_str("pattern")?;
                    regex_lite::Regex::new(&p).map_err(|e| {
                        err(v.pos, format!("invalid `pattern` regular expression: {e}"))
                    })?;
                    decl.pattern = Some(p);
                }
                "required" => decl.required = want_bool("required")?,
                "secret" => decl.secret = want_bool("secret")?,
                "list_policy" => policy_name = Some((want_str("list_policy")?, v.pos)),
                "merge_key" => merge_key = Some(want_str("merge_key")?),
                other => warnings.push(format!(
                    "{}:{}:{}: unknown key \"{other}\" in parameter \"{name}\" (known: {})",
                    file.display(),
                    field.key_pos.line,
                    field.key_pos.col,
                    DECL_KEYS.join(", ")
                )),
            }
        }
        if let Some((p, pos)) = policy_name {
            decl.list_policy = match p.as_str() {
                "replace" => ListPolicy::Replace,
                "append" => ListPolicy::Append,
                "merge-by-key" | "merge_by_key" => {
                    ListPolicy::MergeByKey(merge_key.unwrap_or_else(|| "name".into()))
                }
                other => {
                    return Err(err(
                        pos,
                        format!(
                            "unknown list_policy \"{other}\" (expected replace, append or merge-by-key)"
                        ),
                    ));
                }
            };
        }
        if let (Some(default), Some(ty)) = (&decl.default, decl.ty) {
            check_type(ty, default)
                .map_err(|m| err(default.pos, format!("default of \"{name}\": {m}")))?;
        }
        if let (Some(default), Some(allowed)) = (&decl.default, &decl.allowed)
            && !allowed.iter().any(|a| values_equal(a, &default.to_value()))
        {
            return Err(err(
                default.pos,
                format!("default of \"{name}\" is not one of its allowed values"),
            ));
        }
        decls.insert(name.clone(), decl);
    }
    Ok(decls)
}

fn check_param_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid parameter name \"{name}\" (letters, digits, `_` and `-` only)"
        ))
    }
}

/// Overlays declarations: a later declaration of the same name refines the earlier one.
pub fn overlay_decls(base: &mut IndexMap<String, ParamDecl>, over: IndexMap<String, ParamDecl>) {
    for (name, decl) in over {
        match base.get_mut(&name) {
            Some(existing) => {
                if decl.ty.is_some() {
                    existing.ty = decl.ty;
                }
                if decl.default.is_some() {
                    existing.default = decl.default;
                }
                if decl.description.is_some() {
                    existing.description = decl.description;
                }
                if decl.allowed.is_some() {
                    existing.allowed = decl.allowed;
                }
                if decl.pattern.is_some() {
                    existing.pattern = decl.pattern;
                }
                existing.required |= decl.required;
                existing.secret |= decl.secret;
                if decl.list_policy != ListPolicy::Replace {
                    existing.list_policy = decl.list_policy;
                }
            }
            None => {
                base.insert(name, decl);
            }
        }
    }
}

/// One value in the merged tree, with its origin.
#[derive(Debug, Clone)]
pub struct PNode {
    pub value: PValue,
    pub origin: Origin,
    /// Source text of a plain scalar (lets a `string` parameter keep `1.10` as written).
    pub plain: Option<String>,
}

#[derive(Debug, Clone)]
pub enum PValue {
    Scalar(Value),
    List(Vec<PNode>),
    Map(IndexMap<String, PNode>),
}

impl PNode {
    fn from_node(node: &Node, layer: LayerKind, file: Option<&Path>, arg: Option<&str>) -> PNode {
        let origin = Origin {
            layer,
            file: file.map(Path::to_path_buf),
            pos: file.map(|_| node.pos),
            arg: arg.map(str::to_string),
        };
        let value = match &node.value {
            NodeValue::Scalar(v) => PValue::Scalar(v.clone()),
            NodeValue::Seq(items) => PValue::List(
                items
                    .iter()
                    .map(|n| PNode::from_node(n, layer, file, arg))
                    .collect(),
            ),
            NodeValue::Map(map) => PValue::Map(
                map.iter()
                    .map(|(k, e)| (k.clone(), PNode::from_node(&e.value, layer, file, arg)))
                    .collect(),
            ),
        };
        PNode {
            value,
            origin,
            plain: node.plain.clone(),
        }
    }

    pub fn to_value(&self) -> Value {
        match &self.value {
            PValue::Scalar(v) => v.clone(),
            PValue::List(items) => Value::Array(items.iter().map(PNode::to_value).collect()),
            PValue::Map(map) => {
                Value::Object(map.iter().map(|(k, n)| (k.clone(), n.to_value())).collect())
            }
        }
    }
}

/// A source of values for the merge: a mapping node plus where it came from.
#[derive(Debug, Clone)]
pub struct Layer {
    pub kind: LayerKind,
    pub file: Option<PathBuf>,
    /// For `--set`: the argument as typed.
    pub arg: Option<String>,
    pub values: IndexMap<String, MapEntry>,
}

impl Layer {
    /// Where one of this layer's values was written: `file:line:col`, `--set ARG`, or the
    /// layer's name.
    fn origin_of(&self, entry: &MapEntry) -> String {
        match (&self.file, &self.arg) {
            (Some(f), _) => format!(
                "{}:{}:{}",
                f.display(),
                entry.key_pos.line,
                entry.key_pos.col
            ),
            (None, Some(arg)) => format!("--set {arg}"),
            _ => self.kind.as_str().into(),
        }
    }

    /// Loads a values file (`-f`, or the user's stored values). Must be a mapping. An error
    /// quotes no value of a top-level key that `is_secret` names.
    pub fn from_file(
        path: &Path,
        kind: LayerKind,
        dialect: Dialect,
        is_secret: &dyn Fn(&str) -> bool,
    ) -> Result<Layer> {
        let src = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::not_found(format!("values file {} does not exist", path.display()))
            } else {
                Error::io(path, e)
            }
        })?;
        let parsed = yaml::parse(&src, path, dialect, yaml::Tags::CoreOnly)
            .map_err(|e| e.hiding_secrets(&src, is_secret))?;
        let values = match parsed {
            None => IndexMap::new(),
            Some(node) => match node.value {
                NodeValue::Map(map) => map,
                _ => {
                    return Err(YamlError::at(
                        path,
                        Some(&src),
                        node.pos,
                        "a values file must be a mapping of parameter names to values",
                    )
                    .hiding_secrets(&src, is_secret)
                    .into());
                }
            },
        };
        Ok(Layer {
            kind,
            file: Some(path.to_path_buf()),
            arg: None,
            values,
        })
    }

    /// Parses `KEY=VALUE`: the key may be dotted (`db.port`; `\.` for a literal dot), the value is
    /// typed like YAML (`3`, `true`, `[a, b]`), and may itself contain `=`.
    pub fn from_set(arg: &str) -> Result<Layer> {
        Layer::from_set_hiding(arg, &|_| false)
    }

    /// `from_set`, with the value left out of any error when `is_secret` says the (top-level)
    /// key names a secret parameter.
    pub fn from_set_hiding(arg: &str, is_secret: &dyn Fn(&str) -> bool) -> Result<Layer> {
        let (key, raw) = arg.split_once('=').ok_or_else(|| {
            Error::usage(format!("--set expects KEY=VALUE, got \"{arg}\""))
                .with_hint("for example: --set instance_type=t3.small")
        })?;
        let path = split_dotted(key);
        let secret = is_secret(&path[0]);
        let shown = if secret {
            format!("{key}={}", nepho_provider_api::REDACTED)
        } else {
            arg.to_string()
        };
        if path.iter().any(|p| p.is_empty()) {
            return Err(Error::usage(format!("--set {shown}: empty key segment")));
        }
        let pos = Pos { line: 1, col: 1 };
        let leaf = if raw.starts_with('[') || raw.starts_with('{') {
            let node = yaml::parse(
                raw,
                Path::new("--set"),
                Dialect::Yaml12,
                yaml::Tags::CoreOnly,
            )
            .map_err(|e| {
                // The parser's message may quote the value; a secret's is not repeated.
                let why = if secret {
                    "not a valid YAML flow list or map".to_string()
                } else {
                    e.message
                };
                Error::usage(format!("--set {shown}: {why}")).with_hint(format!(
                    "a value starting with `[` or `{{` is read as a YAML list or map; to give it as text, write `{key}: \"...\"` in a -f values file"
                ))
            })?;
            node.unwrap_or(Node {
                value: NodeValue::Scalar(Value::Null),
                pos,
                plain: None,
            })
        } else if raw.is_empty() {
            Node {
                value: NodeValue::Scalar(Value::String(String::new())),
                pos,
                plain: None,
            }
        } else {
            Node {
                value: NodeValue::Scalar(yaml::resolve_plain(raw, Dialect::Yaml12)),
                pos,
                plain: Some(raw.to_string()),
            }
        };
        let mut node = leaf;
        for segment in path.iter().skip(1).rev() {
            let mut map = IndexMap::new();
            map.insert(
                segment.clone(),
                MapEntry {
                    key_pos: pos,
                    value: node,
                },
            );
            node = Node {
                value: NodeValue::Map(map),
                pos,
                plain: None,
            };
        }
        let mut values = IndexMap::new();
        values.insert(
            path[0].clone(),
            MapEntry {
                key_pos: pos,
                value: node,
            },
        );
        Ok(Layer {
            kind: LayerKind::Set,
            file: None,
            arg: Some(arg.to_string()),
            values,
        })
    }

    /// Values from declaration defaults (`cloudlet.yaml` or a scenario).
    pub fn from_defaults<'a>(
        kind: LayerKind,
        file: &Path,
        decls: impl IntoIterator<Item = &'a ParamDecl>,
    ) -> Layer {
        let values = decls
            .into_iter()
            .filter_map(|d| {
                d.default.as_ref().map(|n| {
                    (
                        d.name.clone(),
                        MapEntry {
                            key_pos: n.pos,
                            value: n.clone(),
                        },
                    )
                })
            })
            .collect();
        Layer {
            kind,
            file: Some(file.to_path_buf()),
            arg: None,
            values,
        }
    }

    /// A flat mapping node (Nepho 1.x `parameters:` in cloudlet.yaml or a blueprint).
    pub fn from_map_node(kind: LayerKind, file: Option<&Path>, node: &Node) -> Layer {
        let values = node.as_map().cloned().unwrap_or_default();
        Layer {
            kind,
            file: file.map(Path::to_path_buf),
            arg: None,
            values,
        }
    }

    /// A Nepho 1.x command-line parameter: `KEY=VALUE` with the value a string, as 1.x's
    /// `-p KEY=VALUE` gave it (no YAML typing, no dotted paths).
    pub fn from_set_v1(arg: &str) -> Result<Layer> {
        let (key, raw) = arg.split_once('=').ok_or_else(|| {
            Error::usage(format!("--set expects KEY=VALUE, got \"{arg}\""))
                .with_hint("for example: --set InstanceType=m1.small")
        })?;
        if key.is_empty() {
            return Err(Error::usage(format!("--set {arg}: empty key")));
        }
        let mut layer = Layer::single(LayerKind::Set, key, Value::String(raw.to_string()));
        layer.arg = Some(arg.to_string());
        Ok(layer)
    }

    /// A formation's stored secret values, carried typed (never re-read as text).
    pub fn stored(secrets: &StoredSecrets) -> Layer {
        let pos = Pos { line: 0, col: 0 };
        let values = secrets
            .iter()
            .map(|(name, secret)| {
                let entry = MapEntry {
                    key_pos: pos,
                    value: node_from_value(secret.expose(), pos),
                };
                (name.clone(), entry)
            })
            .collect();
        Layer {
            kind: LayerKind::Stored,
            file: None,
            arg: None,
            values,
        }
    }

    pub fn single(kind: LayerKind, name: &str, value: Value) -> Layer {
        let pos = Pos { line: 0, col: 0 };
        let mut values = IndexMap::new();
        values.insert(
            name.to_string(),
            MapEntry {
                key_pos: pos,
                value: Node {
                    value: NodeValue::Scalar(value),
                    pos,
                    plain: None,
                },
            },
        );
        Layer {
            kind,
            file: None,
            arg: None,
            values,
        }
    }
}

/// A YAML node holding `value` as it is (a string stays a string, whatever it looks like).
fn node_from_value(value: &Value, pos: Pos) -> Node {
    let value = match value {
        Value::Array(items) => {
            NodeValue::Seq(items.iter().map(|v| node_from_value(v, pos)).collect())
        }
        Value::Object(map) => NodeValue::Map(
            map.iter()
                .map(|(k, v)| {
                    let entry = MapEntry {
                        key_pos: pos,
                        value: node_from_value(v, pos),
                    };
                    (k.clone(), entry)
                })
                .collect(),
        ),
        scalar => NodeValue::Scalar(scalar.clone()),
    };
    Node {
        value,
        pos,
        plain: None,
    }
}

fn split_dotted(key: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = key.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                chars.next();
                parts.last_mut().unwrap().push('.');
            }
            '.' => parts.push(String::new()),
            c => parts.last_mut().unwrap().push(c),
        }
    }
    parts
}

/// A parameter that still has no value.
#[derive(Debug, Clone)]
pub struct MissingParam {
    pub name: String,
    pub description: Option<String>,
    pub secret: bool,
    pub ty: Option<ParamType>,
    pub allowed: Option<Vec<Value>>,
}

/// The result of merging every layer.
#[derive(Debug, Clone)]
pub struct MergedParameters {
    pub tree: IndexMap<String, PNode>,
    pub decls: IndexMap<String, ParamDecl>,
    pub secrets: BTreeSet<String>,
    pub missing: Vec<MissingParam>,
    pub warnings: Vec<String>,
}

impl MergedParameters {
    /// All values, secrets included: only for handing to a pattern or a provider.
    pub fn values(&self) -> serde_json::Map<String, Value> {
        self.tree
            .iter()
            .map(|(k, n)| (k.clone(), n.to_value()))
            .collect()
    }

    /// Values safe to print: secrets replaced.
    pub fn redacted_values(&self) -> serde_json::Map<String, Value> {
        self.tree
            .iter()
            .map(|(k, n)| {
                let v = if self.secrets.contains(k) {
                    Value::String(nepho_provider_api::REDACTED.into())
                } else {
                    n.to_value()
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// Every leaf with its dotted key and origin, for `scenario:describe`.
    pub fn leaves(&self) -> Vec<(String, &PNode)> {
        fn walk<'a>(prefix: &str, node: &'a PNode, out: &mut Vec<(String, &'a PNode)>) {
            match &node.value {
                PValue::Map(map) if !map.is_empty() => {
                    for (k, child) in map {
                        walk(&format!("{prefix}.{k}"), child, out);
                    }
                }
                _ => out.push((prefix.to_string(), node)),
            }
        }
        let mut out = Vec::new();
        for (k, node) in &self.tree {
            walk(k, node, &mut out);
        }
        out
    }

    pub fn is_secret(&self, dotted_key: &str) -> bool {
        let top = dotted_key.split('.').next().unwrap_or(dotted_key);
        self.secrets.contains(top)
    }
}

/// How layers combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeMode {
    /// Deep merge, `null` deletes, list policies apply; undeclared values get a warning.
    Native,
    /// Nepho 1.x: Python `dict.update` per layer (shallow, `None` is a value); untyped.
    V1,
}

/// Merges `layers` in order and checks the result against `decls`.
pub fn merge(
    decls: &IndexMap<String, ParamDecl>,
    layers: &[Layer],
    mode: MergeMode,
) -> Result<MergedParameters> {
    let strict_unknown = mode == MergeMode::Native;
    let mut tree: IndexMap<String, PNode> = IndexMap::new();
    let mut warnings = Vec::new();
    for layer in layers {
        for (key, entry) in &layer.values {
            let policy = decls
                .get(key)
                .map(|d| d.list_policy.clone())
                .unwrap_or_default();
            let incoming = PNode::from_node(
                &entry.value,
                layer.kind,
                layer.file.as_deref(),
                layer.arg.as_deref(),
            );
            if mode == MergeMode::V1 {
                // 1.2.3 (core/scenario.py): stored and command-line parameters override only
                // keys the provider, cloudlet or blueprint define; others never reach a template.
                let user_layer = matches!(
                    layer.kind,
                    LayerKind::User
                        | LayerKind::Stored
                        | LayerKind::ValuesFile
                        | LayerKind::Set
                        | LayerKind::Prompt
                );
                if user_layer && !tree.contains_key(key) {
                    let origin = layer.origin_of(entry);
                    warnings.push(format!("{origin}: \"{key}\" is not a parameter of this Nepho 1.x cloudlet or blueprint; ignored (1.x passes only the parameters they define)"));
                    continue;
                }
                tree.insert(key.clone(), incoming);
                continue;
            }
            let merged = merge_node(
                tree.shift_remove_full(key).map(|(i, _, n)| (i, n)),
                incoming,
                &policy,
            );
            match merged {
                (Some(index), Some(node)) => {
                    tree.insert(key.clone(), node);
                    let last = tree.len() - 1;
                    tree.move_index(last, index.min(last));
                }
                (None, Some(node)) => {
                    tree.insert(key.clone(), node);
                }
                (_, None) => {}
            }
            if strict_unknown
                && !decls.contains_key(key)
                && matches!(
                    layer.kind,
                    LayerKind::User | LayerKind::Stored | LayerKind::ValuesFile | LayerKind::Set
                )
            {
                let origin = layer.origin_of(entry);
                warnings.push(format!("{origin}: unknown parameter \"{key}\" (the scenario does not declare it); passing it to the pattern anyway"));
            }
        }
    }

    let mut missing = Vec::new();
    let mut secrets = BTreeSet::new();
    for (name, decl) in decls {
        if decl.secret {
            secrets.insert(name.clone());
        }
        let Some(node) = tree.get_mut(name) else {
            if decl.required {
                missing.push(MissingParam {
                    name: name.clone(),
                    description: decl.description.clone(),
                    secret: decl.secret,
                    ty: decl.ty,
                    allowed: decl.allowed.clone(),
                });
            }
            continue;
        };
        check_value(decl, node)?;
    }
    Ok(MergedParameters {
        tree,
        decls: decls.clone(),
        secrets,
        missing,
        warnings,
    })
}

/// Returns (original index, merged node); `None` as node means the key was deleted.
fn merge_node(
    target: Option<(usize, PNode)>,
    incoming: PNode,
    policy: &ListPolicy,
) -> (Option<usize>, Option<PNode>) {
    let index = target.as_ref().map(|(i, _)| *i);
    if matches!(incoming.value, PValue::Scalar(Value::Null)) {
        return (index, None);
    }
    let Some((_, existing)) = target else {
        return (None, Some(incoming));
    };
    let merged = match (existing.value, incoming.value) {
        (PValue::Map(mut base), PValue::Map(over)) => {
            for (k, v) in over {
                let prev = base.shift_remove_full(&k).map(|(i, _, n)| (i, n));
                match merge_node(prev, v, &ListPolicy::Replace) {
                    (Some(i), Some(n)) => {
                        base.insert(k, n);
                        let last = base.len() - 1;
                        base.move_index(last, i.min(last));
                    }
                    (None, Some(n)) => {
                        base.insert(k, n);
                    }
                    (_, None) => {}
                }
            }
            PNode {
                value: PValue::Map(base),
                origin: existing.origin,
                plain: None,
            }
        }
        (PValue::List(mut base), PValue::List(over)) if *policy != ListPolicy::Replace => {
            match policy {
                ListPolicy::Append => base.extend(over),
                ListPolicy::MergeByKey(field) => {
                    for item in over {
                        let key_of = |n: &PNode| match &n.value {
                            PValue::Map(m) => m.get(field).map(PNode::to_value),
                            _ => None,
                        };
                        let k = key_of(&item);
                        match k
                            .and_then(|k| base.iter().position(|b| key_of(b).as_ref() == Some(&k)))
                        {
                            Some(pos) => {
                                let prev = base.remove(pos);
                                if let (_, Some(n)) =
                                    merge_node(Some((pos, prev)), item, &ListPolicy::Replace)
                                {
                                    base.insert(pos, n);
                                }
                            }
                            None => base.push(item),
                        }
                    }
                }
                ListPolicy::Replace => unreachable!(),
            }
            PNode {
                value: PValue::List(base),
                origin: incoming.origin,
                plain: None,
            }
        }
        (_, value) => PNode {
            value,
            origin: incoming.origin,
            plain: incoming.plain,
        },
    };
    (index, Some(merged))
}

fn check_type(ty: ParamType, node: &Node) -> std::result::Result<(), String> {
    let ok = match (ty, &node.value) {
        (ParamType::String, NodeValue::Scalar(Value::String(_))) => true,
        (ParamType::String, NodeValue::Scalar(Value::Number(_) | Value::Bool(_))) => {
            node.plain.is_some()
        }
        (ParamType::Number, NodeValue::Scalar(Value::Number(_))) => true,
        (ParamType::Boolean, NodeValue::Scalar(Value::Bool(_))) => true,
        (ParamType::List, NodeValue::Seq(_)) => true,
        (ParamType::Map, NodeValue::Map(_)) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected a {}, got a {} ({})",
            ty.as_str(),
            node.type_name(),
            short(&node.to_value())
        ))
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Type, allowed values and pattern of one merged value; coerces plain scalars for `string`.
fn check_value(decl: &ParamDecl, node: &mut PNode) -> Result<()> {
    let fail = |node: &PNode, msg: String| {
        let where_ = node.origin.describe_for(decl.secret);
        let shown = if decl.secret {
            String::new()
        } else {
            format!(" ({})", short(&node.to_value()))
        };
        let err = Error::invalid(format!(
            "{where_}: parameter \"{}\": {msg}{shown}",
            decl.name
        ))
        .with_hint(format!(
            "fix the value, or override it with --set {}=VALUE",
            decl.name
        ));
        match (&node.origin.file, node.origin.pos) {
            (Some(file), Some(pos)) if pos.line > 0 => err.with_span(file, pos.line, pos.col),
            _ => err,
        }
    };
    if let Some(ty) = decl.ty {
        let ok = match (ty, &node.value) {
            (ParamType::String, PValue::Scalar(Value::String(_))) => true,
            (ParamType::String, PValue::Scalar(Value::Number(_) | Value::Bool(_)))
                if node.plain.is_some() =>
            {
                node.value = PValue::Scalar(Value::String(node.plain.clone().unwrap_or_default()));
                true
            }
            (ParamType::Number, PValue::Scalar(Value::Number(_))) => true,
            (ParamType::Boolean, PValue::Scalar(Value::Bool(_))) => true,
            (ParamType::List, PValue::List(_)) => true,
            (ParamType::Map, PValue::Map(_)) => true,
            _ => false,
        };
        if !ok {
            let got = yaml::json_type_name(&node.to_value());
            return Err(fail(
                node,
                format!("expected a {}, got a {got}", ty.as_str()),
            ));
        }
    }
    let value = node.to_value();
    if let Some(allowed) = &decl.allowed
        && !allowed.iter().any(|a| values_equal(a, &value))
    {
        let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
        return Err(fail(node, format!("must be one of {}", list.join(", "))));
    }
    if let (Some(pattern), Value::String(s)) = (&decl.pattern, &value) {
        let re = regex_lite::Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| Error::invalid(e.to_string()))?;
        if !re.is_match(s) {
            return Err(fail(
                node,
                format!("does not match the pattern /{pattern}/"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decls(src: &str) -> IndexMap<String, ParamDecl> {
        let node = yaml::parse(
            src,
            Path::new("s.yaml"),
            Dialect::Yaml12,
            yaml::Tags::CoreOnly,
        )
        .unwrap()
        .unwrap();
        parse_decls(
            &node,
            Path::new("s.yaml"),
            src,
            LayerKind::Scenario,
            &mut Vec::new(),
        )
        .unwrap()
    }

    fn values_layer(src: &str, file: &str) -> Layer {
        let node = yaml::parse(src, Path::new(file), Dialect::Yaml12, yaml::Tags::CoreOnly)
            .unwrap()
            .unwrap();
        Layer::from_map_node(LayerKind::ValuesFile, Some(Path::new(file)), &node)
    }

    #[test]
    fn layers_merge_deeply_with_provenance() {
        let d = decls(
            "db: {type: map, default: {host: localhost, port: 5432, opts: {ssl: false}}}\nsize: {type: number, default: 1}\n",
        );
        let defaults = Layer::from_defaults(LayerKind::Scenario, Path::new("s.yaml"), d.values());
        let file = values_layer("db:\n  port: 6543\n  opts: {ssl: true}\n", "v.yaml");
        let set = Layer::from_set("db.host=db.internal").unwrap();
        let m = merge(&d, &[defaults, file, set], MergeMode::Native).unwrap();
        assert_eq!(
            Value::Object(m.values()),
            serde_json::json!({"db": {"host": "db.internal", "port": 6543, "opts": {"ssl": true}}, "size": 1})
        );
        let leaves: Vec<(String, String)> = m
            .leaves()
            .into_iter()
            .map(|(k, n)| (k, n.origin.describe()))
            .collect();
        assert!(
            leaves.contains(&("db.host".into(), "--set db.host=db.internal".into())),
            "{leaves:?}"
        );
        assert!(
            leaves.contains(&("db.port".into(), "v.yaml:2:9".into())),
            "{leaves:?}"
        );
        assert!(
            leaves.contains(&("size".into(), "s.yaml:2:31".into())),
            "{leaves:?}"
        );
    }

    #[test]
    fn null_deletes_and_lists_replace_by_default() {
        let d = decls("tags: {type: list, default: [a, b]}\nextra: {default: x}\n");
        let defaults = Layer::from_defaults(LayerKind::Scenario, Path::new("s.yaml"), d.values());
        let file = values_layer("tags: [c]\nextra: null\n", "v.yaml");
        let m = merge(&d, &[defaults, file], MergeMode::Native).unwrap();
        assert_eq!(
            Value::Object(m.values()),
            serde_json::json!({"tags": ["c"]})
        );
    }

    #[test]
    fn list_policies() {
        let d = decls(
            "pkgs: {type: list, list_policy: append, default: [git]}\nusers: {type: list, list_policy: merge-by-key, merge_key: name, default: [{name: ann, shell: sh}]}\n",
        );
        let defaults = Layer::from_defaults(LayerKind::Scenario, Path::new("s.yaml"), d.values());
        let file = values_layer(
            "pkgs: [vim]\nusers: [{name: ann, shell: bash}, {name: bob}]\n",
            "v.yaml",
        );
        let m = merge(&d, &[defaults, file], MergeMode::Native).unwrap();
        assert_eq!(
            Value::Object(m.values()),
            serde_json::json!({"pkgs": ["git", "vim"], "users": [{"name": "ann", "shell": "bash"}, {"name": "bob"}]})
        );
    }

    #[test]
    fn set_parses_types_dots_and_equals() {
        let l = Layer::from_set("url=http://x/?a=b").unwrap();
        assert_eq!(
            l.values["url"].value.to_value(),
            Value::String("http://x/?a=b".into())
        );
        let l = Layer::from_set("count=3").unwrap();
        assert_eq!(l.values["count"].value.to_value(), serde_json::json!(3));
        let l = Layer::from_set("a\\.b.c=true").unwrap();
        assert_eq!(
            l.values["a.b"].value.to_value(),
            serde_json::json!({"c": true})
        );
        let l = Layer::from_set("list=[1, two]").unwrap();
        assert_eq!(
            l.values["list"].value.to_value(),
            serde_json::json!([1, "two"])
        );
        assert!(Layer::from_set("novalue").is_err());
    }

    #[test]
    fn types_allowed_and_patterns_are_checked() {
        let d = decls(
            "n: {type: number}\ns: {type: string, allowed: [a, b]}\nname: {type: string, pattern: '[a-z]+'}\nv: {type: string}\n",
        );
        let bad_type =
            merge(&d, &[Layer::from_set("n=abc").unwrap()], MergeMode::Native).unwrap_err();
        assert!(
            bad_type
                .to_string()
                .contains("expected a number, got a string"),
            "{bad_type}"
        );
        let bad_allowed =
            merge(&d, &[Layer::from_set("s=c").unwrap()], MergeMode::Native).unwrap_err();
        assert!(
            bad_allowed.to_string().contains("must be one of"),
            "{bad_allowed}"
        );
        let bad_pattern = merge(
            &d,
            &[Layer::from_set("name=ABC").unwrap()],
            MergeMode::Native,
        )
        .unwrap_err();
        assert!(bad_pattern.to_string().contains("pattern"), "{bad_pattern}");
        // A plain number given for a string keeps its text.
        let m = merge(&d, &[Layer::from_set("v=1.10").unwrap()], MergeMode::Native).unwrap();
        assert_eq!(m.values()["v"], Value::String("1.10".into()));
    }

    #[test]
    fn missing_required_and_unknown_keys() {
        let d = decls("pw: {type: string, required: true, secret: true}\n");
        let m = merge(
            &d,
            &[Layer::from_set("bogus=1").unwrap()],
            MergeMode::Native,
        )
        .unwrap();
        assert_eq!(m.missing.len(), 1);
        assert!(m.missing[0].secret);
        assert!(m.warnings[0].contains("unknown parameter \"bogus\""));
        let m = merge(
            &d,
            &[Layer::from_set("pw=hunter2").unwrap()],
            MergeMode::Native,
        )
        .unwrap();
        assert_eq!(m.redacted_values()["pw"], Value::String("********".into()));
    }

    #[test]
    fn stored_secrets_stay_typed_and_rank_below_files_and_sets() {
        use crate::secret::Secret;
        let d = decls("pw: {type: string, required: true, secret: true}\n");
        for text in ["null", "[x", "{a: b}", "true", "12", "~"] {
            let stored: StoredSecrets =
                [("pw".to_string(), Secret::new(Value::String(text.into())))]
                    .into_iter()
                    .collect();
            let m = merge(&d, &[Layer::stored(&stored)], MergeMode::Native).unwrap();
            assert!(m.missing.is_empty(), "{text:?}");
            assert_eq!(m.values()["pw"], Value::String(text.into()), "{text:?}");
        }
        let stored: StoredSecrets = [("pw".to_string(), Secret::new(Value::String("old".into())))]
            .into_iter()
            .collect();
        let file = values_layer("pw: from-file\n", "v.yaml");
        let m = merge(
            &d,
            &[Layer::stored(&stored), file.clone()],
            MergeMode::Native,
        )
        .unwrap();
        assert_eq!(m.values()["pw"], Value::String("from-file".into()));
        let set = Layer::from_set("pw=from-set").unwrap();
        let m = merge(&d, &[Layer::stored(&stored), file, set], MergeMode::Native).unwrap();
        assert_eq!(m.values()["pw"], Value::String("from-set".into()));
    }

    #[test]
    fn set_errors_hide_secret_values() {
        let err = Layer::from_set_hiding("pw=[hunter2", &|k| k == "pw").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = Layer::from_set_hiding("name=[visible", &|k| k == "pw").unwrap_err();
        assert!(err.to_string().contains("visible"), "{err}");
    }
}
