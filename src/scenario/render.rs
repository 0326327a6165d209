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

use super::escape;
use crate::cloudlet::{Cloudlet, CloudletFormat, MAX_TEMPLATE_BYTES, Scenario, read_confined};
use crate::error::{Error, Result};
use crate::util::safe_relative;

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

/// The largest count or width a filter may be asked for. `slice(10**12)`, `batch(n, fill)`,
/// `indent(n)` and `center(n)` build that many items or bytes before the output budget could
/// see them (the fuzzer's allocation aborts).
const MAX_FILTER_SIZE: usize = 1 << 20;

fn bounded(what: &str, n: usize) -> std::result::Result<usize, minijinja::Error> {
    if n > MAX_FILTER_SIZE {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("{what} of {n} is too large (the limit is {MAX_FILTER_SIZE})"),
        ));
    }
    Ok(n)
}

/// The longest text one value may print as (the rendered pattern's own limit): a list of a
/// million references to a list of a million items prints as terabytes.
const MAX_VALUE_TEXT: usize = MAX_RENDERED_BYTES;
/// The deepest nesting a printed value may have (a namespace can hold itself).
const MAX_VALUE_DEPTH: usize = 128;

/// Refuses a value that would print as more than [`MAX_VALUE_TEXT`] bytes or nest deeper than
/// [`MAX_VALUE_DEPTH`], before any of the printers (Python's `str()`/`repr()`, JSON, the
/// escapes) spends time and memory on it. Stops as soon as the budget is spent.
pub(crate) fn check_printable(value: &JValue) -> std::result::Result<(), minijinja::Error> {
    fn walk(v: &JValue, budget: &mut usize, depth: usize) -> std::result::Result<(), &'static str> {
        if depth > MAX_VALUE_DEPTH {
            return Err("is nested too deeply to print");
        }
        let own = match v.kind() {
            // Escapes can double a string: count it twice.
            ValueKind::String => v.as_str().map_or(0, str::len).saturating_mul(2) + 2,
            ValueKind::Bytes => v.as_bytes().map_or(0, <[u8]>::len).saturating_mul(4) + 3,
            _ => 8,
        };
        *budget = budget.checked_sub(own).ok_or("prints as too much text")?;
        match v.kind() {
            ValueKind::Seq | ValueKind::Iterable => {
                for item in v.try_iter().into_iter().flatten() {
                    *budget = budget.checked_sub(2).ok_or("prints as too much text")?;
                    walk(&item, budget, depth + 1)?;
                }
            }
            ValueKind::Map => {
                for key in v.try_iter().into_iter().flatten() {
                    *budget = budget.checked_sub(4).ok_or("prints as too much text")?;
                    let item = v.get_item(&key).unwrap_or_default();
                    walk(&key, budget, depth + 1)?;
                    walk(&item, budget, depth + 1)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
    let mut budget = MAX_VALUE_TEXT;
    walk(value, &mut budget, 0).map_err(|why| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("a value {why} (the limit is {} MiB)", MAX_VALUE_TEXT >> 20),
        )
    })
}

/// Python's `str()` of a value, refused when it would be too large (see [`check_printable`]).
fn printed(value: &JValue) -> std::result::Result<String, minijinja::Error> {
    check_printable(value)?;
    Ok(python_str(value))
}

/// minijinja's `slice`, `batch` and `indent`, with their sizes bounded.
fn add_bounded_filters(env: &mut Environment<'_>) {
    env.add_filter(
        "slice",
        |state: &State, value: JValue, count: usize, fill: Option<JValue>| {
            minijinja::filters::slice(state, value, bounded("a slice count", count)?, fill)
        },
    );
    env.add_filter(
        "batch",
        |state: &State, value: JValue, count: usize, fill: Option<JValue>| {
            let count = bounded("a batch size", count)?;
            if fill.is_some() {
                bounded(
                    "a filled batch",
                    count.saturating_mul(value.len().unwrap_or(0)),
                )?;
            }
            minijinja::filters::batch(state, value, count, fill)
        },
    );
    env.add_filter(
        "indent",
        |value: minijinja::value::StringInput<'_>,
         width: Option<usize>,
         first: Option<bool>,
         blank: Option<bool>,
         kwargs: Kwargs| {
            let named = kwargs.get::<Option<usize>>("width")?;
            let width = bounded("an indent width", width.or(named).unwrap_or(4))?;
            let lines = value.as_str().bytes().filter(|b| *b == b'\n').count() + 1;
            let size = width
                .saturating_mul(lines)
                .saturating_add(value.as_str().len());
            if size > MAX_RENDERED_BYTES {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("indenting {lines} lines by {width} is over the output budget"),
                ));
            }
            minijinja::filters::indent(value, Some(width), first, blank, kwargs)
        },
    );
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
    // `"%s-%d" % (a, b)`: Python's printf-style formatting, which Jinja2 has and minijinja
    // (patched, see vendor/README.md) hands to us.
    minijinja::value::set_string_rem_hook(python_percent);
    let mut env = Environment::new();
    // Jinja2's default `Undefined`: prints as empty, iterates as empty, is false; an attribute
    // of an undefined value is an error; an attribute of None is undefined.
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    // Jinja2 never auto-escapes unless told to; minijinja would JSON-escape `.json`/`.yaml`.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_unknown_method_callback(python_methods);
    env.set_debug(false);
    // Budgets: a template is input from a stranger's repository.
    let fuel = FUEL.load(std::sync::atomic::Ordering::Relaxed);
    env.set_fuel(Some(fuel));
    let time_ms = TIME_MS.load(std::sync::atomic::Ordering::Relaxed);
    env.set_time_budget(Some(std::time::Duration::from_millis(time_ms)));
    add_bounded_filters(&mut env);
    let root = cloudlet.root.clone();
    let search: Arc<Vec<PathBuf>> = Arc::new(scenario.pattern.search_path.clone());
    // Native patterns escape every `{{ … }}` for their language and quoting (1.x ones render
    // exactly as Jinja2 did, without).
    let language = match flavor {
        Flavor::Native => {
            let entry_source = read_confined(&root, &scenario.pattern.path, MAX_TEMPLATE_BYTES)?
                .unwrap_or_default();
            Some(escape::Language::of(&scenario.pattern.entry, &entry_source))
        }
        Flavor::Python => None,
    };
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
                match read_confined(&root, &candidate, MAX_TEMPLATE_BYTES) {
                    Ok(Some(text)) => {
                        let text = match language {
                            Some(language) => escape::rewrite(&text, language),
                            None => text,
                        };
                        return Ok(Some(minijinja::TemplateSource::new(text)));
                    }
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
            env.add_filter("string", |v: JValue| printed(&v));
            env.add_filter(
                "format",
                |format: String, args: minijinja::value::Rest<JValue>| {
                    let args = if args.len() == 1 {
                        args[0].clone()
                    } else {
                        JValue::from(minijinja::value::Tuple::new(args.0))
                    };
                    python_percent(&format, &args)
                },
            );
            // Jinja2's Undefined has a length (0) and iterates as empty: so do its filters.
            env.add_filter("int", python_int);
            env.add_filter("float", python_float_filter);
            env.add_filter("round", python_round);
            env.add_filter("sum", python_sum);
            env.add_filter("replace", python_replace);
            env.add_filter("length", python_length);
            // Jinja2 filters minijinja does not have.
            env.add_filter("wordcount", |v: JValue| {
                Ok::<_, minijinja::Error>(
                    printed(&v)?
                        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .filter(|w| !w.is_empty())
                        .count(),
                )
            });
            env.add_filter("center", |v: JValue, width: Option<usize>| {
                // Python's str.center: the odd space goes right when the text is even-sized.
                let text = printed(&v)?;
                let width = bounded("a center width", width.unwrap_or(80))?;
                let len = text.chars().count();
                if width <= len {
                    return Ok(text);
                }
                let pad = width - len;
                let left = pad / 2 + (pad & width & 1);
                Ok::<_, minijinja::Error>(format!(
                    "{}{text}{}",
                    " ".repeat(left),
                    " ".repeat(pad - left)
                ))
            });
            env.add_filter(
                "truncate",
                |v: JValue,
                 length: Option<usize>,
                 killwords: Option<bool>,
                 end: Option<String>,
                 leeway: Option<usize>| {
                    let text = printed(&v)?;
                    let length = length.unwrap_or(255);
                    let end = end.unwrap_or_else(|| "...".into());
                    let leeway = leeway.unwrap_or(5);
                    let chars: Vec<char> = text.chars().collect();
                    if chars.len() <= length.saturating_add(leeway) {
                        return Ok::<_, minijinja::Error>(text);
                    }
                    let keep = length.saturating_sub(end.chars().count());
                    let head: String = chars[..keep].iter().collect();
                    if killwords.unwrap_or(false) {
                        return Ok(head + &end);
                    }
                    let cut = match head.rfind(' ') {
                        Some(i) => &head[..i],
                        None => head.as_str(),
                    };
                    Ok(format!("{cut}{end}"))
                },
            );
            env.add_filter("count", python_length);
            // Python's `callable()` as a global, and Jinja2's `callable` test.
            let callable = |v: JValue| v.kind() == ValueKind::Plain && v.as_object().is_some();
            env.add_function("callable", callable);
            env.add_test("callable", callable);
        }
        Flavor::Native => {
            env.set_formatter(native_formatter);
            env.add_filter("__nepho_escape", escape::escape_filter);
            // `| raw`: this value is spliced as it is (the template vouches for it).
            env.add_filter("raw", |v: JValue| {
                check_printable(&v)?;
                Ok::<_, minijinja::Error>(JValue::from_safe_string(match v.as_str() {
                    Some(s) => s.to_string(),
                    None => serde_json::to_string(&v).unwrap_or_default(),
                }))
            });
        }
    }

    let parameters = to_jinja(&cx.parameters);
    // Native: every value but the secrets. 1.x: every parameter but the AWS keys (the global
    // 1.x cloudlets call, as later 1.x provided it; 1.2.3 itself did not define it).
    let hidden = |k: &String| match flavor {
        Flavor::Native => cx.secret_keys.contains(k),
        Flavor::Python => k == "AWSAccessKeyID" || k == "AWSSecretAccessKey",
    };
    let env_vars: serde_json::Map<String, Value> = cx
        .parameters
        .iter()
        .filter(|(k, _)| !hidden(k))
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
            "content": read_confined(&root, p, MAX_TEMPLATE_BYTES)?.unwrap_or_default(),
        })),
        None => JValue::from(()),
    };
    // Globals, not just render context: imported macro files see them with or without
    // `with context`, as Jinja2 templates written for 1.x expect.
    env.add_global("parameters", parameters);
    env.add_global("cloudlet", cloudlet_cx);
    match cloudlet.format {
        CloudletFormat::V1 => {
            // 1.2.3's context: parameters, cloudlet, blueprint, and `scripts = None` ("for
            // backwards compatibility"; shared templates still loop over `scripts.*`).
            env.add_global(
                "blueprint",
                to_jinja(
                    serde_json::json!({"name": scenario.name, "provider": scenario.provider.as_str()}),
                ),
            );
            env.add_global("scripts", JValue::from(()));
        }
        CloudletFormat::Native => {
            env.add_global(
                "formation",
                to_jinja(serde_json::json!({ "name": cx.formation })),
            );
            env.add_global("scenario", scenario_cx);
            env.add_global("provisioner", provisioner_cx);
        }
    }

    let template = env
        .get_template(&scenario.pattern.entry)
        .map_err(|e| template_error(&e, &search))?;
    let mut out = CappedOutput::default();
    let _deadline = RenderDeadline::start(std::time::Duration::from_millis(time_ms));
    if let Err(e) = template.render_captured_to((), &mut out) {
        if out.exceeded {
            return Err(Error::invalid(format!(
                "{}: the rendered pattern is larger than {} MiB",
                scenario.pattern.path.display(),
                MAX_RENDERED_BYTES >> 20
            ))
            .with_hint("a loop in the template produces far more text than a pattern needs"));
        }
        if e.kind() == ErrorKind::OutOfFuel && e.detail() == Some("time budget exceeded") {
            return Err(Error::invalid(format!(
                "{}: the template ran longer than its budget of {:.1} s",
                scenario.pattern.path.display(),
                time_ms as f64 / 1000.0
            ))
            .with_hint("the template does far more work than a pattern needs"));
        }
        if e.kind() == ErrorKind::OutOfFuel {
            return Err(Error::invalid(format!(
                "{}: the template used up its budget of {fuel} steps",
                scenario.pattern.path.display()
            ))
            .with_hint("a loop in the template runs far longer than a pattern needs"));
        }
        return Err(template_error(&e, &search));
    }
    let contents = String::from_utf8(out.bytes)
        .map_err(|_| Error::invalid("the rendered pattern is not UTF-8"))?;
    Ok(RenderedFile {
        name: scenario.pattern.entry.clone(),
        contents,
    })
}

