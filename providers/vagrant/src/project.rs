//! A formation's Vagrant project: `<formations>/<name>/work/<name>/` holding the rendered
//! Vagrantfile, what the provisioners need (`provisioners/`, or 1.x `payload/`), and two
//! files of nepho's own: `.nepho.json` (what the formation is; no secrets) and
//! `.nepho-env.json` (0600: the environment every vagrant call gets, which may hold secrets).
//! The directory is named after the formation because vagrant-libvirt names domains
//! `<directory>_<machine>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use nepho_provider_api::files::write_atomic;
use nepho_provider_api::files::write_private;
use nepho_provider_api::{FormationSpec, ProviderError};
use serde::{Deserialize, Serialize};

pub const META_FILE: &str = ".nepho.json";
pub const ENV_FILE: &str = ".nepho-env.json";
pub const SSH_CACHE_FILE: &str = ".nepho-ssh-config";

/// What `.nepho.json` records about the formation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectMeta {
    pub formation: String,
    pub cloudlet: String,
    pub scenario: String,
    /// The Vagrant provider passed as `--provider`.
    pub vagrant_provider: String,
    #[serde(default)]
    pub v1: bool,
}

/// A box the scenario names, and where to get it when it is not installed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoxSource {
    pub name: String,
    /// A URL or a local `.box` path; `None` when only the name is known.
    pub source: Option<String>,
}

pub fn project_dir(formations_dir: &Path, formation: &str) -> PathBuf {
    formations_dir.join(formation).join("work").join(formation)
}

/// The project directory of a spec (under the work directory the engine gave it).
pub fn spec_project_dir(spec: &FormationSpec) -> PathBuf {
    spec.work_dir.join(&spec.name)
}

pub fn vagrantfile(spec: &FormationSpec) -> Result<&str, ProviderError> {
    spec.pattern
        .iter()
        .find(|f| f.name.rsplit('/').next() == Some("Vagrantfile"))
        .or_else(|| spec.pattern.first())
        .map(|f| f.contents.as_str())
        .ok_or_else(|| ProviderError::Invalid {
            message: "the scenario's pattern rendered no Vagrantfile".into(),
            hint: Some("a vagrant scenario's pattern is patterns/vagrant/Vagrantfile".into()),
        })
}

fn param_str(spec: &FormationSpec, key: &str) -> Option<String> {
    match spec.parameters.get(key)? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// `vagrant_provider` (native) or `VagrantBackend` (1.x), else the configured default.
pub fn vagrant_provider(spec: &FormationSpec, default: &str) -> String {
    let key = if spec.v1 {
        "VagrantBackend"
    } else {
        "vagrant_provider"
    };
    param_str(spec, key)
        .or_else(|| param_str(spec, "vagrant_provider"))
        .unwrap_or_else(|| default.to_string())
}

/// The box to make sure of before `vagrant up`: the `box`/`box_url` parameters (1.x:
/// `BoxName`/`BoxUrl`), else the first `config.vm.box = "..."` of the Vagrantfile.
pub fn box_source(spec: &FormationSpec) -> Result<Option<BoxSource>, ProviderError> {
    let (name_key, url_key) = if spec.v1 {
        ("BoxName", "BoxUrl")
    } else {
        ("box", "box_url")
    };
    let name = param_str(spec, name_key).or_else(|| {
        vagrantfile(spec)
            .ok()
            .and_then(|v| boxes_in(v).into_iter().next())
    });
    Ok(name.map(|name| BoxSource {
        name,
        source: param_str(spec, url_key),
    }))
}

/// `config.vm.box = "name"` assignments (the common literal form only).
pub fn boxes_in(vagrantfile: &str) -> Vec<String> {
    let mut boxes = Vec::new();
    for line in vagrantfile.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some(pos) = line.find(".vm.box") else {
            continue;
        };
        let rest = line[pos + ".vm.box".len()..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        let rest = rest.trim_start();
        let quote = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => continue,
        };
        if let Some(end) = rest[1..].find(quote) {
            let name = &rest[1..1 + end];
            if !name.is_empty() && !name.contains("#{") && !boxes.iter().any(|b| b == name) {
                boxes.push(name.to_string());
            }
        }
    }
    boxes
}

