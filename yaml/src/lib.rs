//! YAML loading with positions, for error messages and parameter provenance.
//!
//! Built on saphyr's event parser so nepho decides scalar typing itself: native files use the
//! YAML 1.2 core schema, Nepho 1.x files resolve scalars as PyYAML (YAML 1.1) did. Duplicate keys
//! are errors and alias expansion is budgeted (alias bombs stop early).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use saphyr_parser::{Event, Parser, ScalarStyle, Tag};
use serde_json::Value;

/// How plain scalars get their types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// YAML 1.2 core schema: only `true`/`false` are booleans.
    Yaml12,
    /// YAML 1.1 as PyYAML reads it: `yes`/`no`/`on`/`off` are booleans, `010` is octal.
    PyYaml11,
}

/// What to do with local tags such as CloudFormation's `!Ref`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tags {
    /// Only the core `!!str`, `!!int`, ... tags are accepted.
    CoreOnly,
    /// CloudFormation short forms become their long forms (`!Ref x` → `{"Ref": "x"}`).
    CloudFormation,
}

/// A 1-based line and column in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: NodeValue,
    pub pos: Pos,
    /// The source text of a plain scalar, so a declared `string` can take `1.10` as written.
    pub plain: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    Scalar(Value),
    Seq(Vec<Node>),
    Map(IndexMap<String, MapEntry>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct MapEntry {
    pub key_pos: Pos,
    pub value: Node,
}

impl Node {
    /// Plain JSON value without positions.
    pub fn to_value(&self) -> Value {
        match &self.value {
            NodeValue::Scalar(v) => v.clone(),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            NodeValue::Map(map) => Value::Object(
                map.iter()
                    .map(|(k, e)| (k.clone(), e.value.to_value()))
                    .collect(),
            ),
        }
    }

    pub fn as_map(&self) -> Option<&IndexMap<String, MapEntry>> {
        match &self.value {
            NodeValue::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Scalar(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, NodeValue::Scalar(Value::Null))
    }

    pub fn type_name(&self) -> &'static str {
        match &self.value {
            NodeValue::Scalar(v) => json_type_name(v),
            NodeValue::Seq(_) => "list",
            NodeValue::Map(_) => "map",
        }
    }

    /// Where the first key named `key` stands, depth first (to point a serde error about a
    /// key at its line and column).
    pub fn find_key(&self, key: &str) -> Option<Pos> {
        match &self.value {
            NodeValue::Scalar(_) => None,
            NodeValue::Seq(items) => items.iter().find_map(|n| n.find_key(key)),
            NodeValue::Map(map) => map
                .get(key)
                .map(|e| e.key_pos)
                .or_else(|| map.values().find_map(|e| e.value.find_key(key))),
        }
    }

    fn size(&self) -> usize {
        match &self.value {
            NodeValue::Scalar(_) => 1,
            NodeValue::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            NodeValue::Map(map) => 1 + map.values().map(|e| 1 + e.value.size()).sum::<usize>(),
        }
    }
}

pub fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

/// A YAML error that points at the offending text.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    pub file: PathBuf,
    pub pos: Pos,
    pub message: String,
    /// The offending source line, for the snippet under the message.
    pub line_text: Option<String>,
}

impl YamlError {
    pub fn at(file: &Path, src: Option<&str>, pos: Pos, message: impl Into<String>) -> YamlError {
        let line_text = src
            .and_then(|s| s.lines().nth(pos.line.saturating_sub(1)))
            .map(str::to_string);
        YamlError {
            file: file.to_path_buf(),
            pos,
            message: message.into(),
            line_text,
        }
    }
}