/// Instructions a render may run (a big legitimate pattern needs well under a million).
const RENDER_FUEL: u64 = 20_000_000;
/// The budget in force: [`RENDER_FUEL`] unless [`lower_fuel`] lowered it.
static FUEL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(RENDER_FUEL);

/// Wall-clock time a render may take, in milliseconds. Steps alone do not bound it: one step
/// can escape, print or copy megabytes.
const RENDER_TIME_MS: u64 = 10_000;
/// The time budget in force: [`RENDER_TIME_MS`] unless [`lower_fuel`] lowered it.
static TIME_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(RENDER_TIME_MS);

/// Lowers the instruction budget of every later render in this process, and the time budget in
/// proportion (at least 50 ms). For the fuzz targets: each input must finish in milliseconds (a
/// template that loops until the budget runs out took 0.4 s at the full budget and starved the
/// fuzzer), and running out is the same code at any budget.
pub fn lower_fuel(fuel: u64) {
    FUEL.fetch_min(fuel, std::sync::atomic::Ordering::Relaxed);
    let time = (RENDER_TIME_MS as u128 * fuel as u128 / RENDER_FUEL as u128).max(50) as u64;
    TIME_MS.fetch_min(time, std::sync::atomic::Ordering::Relaxed);
}
/// Largest rendered pattern (CloudFormation's own limit for a template is 1 MB).
const MAX_RENDERED_BYTES: usize = 16 << 20;

