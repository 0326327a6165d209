//! Publishing a registry end to end: `registry:build` from cloudlets served by a git daemon on
//! 127.0.0.1 (a Nepho 1.x one, one with two tagged versions), `registry:serve`, then search,
//! describe and install through the config, a moved tag refused, SSH-signed indexes, and the
//! web site driven in headless chromium.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use crate::support::{Env, GitDaemon, copy_tree, git, minimal_cloudlet, repo_root, test_venv};

/// `nepho registry:serve DIR --listen 127.0.0.1:0`, stopped on drop.
struct Served {
    child: Child,
    url: String,
}

impl Served {
    fn start(env: &Env, dir: &Path) -> Served {
        let mut child = env
            .nepho()
            .args([
                "registry:serve",
                dir.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nepho registry:serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().to_string();
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "serve printed {url:?}"
        );
        Served { child, url }
    }

    fn get(&self, path: &str, headers: &str) -> (String, Vec<u8>) {
        let addr = self.url.trim_start_matches("http://").trim_end_matches('/');
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}\r\n").unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        (
            String::from_utf8_lossy(&raw[..split]).to_lowercase(),
            raw[split + 4..].to_vec(),
        )
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn with_secret(name: &str) -> Vec<(String, String)> {
    let mut files = minimal_cloudlet(name);
    files[0].1.push_str("tags: [web, demo]\n");
    files[1].1 = "summary: the default\nprovider: kvm\nparameters:\n  size: {type: number, default: 1, description: machine size}\n  admin_password: {type: string, secret: true, default: hunter2, description: the admin's password}\n".into();
    files.push((
        "README.md".into(),
        "# Tagged\n\nA cloudlet with *two* versions. <script>alert(1)</script>\n".into(),
    ));
    files
}

/// Three cloudlets in a git daemon: a 1.x one, an untagged native one and one tagged twice.
/// Returns the daemon and the work tree of the tagged one.
fn publish_three(env: &Env) -> (GitDaemon, PathBuf) {
    let daemon = GitDaemon::start(&env.path("srv"));
    let legacy = env.path("work/legacy-web");
    copy_tree(&repo_root().join("tests/fixtures/v1-legacy-web"), &legacy);
    daemon.publish("legacy-web.git", &legacy, &[]);
    daemon.publish(
        "web.git",
        &env.path("work/web"),
        &minimal_cloudlet("acme/web"),
    );
    let tagged = daemon.publish(
        "tagged.git",
        &env.path("work/tagged"),
        &with_secret("acme/tagged"),
    );
    git(&tagged, &["tag", "v1.0.0"]);
    std::fs::write(tagged.join("NOTES"), "second release\n").unwrap();
    git(&tagged, &["add", "-A"]);
    git(&tagged, &["commit", "-qm", "second"]);
    git(&tagged, &["tag", "v1.1.0"]);
    git(&tagged, &["push", "-q", "origin", "main", "--tags"]);
    (daemon, tagged)
}

fn build(env: &Env, daemon: &GitDaemon, out: &Path, extra: &[&str]) -> serde_json::Value {
    let (a, b, c) = (
        daemon.url("legacy-web.git"),
        daemon.url("web.git"),
        daemon.url("tagged.git"),
    );
    let mut args = vec![
        "-o",
        "json",
        "registry:build",
        &a,
        &b,
        &c,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    env.run(&args).ok().json()
}

#[test]
fn build_serve_search_install_and_refuse_a_moved_tag() {
    let env = Env::new();
    let (daemon, tagged) = publish_three(&env);
    let site = env.path("site");
    let report = build(&env, &daemon, &site, &[]);
    assert_eq!(report["cloudlets"], 3, "{report}");
    assert_eq!(report["versions"], 4, "{report}");

    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(site.join("index.json")).unwrap()).unwrap();
    let entry = |name: &str| {
        index["cloudlets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {index}"))
            .clone()
    };
    let t = entry("acme/tagged");
    let head = git(&tagged, &["rev-parse", "v1.1.0^{commit}"]);
    assert_eq!(t["commit"], head.trim());
    assert_eq!(
        t["tree"],
        git(&tagged, &["rev-parse", "v1.1.0^{tree}"]).trim()
    );
    assert_eq!(t["tag"], "v1.1.0");
    let versions: Vec<&str> = t["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.1.0", "1.0.0"]);
    let params = &t["scenarios"][0]["parameters"];
    assert_eq!(t["scenarios"][0]["provider"], "kvm");
    assert_eq!(params[1]["secret"], true);
    assert!(
        params[1].get("default").is_none(),
        "a secret's default is not published"
    );
    assert_eq!(entry("legacy-web")["format"], "v1");
    assert_eq!(entry("acme/web")["versions"].as_array().unwrap().len(), 1);
    assert!(site.join("schema.json").is_file());
    // Pages are plain HTML: scenarios, parameters and the escaped README need no script.
    let page = std::fs::read_to_string(site.join("cloudlets/acme/tagged.html")).unwrap();
    assert!(page.contains("id=\"scenario-default\""), "{page}");
    assert!(page.contains("admin_password") && page.contains("badge secret"));
    assert!(
        !page.contains("hunter2"),
        "a secret's default must not be on the page"
    );
    assert!(page.contains("&lt;script&gt;") && !page.contains("<script>alert"));

    let served = Served::start(&env, &site);
    // ETag and gzip as the CLI's cache expects; nothing outside the directory.
    let (head1, _) = served.get("/index.json", "Accept-Encoding: gzip\r\n");
    assert!(head1.contains("content-encoding: gzip"), "{head1}");
    let etag = head1
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .to_string();
    let (head2, _) = served.get("/index.json", &format!("If-None-Match: {etag}\r\n"));
    assert!(head2.starts_with("http/1.1 304"), "{head2}");
    assert!(
        served
            .get("/../../etc/passwd", "")
            .0
            .starts_with("http/1.1 403")
    );
    assert!(
        served
            .get("/%2e%2e/etc/passwd", "")
            .0
            .starts_with("http/1.1 403")
    );

    // Two registries: the served one, and a file:// one built from a manifest.
    let other = env.path("other");
    let manifest = env.path("manifest.json");
    std::fs::write(
        &manifest,
        r#"{"cloudlets": [{"name": "zed/web-cache", "url": "git://127.0.0.1:1/cache.git", "summary": "a web cache", "tags": ["web"]}]}"#,
    )
    .unwrap();
    env.run(&[
        "registry:build",
        "--manifest",
        manifest.to_str().unwrap(),
        "--out",
        other.to_str().unwrap(),
    ])
    .ok();
    env.write_config(&format!(
        "registries:\n  - name: loopback\n    url: {}index.json\n  - file://{}/index.json\n",
        served.url,
        other.display()
    ));
    let hits = env
        .run(&["-o", "json", "cloudlet:search", "web"])
        .ok()
        .json();
    let found: Vec<(&str, &str)> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["name"].as_str().unwrap(), h["registry"].as_str().unwrap()))
        .collect();
    let other_name = format!("file://{}/index.json", other.display());
    assert_eq!(
        found,
        [
            ("acme/web", "loopback"),
            ("zed/web-cache", other_name.as_str()),
            ("legacy-web", "loopback"),
            ("acme/tagged", "loopback"),
        ],
        "{hits}"
    );
    let table = env.run(&["cloudlet:search", "web"]).ok().stdout;
    assert!(
        table.contains("REGISTRY") && table.contains("loopback"),
        "{table}"
    );
    let described = env
        .run(&["-o", "json", "cloudlet:describe", "acme/tagged"])
        .ok()
        .json();
    assert_eq!(described["registry"], "loopback");
    assert_eq!(described["versions"][0]["commit"], head.trim());
    assert_eq!(described["scenarios"][0]["provider"], "kvm");

    // Install by name: the pinned commit is checked out.
    let installed = env
        .run(&["-o", "json", "cloudlet:install", "acme/tagged"])
        .ok()
        .json();
    assert_eq!(installed["commit"], head.trim());
    assert_eq!(installed["reference"], "v1.1.0");
    let legacy = env
        .run(&["-o", "json", "cloudlet:install", "legacy-web"])
        .ok()
        .json();
    assert_eq!(legacy["commit"], entry("legacy-web")["commit"]);
    // An older listed version, by --ref.
    let old = env
        .run(&[
            "-o",
            "json",
            "cloudlet:install",
            "acme/tagged",
            "--ref",
            "v1.0.0",
            "--force",
        ])
        .ok()
        .json();
    assert_eq!(
        old["commit"],
        git(&tagged, &["rev-parse", "v1.0.0^{commit}"]).trim()
    );

    // The maintainer force-moves v1.1.0: install refuses.
    std::fs::write(tagged.join("NOTES"), "something else\n").unwrap();
    git(&tagged, &["commit", "-qam", "moved"]);
    git(&tagged, &["tag", "-f", "v1.1.0"]);
    git(
        &tagged,
        &[
            "push",
            "-q",
            "--force",
            "origin",
            "main",
            "refs/tags/v1.1.0",
        ],
    );
    let refused = env
        .run(&["cloudlet:install", "acme/tagged", "--force"])
        .code(4);
    assert!(
        refused
            .stderr
            .contains("the repository's v1.1.0 is not the commit the registry lists"),
        "{}",
        refused.stderr
    );
    // The copy installed before is untouched.
    let list = env.run(&["-o", "json", "cloudlet:list"]).ok().json();
    assert!(list.to_string().contains(old["commit"].as_str().unwrap()));
    // A --ref outside the index is allowed, with a warning.
    let off = env
        .run(&[
            "-o",
            "json",
            "cloudlet:install",
            "acme/tagged",
            "--ref",
            "main",
            "--force",
        ])
        .ok();
    assert!(
        off.stderr
            .contains("is not a version registry loopback lists"),
        "{}",
        off.stderr
    );
}

