//! Drives the system `git`, so users' credential helpers, ssh config, `insteadOf` rules and
//! submodules work as they do in their shell.
//!
//! Transports are restricted (`GIT_ALLOW_PROTOCOL`): a cloudlet's submodule can never run a
//! command through `ext::` or read file descriptors through `fd::`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// Transports a cloudlet (or any of its submodules) may be fetched over.
pub const ALLOWED_PROTOCOLS: &str = "https:http:ssh:git:file";

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// From here on, Ctrl-C stops child processes (they share our process group) but lets nepho
/// clean up before exiting with code 130.
pub fn catch_interrupts() {
    // SAFETY: the handler only stores to an atomic (async-signal-safe), and `signal` is given a
    // valid `extern "C" fn(c_int)`.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

pub struct Git {
    /// Never let git ask for a password on the terminal (`--no-input`, no TTY).
    pub no_prompt: bool,
}

impl Git {
    fn command(&self, dir: Option<&Path>) -> Command {
        let mut cmd = Command::new("git");
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        cmd.env("GIT_ALLOW_PROTOCOL", ALLOWED_PROTOCOLS)
            .args([
                "-c",
                "protocol.ext.allow=never",
                "-c",
                "protocol.fd.allow=never",
                "-c",
                "core.hooksPath=/dev/null",
            ])
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env("LC_ALL", "C");
        if self.no_prompt {
            cmd.env("GIT_TERMINAL_PROMPT", "0")
                .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
        }
        cmd
    }

    /// Runs git; a non-zero exit becomes an error carrying git's own message.
    pub fn run<I, S>(&self, dir: Option<&Path>, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<std::ffi::OsString> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let output = self.output(dir, &args)?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        if interrupted() {
            return Err(Error::Interrupted);
        }
        let shown: Vec<String> = args
            .iter()
            .map(|a| redact_userinfo(&a.to_string_lossy()))
            .collect();
        let stderr = redact_userinfo(String::from_utf8_lossy(&output.stderr).trim());
        Err(Error::unavailable(format!(
            "`git {}` failed: {stderr}",
            shown.join(" ")
        )))
    }

    fn output(&self, dir: Option<&Path>, args: &[std::ffi::OsString]) -> Result<Output> {
        let line = args
            .iter()
            .map(|a| redact_userinfo(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ");
        let started = std::time::Instant::now();
        match dir {
            Some(d) => tracing::info!("git {line} (in {})", d.display()),
            None => tracing::info!("git {line}"),
        }
        let mut cmd = self.command(dir);
        cmd.args(args).stdin(Stdio::null());
        let output = cmd.output();
        tracing::debug!("git {line}: {:.1?}", started.elapsed());
        if let Ok(out) = &output {
            tracing::trace!(
                status = %out.status,
                stdout = %redact_userinfo(&String::from_utf8_lossy(&out.stdout)),
                stderr = %redact_userinfo(&String::from_utf8_lossy(&out.stderr)),
                "git answered"
            );
        }
        output.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::unavailable("git is not installed")
                    .with_hint("install git (Debian/Ubuntu: `apt-get install git`)")
            } else {
                Error::Other(format!("cannot run git: {e}"))
            }
        })
    }

    /// Like `run` but only reports whether git succeeded.
    pub fn ok<I, S>(&self, dir: Option<&Path>, args: I) -> Result<bool>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<std::ffi::OsString> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        Ok(self.output(dir, &args)?.status.success())
    }

    pub fn clone_repo(&self, url: &str, dest: &Path) -> Result<()> {
        check_url(url)?;
        self.run(
            None,
            [
                OsStr::new("clone"),
                OsStr::new("--quiet"),
                OsStr::new("--"),
                OsStr::new(url),
                dest.as_os_str(),
            ],
        )
        .map(|_| ())
    }

    pub fn head(&self, repo: &Path) -> Result<String> {
        Ok(self
            .run(Some(repo), ["rev-parse", "HEAD"])?
            .trim()
            .to_string())
    }

    /// Checks out `reference` (a branch, tag or commit). Returns the branch name when it is one.
    pub fn checkout(&self, repo: &Path, reference: &str) -> Result<Option<String>> {
        if reference.starts_with('-') {
            return Err(Error::invalid(format!("invalid --ref \"{reference}\"")));
        }
        let remote_branch = format!("refs/remotes/origin/{reference}");
        if self.ok(
            Some(repo),
            ["rev-parse", "--verify", "--quiet", &remote_branch],
        )? {
            self.run(
                Some(repo),
                ["checkout", "--quiet", "-B", reference, &remote_branch],
            )?;
            self.run(
                Some(repo),
                [
                    "branch",
                    "--quiet",
                    "--set-upstream-to",
                    &format!("origin/{reference}"),
                    reference,
                ],
            )?;
            return Ok(Some(reference.to_string()));
        }
        let commit = format!("{reference}^{{commit}}");
        if !self.ok(Some(repo), ["rev-parse", "--verify", "--quiet", &commit])? {
            return Err(Error::not_found(format!(
                "no branch, tag or commit \"{reference}\" in the repository"
            ))
            .with_hint("check the name with `git ls-remote URL`"));
        }
        self.run(Some(repo), ["checkout", "--quiet", "--detach", &commit])?;
        Ok(None)
    }

    pub fn current_branch(&self, repo: &Path) -> Result<Option<String>> {
        let out = self.run(Some(repo), ["symbolic-ref", "--quiet", "--short", "HEAD"]);
        Ok(out
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()))
    }

    /// `git status --porcelain` lines for tracked changes (untracked files are never lost by a
    /// fast-forward, so they do not block an update).
    pub fn local_changes(&self, repo: &Path) -> Result<Vec<String>> {
        let out = self.run(
            Some(repo),
            [
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--ignore-submodules=none",
            ],
        )?;
        Ok(out
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// Initialises submodules one level at a time, checking each `.gitmodules` before git acts on it.
    pub fn init_submodules(&self, repo: &Path, root: &Path, depth: usize) -> Result<Vec<PathBuf>> {
        if depth > 8 {
            return Err(Error::invalid("submodules nest more than 8 levels deep"));
        }
        let gitmodules = repo.join(".gitmodules");
        if !gitmodules.is_file() {
            return Ok(Vec::new());
        }
        let listing = self.run(
            Some(repo),
            [
                "config",
                "--file",
                ".gitmodules",
                "--get-regexp",
                r"^submodule\..*\.(url|path)$",
            ],
        )?;
        for line in listing.lines() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            if key.ends_with(".url") {
                check_url(value).map_err(|e| match e {
                    Error::Invalid {
                        message,
                        hint,
                        span,
                    } => Error::Invalid {
                        message: format!("{}: submodule {key}: {message}", gitmodules.display()),
                        hint,
                        span,
                    },
                    other => other,
                })?;
            } else if crate::util::safe_relative(value).is_none()
                || value.split('/').any(|p| p == ".git")
            {
                return Err(Error::invalid(format!(
                    "{}: submodule path \"{value}\" leaves the cloudlet",
                    gitmodules.display()
                )));
            }
        }
        self.run(Some(repo), ["submodule", "--quiet", "sync"])?;
        self.run(
            Some(repo),
            ["submodule", "--quiet", "update", "--init", "--"],
        )?;
        let paths = self.run(
            Some(repo),
            [
                "config",
                "--file",
                ".gitmodules",
                "--get-regexp",
                r"^submodule\..*\.path$",
            ],
        )?;
        let mut done = Vec::new();
        for line in paths.lines() {
            let Some((_, path)) = line.split_once(' ') else {
                continue;
            };
            let sub = repo.join(path);
            done.push(sub.strip_prefix(root).unwrap_or(&sub).to_path_buf());
            done.extend(self.init_submodules(&sub, root, depth + 1)?);
        }
        Ok(done)
    }
}

