//! The registry over real HTTP on 127.0.0.1: ranking, caching with ETag and max-age, gzip,
//! offline fallback, garbage, and installing by name.

use crate::support::{Env, GitDaemon, HttpServer, minimal_cloudlet};

fn index(entries: &[(&str, &str, &[&str], &str)]) -> Vec<u8> {
    let cloudlets: Vec<serde_json::Value> = entries
        .iter()
        .map(|(name, url, tags, summary)| serde_json::json!({"name": name, "url": url, "tags": tags, "summary": summary}))
        .collect();
    serde_json::to_vec(&serde_json::json!({"version": 1, "cloudlets": cloudlets})).unwrap()
}

fn sample() -> Vec<u8> {
    index(&[
        (
            "acme/blog",
            "git://127.0.0.1:1/blog.git",
            &["wiki"],
            "a blog engine",
        ),
        (
            "acme/notes",
            "git://127.0.0.1:1/notes.git",
            &[],
            "a Wiki for notes",
        ),
        (
            "huit/mediawiki",
            "git://127.0.0.1:1/mw.git",
            &[],
            "generic mediawiki awesomeness",
        ),
        ("zed/wiki", "git://127.0.0.1:1/wiki.git", &[], "plain"),
    ])
}

#[test]
fn search_ranks_name_then_tags_then_summary() {
    let env = Env::new();
    let server = HttpServer::start(&sample());
    env.write_config(&format!("registry: {}\n", server.url("index.json")));
    let hits = env
        .run(&["-o", "json", "cloudlet:search", "WIKI"])
        .ok()
        .json();
    let names: Vec<&str> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["zed/wiki", "huit/mediawiki", "acme/blog", "acme/notes"]
    );
    let table = env.run(&["cloudlet", "search", "mediawiki"]).ok();
    assert!(table.stdout.contains("huit/mediawiki"), "{}", table.stdout);
    assert!(table.stdout.contains("generic mediawiki awesomeness"));
}

#[test]
fn the_index_is_cached_revalidated_and_used_offline() {
    let env = Env::new();
    let mut server = HttpServer::start(&sample());
    env.write_config(&format!("registry: {}\n", server.url("index.json")));
    env.run(&["cloudlet:search", "blog"]).ok();
    assert_eq!(server.request_count(), 1);
    assert!(
        server.requests.lock().unwrap()[0].contains("accept-encoding: gzip"),
        "gzip must be accepted"
    );
    // Fresh (max-age=3600): no network at all.
    env.run(&["cloudlet:search", "blog"]).ok();
    env.run(&["cloudlet:describe", "acme/blog"]).ok();
    assert_eq!(server.request_count(), 1);
    // registry:update revalidates with the ETag and gets 304.
    let update = env.run(&["-o", "json", "registry:update"]).ok().json();
    assert_eq!(update[0]["status"], "not-modified");
    assert_eq!(update[0]["entries"], 4);
    assert!(
        server.requests.lock().unwrap()[1].contains("if-none-match"),
        "conditional request expected"
    );
    // A changed index is fetched.
    *server.body.lock().unwrap() =
        index(&[("acme/new", "git://127.0.0.1:1/new.git", &[], "brand new")]);
    let update = env.run(&["-o", "json", "registry:update"]).ok().json();
    assert_eq!(update[0]["status"], "fetched");
    assert_eq!(
        env.run(&["-o", "json", "cloudlet:search", "new"])
            .ok()
            .json()[0]["name"],
        "acme/new"
    );
    // Server gone: a forced refresh warns and falls back to the cache.
    server.stop();
    let offline = env.run(&["-o", "json", "registry:update"]).ok();
    assert!(offline.stderr.contains("unreachable"), "{}", offline.stderr);
    assert_eq!(offline.json()[0]["status"], "cached");
}