/// The render's output, refused past [`MAX_RENDERED_BYTES`].
#[derive(Default)]
struct CappedOutput {
    bytes: Vec<u8>,
    exceeded: bool,
}

impl std::io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_RENDERED_BYTES {
            self.exceeded = true;
            return Err(std::io::Error::other("rendered pattern too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
        ValueKind::Bool => out
            .write_str(if value.is_true() { "true" } else { "false" })
            .map_err(Into::into),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable | ValueKind::Plain => {
            check_printable(value)?;
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
    out.write_str(&printed(value)?).map_err(Into::into)
}

/// Jinja2's `int(default=0, base=10)`: what Python's `int()` makes of it (strings also through
/// `float()`), else the default.
fn python_int(v: JValue, kwargs: Kwargs) -> std::result::Result<JValue, minijinja::Error> {
    let default: Option<JValue> = kwargs.get("default")?;
    let base: Option<u32> = kwargs.get("base")?;
    kwargs.assert_all_used()?;
    let default = default.unwrap_or(JValue::from(0));
    let parsed = match v.kind() {
        ValueKind::String => {
            let text = v.as_str().unwrap_or_default().trim().replace('_', "");
            let base = base.unwrap_or(10);
            let digits = match base {
                16 => text.trim_start_matches("0x").trim_start_matches("0X"),
                8 => text.trim_start_matches("0o").trim_start_matches("0O"),
                2 => text.trim_start_matches("0b").trim_start_matches("0B"),
                _ => text.as_str(),
            };
            i64::from_str_radix(digits, base).ok().or_else(|| {
                text.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| f.trunc() as i64)
            })
        }
        ValueKind::Bool => Some(i64::from(v.is_true())),
        ValueKind::Number => v.as_i64().or_else(|| {
            f64::try_from(v.clone())
                .ok()
                .filter(|f| f.is_finite())
                .map(|f| f.trunc() as i64)
        }),
        _ => None,
    };
    Ok(parsed.map(JValue::from).unwrap_or(default))
}

/// Jinja2's `float(default=0.0)`.
fn python_float_filter(v: JValue, kwargs: Kwargs) -> std::result::Result<JValue, minijinja::Error> {
    let default: Option<JValue> = kwargs.get("default")?;
    kwargs.assert_all_used()?;
    let parsed = match v.kind() {
        ValueKind::String => v.as_str().unwrap_or_default().trim().parse::<f64>().ok(),
        ValueKind::Bool => Some(if v.is_true() { 1.0 } else { 0.0 }),
        ValueKind::Number => f64::try_from(v.clone()).ok(),
        _ => None,
    };
    Ok(parsed
        .map(JValue::from)
        .unwrap_or_else(|| default.unwrap_or(JValue::from(0.0))))
}

/// Jinja2's `round(precision=0, method='common'|'ceil'|'floor')`: always a float.
fn python_round(
    v: JValue,
    precision: Option<i32>,
    method: Option<String>,
) -> std::result::Result<JValue, minijinja::Error> {
    let x = f64::try_from(v.clone()).map_err(|_| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot round a value of type {}", v.kind()),
        )
    })?;
    let p = precision.unwrap_or(0);
    let scale = 10f64.powi(p);
    let rounded = match method.as_deref().unwrap_or("common") {
        // Python's round(): correctly rounded, ties to even, as Rust's formatting rounds.
        "common" if p >= 0 => format!("{x:.*}", p as usize).parse().unwrap_or(x),
        "common" => (x * scale).round_ties_even() / scale,
        "ceil" => (x * scale).ceil() / scale,
        "floor" => (x * scale).floor() / scale,
        other => {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("method must be common, ceil or floor, not {other}"),
            ));
        }
    };
    Ok(JValue::from(rounded))
}