fn keypair(env: &Env, name: &str) -> (PathBuf, String) {
    let key = env.path(name);
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_string())
}

#[test]
fn a_signed_index_is_verified_and_a_bad_one_is_not_used() {
    let env = Env::new();
    let (trusted, trusted_pub) = keypair(&env, "trusted");
    let (other, _) = keypair(&env, "other");
    let manifest = env.path("manifest.json");
    let write_manifest = |summary: &str| {
        std::fs::write(
            &manifest,
            format!(r#"{{"cloudlets": [{{"name": "acme/signed", "url": "git://127.0.0.1:1/s.git", "summary": "{summary}"}}]}}"#),
        )
        .unwrap()
    };
    write_manifest("first");
    let site = env.path("site");
    let build = |key: &Path| {
        env.run(&[
            "-o",
            "json",
            "registry:build",
            "--manifest",
            manifest.to_str().unwrap(),
            "--out",
            site.to_str().unwrap(),
            "--sign",
            key.to_str().unwrap(),
        ])
        .ok()
        .json()
    };
    assert_eq!(build(&trusted)["signed"], true);
    assert!(site.join("index.json.sig").is_file());
    let served = Served::start(&env, &site);
    env.write_config(&format!(
        "registries:\n  - name: signed\n    url: {}index.json\n    keys: [\"{trusted_pub}\"]\n",
        served.url
    ));
    let update = env.run(&["-o", "json", "registry:update"]).ok().json();
    assert_eq!(update[0]["verified"], true, "{update}");
    assert_eq!(update[0]["status"], "fetched");

    // Re-signed by a key the config does not trust: refused, the verified cache is kept.
    write_manifest("second");
    build(&other);
    let run = env.run(&["-o", "json", "registry:update"]).ok();
    assert!(
        run.stderr.contains("signature does not verify"),
        "{}",
        run.stderr
    );
    assert_eq!(run.json()[0]["status"], "cached");
    let hits = env
        .run(&["-o", "json", "cloudlet:search", "signed"])
        .ok()
        .json();
    assert_eq!(hits[0]["summary"], "first");

    // Tampered after signing: same.
    build(&trusted);
    let index = site.join("index.json");
    let text = std::fs::read_to_string(&index)
        .unwrap()
        .replace("second", "evil!!");
    std::fs::write(&index, text).unwrap();
    let run = env.run(&["-o", "json", "registry:update"]).ok();
    assert!(
        run.stderr.contains("signature does not verify"),
        "{}",
        run.stderr
    );
    assert_eq!(run.json()[0]["status"], "cached");
    let hits = env
        .run(&["-o", "json", "cloudlet:search", "signed"])
        .ok()
        .json();
    assert_eq!(hits[0]["summary"], "first");

    // With no cache to fall back on, a bad signature is an error (exit 4).
    let fresh = Env::new();
    fresh.write_config(&format!(
        "registry_keys: [\"{trusted_pub}\"]\nregistries: [\"{}index.json\"]\n",
        served.url
    ));
    let run = fresh.run(&["cloudlet:search", "signed"]).code(4);
    assert!(
        run.stderr.contains("signature does not verify"),
        "{}",
        run.stderr
    );

    // Properly signed again: used.
    build(&trusted);
    env.run(&["registry:update"]).ok();
    let hits = env
        .run(&["-o", "json", "cloudlet:search", "signed"])
        .ok()
        .json();
    assert_eq!(hits[0]["summary"], "second");
}

fn browser(site_url: &str, args: &[&str]) -> serde_json::Value {
    assert!(
        Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists(),
        "chromium and chromium-driver are missing: run scripts/setup/packages.sh"
    );
    let python = std::env::var_os("NEPHO_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| test_venv().join("bin/python3"));
    let out = std::process::Command::new(python)
        .arg(repo_root().join("scripts/lib/registry-browser.py"))
        .arg(site_url)
        .args(args)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "registry-browser.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_site_in_a_real_browser() {
    let env = Env::new();
    let (daemon, _) = publish_three(&env);
    let site = env.path("site");
    build(&env, &daemon, &site, &[]);
    let served = Served::start(&env, &site);
    let shots = std::env::var_os("NEPHO_REGISTRY_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| env.path("shots"));
    let seen = browser(
        &served.url,
        &[
            "--query",
            "web",
            "--query",
            "legacy",
            "--query",
            "nothing-matches-this",
            "--page",
            "cloudlets/acme/tagged.html",
            "--copy-expect",
            "nepho cloudlet:install acme/tagged",
            "--screenshots",
            shots.to_str().unwrap(),
        ],
    );
    assert_eq!(seen["viewport_meta"], "width=device-width, initial-scale=1");
    assert_eq!(seen["external_assets"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["initial"].as_array().unwrap().len(), 3);
    // The box ranks as the CLI does.
    env.write_config(&format!("registry: {}index.json\n", served.url));
    let cli: Vec<serde_json::Value> = env
        .run(&["-o", "json", "cloudlet:search", "web"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].clone())
        .collect();
    assert_eq!(
        seen["queries"]["web"]["names"],
        serde_json::Value::Array(cli),
        "{seen}"
    );
    assert_eq!(
        seen["queries"]["legacy"]["names"],
        serde_json::json!(["legacy-web"])
    );
    assert_eq!(seen["queries"]["legacy"]["count"], "1 cloudlet matches");
    assert_eq!(
        seen["queries"]["nothing-matches-this"]["names"],
        serde_json::json!([])
    );
    // The cloudlet page: scenarios with provider and parameters, the secret marked.
    let scenario = &seen["scenarios"][0];
    assert_eq!(scenario["name"], "default");
    assert_eq!(scenario["provider"], "kvm");
    assert_eq!(scenario["parameters"][0]["name"], "size");
    assert_eq!(scenario["parameters"][0]["type"], "number");
    assert_eq!(scenario["parameters"][0]["default"], "1");
    assert_eq!(scenario["parameters"][0]["description"], "machine size");
    assert_eq!(scenario["parameters"][1]["secret"], true);
    assert_eq!(scenario["parameters"][1]["default"], "hidden");
    assert_eq!(
        seen["versions"],
        serde_json::json!(["1.1.0 latest", "1.0.0"])
    );
    // The copy button put the install command in the clipboard.
    assert_eq!(seen["copy_button_visible"], true);
    assert_eq!(
        seen["copied_by_handler"],
        "nepho cloudlet:install acme/tagged"
    );
    assert_eq!(
        seen["clipboard"], "nepho cloudlet:install acme/tagged",
        "{seen}"
    );
    // Readable on a phone: nothing wider than the screen.
    assert_eq!(seen["phone_overflow"], 0, "{seen}");
    for shot in ["home.png", "cloudlet.png", "cloudlet-phone.png"] {
        assert!(std::fs::metadata(shots.join(shot)).unwrap().len() > 1000);
    }
}

/// A manifest of `n` generated entries (names, tags and summaries that overlap like real ones).
pub fn generated_manifest(path: &Path, n: usize) {
    let words = [
        "web", "wiki", "db", "cache", "queue", "mail", "dns", "git", "ci", "vpn",
    ];
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    write!(f, "{{\"cloudlets\": [").unwrap();
    for i in 0..n {
        let (a, b) = (words[i % words.len()], words[(i / 10) % words.len()]);
        let entry = serde_json::json!({
            "name": format!("owner{}/{a}-{b}-{i}", i % 97),
            "url": format!("https://git.example.invalid/{i}.git"),
            "summary": format!("A {a} service with {b} in front, number {i}"),
            "description": format!("Generated entry {i} for the registry benchmark."),
            "tags": [a, b, format!("t{}", i % 50)],
            "version": format!("1.{}.0", i % 7),
        });
        if i > 0 {
            write!(f, ",").unwrap();
        }
        write!(f, "{entry}").unwrap();
    }
    write!(f, "]}}").unwrap();
}

#[test]
fn thirty_thousand_entries_build_and_the_search_answers_every_keystroke() {
    let env = Env::new();
    let manifest = env.path("manifest.json");
    generated_manifest(&manifest, 30_000);
    let site = env.path("site");
    let started = std::time::Instant::now();
    let report = env
        .run(&[
            "-o",
            "json",
            "registry:build",
            "--manifest",
            manifest.to_str().unwrap(),
            "--out",
            site.to_str().unwrap(),
        ])
        .ok()
        .json();
    let build_time = started.elapsed();
    assert_eq!(report["cloudlets"], 30_000);
    let served = Served::start(&env, &site);
    let seen = browser(
        &served.url,
        &[
            "--latency-query",
            "web cache",
            "--latency-query",
            "owner12/",
        ],
    );
    assert_eq!(seen["entries"], 30_000);
    let timings = seen["latency"].as_array().unwrap();
    let worst = timings
        .iter()
        .map(|t| t["ms"].as_f64().unwrap())
        .fold(0.0, f64::max);
    let mut with_layout: Vec<f64> = timings
        .iter()
        .map(|t| t["with_layout_ms"].as_f64().unwrap())
        .collect();
    with_layout.sort_by(f64::total_cmp);
    let median_layout = with_layout[with_layout.len() / 2];
    println!(
        "registry:build of 30,000 entries: {:.2}s; keystroke handling: worst {worst:.1} ms; \
         with layout: median {median_layout:.1} ms, worst {:.1} ms ({} keystrokes)",
        build_time.as_secs_f64(),
        with_layout.last().unwrap(),
        timings.len()
    );
    for t in timings {
        println!(
            "  {:<16} {:>6.1} ms ({:>6.1} ms with layout)  {}",
            t["query"].as_str().unwrap(),
            t["ms"].as_f64().unwrap(),
            t["with_layout_ms"].as_f64().unwrap(),
            t["count"]
        );
    }
    // Speed is measured and printed here and by scripts/bench-registry (the 50 ms target is
    // checked there), never asserted: a loaded CI machine must not fail the suite.
    assert!(
        timings
            .iter()
            .filter(|t| !t["query"]
                .as_str()
                .unwrap_or_default()
                .starts_with("(typed)"))
            .all(|t| !t["count"].is_null()),
        "every keystroke answered: {seen}"
    );
}