#[test]
fn a_stale_cache_is_refreshed_lazily() {
    let env = Env::new();
    let server = HttpServer::start(&sample());
    server.max_age.store(0, std::sync::atomic::Ordering::SeqCst);
    env.write_config(&format!("registry: {}\n", server.url("index.json")));
    env.run(&["cloudlet:search", "blog"]).ok();
    env.run(&["cloudlet:search", "blog"]).ok();
    assert_eq!(
        server.request_count(),
        2,
        "max-age=0 means revalidate on the next use"
    );
    // Commands that do not need the registry never touch the network.
    env.run(&["cloudlet:list"]).ok();
    env.run(&["scenario:list", "hello"]).code(3);
    assert_eq!(server.request_count(), 2);
}

#[test]
fn garbage_and_unreachable_registries_are_clear_errors() {
    let env = Env::new();
    let server = HttpServer::start(b"<html>this is not json</html>");
    env.write_config(&format!("registry: {}\n", server.url("index.json")));
    let run = env.run(&["cloudlet:search", "x"]).code(4);
    assert!(
        run.stderr.contains("is not a valid index"),
        "{}",
        run.stderr
    );
    assert!(
        !env.home()
            .join("cache/registry")
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false),
        "garbage must not be cached"
    );

    let dead = Env::new();
    dead.write_config("registry: http://127.0.0.1:9/index.json\n");
    let run = dead.run(&["cloudlet:search", "x"]).code(7);
    assert!(
        run.stderr.contains("cannot reach registry"),
        "{}",
        run.stderr
    );

    let json = dead.run(&["-o", "json", "cloudlet:search", "x"]).code(7);
    let err: serde_json::Value = serde_json::from_str(&json.stderr).unwrap();
    assert_eq!(err["error"]["kind"], "unavailable");
    assert_eq!(err["error"]["exit_code"], 7);
    assert!(json.stdout.is_empty());
}

#[test]
fn gzip_files_and_file_urls_are_read() {
    use std::io::Write;
    let env = Env::new();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&sample()).unwrap();
    let path = env.path("index.json.gz");
    std::fs::write(&path, enc.finish().unwrap()).unwrap();
    env.write_config(&format!("registry: file://{}\n", path.display()));
    let hits = env
        .run(&["-o", "json", "cloudlet:search", "notes"])
        .ok()
        .json();
    assert_eq!(hits[0]["name"], "acme/notes");
}

#[test]
fn install_by_registry_name() {
    let env = Env::new();
    let daemon = GitDaemon::start(&env.path("srv"));
    daemon.publish(
        "web.git",
        &env.path("work/web"),
        &minimal_cloudlet("acme/web"),
    );
    let server = HttpServer::start(&index(&[(
        "acme/web",
        &daemon.url("web.git"),
        &["web"],
        "the web",
    )]));
    env.write_config(&format!("registry: {}\n", server.url("index.json")));
    let out = env
        .run(&["-o", "json", "cloudlet:install", "web"])
        .ok()
        .json();
    assert_eq!(out["name"], "acme/web");
    env.run(&["cloudlet:install", "acme/nothing"]).code(3);
    let described = env
        .run(&["-o", "json", "cloudlet:describe", "acme/web"])
        .ok()
        .json();
    assert_eq!(described["installed"], true);
}

#[test]
fn the_search_cache_follows_the_index_and_survives_damage() {
    let env = Env::new();
    let path = env.path("index.json");
    std::fs::write(&path, sample()).unwrap();
    env.write_config(&format!("registry: file://{}\n", path.display()));
    assert_eq!(
        env.run(&["-o", "json", "cloudlet:search", "blog"])
            .ok()
            .json()[0]["name"],
        "acme/blog"
    );
    std::fs::write(
        &path,
        index(&[(
            "acme/blogger",
            "git://127.0.0.1:1/b.git",
            &[],
            "another blog",
        )]),
    )
    .unwrap();
    let hits = env
        .run(&["-o", "json", "cloudlet:search", "blog"])
        .ok()
        .json();
    assert_eq!(hits.as_array().unwrap().len(), 1);
    assert_eq!(hits[0]["name"], "acme/blogger");
    // Truncate the compact cache but keep its header: the search still answers correctly.
    let idx = std::fs::read_dir(env.home().join("cache/registry"))
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "idx"))
        .unwrap()
        .path();
    let bytes = std::fs::read(&idx).unwrap();
    std::fs::write(&idx, &bytes[..bytes.len() - 5]).unwrap();
    assert_eq!(
        env.run(&["-o", "json", "cloudlet:search", "blog"])
            .ok()
            .json()[0]["name"],
        "acme/blogger"
    );
}