/// Jinja2's `sum(attribute=None, start=0)`.
fn python_sum(v: JValue, kwargs: Kwargs) -> std::result::Result<JValue, minijinja::Error> {
    let attribute: Option<String> = kwargs.get("attribute")?;
    let start: Option<JValue> = kwargs.get("start")?;
    kwargs.assert_all_used()?;
    let mut total = start.unwrap_or(JValue::from(0));
    for item in v.try_iter()? {
        let item = match &attribute {
            Some(path) => {
                let mut cur = item;
                for part in path.split('.') {
                    cur = match part.parse::<usize>() {
                        Ok(i) => cur.get_item_by_index(i)?,
                        Err(_) => cur.get_attr(part)?,
                    };
                }
                cur
            }
            None => item,
        };
        total = match (
            total.as_i64(),
            item.as_i64(),
            total.to_string().contains('.'),
            item.to_string().contains('.'),
        ) {
            (Some(a), Some(b), false, false) => {
                JValue::from(a.checked_add(b).ok_or_else(|| {
                    minijinja::Error::new(ErrorKind::InvalidOperation, "sum overflows")
                })?)
            }
            _ => {
                let a = f64::try_from(total.clone());
                let b = f64::try_from(item.clone());
                match (a, b) {
                    (Ok(a), Ok(b)) => JValue::from(a + b),
                    _ => {
                        return Err(minijinja::Error::new(
                            ErrorKind::InvalidOperation,
                            format!(
                                "unsupported operand types for +: {} and {}",
                                total.kind(),
                                item.kind()
                            ),
                        ));
                    }
                }
            }
        };
    }
    Ok(total)
}

