//! Renders a scenario's pattern with minijinja.
//!
//! Nepho 1.x templates must come out as Python's Jinja2 renders them, so for those values print
//! Python-style (`True`, `None`, `['a', 1]`) and `tojson` matches Jinja2's. Native patterns print
//! JSON-style values (`true`, `null`, `["a", 1]`), which is what YAML, JSON and Ruby templates want.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::value::{Kwargs, Value as JValue, ValueKind};
use minijinja::{Environment, ErrorKind, State, UndefinedBehavior};
use nepho_provider_api::RenderedFile;
use serde::Serialize;
use serde_json::Value;

use crate::cloudlet::{Cloudlet, CloudletFormat, Scenario, read_confined, safe_relative};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Python Jinja2 output conventions (Nepho 1.x cloudlets).
    Python,
    /// JSON-style values (native cloudlets).
    Native,
}

#[derive(Serialize)]
struct CloudletContext<'a> {
    name: &'a str,
    version: Option<&'a str>,
    path: String,
    format: Value,
}

/// What a pattern sees.
pub struct RenderContext {
    pub formation: String,
    /// Values to render with (already redacted by the caller when rendering for display).
    pub parameters: serde_json::Map<String, Value>,
    /// Keys left out of `env_vars()`.
    pub secret_keys: Vec<String>,
}

fn to_jinja<T: Serialize>(v: T) -> JValue {
    JValue::from(minijinja::value::Serde(v))
}

/// Renders the scenario's entry template and returns it as the pattern's file.
pub fn render_pattern(
    cloudlet: &Cloudlet,
    scenario: &Scenario,
    cx: &RenderContext,
) -> Result<RenderedFile> {
    let flavor = match cloudlet.format {
        CloudletFormat::Native => Flavor::Native,
        CloudletFormat::V1 => Flavor::Python,
    };
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    // Jinja2 never auto-escapes unless told to; minijinja would JSON-escape `.json`/`.yaml`.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_debug(false);
    let root = cloudlet.root.clone();
    let search: Arc<Vec<PathBuf>> = Arc::new(scenario.pattern.search_path.clone());
    {
        let root = root.clone();
        let search = search.clone();
        env.set_loader(move |name: &str| {
            let Some(rel) = safe_relative(name) else {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("template name \"{name}\" leaves the cloudlet"),
                ));
            };
            for dir in search.iter() {
                let candidate = dir.join(&rel);
                match read_confined(&root, &candidate) {
                    Ok(Some(text)) => return Ok(Some(minijinja::TemplateSource::new(text))),
                    Ok(None) => continue,
                    Err(e) => {
                        return Err(minijinja::Error::new(
                            ErrorKind::InvalidOperation,
                            e.to_string(),
                        ));
                    }
                }
            }
            Ok(None)
        });
    }
    match flavor {
        Flavor::Python => {
            env.set_formatter(python_formatter);
            env.add_filter("tojson", python_tojson);
            env.add_filter("string", |v: JValue| python_str(&v));
        }
        Flavor::Native => {
            env.set_formatter(native_formatter);
        }
    }

    let parameters = to_jinja(&cx.parameters);
    let env_vars: serde_json::Map<String, Value> = cx
        .parameters
        .iter()
        .filter(|(k, _)| !cx.secret_keys.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let env_vars = to_jinja(&env_vars);
    env.add_function("env_vars", move || env_vars.clone());
    let format = match cloudlet.format {
        CloudletFormat::Native => Value::from(2),
        CloudletFormat::V1 => Value::from(1),
    };
    let cloudlet_cx = to_jinja(CloudletContext {
        name: &cloudlet.manifest.name,
        version: cloudlet.manifest.version.as_deref(),
        path: cloudlet.root.display().to_string(),
        format,
    });
    let scenario_cx = to_jinja(serde_json::json!({
        "name": scenario.name,
        "provider": scenario.provider.as_str(),
        "pattern": scenario.pattern.entry,
    }));
    let provisioner_cx = match &scenario.provisioner {
        Some(p) => to_jinja(serde_json::json!({
            "name": p.file_name().and_then(|n| n.to_str()),
            "path": p.display().to_string(),
            "content": read_confined(&root, p)?.unwrap_or_default(),
        })),
        None => JValue::from(()),
    };
    // Globals, not just render context: imported macro files see them with or without
    // `with context`, as Jinja2 templates written for 1.x expect.
    env.add_global("parameters", parameters);
    env.add_global("cloudlet", cloudlet_cx);
    env.add_global(
        "formation",
        to_jinja(serde_json::json!({ "name": cx.formation })),
    );
    match cloudlet.format {
        CloudletFormat::V1 => env.add_global(
            "blueprint",
            to_jinja(
                serde_json::json!({"name": scenario.name, "provider": scenario.provider.as_str()}),
            ),
        ),
        CloudletFormat::Native => {
            env.add_global("scenario", scenario_cx);
            env.add_global("provisioner", provisioner_cx);
        }
    }

    let template = env
        .get_template(&scenario.pattern.entry)
        .map_err(|e| template_error(&e, &search))?;
    let contents = template
        .render(())
        .map_err(|e| template_error(&e, &search))?;
    Ok(RenderedFile {
        name: scenario.pattern.entry.clone(),
        contents,
    })
}

