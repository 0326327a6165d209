//! `registry:serve`: a small static HTTP server for a built registry, with what the CLI's
//! cache expects (ETag and `If-None-Match`, gzip, max-age). It listens on 127.0.0.1 unless told
//! otherwise, serves only files inside its directory (no dotfiles, no symlinks out), and bounds
//! request size, time and concurrency.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::{Error, Result};

/// The most a request's head may take.
const MAX_HEAD_BYTES: usize = 16 << 10;
/// Connections served at once; more wait in the kernel's backlog or get 503.
const MAX_CONNECTIONS: usize = 64;
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest file served (an index is at most 64 MiB; pages are small).
const MAX_FILE_BYTES: u64 = 128 << 20;
/// How long clients may use a response before revalidating it.
const MAX_AGE: u64 = 60;

/// What `registry:serve` prints once it listens.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Serving {
    /// The site's address (`http://127.0.0.1:PORT/`).
    pub url: String,
    /// What to put under `registries:` in a nepho config.
    pub index_url: String,
    pub root: String,
}

pub struct Server {
    listener: TcpListener,
    root: PathBuf,
    addr: SocketAddr,
}

/// A file's response body, computed once per (path, size, mtime).
struct Cached {
    stamp: (u64, SystemTime),
    etag: String,
    body: Arc<Vec<u8>>,
    gzip: Option<Arc<Vec<u8>>>,
}

type Cache = Mutex<HashMap<PathBuf, Arc<Cached>>>;

/// Binds the server; `allow_remote` must be given to listen elsewhere than loopback.
pub fn bind(root: &Path, listen: SocketAddr, allow_remote: bool) -> Result<Server> {
    if !listen.ip().is_loopback() && !allow_remote {
        return Err(Error::usage(format!(
            "refusing to listen on {listen}: only loopback addresses unless --allow-remote"
        ))
        .with_hint(
            "use --listen 127.0.0.1:PORT, or add --allow-remote to publish on the network",
        ));
    }
    let root = root.canonicalize().map_err(|e| Error::io(root, e))?;
    if !root.join("index.json").is_file() {
        return Err(Error::not_found(format!(
            "{} holds no registry (no index.json)",
            root.display()
        ))
        .with_hint("build one with `nepho registry:build SOURCES... --out DIR`"));
    }
    let listener = TcpListener::bind(listen).map_err(|e| {
        Error::unavailable(format!("cannot listen on {listen}: {e}"))
            .with_hint("pick another port with --listen 127.0.0.1:PORT")
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Other(e.to_string()))?;
    Ok(Server {
        listener,
        root,
        addr,
    })
}

impl Server {
    pub fn serving(&self) -> Serving {
        let url = format!("http://{}/", self.addr);
        Serving {
            index_url: format!("{url}index.json"),
            url,
            root: self.root.display().to_string(),
        }
    }

    /// Serves until interrupted (Ctrl-C or SIGTERM ends the process).
    pub fn run(self) -> Result<()> {
        self.listener
            .set_nonblocking(true)
            .map_err(|e| Error::Other(e.to_string()))?;
        let root = Arc::new(self.root);
        let cache: Arc<Cache> = Arc::new(Mutex::new(HashMap::new()));
        let active = Arc::new(AtomicUsize::new(0));
        loop {
            if crate::git::interrupted() {
                return Err(Error::Interrupted);
            }
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err(_) => continue,
            };
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
            let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
            if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                active.fetch_sub(1, Ordering::SeqCst);
                let mut s = stream;
                let _ = s.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            let (root, cache, active) = (root.clone(), cache.clone(), active.clone());
            std::thread::spawn(move || {
                let _ = handle(stream, &root, &cache);
                active.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }
}

struct Request {
    method: String,
    target: String,
    if_none_match: Option<String>,
    gzip_ok: bool,
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.take(MAX_HEAD_BYTES as u64));
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut req = Request {
        method,
        target,
        if_none_match: None,
        gzip_ok: false,
    };
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None; // head cut short, or over the limit
        }
        let header = header.trim_end();
        if header.is_empty() {
            return Some(req);
        }
        let (name, value) = header.split_once(':')?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "if-none-match" => req.if_none_match = Some(value.to_string()),
            "accept-encoding" => {
                req.gzip_ok = value.split(',').any(|v| {
                    let mut it = v.split(';');
                    let coding = it.next().unwrap_or("").trim();
                    let refused = it.any(|p| {
                        p.trim()
                            .strip_prefix("q=")
                            .and_then(|q| q.trim().parse::<f32>().ok())
                            == Some(0.0)
                    });
                    (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
                })
            }
            _ => {}
        }
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
    head: bool,
) {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\nServer: nepho\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let _ = stream.write_all(out.as_bytes());
    if !head {
        let _ = stream.write_all(body);
    }
    let _ = stream.flush();
}

fn plain(stream: &mut TcpStream, status: &str, text: &str, head: bool) {
    respond(
        stream,
        status,
        &[("Content-Type", "text/plain; charset=utf-8".into())],
        format!("{text}\n").as_bytes(),
        head,
    );
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Maps a request path to a file inside `root`, or says why not.
pub fn resolve(root: &Path, target: &str) -> std::result::Result<PathBuf, &'static str> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let path = percent_decode(path).ok_or("bad path")?;
    if !path.starts_with('/') {
        return Err("bad path");
    }
    let mut file = root.to_path_buf();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        // No way up, no hidden files (a `.git` next to the site is not published).
        if part.starts_with('.') || part.contains(['\\', '\0']) {
            return Err("forbidden");
        }
        file.push(part);
    }
    if file.is_dir() {
        file.push("index.html");
    }
    let real = file.canonicalize().map_err(|_| "not found")?;
    if !real.starts_with(root) {
        return Err("forbidden");
    }
    if !real.is_file() {
        return Err("not found");
    }
    Ok(real)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn compressible(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("html" | "css" | "js" | "json" | "svg" | "txt" | "md")
    )
}