/// Jinja2's `replace(old, new, count=None)`.
fn python_replace(
    v: JValue,
    old: String,
    new: String,
    count: Option<i64>,
) -> std::result::Result<JValue, minijinja::Error> {
    let text = printed(&v)?;
    // Each match can grow the text by `new`: refuse a result past the value limit up front.
    let matches = if old.is_empty() {
        text.chars().count() + 1
    } else {
        text.matches(&old).count()
    };
    let matches = match count {
        Some(n) if n >= 0 => matches.min(n as usize),
        _ => matches,
    };
    let grown = text.len().saturating_add(matches.saturating_mul(new.len()));
    if grown > MAX_VALUE_TEXT {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "replace would build more than {} MiB of text",
                MAX_VALUE_TEXT >> 20
            ),
        ));
    }
    Ok(JValue::from(match count {
        Some(n) if n >= 0 => text.replacen(&old, &new, n as usize),
        _ => text.replace(&old, &new),
    }))
}

/// Jinja2's `length`: `len()` of a value; Undefined has length 0.
fn python_length(v: JValue) -> std::result::Result<JValue, minijinja::Error> {
    if v.is_undefined() {
        return Ok(JValue::from(0));
    }
    if let Some(s) = v.as_str() {
        return Ok(JValue::from(s.chars().count()));
    }
    v.len().map(JValue::from).ok_or_else(|| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("object of type '{}' has no len()", v.kind()),
        )
    })
}

