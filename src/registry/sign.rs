//! SSH signatures of a registry's `index.json` (`ssh-keygen -Y sign/verify`, namespace
//! `nepho-registry`): `registry:build --sign KEY` writes `index.json.sig`, and every refresh of
//! a registry with trusted keys checks it before the index is used or cached.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, IoContext, Result};

/// The signature namespace: a signature made for anything else (a git commit, a file) does
/// not verify as a registry index.
pub const NAMESPACE: &str = "nepho-registry";
/// A signature larger than this is not an SSH signature.
const MAX_SIG_BYTES: usize = 64 << 10;

fn ssh_keygen() -> Command {
    let mut cmd = Command::new("ssh-keygen");
    cmd.env("LC_ALL", "C");
    cmd
}

fn missing_tool(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::unavailable("ssh-keygen is not installed")
            .with_hint("install OpenSSH's client (Debian/Ubuntu: `apt-get install openssh-client`)")
    } else {
        Error::Other(format!("cannot run ssh-keygen: {e}"))
    }
}

/// Signs `file` with the private key `key`, writing `FILE.sig`.
pub fn sign(key: &Path, file: &Path) -> Result<PathBuf> {
    let sig = PathBuf::from(format!("{}.sig", file.display()));
    // ssh-keygen refuses to overwrite a signature.
    let _ = std::fs::remove_file(&sig);
    let out = ssh_keygen()
        .args(["-q", "-Y", "sign", "-n", NAMESPACE, "-f"])
        .arg(key)
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .map_err(missing_tool)?;
    if !out.status.success() || !sig.is_file() {
        return Err(Error::invalid(format!(
            "cannot sign {} with {}: {}",
            file.display(),
            key.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .with_hint("give --sign the private key file (ssh-keygen -t ed25519 makes one)"));
    }
    Ok(sig)
}

/// The allowed-signers line for one trusted public key (`ssh-ed25519 AAAA... comment`).
fn allowed_signer(key: &str) -> Result<String> {
    let key = key.trim();
    let mut parts = key.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return Err(Error::invalid(format!(
            "registry key \"{key}\" is not an SSH public key (expected `ssh-ed25519 AAAA...`)"
        )));
    };
    if key.chars().any(char::is_control)
        || !(kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-"))
    {
        return Err(Error::invalid(format!(
            "registry key \"{key}\" is not an SSH public key (expected `ssh-ed25519 AAAA...`)"
        )));
    }
    Ok(format!(
        "{NAMESPACE} namespaces=\"{NAMESPACE}\" {kind} {blob}\n"
    ))
}

/// Checks that `signature` is a `nepho-registry` signature of `data` by one of `keys`.
pub fn verify(data: &[u8], signature: &[u8], keys: &[String], source: &str) -> Result<()> {
    let failed = |why: String| {
        Error::invalid(format!(
            "registry {source}: the index's signature does not verify: {why}"
        ))
        .with_hint("the index was not used; check `registry_keys`/`keys` in your config, or ask the registry's maintainer")
    };
    if signature.len() > MAX_SIG_BYTES {
        return Err(failed("the signature is implausibly large".into()));
    }
    let dir = tempfile::Builder::new()
        .prefix("nepho-verify-")
        .tempdir()
        .map_err(|e| Error::Other(format!("cannot make a temporary directory: {e}")))?;
    let allowed = dir.path().join("allowed_signers");
    let lines: String = keys
        .iter()
        .map(|k| allowed_signer(k))
        .collect::<Result<_>>()?;
    std::fs::write(&allowed, lines).at(&allowed)?;
    let sig = dir.path().join("index.json.sig");
    std::fs::write(&sig, signature).at(&sig)?;
    let mut child = ssh_keygen()
        .args(["-Y", "verify", "-n", NAMESPACE, "-I", NAMESPACE, "-f"])
        .arg(&allowed)
        .arg("-s")
        .arg(&sig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(missing_tool)?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    // ssh-keygen may stop reading early on a bad signature; a broken pipe is its answer.
    let writer = std::thread::scope(|s| {
        let h = s.spawn(move || {
            let _ = stdin.write_all(data);
        });
        let out = child.wait_with_output();
        let _ = h.join();
        out
    });
    let out = writer.map_err(missing_tool)?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr);
    let why = why
        .lines()
        .chain(String::from_utf8_lossy(&out.stdout).lines())
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no trusted key made it")
        .to_string();
    Err(failed(why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_signers_lines_refuse_what_is_not_a_key() {
        assert_eq!(
            allowed_signer("ssh-ed25519 AAAAC3 me@host").unwrap(),
            "nepho-registry namespaces=\"nepho-registry\" ssh-ed25519 AAAAC3\n"
        );
        assert!(allowed_signer("hello").is_err());
        assert!(allowed_signer("cert-authority ssh-ed25519 AAAA").is_err());
        assert!(allowed_signer("ssh-ed25519 AAAA\nevil").is_err());
    }
}
