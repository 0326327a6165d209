//! The bodies of the fuzz targets (fuzz/, built with afl.rs): one input surface each that nepho
//! reads from a stranger (a cloudlet repository, a registry) or from its own crashed past (the
//! journal). They live here so the regression test (tests/it/fuzz_regressions.rs) replays every
//! crash the fuzzer ever found through exactly the same code.

use std::path::{Path, PathBuf};

use crate::cloudlet::Cloudlet;
use crate::params::{Layer, LayerKind, MergeMode, merge, parse_decls};
use crate::scenario::render::{RenderContext, render_pattern};
use crate::yaml::{Dialect, Tags, parse};

/// Splits an input into `n` parts at NUL bytes (missing parts are empty).
fn parts(data: &[u8], n: usize) -> Vec<String> {
    let mut out: Vec<String> = data
        .splitn(n, |b| *b == 0)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    out.resize(n, String::new());
    out
}

/// The YAML loader, both dialects and both tag modes.
pub fn yaml(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    for dialect in [Dialect::Yaml12, Dialect::PyYaml11] {
        for tags in [Tags::CoreOnly, Tags::CloudFormation] {
            if let Ok(Some(node)) = parse(src, Path::new("f.yaml"), dialect, tags) {
                let _ = node.to_value();
            }
        }
    }
}

/// Declarations, a values file and `--set`s (NUL-separated), merged both ways.
pub fn params(data: &[u8]) {
    let p = parts(data, 4);
    let file = Path::new("scenario.yaml");
    let Ok(Some(node)) = parse(&p[0], file, Dialect::Yaml12, Tags::CoreOnly) else {
        return;
    };
    let mut warnings = Vec::new();
    let Ok(decls) = parse_decls(&node, file, &p[0], LayerKind::Scenario, &mut warnings) else {
        return;
    };
    let mut layers = Vec::new();
    if let Ok(Some(values)) = parse(&p[1], file, Dialect::PyYaml11, Tags::CoreOnly) {
        layers.push(Layer::from_map_node(
            LayerKind::ValuesFile,
            Some(file),
            &values,
        ));
    }
    for set in p[2].lines().chain(p[3].lines()) {
        if let Ok(l) = Layer::from_set(set) {
            layers.push(l);
        }
        if let Ok(l) = Layer::from_set_v1(set) {
            layers.push(l);
        }
    }
    for mode in [MergeMode::Native, MergeMode::V1] {
        if let Ok(merged) = merge(&decls, &layers, mode) {
            let _ = merged.values();
        }
    }
}

/// A registry index as served over HTTP, then searched.
pub fn registry(data: &[u8]) {
    if let Ok(index) = crate::registry::parse_index(data, "fuzz") {
        let entries: Vec<_> = index
            .cloudlets
            .into_iter()
            .map(|e| ("fuzz".to_string(), e))
            .collect();
        let _ = crate::registry::search(&entries, &["web".to_string(), "a".to_string()]);
        let _ = crate::registry::lookup(&entries, "hello");
    }
}

/// A journal as a crash may leave it (written to `path` first).
pub fn journal(data: &[u8], path: &Path) {
    if std::fs::write(path, data).is_err() {
        return;
    }
    if let Ok(events) = crate::engine::journal::read(path)
        && let Some(start) = crate::engine::journal::last_run_start(&events)
    {
        let _ = crate::engine::journal::run_finished(&events, start);
        let _ = crate::engine::journal::finished_steps(&events, start);
        let _ = crate::engine::journal::interrupted_steps(&events, start);
    }
}

/// Two cloudlets on disk whose templates the render target replaces: a Nepho 1.x one (Jinja2
/// semantics) and a native one (autoescaped YAML, JSON and Ruby patterns).
/// Both are loaded once (with their scenarios); each input only rewrites the template files.
pub struct RenderFixture {
    loaded: Vec<(PathBuf, Cloudlet, crate::cloudlet::Scenario)>,
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(p, text);
}

impl RenderFixture {
    pub fn new(dir: &Path) -> RenderFixture {
        let v1 = dir.join("v1");
        write(&v1, "cloudlet.yaml", "format: 1\nversion: 1.0\n");
        write(&v1, "blueprints/bp.yaml", "provider: aws\n");
        let native = dir.join("native");
        write(&native, "cloudlet.yaml", "name: fuzz\nversion: 1.0.0\n");
        write(
            &native,
            "scenarios/default.yaml",
            "provider: kvm\npattern: p.yaml\n",
        );
        write(
            &native,
            "scenarios/aws.yaml",
            "provider: aws\npattern: p.json\n",
        );
        write(
            &native,
            "scenarios/vagrant.yaml",
            "provider: vagrant\npattern: Vagrantfile\n",
        );
        let mut loaded = Vec::new();
        write(&v1, "resources/bp/cf.json", "{}");
        if let Ok(c) = Cloudlet::load(&v1)
            && let Ok(s) = c.scenario("bp")
        {
            loaded.push((v1.join("resources/bp/cf.json"), c, s));
        }
        for (provider, file, scenario) in [
            ("kvm", "p.yaml", "default"),
            ("aws", "p.json", "aws"),
            ("vagrant", "Vagrantfile", "vagrant"),
        ] {
            let rel = format!("patterns/{provider}/{file}");
            write(&native, &rel, "");
            if let Ok(c) = Cloudlet::load(&native)
                && let Ok(s) = c.scenario(scenario)
            {
                loaded.push((native.join(rel), c, s));
            }
        }
        RenderFixture { loaded }
    }
}

/// A template, NUL, a JSON object of parameters: rendered as a 1.x blueprint and as each kind
/// of native pattern, within the render budgets (the regression replay runs every kind).
pub fn render(data: &[u8], fixture: &RenderFixture) {
    for which in 0..fixture.loaded.len() {
        render_as(which, data, fixture);
    }
}

/// The fuzz target's form of [`render`]: the first byte picks the kind of pattern (1.x, YAML,
/// JSON, Ruby), the rest is the input, so each execution renders once.
pub fn render_one(data: &[u8], fixture: &RenderFixture) {
    if let Some((first, rest)) = data.split_first()
        && !fixture.loaded.is_empty()
    {
        render_as(*first as usize % fixture.loaded.len(), rest, fixture);
    }
}

fn render_as(which: usize, data: &[u8], fixture: &RenderFixture) {
    let p = parts(data, 2);
    let parameters = serde_json::from_str::<serde_json::Value>(&p[1])
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let cx = RenderContext {
        formation: "fuzz".into(),
        parameters,
        secret_keys: vec![],
    };
    let (file, cloudlet, scenario) = &fixture.loaded[which];
    if std::fs::write(file, &p[0]).is_ok() {
        let _ = render_pattern(cloudlet, scenario, &cx);
    }
}