/// Outputs a Vagrantfile declares for nepho in comments, as `# nepho:output KEY=TEMPLATE`
/// (`${machine.address}` is the machine's address from `vagrant ssh-config`), e.g.
/// `# nepho:output url=http://${default.address}/` for `formation:open`.
pub fn output_templates(vagrantfile: &str) -> BTreeMap<String, String> {
    vagrantfile
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix('#')?.trim_start();
            let decl = rest.strip_prefix("nepho:output")?.trim();
            let (key, template) = decl.split_once('=')?;
            let key = key.trim();
            (!key.is_empty() && !key.contains(char::is_whitespace))
                .then(|| (key.to_string(), template.trim().to_string()))
        })
        .collect()
}

/// Fills `templates` with the machines' addresses; outputs still naming an unknown (or
/// stopped) machine are left out.
pub fn outputs_from(
    templates: &BTreeMap<String, String>,
    ssh: &[nepho_provider_api::SshEndpoint],
) -> BTreeMap<String, String> {
    let address_of = |m: &str| ssh.iter().find(|e| e.machine == m).map(|e| e.host.clone());
    templates
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                nepho_provider_api::substitute_addresses(t, &address_of),
            )
        })
        .filter(|(_, v)| !v.contains("${"))
        .collect()
}

/// The machine declared `primary: true` in a multi-machine Vagrantfile.
pub fn primary_machine(vagrantfile: &str) -> Option<String> {
    vagrantfile.lines().find_map(|line| {
        let line = line.trim();
        if line.starts_with('#') || !line.contains(".vm.define") {
            return None;
        }
        let compact: String = line.split_whitespace().collect();
        if !compact.contains("primary:true") && !compact.contains(":primary=>true") {
            return None;
        }
        let rest = &line[line.find(".vm.define")? + ".vm.define".len()..];
        let rest = rest.trim_start().trim_start_matches('(').trim_start();
        let rest = rest.strip_prefix(':').unwrap_or(rest);
        let name: String = rest
            .trim_start_matches(['"', '\''])
            .chars()
            .take_while(|c| !matches!(c, '"' | '\'' | ',' | ' ' | ')'))
            .collect();
        (!name.is_empty()).then_some(name)
    })
}

/// Whether a local `.box` path (not a URL) was given.
pub fn local_box_path(source: &str) -> Option<PathBuf> {
    if let Some(p) = source.strip_prefix("file://") {
        return Some(PathBuf::from(p));
    }
    if source.contains("://") {
        return None;
    }
    Some(PathBuf::from(source))
}

/// Whether a box is installed in `vagrant_home` for `provider`, read from the directory
/// layout (`boxes/<name>/<version>[/<arch>]/<provider>`) so no Ruby start-up is needed.
pub fn box_installed(vagrant_home: &Path, name: &str, provider: &str) -> bool {
    let dir = vagrant_home
        .join("boxes")
        .join(name.replace('/', "-VAGRANTSLASH-"));
    let Ok(versions) = std::fs::read_dir(&dir) else {
        return false;
    };
    versions.filter_map(|v| v.ok()).any(|v| {
        let vpath = v.path();
        if vpath.join(provider).is_dir() {
            return true;
        }
        std::fs::read_dir(&vpath)
            .map(|arches| {
                arches
                    .filter_map(|a| a.ok())
                    .any(|a| a.path().join(provider).is_dir())
            })
            .unwrap_or(false)
    })
}