/// Python 2 dict methods (1.x ran on Python 2) on top of minijinja's Python 3 ones.
fn python_methods(
    state: &mut State,
    value: &JValue,
    method: &str,
    args: &[JValue],
) -> std::result::Result<JValue, minijinja::Error> {
    let renamed = match (value.kind(), method) {
        (ValueKind::Map, "iteritems") => "items",
        (ValueKind::Map, "iterkeys") => "keys",
        (ValueKind::Map, "itervalues") => "values",
        (ValueKind::Map, "has_key") => {
            let [key] = args else {
                return Err(minijinja::Error::new(
                    ErrorKind::MissingArgument,
                    "has_key takes one argument",
                ));
            };
            return Ok(JValue::from(
                value.get_item(key).is_ok_and(|v| !v.is_undefined()),
            ));
        }
        _ => method,
    };
    minijinja_contrib::pycompat::unknown_method_callback(state, value, renamed, args)
}

thread_local! {
    /// When the render running on this thread runs out of time ([`RenderDeadline`]).
    static DEADLINE: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
}

/// The render's wall-clock budget, for the work of native filters and operators. minijinja
/// checks the budget between instructions, and one `%` of a 16 MiB format string with eight
/// million conversions is a single instruction of seconds (found by the render fuzzer).
struct RenderDeadline(Option<std::time::Instant>);

impl RenderDeadline {
    fn start(budget: std::time::Duration) -> RenderDeadline {
        let at = std::time::Instant::now().checked_add(budget);
        RenderDeadline(DEADLINE.with(|d| d.replace(at)))
    }

    /// An error once the render running on this thread is past its time budget.
    fn check() -> std::result::Result<(), minijinja::Error> {
        match DEADLINE.with(|d| d.get()) {
            Some(at) if std::time::Instant::now() >= at => Err(minijinja::Error::new(
                ErrorKind::OutOfFuel,
                "time budget exceeded",
            )),
            _ => Ok(()),
        }
    }
}

impl Drop for RenderDeadline {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(self.0));
    }
}

/// Conversions `%` handles between two looks at the render's clock.
const PERCENT_CLOCK_EVERY: usize = 4096;
/// Conversions one `%` may have (a real template has a handful): minijinja formats the
/// rewritten string in one go, at a microsecond or more per conversion, without a look at
/// the clock.
const MAX_CONVERSIONS: usize = 1 << 16;