impl YamlError {
    /// For an error in a values file whose top-level keys may be secret parameters: drops the
    /// snippet line when it may hold part of a secret value (or when that cannot be told), and
    /// replaces any secret value the message repeats.
    pub fn hiding_secrets(mut self, src: &str, is_secret: &dyn Fn(&str) -> bool) -> YamlError {
        let exposure = secret_exposure(src, is_secret, self.pos.line);
        for text in &exposure.texts {
            if !text.is_empty() && self.message.contains(text.as_str()) {
                self.message = self.message.replace(text.as_str(), REDACTED_TEXT);
            }
        }
        if exposure.line_may_hold_secret && self.line_text.take().is_some() {
            self.message
                .push_str(" (the line is not shown: it may hold a secret value)");
        }
        self
    }
}

const REDACTED_TEXT: &str = "********";

/// What a values file shows of its secret values up to an error on `error_line`.
struct Exposure {
    line_may_hold_secret: bool,
    /// Scalar texts inside secret values.
    texts: Vec<String>,
}

/// Replays the parser's events up to the error: which top-level key governs `error_line`, and
/// which lines and texts belong to secret values.
fn secret_exposure(src: &str, is_secret: &dyn Fn(&str) -> bool, error_line: usize) -> Exposure {
    // Each open collection: is it a mapping waiting for a key?
    let mut stack: Vec<Option<bool>> = Vec::new();
    let mut governing: Option<bool> = None; // secret-ness of the last top-level key
    let mut in_secret = false;
    let mut secret_lines = std::collections::BTreeSet::new();
    let mut texts = Vec::new();
    let mut parser = Parser::new_from_str(src);
    let mut root_is_map = None;
    while let Some(Ok((event, span))) = parser.next_event() {
        if span.start.line() > error_line {
            break;
        }
        let at_root_key = stack.len() == 1 && stack[0] == Some(true);
        // A node that completes a value at depth 1 hands the next turn back to a key.
        let mut completes = false;
        match event {
            Event::Scalar(text, ..) => {
                if at_root_key {
                    let secret = is_secret(&text);
                    governing = Some(secret);
                    in_secret = secret;
                    if secret {
                        secret_lines.insert(span.start.line());
                    }
                    stack[0] = Some(false);
                    continue;
                }
                if in_secret {
                    texts.push(text.to_string());
                }
                completes = true;
            }
            Event::Alias(_) => completes = true,
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let map = matches!(event, Event::MappingStart(..));
                if stack.is_empty() && root_is_map.is_none() {
                    root_is_map = Some(map);
                }
                stack.push(map.then_some(true));
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                completes = true;
            }
            _ => {}
        }
        if in_secret && !stack.is_empty() {
            secret_lines.extend(span.start.line()..=span.end.line().max(span.start.line()));
        }
        if completes && let Some(Some(waiting)) = stack.last_mut() {
            *waiting = !*waiting;
        }
    }
    let line_may_hold_secret = match (root_is_map, governing) {
        (Some(true), Some(secret)) => secret || secret_lines.contains(&error_line),
        // No top-level key before the error, or not a mapping: cannot tell.
        _ => true,
    };
    Exposure {
        line_may_hold_secret,
        texts,
    }
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.pos.line,
            self.pos.col,
            self.message
        )?;
        if let Some(text) = &self.line_text {
            let gutter = self.pos.line.to_string();
            let pad = " ".repeat(gutter.len());
            write!(
                f,
                "\n{pad} |\n{gutter} | {text}\n{pad} | {}^",
                " ".repeat(self.pos.col.saturating_sub(1))
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for YamlError {}

/// Upper bound on nodes materialised from one document, aliases included.
const NODE_BUDGET: usize = 1_000_000;

/// Parses one YAML document. An empty document gives `Ok(None)`.
pub fn parse(
    src: &str,
    file: &Path,
    dialect: Dialect,
    tags: Tags,
) -> Result<Option<Node>, YamlError> {
    let mut builder = Builder {
        file,
        src,
        dialect,
        tags,
        anchors: HashMap::new(),
        budget: NODE_BUDGET,
    };
    builder.document()
}

/// Reads and parses a file, mapping I/O errors to a [`YamlError`] at line 0.
pub fn parse_file(path: &Path, dialect: Dialect) -> Result<Option<Node>, YamlError> {
    let src = std::fs::read_to_string(path).map_err(|e| YamlError {
        file: path.to_path_buf(),
        pos: Pos::default(),
        message: format!("cannot read: {e}"),
        line_text: None,
    })?;
    parse(&src, path, dialect, Tags::CoreOnly)
}

struct Builder<'a> {
    file: &'a Path,
    src: &'a str,
    dialect: Dialect,
    tags: Tags,
    anchors: HashMap<usize, Node>,
    budget: usize,
}

enum Start {
    Node(Node),
    End,
}

impl<'a> Builder<'a> {
    fn err(&self, pos: Pos, msg: impl Into<String>) -> YamlError {
        YamlError::at(self.file, Some(self.src), pos, msg)
    }

    fn document(&mut self) -> Result<Option<Node>, YamlError> {
        let mut parser = Parser::new_from_str(self.src);
        let mut root = None;
        let mut documents = 0;
        loop {
            let (event, pos) = self.next(&mut parser)?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => break,
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(self.err(
                            pos,
                            "more than one YAML document in this file (a second `---`)",
                        ));
                    }
                    match self.node(&mut parser)? {
                        Start::Node(n) => root = Some(n),
                        Start::End => {}
                    }
                }
                other => return Err(self.err(pos, format!("unexpected YAML event {other:?}"))),
            }
        }
        Ok(root.filter(|n| !(n.is_null() && n.plain.as_deref() == Some(""))))
    }

    fn next(
        &self,
        parser: &mut Parser<'a, saphyr_parser::StrInput<'a>>,
    ) -> Result<(Event<'a>, Pos), YamlError> {
        match parser.next_event() {
            Some(Ok((event, span))) => Ok((
                event,
                Pos {
                    line: span.start.line(),
                    col: span.start.col() + 1,
                },
            )),
            Some(Err(e)) => {
                let m = e.marker();
                Err(self.err(
                    Pos {
                        line: m.line(),
                        col: m.col() + 1,
                    },
                    e.info().to_string(),
                ))
            }
            None => Err(self.err(
                Pos {
                    line: self.src.lines().count().max(1),
                    col: 1,
                },
                "unexpected end of YAML",
            )),
        }
    }

    fn charge(&mut self, n: usize, pos: Pos) -> Result<(), YamlError> {
        if n > self.budget {
            return Err(self.err(
                pos,
                "document expands to too many nodes (alias bomb?); refusing to load it",
            ));
        }
        self.budget -= n;
        Ok(())
    }

    fn node(
        &mut self,
        parser: &mut Parser<'a, saphyr_parser::StrInput<'a>>,
    ) -> Result<Start, YamlError> {
        let (event, pos) = self.next(parser)?;
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.charge(1, pos)?;
                (self.scalar(&text, style, tag.as_deref(), pos)?, anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                self.charge(1, pos)?;
                let mut items = Vec::new();
                while let Start::Node(n) = self.node(parser)? {
                    items.push(n);
                }
                let node = Node {
                    value: NodeValue::Seq(items),
                    pos,
                    plain: None,
                };
                (
                    self.apply_collection_tag(node, tag.as_deref(), pos)?,
                    anchor,
                )
            }
            Event::MappingStart(anchor, tag) => {
                self.charge(1, pos)?;
                let node = self.mapping(parser, pos)?;
                (
                    self.apply_collection_tag(node, tag.as_deref(), pos)?,
                    anchor,
                )
            }
            Event::Alias(id) => {
                let target = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| self.err(pos, "alias to an unknown anchor"))?;
                self.charge(target.size(), pos)?;
                return Ok(Start::Node(Node { pos, ..target }));
            }
            Event::SequenceEnd | Event::MappingEnd | Event::DocumentEnd | Event::StreamEnd => {
                return Ok(Start::End);
            }
            other => return Err(self.err(pos, format!("unexpected YAML event {other:?}"))),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(Start::Node(node))
    }

    fn mapping(
        &mut self,
        parser: &mut Parser<'a, saphyr_parser::StrInput<'a>>,
        pos: Pos,
    ) -> Result<Node, YamlError> {
        let mut map: IndexMap<String, MapEntry> = IndexMap::new();
        let mut merges: Vec<Node> = Vec::new();
        loop {
            let key = match self.node(parser)? {
                Start::Node(k) => k,
                Start::End => break,
            };
            let value = match self.node(parser)? {
                Start::Node(v) => v,
                Start::End => return Err(self.err(key.pos, "mapping key without a value")),
            };
            if key.plain.as_deref() == Some("<<") {
                merges.push(value);
                continue;
            }
            let name = match &key.value {
                NodeValue::Scalar(Value::String(s)) => s.clone(),
                NodeValue::Scalar(Value::Null) => "null".to_string(),
                NodeValue::Scalar(v) => key.plain.clone().unwrap_or_else(|| v.to_string()),
                _ => return Err(self.err(key.pos, "complex mapping keys are not supported")),
            };
            if let Some(first) = map.get(&name) {
                return Err(self.err(
                    key.pos,
                    format!(
                        "duplicate key \"{name}\" (first defined at line {})",
                        first.key_pos.line
                    ),
                ));
            }
            map.insert(
                name,
                MapEntry {
                    key_pos: key.pos,
                    value,
                },
            );
        }
        // `<<` merge keys: explicit keys win, earlier merge sources win over later ones.
        for merge in merges {
            let sources = match merge.value {
                NodeValue::Map(_) => vec![merge],
                NodeValue::Seq(items) => items,
                _ => {
                    return Err(self.err(merge.pos, "`<<` expects a mapping or a list of mappings"));
                }
            };
            for source in sources {
                let NodeValue::Map(entries) = source.value else {
                    return Err(
                        self.err(source.pos, "`<<` expects a mapping or a list of mappings")
                    );
                };
                for (k, e) in entries {
                    map.entry(k).or_insert(e);
                }
            }
        }
        Ok(Node {
            value: NodeValue::Map(map),
            pos,
            plain: None,
        })
    }

    fn apply_collection_tag(
        &self,
        node: Node,
        tag: Option<&Tag>,
        pos: Pos,
    ) -> Result<Node, YamlError> {
        let Some(tag) = tag else { return Ok(node) };
        if tag.is_yaml_core_schema() {
            return match (tag.suffix.as_str(), &node.value) {
                ("map", NodeValue::Map(_)) | ("seq", NodeValue::Seq(_)) => Ok(node),
                (s, _) => Err(self.err(
                    pos,
                    format!("tag !!{s} does not fit a {}", node.type_name()),
                )),
            };
        }
        self.local_tag(node, tag, pos)
    }

    fn local_tag(&self, node: Node, tag: &Tag, pos: Pos) -> Result<Node, YamlError> {
        if self.tags != Tags::CloudFormation || tag.handle != "!" {
            return Err(self.err(pos, format!("unsupported tag {}{}", tag.handle, tag.suffix)));
        }
        let name = tag.suffix.as_str();
        let key = if name == "Ref" || name == "Condition" {
            name.to_string()
        } else {
            format!("Fn::{name}")
        };
        let value = if name == "GetAtt" {
            // `!GetAtt Res.Attr` is the short form of `Fn::GetAtt: [Res, Attr]`.
            match &node.value {
                NodeValue::Scalar(Value::String(s)) => {
                    let (res, attr) = s.split_once('.').unwrap_or((s.as_str(), ""));
                    let mk = |t: &str| Node {
                        value: NodeValue::Scalar(Value::String(t.to_string())),
                        pos,
                        plain: None,
                    };
                    Node {
                        value: NodeValue::Seq(vec![mk(res), mk(attr)]),
                        pos,
                        plain: None,
                    }
                }
                _ => node,
            }
        } else {
            node
        };
        let mut map = IndexMap::new();
        map.insert(
            key,
            MapEntry {
                key_pos: pos,
                value,
            },
        );
        Ok(Node {
            value: NodeValue::Map(map),
            pos,
            plain: None,
        })
    }

    fn scalar(
        &self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&Tag>,
        pos: Pos,
    ) -> Result<Node, YamlError> {
        let plain = style == ScalarStyle::Plain;
        if let Some(tag) = tag {
            let as_string = Node {
                value: NodeValue::Scalar(Value::String(text.to_string())),
                pos,
                plain: None,
            };
            if !tag.is_yaml_core_schema() {
                return self.local_tag(as_string, tag, pos);
            }
            let resolved = match tag.suffix.as_str() {
                "str" => Some(Value::String(text.to_string())),
                "null" => Some(Value::Null),
                "bool" => resolve_bool(text, self.dialect).map(Value::Bool),
                "int" => resolve_int(text, self.dialect),
                "float" => {
                    resolve_float(text, self.dialect).or_else(|| resolve_int(text, self.dialect))
                }
                other => return Err(self.err(pos, format!("unsupported tag !!{other}"))),
            };
            return match resolved {
                Some(v) => Ok(Node {
                    value: NodeValue::Scalar(v),
                    pos,
                    plain: None,
                }),
                None => Err(self.err(pos, format!("\"{text}\" is not a valid !!{}", tag.suffix))),
            };
        }
        let value = if plain {
            resolve_plain(text, self.dialect)
        } else {
            Value::String(text.to_string())
        };
        Ok(Node {
            value: NodeValue::Scalar(value),
            pos,
            plain: plain.then(|| text.to_string()),
        })
    }
}