/// gzip members that inflate to `{"version":1,"cloudlets":[` + `mib` MiB of spaces + `]}`: a
/// valid index of nothing, unless someone counts the bytes.
fn gzip_bomb(mib: usize) -> Vec<u8> {
    use std::io::Write;
    let member = |data: &[u8]| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    };
    let spaces = member(&vec![b' '; 16 << 20]);
    let mut bomb = member(br#"{"version":1,"cloudlets":["#);
    for _ in 0..mib / 16 {
        bomb.extend_from_slice(&spaces);
    }
    bomb.extend_from_slice(&member(b"]}"));
    bomb
}

#[test]
fn a_gzip_bomb_is_refused_in_bounded_memory_and_the_cache_is_kept() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    let server = HttpServer::start(&sample());
    env.write_config(&format!("registry: {}\n", server.url("index.json")));
    env.run(&["cloudlet:search", "blog"]).ok();
    let cache = env.home().join("cache/registry");
    let cache_size = || -> u64 {
        std::fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .map(|e| e.metadata().unwrap().len())
            .sum()
    };
    let before = cache_size();

    // 1 GiB of JSON in ~1 MiB of gzip.
    let bomb = gzip_bomb(1024);
    assert!(bomb.len() < 4 << 20, "{}", bomb.len());
    *server.body.lock().unwrap() = bomb;
    server
        .pre_gzipped
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // Half a gigabyte of address space: reading the whole bomb aborts, a bounded read does not.
    let mut cmd = env.nepho();
    cmd.args(["registry:update"]);
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 512 << 20,
                rlim_max: 512 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let run = crate::support::Run::from(cmd.output().unwrap()).code(4);
    assert!(
        run.stderr.contains("registry index") && run.stderr.contains("larger than 64 MiB"),
        "{}",
        run.stderr
    );
    assert_eq!(cache_size(), before, "the cache must not change");
    // The index cached before still answers.
    assert_eq!(
        env.run(&["-o", "json", "cloudlet:search", "blog"])
            .ok()
            .json()[0]["name"],
        "acme/blog"
    );
}

#[test]
fn terminal_escapes_from_the_registry_are_not_printed_raw() {
    let env = Env::new();
    let hostile = serde_json::to_vec(&serde_json::json!({
        "version": 1,
        "cloudlets": [{
            "name": "evil/term",
            "url": "git://127.0.0.1:1/evil.git",
            "author": "\u{1b}]0;pwned\u{7}mallory",
            "summary": "\u{1b}[31mred\u{1b}[0m alert\u{9b}2J\rcleared",
            "description": "line one\n\u{1b}[2Jline two",
            "tags": ["\u{1b}[5mblink"],
            "version": "1.0\u{8}\u{8}\u{8}9.9",
        }]
    }))
    .unwrap();
    let server = HttpServer::start(&hostile);
    env.write_config(&format!("registry: {}\n", server.url("index.json")));
    let clean = |s: &str| {
        !s.chars()
            .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{7f}')
    };
    let search = env.run(&["cloudlet:search", "alert"]).ok();
    assert!(search.stdout.contains("red"), "{}", search.stdout);
    assert!(clean(&search.stdout), "{:?}", search.stdout);
    let describe = env.run(&["cloudlet:describe", "evil/term"]).ok();
    assert!(describe.stdout.contains("line two"), "{}", describe.stdout);
    assert!(clean(&describe.stdout), "{:?}", describe.stdout);
    // JSON keeps the text exactly, ESC and CR escaped as JSON (`\u001b`).
    let json = env.run(&["-o", "json", "cloudlet:search", "alert"]).ok();
    assert_eq!(
        json.json()[0]["summary"],
        "\u{1b}[31mred\u{1b}[0m alert\u{9b}2J\rcleared"
    );
    assert!(!json.stdout.contains(['\u{1b}', '\r']), "{:?}", json.stdout);
}
