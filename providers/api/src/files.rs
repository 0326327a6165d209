//! Files a provider writes for itself (project metadata, environment with secrets): written
//! whole or not at all, with the mode they must have from the first byte.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file beside it (renamed over `path`), so a
/// reader never sees half a file. The file has `mode` before anything is written to it.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("nepho-tmp");
    // A leftover from a crash keeps its own mode when reopened: start from a new file.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    // The umask may have taken bits away; the caller asked for exactly `mode`.
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// [`write_atomic`] with mode 0600: for files that hold secrets or keys.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic(path, bytes, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_files_are_0600_even_over_a_stale_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env.json");
        // What a crash between open and rename leaves: a world-readable temporary file.
        std::fs::write(path.with_extension("nepho-tmp"), "old").unwrap();
        std::fs::set_permissions(
            path.with_extension("nepho-tmp"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        write_private(&path, b"{\"secret\": 1}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"secret\": 1}");
        assert_eq!(mode(&path), 0o600);
        assert!(!path.with_extension("nepho-tmp").exists());
        write_atomic(&path, b"{}", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}");
        assert_eq!(mode(&path), 0o644);
    }
}