/// Python's `format % args`: a tuple gives the positional arguments, a mapping the `%(key)s`
/// ones, anything else is the single argument. `%s` prints Python's `str()` (`True`, `None`,
/// `['a', 1]`), `%r` its `repr()`.
pub fn python_percent(
    format: &str,
    args: &JValue,
) -> std::result::Result<JValue, minijinja::Error> {
    check_printable(args)?;
    let positional: Vec<JValue> = match args.downcast_object_ref::<minijinja::value::Tuple>() {
        Some(t) => t.iter().cloned().collect(),
        None => vec![args.clone()],
    };
    let mapping = args.kind() == ValueKind::Map;
    // Rewrite the conversions minijinja would print its own way: %s/%r of non-strings become
    // pre-rendered strings, booleans given to numeric conversions become integers.
    let mut out_format = String::with_capacity(format.len());
    let mut converted = positional.clone();
    let mut converted_map: Vec<(JValue, JValue)> = Vec::new();
    let mut next_arg = 0usize;
    let mut conversions = 0usize;
    let mut rest = format;
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '%' {
            // The text up to the next `%` at once (a format can be megabytes).
            let run = rest[i..].find('%').unwrap_or(rest.len() - i);
            out_format.push_str(&rest[i..i + run]);
            rest = &rest[i + run..];
            chars = rest.char_indices().peekable();
            continue;
        }
        out_format.push(c);
        conversions += 1;
        if conversions > MAX_CONVERSIONS {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("a % format with over {MAX_CONVERSIONS} conversions"),
            ));
        }
        if conversions.is_multiple_of(PERCENT_CLOCK_EVERY) {
            RenderDeadline::check()?;
        }
        if let Some(&(_, '%')) = chars.peek() {
            out_format.push('%');
            chars.next();
            continue;
        }
        let mut key = None;
        if let Some(&(_, '(')) = chars.peek() {
            let mut k = String::new();
            out_format.push('(');
            chars.next();
            let mut depth = 1;
            for (_, c) in chars.by_ref() {
                out_format.push(c);
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                k.push(c);
            }
            key = Some(k);
        }
        // flags, width, precision, length modifier
        while let Some(&(_, c)) = chars.peek() {
            if "-+ #0123456789.hlL".contains(c) {
                out_format.push(c);
                chars.next();
            } else if c == '*' {
                out_format.push(c);
                chars.next();
                next_arg += 1;
            } else {
                break;
            }
        }
        let Some((_, conv)) = chars.next() else {
            break;
        };
        let value = match &key {
            Some(k) => args.get_item(&JValue::from(k.as_str())).ok(),
            None => {
                let v = positional.get(next_arg).cloned();
                next_arg += 1;
                v
            }
        };
        let replacement = value.and_then(|v| match conv {
            's' if v.kind() != ValueKind::String => Some(JValue::from(python_str(&v))),
            'r' | 'a' => Some(JValue::from(python_repr(&v))),
            'd' | 'i' | 'u' | 'x' | 'X' | 'o' | 'e' | 'E' | 'f' | 'F' | 'g' | 'G'
                if v.kind() == ValueKind::Bool =>
            {
                Some(JValue::from(i64::from(v.is_true())))
            }
            // `%d` of a float is `int()` of it in Python (truncation toward zero).
            'd' | 'i' | 'u' if v.kind() == ValueKind::Number && v.as_i64().is_none() => {
                f64::try_from(v.clone())
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| JValue::from(f.trunc() as i64))
            }
            _ => None,
        });
        out_format.push(if matches!(conv, 'r' | 'a') { 's' } else { conv });
        if let Some(r) = replacement {
            match &key {
                Some(k) => converted_map.push((JValue::from(k.as_str()), r)),
                None => {
                    if let Some(slot) = converted.get_mut(next_arg - 1) {
                        *slot = r;
                    }
                }
            }
        }
    }
    let final_args = if mapping {
        let mut map: std::collections::BTreeMap<JValue, JValue> =
            map_entries(args).into_iter().collect();
        for (k, v) in converted_map {
            map.insert(k, v);
        }
        vec![JValue::from_object(map)]
    } else {
        converted
    };
    minijinja::formatting::format(
        minijinja::formatting::FormatStyle::Printf,
        &out_format,
        &final_args,
    )
    .map(JValue::from)
}