/// Python's `str()` of a parameter value, as Nepho 1.x exported `NEPHO_<Key>` variables.
fn python_str(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "None".into(),
        serde_json::Value::Bool(true) => "True".into(),
        serde_json::Value::Bool(false) => "False".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The environment of every vagrant call for this formation.
pub fn environment(spec: &FormationSpec, libvirt_driver: Option<&str>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("NEPHO_FORMATION".into(), spec.name.clone());
    env.insert("NEPHO_CLOUDLET".into(), spec.cloudlet.clone());
    env.insert("NEPHO_SCENARIO".into(), spec.scenario.clone());
    if let Some(driver) = libvirt_driver {
        env.insert("NEPHO_LIBVIRT_DRIVER".into(), driver.to_string());
    }
    // 1.x exported every parameter as NEPHO_<Key>; native Vagrantfiles read secrets the
    // same way (ENV["NEPHO_db_password"]) rather than having them rendered into the file.
    for (k, v) in &spec.parameters {
        let value = if spec.v1 {
            python_str(v)
        } else {
            match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            }
        };
        env.insert(format!("NEPHO_{k}"), value);
    }
    env
}

/// Writes the project: Vagrantfile, provisioners or payload, metadata and environment.
/// Rewrites everything on every call (update re-renders), keeping Vagrant's `.vagrant/`.
pub fn write(
    spec: &FormationSpec,
    meta: &ProjectMeta,
    env: &BTreeMap<String, String>,
) -> Result<PathBuf, ProviderError> {
    let dir = spec_project_dir(spec);
    let io = |what: &str, p: &Path, e: std::io::Error| ProviderError::Failed {
        message: format!("{what} {}: {e}", p.display()),
        hint: None,
    };
    std::fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
    for file in &spec.pattern {
        let name = if spec.pattern.len() == 1 {
            "Vagrantfile"
        } else {
            file.name.as_str()
        };
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("creating", parent, e))?;
        }
        write_atomic(&path, file.contents.as_bytes(), 0o644)
            .map_err(|e| io("writing", &path, e))?;
    }
    // 1.x copied `payload/` into the project, where the default `/vagrant` synced folder
    // shows it to the guest as /vagrant/payload. Native cloudlets ship `provisioners/`.
    let target = if spec.v1 { "payload" } else { "provisioners" };
    let target_dir = dir.join(target);
    if target_dir.exists() {
        std::fs::remove_dir_all(&target_dir).map_err(|e| io("removing", &target_dir, e))?;
    }
    if let Some(src) = &spec.payload_dir {
        copy_tree(src, &target_dir).map_err(|e| io("copying", src, e))?;
    } else if let Some(p) = &spec.provisioner {
        std::fs::create_dir_all(&target_dir).map_err(|e| io("creating", &target_dir, e))?;
        let name = p.file_name().unwrap_or_default();
        std::fs::copy(p, target_dir.join(name)).map_err(|e| io("copying", p, e))?;
    }
    let meta_path = dir.join(META_FILE);
    let meta_json = serde_json::to_vec_pretty(meta).expect("metadata serializes");
    write_atomic(&meta_path, &meta_json, 0o644).map_err(|e| io("writing", &meta_path, e))?;
    let env_path = dir.join(ENV_FILE);
    let env_json = serde_json::to_vec_pretty(env).expect("environment serializes");
    write_private(&env_path, &env_json).map_err(|e| io("writing", &env_path, e))?;
    let _ = std::fs::remove_file(dir.join(SSH_CACHE_FILE));
    Ok(dir)
}

pub fn read_meta(dir: &Path) -> Option<ProjectMeta> {
    serde_json::from_slice(&std::fs::read(dir.join(META_FILE)).ok()?).ok()
}