/// A template error as `file:line: message`, with the offending line.
fn template_error(err: &minijinja::Error, search: &[PathBuf]) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut innermost = err;
    while let Some(e) = source {
        if let Some(mj) = e.downcast_ref::<minijinja::Error>()
            && mj.line().is_some()
        {
            innermost = mj;
        }
        source = e.source();
    }
    let name = innermost.name().unwrap_or("template");
    let file = search
        .iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name));
    let detail = innermost
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| innermost.kind().to_string());
    let mut message = match innermost.line() {
        Some(line) => format!("{}:{line}: template error: {detail}", file.display()),
        None => format!("{}: template error: {detail}", file.display()),
    };
    if let (Some(line), Ok(text)) = (innermost.line(), std::fs::read_to_string(&file))
        && let Some(src_line) = text.lines().nth(line.saturating_sub(1))
    {
        message.push_str(&format!("\n  {line} | {src_line}"));
    }
    Error::invalid(message)
}

fn native_formatter(
    out: &mut minijinja::Output,
    state: &mut State,
    value: &JValue,
) -> std::result::Result<(), minijinja::Error> {
    match value.kind() {
        ValueKind::Undefined => Ok(()),
        ValueKind::None => out.write_str("null").map_err(Into::into),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable | ValueKind::Plain => {
            let json = serde_json::to_string(value)
                .map_err(|e| minijinja::Error::new(ErrorKind::BadSerialization, e.to_string()))?;
            out.write_str(&json).map_err(Into::into)
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

fn python_formatter(
    out: &mut minijinja::Output,
    _state: &mut State,
    value: &JValue,
) -> std::result::Result<(), minijinja::Error> {
    if value.is_undefined() {
        return Ok(());
    }
    out.write_str(&python_str(value)).map_err(Into::into)
}

/// Python's `str()` of a value.
pub fn python_str(value: &JValue) -> String {
    match value.kind() {
        ValueKind::String => value.as_str().unwrap_or_default().to_string(),
        ValueKind::Undefined => String::new(),
        _ => python_repr(value),
    }
}

/// Python's `repr()` of a value.
pub fn python_repr(value: &JValue) -> String {
    match value.kind() {
        ValueKind::Undefined => String::new(),
        ValueKind::None => "None".into(),
        ValueKind::Bool => if value.is_true() { "True" } else { "False" }.into(),
        ValueKind::Number => {
            if let Ok(i) = i64::try_from(value.clone())
                && (value.as_i64().is_some() || !value.to_string().contains('.'))
            {
                return i.to_string();
            }
            match f64::try_from(value.clone()) {
                Ok(f) => python_float(f),
                Err(_) => value.to_string(),
            }
        }
        ValueKind::String => python_quote(value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<String> = value
                .try_iter()
                .map(|it| it.map(|v| python_repr(&v)).collect())
                .unwrap_or_default();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let mut items = Vec::new();
            if let Ok(keys) = value.try_iter() {
                for k in keys {
                    let v = value.get_item(&k).unwrap_or_default();
                    items.push(format!("{}: {}", python_repr(&k), python_repr(&v)));
                }
            }
            format!("{{{}}}", items.join(", "))
        }
        _ => value.to_string(),
    }
}

fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    if f == f.trunc() && f.abs() < 1e16 {
        return format!("{f:.1}");
    }
    let s = format!("{f}");
    if f.abs() >= 1e16 || (f != 0.0 && f.abs() < 1e-4) {
        // Python switches to exponent notation: 1e+16, 1e-05.
        let e = format!("{f:e}");
        if let Some((m, exp)) = e.split_once('e') {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            return format!("{m}e{sign}{digits:0>2}");
        }
    }
    s
}

fn python_quote(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Jinja2's `tojson`: `json.dumps(sort_keys=True)` then `<`, `>`, `&`, `'` escaped.
fn python_tojson(value: JValue, kwargs: Kwargs) -> std::result::Result<JValue, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let json: Value = serde_json::to_value(&value)
        .map_err(|e| minijinja::Error::new(ErrorKind::BadSerialization, e.to_string()))?;
    let mut out = String::new();
    python_json(&json, indent, 0, &mut out);
    let escaped = out
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\'', "\\u0027");
    Ok(JValue::from_safe_string(escaped))
}

fn python_json(v: &Value, indent: Option<usize>, level: usize, out: &mut String) {
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    let sep = if indent.is_some() { "," } else { ", " };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(
                &python_float(f)
                    .replace("inf", "Infinity")
                    .replace("nan", "NaN"),
            ),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => out.push_str(&python_json_string(s)),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, level + 1);
                python_json(item, indent, level + 1, out);
            }
            newline(out, level);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, level + 1);
                out.push_str(&python_json_string(k));
                out.push_str(": ");
                python_json(&map[k.as_str()], indent, level + 1, out);
            }
            newline(out, level);
            out.push('}');
        }
    }
}

/// `json.dumps` string escaping with `ensure_ascii=True`.
fn python_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Checks a rendered pattern has the shape its provider expects.
pub fn check_rendered(
    provider: nepho_provider_api::ProviderKind,
    file: &RenderedFile,
    source: &Path,
) -> Result<()> {
    use nepho_provider_api::ProviderKind::*;
    let label = PathBuf::from(format!("{} (rendered)", source.display()));
    match provider {
        Aws => {
            let trimmed = file.contents.trim_start();
            let value = if trimmed.starts_with('{') {
                serde_json::from_str::<Value>(&file.contents).map_err(|e| {
                    Error::invalid(format!(
                        "{}:{}:{}: the rendered template is not valid JSON: {e}",
                        label.display(),
                        e.line(),
                        e.column()
                    ))
                })?
            } else {
                crate::yaml::parse(
                    &file.contents,
                    &label,
                    crate::yaml::Dialect::Yaml12,
                    crate::yaml::Tags::CloudFormation,
                )?
                .map(|n| n.to_value())
                .unwrap_or(Value::Null)
            };
            if !value.get("Resources").is_some_and(Value::is_object) {
                return Err(Error::invalid(format!(
                    "{}: a CloudFormation template needs a `Resources` mapping",
                    label.display()
                )));
            }
        }
        Kvm => {
            let value = crate::yaml::parse(
                &file.contents,
                &label,
                crate::yaml::Dialect::Yaml12,
                crate::yaml::Tags::CoreOnly,
            )?
            .map(|n| n.to_value())
            .unwrap_or(Value::Null);
            if !value
                .get("machines")
                .is_some_and(|m| m.is_object() || m.is_array())
            {
                return Err(Error::invalid(format!(
                    "{}: a KVM pattern needs a `machines` list or mapping",
                    label.display()
                )));
            }
        }
        Vagrant => {
            if !file.contents.contains("Vagrant.configure") {
                return Err(Error::invalid(format!(
                    "{}: a Vagrantfile must call Vagrant.configure",
                    label.display()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_reprs() {
        let v = to_jinja(serde_json::json!({"a": [1, 2.5, true, null, "it's"], "b": "x"}));
        assert_eq!(
            python_repr(&v),
            r#"{'a': [1, 2.5, True, None, "it's"], 'b': 'x'}"#
        );
        assert_eq!(python_float(1.0), "1.0");
        assert_eq!(python_float(1e16), "1e+16");
        assert_eq!(python_float(0.00001), "1e-05");
    }

    #[test]
    fn python_json_matches_json_dumps() {
        let v: Value = serde_json::json!({"b": [1, "é"], "a": {"x": null}});
        let mut out = String::new();
        python_json(&v, None, 0, &mut out);
        assert_eq!(out, r#"{"a": {"x": null}, "b": [1, "\u00e9"]}"#);
    }
}