/// Types a plain scalar.
pub fn resolve_plain(text: &str, dialect: Dialect) -> Value {
    if is_null(text) {
        return Value::Null;
    }
    if let Some(b) = resolve_bool(text, dialect) {
        return Value::Bool(b);
    }
    if let Some(i) = resolve_int(text, dialect) {
        return i;
    }
    if let Some(f) = resolve_float(text, dialect) {
        return f;
    }
    Value::String(text.to_string())
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn resolve_bool(text: &str, dialect: Dialect) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        "yes" | "Yes" | "YES" | "on" | "On" | "ON" if dialect == Dialect::PyYaml11 => Some(true),
        "no" | "No" | "NO" | "off" | "Off" | "OFF" if dialect == Dialect::PyYaml11 => Some(false),
        _ => None,
    }
}

fn split_sign(text: &str) -> (i128, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => (1, text),
    }
}

fn int_value(sign: i128, magnitude: i128) -> Value {
    let v = sign * magnitude;
    match i64::try_from(v) {
        Ok(i) => Value::from(i),
        Err(_) => Value::from(v as f64),
    }
}

fn resolve_int(text: &str, dialect: Dialect) -> Option<Value> {
    let digits_in = |s: &str, radix: u32, underscores: bool| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_digit(radix) || (underscores && c == '_'))
            && s.chars().any(|c| c.is_digit(radix))
    };
    let parse = |s: &str, radix: u32| i128::from_str_radix(&s.replace('_', ""), radix).ok();
    match dialect {
        Dialect::Yaml12 => {
            if let Some(hex) = text.strip_prefix("0x") {
                return digits_in(hex, 16, false)
                    .then(|| parse(hex, 16))
                    .flatten()
                    .map(|m| int_value(1, m));
            }
            if let Some(oct) = text.strip_prefix("0o") {
                return digits_in(oct, 8, false)
                    .then(|| parse(oct, 8))
                    .flatten()
                    .map(|m| int_value(1, m));
            }
            let (sign, rest) = split_sign(text);
            digits_in(rest, 10, false)
                .then(|| parse(rest, 10))
                .flatten()
                .map(|m| int_value(sign, m))
        }
        Dialect::PyYaml11 => {
            let (sign, rest) = split_sign(text);
            if let Some(bin) = rest.strip_prefix("0b") {
                return digits_in(bin, 2, true)
                    .then(|| parse(bin, 2))
                    .flatten()
                    .map(|m| int_value(sign, m));
            }
            if let Some(hex) = rest.strip_prefix("0x") {
                return digits_in(hex, 16, true)
                    .then(|| parse(hex, 16))
                    .flatten()
                    .map(|m| int_value(sign, m));
            }
            if rest == "0" {
                return Some(Value::from(0));
            }
            if rest.starts_with('0') && rest.len() > 1 {
                return digits_in(&rest[1..], 8, true)
                    .then(|| parse(&rest[1..], 8))
                    .flatten()
                    .map(|m| int_value(sign, m));
            }
            if rest.contains(':') {
                // Sexagesimal, e.g. 1:30 == 90 (PyYAML's base-60 integers).
                let mut parts = rest.split(':');
                let first = parts.next()?;
                if !(first.starts_with(|c: char| ('1'..='9').contains(&c))
                    && digits_in(first, 10, true))
                {
                    return None;
                }
                let mut total = parse(first, 10)?;
                for part in parts {
                    if part.is_empty()
                        || part.len() > 2
                        || !part.chars().all(|c| c.is_ascii_digit())
                    {
                        return None;
                    }
                    let v: i128 = part.parse().ok()?;
                    if v > 59 {
                        return None;
                    }
                    // Too big for a number: PyYAML would make a long; nepho keeps the text.
                    total = total.checked_mul(60)?.checked_add(v)?;
                }
                return Some(int_value(sign, total));
            }
            (rest.starts_with(|c: char| c.is_ascii_digit()) && digits_in(rest, 10, true))
                .then(|| parse(rest, 10))
                .flatten()
                .map(|m| int_value(sign, m))
        }
    }
}