fn load(path: &Path, cache: &Cache) -> std::io::Result<Arc<Cached>> {
    let meta = std::fs::metadata(path)?;
    let stamp = (
        meta.len(),
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    );
    if let Some(c) = cache.lock().ok().and_then(|c| c.get(path).cloned())
        && c.stamp == stamp
    {
        return Ok(c);
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::other("file too large"));
    }
    let body = std::fs::read(path)?;
    let etag = format!("\"{}-{:x}\"", super::fnv1a_bytes(&body), body.len());
    let gzip = (compressible(path) && body.len() > 512)
        .then(|| {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&body).ok()?;
            enc.finish().ok()
        })
        .flatten()
        .map(Arc::new);
    let cached = Arc::new(Cached {
        stamp,
        etag,
        body: Arc::new(body),
        gzip,
    });
    if let Ok(mut c) = cache.lock() {
        // Never more than a few thousand bodies in memory: start over when it grows.
        if c.len() > 4096 {
            c.clear();
        }
        c.insert(path.to_path_buf(), cached.clone());
    }
    Ok(cached)
}

fn handle(mut stream: TcpStream, root: &Path, cache: &Cache) -> std::io::Result<()> {
    let Some(req) = read_request(&stream) else {
        plain(&mut stream, "400 Bad Request", "bad request", false);
        return Ok(());
    };
    let head = req.method == "HEAD";
    if req.method != "GET" && !head {
        respond(
            &mut stream,
            "405 Method Not Allowed",
            &[("Allow", "GET, HEAD".into())],
            b"",
            false,
        );
        return Ok(());
    }
    let path = match resolve(root, &req.target) {
        Ok(p) => p,
        Err("forbidden") => {
            plain(&mut stream, "403 Forbidden", "forbidden", head);
            return Ok(());
        }
        Err("not found") => {
            plain(&mut stream, "404 Not Found", "not found", head);
            return Ok(());
        }
        Err(_) => {
            plain(&mut stream, "400 Bad Request", "bad path", head);
            return Ok(());
        }
    };
    let file = match load(&path, cache) {
        Ok(f) => f,
        Err(_) => {
            plain(&mut stream, "404 Not Found", "not found", head);
            return Ok(());
        }
    };
    let mut headers = vec![
        ("ETag", file.etag.clone()),
        ("Cache-Control", format!("max-age={MAX_AGE}")),
        ("Vary", "Accept-Encoding".into()),
        ("Content-Type", content_type(&path).into()),
        ("X-Content-Type-Options", "nosniff".into()),
    ];
    let matches = req.if_none_match.as_deref().is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == file.etag)
    });
    if matches {
        headers.retain(|(k, _)| *k != "Content-Type");
        respond(&mut stream, "304 Not Modified", &headers, b"", true);
        return Ok(());
    }
    match (&file.gzip, req.gzip_ok) {
        (Some(gz), true) => {
            headers.push(("Content-Encoding", "gzip".into()));
            respond(&mut stream, "200 OK", &headers, gz, head);
        }
        _ => respond(&mut stream, "200 OK", &headers, &file.body, head),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("index.json"), "{}").unwrap();
        std::fs::create_dir(root.join("c")).unwrap();
        std::fs::write(root.join("c/a b.html"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("c/out.html")).unwrap();
        assert_eq!(
            resolve(&root, "/index.json?x=1").unwrap(),
            root.join("index.json")
        );
        assert_eq!(
            resolve(&root, "/c/a%20b.html").unwrap(),
            root.join("c/a b.html")
        );
        assert_eq!(resolve(&root, "/../etc/passwd"), Err("forbidden"));
        assert_eq!(resolve(&root, "/%2e%2e/etc/passwd"), Err("forbidden"));
        assert_eq!(resolve(&root, "/c/..%2f..%2fetc/passwd"), Err("forbidden"));
        assert_eq!(resolve(&root, "/c/out.html"), Err("forbidden"));
        assert_eq!(resolve(&root, "/.git/config"), Err("forbidden"));
        assert_eq!(resolve(&root, "/nothing"), Err("not found"));
        assert_eq!(resolve(&root, "http://x/"), Err("bad path"));
    }
}