/// Rejects URLs git would turn into command execution or option injection.
pub fn check_url(url: &str) -> Result<()> {
    let lower = url.to_ascii_lowercase();
    let reason = if url.starts_with('-') {
        Some("it starts with `-` (it would be read as an option)")
    } else if lower.starts_with("ext::") || lower.contains("::") && !lower.contains("://") {
        Some("the `ext::`/`fd::` remote helpers run commands and are never allowed")
    } else if lower.starts_with("fd::") {
        Some("the `fd::` transport is never allowed")
    } else if url.chars().any(|c| c.is_control()) {
        Some("it contains control characters")
    } else {
        None
    };
    match reason {
        Some(why) => Err(Error::invalid(format!(
            "refusing git URL \"{}\": {why}",
            url.escape_debug()
        ))
        .with_hint(format!(
            "nepho fetches cloudlets over {} only",
            ALLOWED_PROTOCOLS.replace(':', ", ")
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_urls_are_refused() {
        for bad in [
            "ext::sh -c touch% /tmp/pwned",
            "fd::17",
            "-uhelp",
            "EXT::x",
            "a\nb",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        for good in [
            "https://github.com/huit/nepho-mediawiki.git",
            "git://127.0.0.1:9418/x.git",
            "git@github.com:a/b.git",
            "../sub.git",
            "/srv/git/x",
        ] {
            assert!(check_url(good).is_ok(), "{good}");
        }
    }
}

/// `https://user:token@host/x.git` → `https://***@host/x.git`: credentials in URLs never reach a
/// log.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod redact_tests {
    #[test]
    fn userinfo_is_hidden() {
        assert_eq!(
            super::redact_userinfo("clone https://me:tok3n@git.example.com/a.git x"),
            "clone https://***@git.example.com/a.git x"
        );
        assert_eq!(
            super::redact_userinfo("git://127.0.0.1:9/a.git"),
            "git://127.0.0.1:9/a.git"
        );
    }
}