pub fn read_env(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read(dir.join(ENV_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let to = dst.join(entry.file_name());
        if ty.is_dir() {
            copy_tree(&entry.path(), &to)?;
        } else if ty.is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            std::os::unix::fs::symlink(target, &to)?;
        } else {
            std::fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}

/// Machines Vagrant knows in the project (`.vagrant/machines/<name>/`).
pub fn known_machines(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join(".vagrant/machines"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_declared_in_comments_and_filled_from_ssh_config() {
        let v = "Vagrant.configure(\"2\") do |c|\n  # nepho:output url=http://${web-1.address}/\n#nepho:output  db = ${db.address}:5432\n  # nepho:outputs nope=1\n  c.vm.box = \"x\" # nepho:output late=not-a-comment-line\nend\n";
        let t = output_templates(v);
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!(t["url"], "http://${web-1.address}/");
        let ssh = vec![nepho_provider_api::SshEndpoint {
            machine: "web-1".into(),
            host: "192.168.121.7".into(),
            port: 22,
            user: "vagrant".into(),
            identity_file: None,
            options: vec![],
        }];
        let out = outputs_from(&t, &ssh);
        assert_eq!(out["url"], "http://192.168.121.7/");
        assert!(!out.contains_key("db"), "db has no address yet: {out:?}");
    }

    #[test]
    fn boxes_are_found_in_a_vagrantfile() {
        let v = r##"
Vagrant.configure("2") do |config|
  # config.vm.box = "commented"
  config.vm.box = "nepho/tiny"
  config.vm.define "db" do |db|
    db.vm.box = 'other'
    db.vm.box_url = "http://example.invalid/x.box"
  end
  config.vm.box = "#{ENV['X']}"
end
"##;
        assert_eq!(boxes_in(v), ["nepho/tiny", "other"]);
    }

    #[test]
    fn the_primary_machine_is_found() {
        let v = "  config.vm.define \"db\" do |db|\n  config.vm.define \"web-1\", primary: true do |web|\n";
        assert_eq!(primary_machine(v).as_deref(), Some("web-1"));
        assert_eq!(
            primary_machine("config.vm.define :app, :primary => true do |a|"),
            Some("app".into())
        );
        assert_eq!(primary_machine("config.vm.define \"db\""), None);
    }

    #[test]
    fn box_paths_and_urls() {
        assert_eq!(
            local_box_path("/var/cache/x.box"),
            Some(PathBuf::from("/var/cache/x.box"))
        );
        assert_eq!(
            local_box_path("file:///var/x.box"),
            Some(PathBuf::from("/var/x.box"))
        );
        assert_eq!(local_box_path("https://example.com/x.box"), None);
    }

    #[test]
    fn installed_boxes_are_read_from_the_directory_layout() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join("boxes/nepho-VAGRANTSLASH-tiny/0/libvirt"))
            .unwrap();
        std::fs::create_dir_all(home.path().join("boxes/arch/1.0/amd64/libvirt")).unwrap();
        assert!(box_installed(home.path(), "nepho/tiny", "libvirt"));
        assert!(!box_installed(home.path(), "nepho/tiny", "virtualbox"));
        assert!(box_installed(home.path(), "arch", "libvirt"));
        assert!(!box_installed(home.path(), "missing", "libvirt"));
    }

    #[test]
    fn v1_parameters_become_nepho_variables_as_python_printed_them() {
        let mut parameters = serde_json::Map::new();
        parameters.insert("Memory".into(), 512.into());
        parameters.insert("Gui".into(), false.into());
        parameters.insert("AppName".into(), "legacy".into());
        let spec = FormationSpec {
            name: "vgf".into(),
            cloudlet: "c".into(),
            scenario: "dev".into(),
            provider: nepho_provider_api::ProviderKind::Vagrant,
            pattern: vec![],
            parameters,
            secret_keys: Default::default(),
            provisioner: None,
            payload_dir: None,
            v1: true,
            work_dir: PathBuf::from("/tmp"),
        };
        let env = environment(&spec, Some("qemu"));
        assert_eq!(env["NEPHO_Memory"], "512");
        assert_eq!(env["NEPHO_Gui"], "False");
        assert_eq!(env["NEPHO_AppName"], "legacy");
        assert_eq!(env["NEPHO_LIBVIRT_DRIVER"], "qemu");
        assert_eq!(env["NEPHO_FORMATION"], "vgf");
        assert_eq!(vagrant_provider(&spec, "libvirt"), "libvirt");
    }
}