/// A mapping's keys and values, in its order.
pub(crate) fn map_entries(value: &JValue) -> Vec<(JValue, JValue)> {
    value
        .try_iter()
        .map(|keys| {
            keys.map(|k| {
                let v = value.get_item(&k).unwrap_or_default();
                (k, v)
            })
            .collect()
        })
        .unwrap_or_default()
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
            // minijinja prints floats with a `.` or an exponent; integers without.
            let text = value.to_string();
            let is_float =
                text.contains(['.', 'e', 'E']) || text.contains("inf") || text.contains("nan");
            if !is_float {
                return text;
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
            if value
                .downcast_object_ref::<minijinja::value::Tuple>()
                .is_some()
            {
                let trailing = if items.len() == 1 { "," } else { "" };
                format!("({}{trailing})", items.join(", "))
            } else {
                format!("[{}]", items.join(", "))
            }
        }
        ValueKind::Map => {
            let items: Vec<String> = map_entries(value)
                .iter()
                .map(|(k, v)| format!("{}: {}", python_repr(k), python_repr(v)))
                .collect();
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
    check_printable(&value)?;
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

    /// Slices with every mix of bounds and steps, of lists, strings and ranges, print as
    /// Python's Jinja2 prints them (the vendored minijinja follows CPython's `slice.indices`;
    /// upstream did not for negative steps, and panicked on some: found by the fuzzer).
    #[test]
    fn slices_match_jinja2() {
        let python = std::env::var("NEPHO_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let has_jinja = std::process::Command::new(&python)
            .args(["-c", "import jinja2"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_jinja {
            assert!(std::env::var_os("CI").is_none(), "CI must provide jinja2");
            eprintln!("SKIPPED: no Python with jinja2 (NEPHO_TEST_PYTHON)");
            return;
        }
        let bound = |b: Option<i64>| b.map(|v| v.to_string()).unwrap_or_default();
        let bounds = [
            None,
            Some(-7),
            Some(-4),
            Some(-1),
            Some(0),
            Some(1),
            Some(3),
            Some(7),
        ];
        let mut template = String::new();
        for seq in ["[0, 1, 2, 3]", "[]", "'abcd'", "range(4)", "range(0)"] {
            for start in bounds {
                for stop in bounds {
                    for step in ["", "1", "2", "-1", "-2", "-3", "-9223372036854775807 - 1"] {
                        template.push_str(&format!(
                            "{{{{ {seq}[{}:{}:{step}]|join(',') }}}}\n",
                            bound(start),
                            bound(stop)
                        ));
                    }
                }
            }
        }
        let ours = Environment::new().render_str(&template, ()).unwrap();
        let jinja = std::process::Command::new(&python)
            .args([
                "-c",
                "import sys, jinja2; sys.stdout.write(jinja2.Environment().from_string(sys.stdin.read()).render())",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(template.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        assert!(jinja.status.success());
        let jinja = String::from_utf8(jinja.stdout).unwrap();
        for ((ours, theirs), expr) in ours.lines().zip(jinja.lines()).zip(template.lines()) {
            assert_eq!(ours, theirs, "{expr}");
        }
        assert_eq!(ours, jinja);
    }

    #[test]
    fn huge_precisions_format_without_a_panic() {
        // core's `{:0prec$}` panics past u16::MAX (found by the render fuzzer).
        let text = python_percent("%.77777F", &JValue::from(7)).unwrap();
        let text = text.as_str().unwrap();
        assert!(
            text.starts_with("7.000") && text.len() == 2 + 77777,
            "{}",
            &text[..10]
        );
        assert!(python_percent("%.65535e", &JValue::from(1.5)).is_ok());
        assert!(python_percent("%.2000000f", &JValue::from(1)).is_err());
    }

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
