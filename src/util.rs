//! Small helpers with no better home.

use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// 12 hex digits (48 bits of FNV-1a) naming something by a longer key: a directory per nepho
/// home, a socket per formation. Not for secrets; collisions only between one user's own keys.
/// `90`, `90s`, `10m`, `1h30m`, `2h`, `1d`: a duration on the command line (`--timeout`).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("\"{text}\" is not a duration: use 90s, 10m or 1h30m");
    let mut total = 0u64;
    let mut number = String::new();
    let mut add = |number: &str, unit: u64| -> Result<(), String> {
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(bad)?;
        Ok(())
    };
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        add(&number, unit)?;
        number.clear();
    }
    if !number.is_empty() {
        add(&number, 1)?;
    }
    if total == 0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(total))
}

pub fn short_hash(key: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:012x}", h >> 16)
}

/// `path` with symlinks resolved as far as it exists (the rest appended as written), so a
/// directory names the same place before and after it is created.
pub fn canonical_lenient(path: &Path) -> PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(mut real) = existing.canonicalize() {
            real.extend(rest.iter().rev());
            return real;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// The current time as RFC 3339 UTC (`2026-11-22T03:14:07Z`).
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

pub use nepho_engine::rfc3339;

/// Runs `cmd`'s child in a session of its own, with stdin from /dev/null and its output
/// appended to `log`: the terminal closing (SIGHUP) or Ctrl-C in it does not reach the child.
/// For nepho's background processes (the nanny, the cluster watcher).
/// This process's effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions, touches no memory and cannot fail.
    unsafe { libc::geteuid() }
}

pub fn in_own_session(cmd: &mut std::process::Command, log: std::fs::File) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let log2 = log.try_clone()?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: the closure runs in the forked child before exec and only calls setsid, which is
    // async-signal-safe; it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// A relative path with no `..`, root or prefix components.
pub fn safe_relative(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    if p.is_empty()
        || path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return None;
    }
    Some(
        path.components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_parse_and_overflow_is_refused() {
        use super::parse_duration as p;
        assert_eq!(p("90").unwrap().as_secs(), 90);
        assert_eq!(p("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(p("2d").unwrap().as_secs(), 172_800);
        for bad in [
            "",
            "0",
            "10x",
            "h",
            "99999999999999999h",
            "18446744073709551615s1s",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lenient_canonical_paths_resolve_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::os::unix::fs::symlink(&real, real.join("link")).unwrap();
        assert_eq!(
            super::canonical_lenient(&real.join("link/not/yet")),
            real.join("not/yet")
        );
        assert_eq!(super::short_hash(b"a").len(), 12);
        assert_ne!(super::short_hash(b"a"), super::short_hash(b"b"));
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_317_247), "2026-11-22T03:14:07Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn relative_paths_stay_inside() {
        use super::safe_relative;
        use std::path::PathBuf;
        assert_eq!(safe_relative("a/b.yaml"), Some(PathBuf::from("a/b.yaml")));
        assert_eq!(safe_relative("./a"), Some(PathBuf::from("a")));
        assert_eq!(safe_relative("../a"), None);
        assert_eq!(safe_relative("/etc/passwd"), None);
        assert_eq!(safe_relative("a/../../b"), None);
    }
}