fn resolve_float(text: &str, dialect: Dialect) -> Option<Value> {
    let (sign, rest) = split_sign(text);
    let signf = sign as f64;
    match rest {
        ".inf" | ".Inf" | ".INF" => {
            return Some(Value::String(if sign < 0 { "-inf" } else { "inf" }.into()));
        }
        ".nan" | ".NaN" | ".NAN" if text == rest => return Some(Value::String("nan".into())),
        _ => {}
    }
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let underscores = dialect == Dialect::PyYaml11;
    let ok_digits = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_digit() || (underscores && c == '_'))
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    if !ok_digits(int_part) || !frac_part.is_none_or(ok_digits) {
        return None;
    }
    match dialect {
        Dialect::Yaml12 => {
            if int_part.is_empty() && frac_part.is_none_or(str::is_empty) {
                return None;
            }
            if frac_part.is_none() && exponent.is_none() {
                return None; // an integer, handled elsewhere
            }
        }
        Dialect::PyYaml11 => {
            // PyYAML needs a dot, and a signed exponent: `1e3` is a string there.
            frac_part?;
            if int_part.is_empty() && frac_part.is_none_or(|f| f.trim_matches('_').is_empty()) {
                return None;
            }
            if let Some(e) = exponent
                && !(e.starts_with(['+', '-']) && e.len() > 1)
            {
                return None;
            }
        }
    }
    if let Some(e) = exponent {
        let (_, digits) = split_sign(e);
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    let cleaned: String = rest.chars().filter(|c| *c != '_').collect();
    let f: f64 = cleaned.parse().ok()?;
    serde_json::Number::from_f64(signf * f).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values_error(src: &str) -> YamlError {
        parse(src, Path::new("v.yaml"), Dialect::Yaml12, Tags::CoreOnly)
            .unwrap_err()
            .hiding_secrets(src, &|k| k == "pw")
    }

    #[test]
    fn errors_in_values_files_hide_secret_lines() {
        for src in [
            "pw: hunter2: x\n",
            "a: 1\npw: !!int hunter2\n",
            "pw: hunter2\n  b: 1\n",
            "{a: [1, pw: hunter2\n",
        ] {
            let shown = values_error(src).to_string();
            assert!(!shown.contains("hunter2"), "{src:?}: {shown}");
            assert!(shown.starts_with("v.yaml:"), "{shown}");
        }
        let shown = values_error("pw: ok\nname: a: b\n").to_string();
        assert!(shown.contains("name: a: b"), "{shown}");
    }

    fn p(src: &str, d: Dialect) -> Value {
        parse(src, Path::new("t.yaml"), d, Tags::CoreOnly)
            .unwrap()
            .unwrap()
            .to_value()
    }

    #[test]
    fn booleans_follow_the_dialect() {
        assert_eq!(
            p("a: yes\nb: on\nc: true", Dialect::Yaml12),
            serde_json::json!({"a": "yes", "b": "on", "c": true})
        );
        assert_eq!(
            p("a: yes\nb: off\nc: True", Dialect::PyYaml11),
            serde_json::json!({"a": true, "b": false, "c": true})
        );
    }

    #[test]
    fn numbers_follow_the_dialect() {
        assert_eq!(
            p("[010, 0x1F, 1e3, 1.5, 1_000, '7', 1:30]", Dialect::Yaml12),
            serde_json::json!([10, 31, 1000.0, 1.5, "1_000", "7", "1:30"])
        );
        assert_eq!(
            p(
                "[010, 0x1F, 1e3, 1.5, 1_000, 1:30, 1.0e+3]",
                Dialect::PyYaml11
            ),
            serde_json::json!([8, 31, "1e3", 1.5, 1000, 90, 1000.0])
        );
    }

    #[test]
    fn errors_carry_line_and_column() {
        let err = parse(
            "name: a\nlist: [1, 2\n",
            Path::new("x.yaml"),
            Dialect::Yaml12,
            Tags::CoreOnly,
        )
        .unwrap_err();
        assert!(err.pos.line >= 2, "{err}");
        let err = parse(
            "a: 1\nb: 2\na: 3\n",
            Path::new("x.yaml"),
            Dialect::Yaml12,
            Tags::CoreOnly,
        )
        .unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, col: 1 });
        assert!(err.to_string().contains("duplicate key \"a\""), "{err}");
        assert!(err.to_string().contains("x.yaml:3:1"), "{err}");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut src = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let names = ["b", "c", "d", "e", "f", "g", "h", "i"];
        let mut prev = "a";
        for n in names {
            src.push_str(&format!("{n}: &{n} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
            prev = n;
        }
        let err = parse(
            &src,
            Path::new("bomb.yaml"),
            Dialect::Yaml12,
            Tags::CoreOnly,
        )
        .unwrap_err();
        assert!(err.message.contains("alias bomb"), "{err}");
    }

    #[test]
    fn merge_keys_and_anchors() {
        let v = p(
            "base: &b {x: 1, y: 2}\nchild:\n  <<: *b\n  y: 3\n",
            Dialect::Yaml12,
        );
        assert_eq!(v["child"], serde_json::json!({"y": 3, "x": 1}));
    }

    #[test]
    fn cloudformation_tags() {
        let n = parse(
            "A: !Ref Foo\nB: !GetAtt Web.PublicIp\nC: !Sub 'x-${AWS::Region}'\n",
            Path::new("t.cf"),
            Dialect::Yaml12,
            Tags::CloudFormation,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            n.to_value(),
            serde_json::json!({"A": {"Ref": "Foo"}, "B": {"Fn::GetAtt": ["Web", "PublicIp"]}, "C": {"Fn::Sub": "x-${AWS::Region}"}})
        );
        assert!(
            parse(
                "A: !Ref Foo",
                Path::new("t"),
                Dialect::Yaml12,
                Tags::CoreOnly
            )
            .is_err()
        );
    }

    #[test]
    fn empty_document_is_none() {
        assert!(
            parse("", Path::new("e"), Dialect::Yaml12, Tags::CoreOnly)
                .unwrap()
                .is_none()
        );
        assert!(
            parse(
                "# only a comment\n",
                Path::new("e"),
                Dialect::Yaml12,
                Tags::CoreOnly
            )
            .unwrap()
            .is_none()
        );
    }
}
